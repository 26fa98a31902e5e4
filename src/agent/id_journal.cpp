#include "agent/id_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "core/file_io.h"
#include "core/log.h"

namespace taba::agent {

IdJournal::~IdJournal() {
  if (fd_ >= 0) ::close(fd_);
}

Status IdJournal::switch_to(int index, bool truncate) {
  if (fd_ >= 0) ::close(fd_);
  std::string path = fmt::format("{}/client-ids.{}", dir_, index);
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
  if (fd_ < 0) return fileio::io_error("cannot open", path, errno);
  current_ = index;
  return Status::Ok();
}

Status IdJournal::open(const std::string& dir, double ttl_s, double now,
                       const std::function<void(std::string_view id, double expires)>& on_id) {
  std::lock_guard<std::mutex> lock(mu_);
  dir_ = dir;
  ttl_s_ = ttl_s;
  // The file written last is the current one; its age decides the switch.
  double newest_mtime = -1;
  int newest = 0;
  for (int i = 0; i < 2; ++i) {
    std::string path = fmt::format("{}/client-ids.{}", dir, i);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    double mtime = static_cast<double>(st.st_mtim.tv_sec);
    if (mtime > newest_mtime) {
      newest_mtime = mtime;
      newest = i;
    }
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      size_t sp = line.find(' ');
      if (sp == std::string::npos || sp + 1 >= line.size()) continue;  // a torn last line
      double expires = std::strtod(line.c_str(), nullptr);
      if (expires > now) on_id(std::string_view(line).substr(sp + 1), expires);
    }
  }
  // Started when its oldest possible entry was written: a conservative
  // guess is the file's mtime minus ttl; switching early only costs ids that
  // are about to expire anyway, so take its mtime.
  current_since_ = newest_mtime < 0 ? now : newest_mtime;
  return switch_to(newest, false);
}

Status IdJournal::append(const std::vector<std::string>& ids, double expires, double now) {
  if (ids.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return Status::IoError("the client id journal is not open");
  if (now - current_since_ >= ttl_s_) {
    // Every id in the other file has expired by now: it was last written
    // at least ttl ago.
    TABA_RETURN_IF_ERROR(switch_to(1 - current_, true));
    current_since_ = now;
  }
  std::string text;
  for (const std::string& id : ids) text += fmt::format("{:.0f} {}\n", expires, id);
  std::vector<iovec> iov{{text.data(), text.size()}};
  struct stat st;
  off_t end = ::fstat(fd_, &st) == 0 ? st.st_size : 0;
  int err = fileio::pwrite_all(fd_, iov, end);
  if (err == 0) err = fileio::sync_data(fd_);
  if (err != 0) {
    log::error("agent: cannot write the client id journal in {}: {}", dir_, fileio::errno_text(err));
    return fileio::io_error("cannot write the client id journal in", dir_, err);
  }
  return Status::Ok();
}

}  // namespace taba::agent
