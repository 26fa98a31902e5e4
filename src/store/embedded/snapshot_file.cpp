// The snapshot file: reading it at recovery, writing it on the snapshot
// thread (see snapshot_file.h).
#include "store/embedded/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "core/file_io.h"
#include "core/log.h"
#include "core/mapped_file.h"

namespace taba::store {
namespace {

constexpr char kSnapshotMagic[] = "TABASNP1";
constexpr size_t kMagicBytes = 8;

using fileio::checksum;
using fileio::get_u32;
using fileio::get_u64;
using fileio::io_error;

}  // namespace

Status read_snapshot_file(const std::string& dir, const std::function<Status(std::string_view)>& on_payload,
                          uint64_t* covered) {
  const std::string tmp = dir + "/snapshot.tmp";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) return io_error("cannot remove", tmp, errno);
  const std::string file = dir + "/snapshot";
  struct stat st;
  if (stat(file.c_str(), &st) != 0) return errno == ENOENT ? Status::Ok() : io_error("cannot stat", file, errno);
  fileio::MappedFile map;
  TABA_RETURN_IF_ERROR(map.open(file));
  std::string_view data = map.data();
  auto corrupt = [&](std::string why) {
    return Status::Corruption(fmt::format("snapshot file {}: {}", file, why));
  };
  if (data.size() < kSnapshotHeaderBytes) {
    return corrupt(
        fmt::format("{} bytes, shorter than the {}-byte header", data.size(), kSnapshotHeaderBytes));
  }
  if (data.substr(0, kMagicBytes) != std::string_view(kSnapshotMagic, kMagicBytes)) return corrupt("bad magic");
  uint64_t length = get_u64(data.data() + 16);
  if (length != data.size() - kSnapshotHeaderBytes) {
    return corrupt(fmt::format("payload length {} does not match the file size {}", length, data.size()));
  }
  std::string_view payload = data.substr(kSnapshotHeaderBytes);
  if (checksum(payload) != get_u32(data.data() + 24)) return corrupt("checksum mismatch");
  *covered = get_u64(data.data() + 8);
  if (on_payload) return on_payload(payload);
  return Status::Ok();
}

void SnapshotWriter::start(std::string dir, int dir_fd, CompletionQueue* completions,
                           std::function<void(uint64_t)> on_written) {
  dir_ = std::move(dir);
  dir_fd_ = dir_fd;
  completions_ = completions;
  on_written_ = std::move(on_written);
  thread_ = std::thread([this] { run(); });
}

void SnapshotWriter::add(SnapshotJob job) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.push_back(std::move(job));
  wake_.notify_one();
}

void SnapshotWriter::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status SnapshotWriter::write_file(const SnapshotJob& job) {
  const std::string tmp = dir_ + "/snapshot.tmp";
  const std::string file = dir_ + "/snapshot";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return io_error("cannot create", tmp, errno);
  char header[kSnapshotHeaderBytes];
  std::memcpy(header, kSnapshotMagic, kMagicBytes);
  fileio::put_u64(header + 8, job.covered_segment);
  fileio::put_u64(header + 16, job.payload.size());
  fileio::put_u32(header + 24, checksum(job.payload));
  std::vector<iovec> iov{{header, sizeof header}};
  if (!job.payload.empty()) iov.push_back({const_cast<char*>(job.payload.data()), job.payload.size()});
  int err = fileio::pwrite_all(out, iov, 0);
  if (err == 0 && fsync(out) != 0) err = errno;
  ::close(out);
  if (err == 0 && rename(tmp.c_str(), file.c_str()) != 0) err = errno;
  if (err != 0) {
    unlink(tmp.c_str());
    return io_error("cannot write snapshot", file, err);
  }
  return fsync(dir_fd_) == 0 ? Status::Ok() : io_error("cannot fsync", dir_, errno);
}

void SnapshotWriter::run() {
  for (;;) {
    SnapshotJob job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return !jobs_.empty() || stopping_; });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Status s = Status::Ok();
    if (job.produce) {
      Result<std::string> made = job.produce();
      if (made.ok()) {
        job.payload = std::move(made.value());
      } else {
        s = made.status();
      }
    }
    bool write_failed = false;
    if (s.ok()) {
      s = write_file(job);
      write_failed = !s.ok();
    }
    if (s.ok()) {
      on_written_(job.covered_segment);
      snapshots_written_.fetch_add(1);
      last_snapshot_bytes_.store(kSnapshotHeaderBytes + job.payload.size());
    } else {
      if (write_failed) write_errors_.fetch_add(1);
      log::error("wal: {}", s.message());
    }
    job.payload = std::string();  // the memory goes back before the next snapshot
    std::vector<CompletionQueue::Completion> out;
    out.push_back({std::move(job.done), s});
    completions_->post(&out);
  }
}

}  // namespace taba::store
