// A whole file as a read-only memory mapping: how the WAL's recovery reads
// its segments and snapshot file without copying them (an empty file is an
// empty view).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "core/file_io.h"
#include "core/status.h"

namespace taba::fileio {

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { reset(); }

  Status open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return io_error("cannot stat", path, err);
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* addr = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        size_ = 0;
        return io_error("cannot map", path, err);
      }
      addr_ = addr;
      madvise(addr_, size_, MADV_SEQUENTIAL);
    }
    ::close(fd);
    return Status::Ok();
  }
  std::string_view data() const { return {static_cast<const char*>(addr_), size_}; }
  void reset() {
    if (addr_) munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace taba::fileio
