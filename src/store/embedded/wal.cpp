// Write-ahead log: recovery on open, a writer thread with group commit, and a
// snapshot thread so that writing a large snapshot never stalls the log.
#include "store/embedded/wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/file_io.h"
#include "core/log.h"

namespace taba::store {
namespace {

using Clock = std::chrono::steady_clock;
using Done = std::function<void(const Status&)>;

constexpr char kSegmentMagic[] = "TABAWAL1";
constexpr char kSnapshotMagic[] = "TABASNP1";
constexpr size_t kMagicBytes = 8;
constexpr size_t kRecordHeaderBytes = 8;     // u32 length | u32 crc32
constexpr size_t kSnapshotHeaderBytes = 28;  // magic | u64 covered | u64 length | u32 crc32
constexpr uint64_t kMaxRecordBytes = 1ull << 30;
// Payloads up to this size are copied next to their header so that a group of
// small records goes out as one contiguous buffer; larger ones are written in place.
constexpr size_t kCopyPayloadBytes = 4096;
// A group is written once it holds this much, bounding the copy buffer.
constexpr uint64_t kMaxGroupBytes = 8ull << 20;
constexpr auto kEverySecInterval = std::chrono::seconds(1);
// everysec: writeback of the segment is started every this many bytes.
constexpr uint64_t kWritebackBytes = 8ull << 20;

using fileio::checksum;
using fileio::errno_text;
using fileio::get_u32;
using fileio::get_u64;
using fileio::io_error;
using fileio::put_u32;
using fileio::put_u64;
using fileio::pwrite_all;
using fileio::sync_data;

// A write refused for lack of room (a full disk, a quota, RLIMIT_FSIZE):
// nothing is wrong with the log, and the same write can succeed later.
bool is_space_error(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG; }

// Segment numbers stay below this (see recover()).
constexpr uint64_t kMaxSegmentNumber = uint64_t{1} << 63;

std::string segment_name(uint64_t number) {
  return fmt::format("wal-{:020}.log", number);
}

// "wal-" 20 digits ".log" -> number.
bool parse_segment_name(std::string_view name, uint64_t* number) {
  if (name.size() != 28 || name.substr(0, 4) != "wal-" || name.substr(24) != ".log") return false;
  uint64_t n = 0;
  for (char c : name.substr(4, 20)) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - digit) / 10) return false;  // past 2^64 - 1
    n = n * 10 + digit;
  }
  *number = n;
  return true;
}

Result<std::vector<uint64_t>> list_segments(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return io_error("cannot list", dir, errno);
  std::vector<uint64_t> numbers;
  while (dirent* e = readdir(d)) {
    uint64_t n;
    if (parse_segment_name(e->d_name, &n)) numbers.push_back(n);
  }
  closedir(d);
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

// A whole file as a read-only mapping (an empty file is an empty view).
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

// Truncates `path` to `length` bytes and makes that durable.
Status truncate_durably(const std::string& path, uint64_t length) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path, errno);
  int err = 0;
  if (ftruncate(fd, static_cast<off_t>(length)) != 0) err = errno;
  if (err == 0) err = sync_data(fd);
  ::close(fd);
  return err == 0 ? Status::Ok() : io_error("cannot truncate", path, err);
}

// Replaces the content of `path` with the bare segment magic.
Status rewrite_segment_header(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", path, errno);
  std::vector<iovec> iov{{const_cast<char*>(kSegmentMagic), kMagicBytes}};
  int err = pwrite_all(fd, iov, 0);
  if (err == 0) err = sync_data(fd);
  ::close(fd);
  return err == 0 ? Status::Ok() : io_error("cannot rewrite", path, err);
}

// A queued append or snapshot marker.
struct Item {
  bool is_snapshot = false;
  std::string payload;
  Done done;
  std::function<Result<std::string>()> produce;  // snapshot payload made on the snapshot thread
};

struct Completion {
  Done done;
  Status status;
};

struct SnapshotJob {
  std::string payload;
  uint64_t covered_segment = 0;
  Done done;
  std::function<Result<std::string>()> produce;  // when set, makes payload first
};

// The records of one write: headers and small payloads are copied into one
// buffer, large payloads are referenced where they are (the batch keeps them alive).
class WriteGroup {
 public:
  void add(Item& item) {
    char header[kRecordHeaderBytes];
    put_u32(header, static_cast<uint32_t>(item.payload.size()));
    put_u32(header + 4, checksum(item.payload));
    append_copy(header, sizeof header);
    if (item.payload.size() <= kCopyPayloadBytes) {
      append_copy(item.payload.data(), item.payload.size());
    } else {
      pieces_.push_back({item.payload.data(), 0, item.payload.size()});
    }
    bytes_ += kRecordHeaderBytes + item.payload.size();
    done_.push_back(std::move(item.done));
  }
  std::vector<iovec> iovecs() const {
    std::vector<iovec> iov;
    iov.reserve(pieces_.size());
    for (const Piece& p : pieces_) {
      const char* base = p.external ? p.external : copy_.data() + p.copy_offset;
      iov.push_back({const_cast<char*>(base), p.length});
    }
    return iov;
  }
  uint64_t bytes() const { return bytes_; }
  size_t records() const { return done_.size(); }
  std::vector<Done>& done() { return done_; }
  void clear() {
    copy_.clear();
    pieces_.clear();
    done_.clear();
    bytes_ = 0;
  }

 private:
  struct Piece {
    const char* external;  // null: the bytes live in copy_ at copy_offset
    size_t copy_offset;
    size_t length;
  };
  void append_copy(const char* data, size_t n) {
    if (n == 0) return;
    if (!pieces_.empty() && !pieces_.back().external) {
      pieces_.back().length += n;
    } else {
      pieces_.push_back({nullptr, copy_.size(), n});
    }
    copy_.append(data, n);
  }
  std::string copy_;
  std::vector<Piece> pieces_;
  std::vector<Done> done_;
  uint64_t bytes_ = 0;
};

}  // namespace

struct WriteAheadLog::Impl {
  uv_loop_t* loop = nullptr;
  WalOptions options;
  uv_async_t* async = nullptr;  // heap-allocated: freed by its close callback, after we are gone
  int dir_fd = -1;              // holds an exclusive flock on the directory while open
  bool started = false;         // loop thread only
  bool closed = false;          // loop thread only

  // Appends waiting for the writer. Guarded by mu.
  mutable std::mutex mu;
  std::condition_variable wake_writer;
  std::vector<Item> queue;
  uint64_t queued_bytes = 0;
  bool stopping = false;
  std::string failure;  // non-empty: a write failed and appends are refused

  // Finished work waiting for the loop thread. Guarded by completed_mu.
  std::mutex completed_mu;
  std::vector<Completion> completed;
  std::deque<Completion> running;    // loop thread only: being run, in order
  bool* destroyed_signal = nullptr;  // loop thread only: set on destruction, for run_completions

  // Snapshot files to write. Guarded by snapshot_mu.
  std::mutex snapshot_mu;
  std::condition_variable wake_snapshotter;
  std::deque<SnapshotJob> snapshot_jobs;
  bool snapshot_stopping = false;

  // Writer thread only.
  int fd = -1;                  // current segment
  uint64_t segment = 0;         // its number
  uint64_t segment_size = 0;    // bytes in it, magic included
  uint64_t unacked_from = 0;    // offset of the first written byte not yet acknowledged
  std::vector<Done> unacked;    // written to the current segment, awaiting fdatasync (always)
  uint64_t writeback_from = 0;  // offset from which writeback has not been started yet
  bool dirty = false;           // written since the last fdatasync
  Clock::time_point last_sync;
  bool writer_failed = false;
  bool out_of_space = false;     // the failing write of this batch lacked room (is_space_error)
  uint64_t space_failures = 0;   // writes refused for lack of room since the last one that succeeded

  std::atomic<bool> out_of_room{false};
  std::atomic<uint64_t> failed_write_bytes{0};
  std::atomic<uint64_t> records_written{0}, bytes_written{0}, fsyncs{0}, write_errors{0},
      snapshots_written{0}, last_snapshot_bytes{0}, torn_records_skipped{0};

  std::thread writer;
  std::thread snapshotter;

  ~Impl() {
    if (destroyed_signal) *destroyed_signal = true;
  }

  std::string path(std::string_view name) const { return options.dir + "/" + std::string(name); }

  // --- recovery (calling thread, before the threads start) ---

  Status lock_directory() {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec) return Status::IoError(fmt::format("cannot create {}: {}", options.dir, ec.message()));
    dir_fd = ::open(options.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return io_error("cannot open", options.dir, errno);
    if (flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Status::Unavailable(fmt::format("{} is in use by another write-ahead log", options.dir));
      }
      return io_error("cannot lock", options.dir, errno);
    }
    return Status::Ok();
  }

  Status sync_dir() {
    return fsync(dir_fd) == 0 ? Status::Ok() : io_error("cannot fsync", options.dir, errno);
  }

  // Reads `snapshot` if present; *covered stays 0 without one.
  Status read_snapshot(const RecoveryVisitor& visitor, uint64_t* covered) {
    const std::string file = path("snapshot");
    struct stat st;
    if (stat(file.c_str(), &st) != 0)
      return errno == ENOENT ? Status::Ok() : io_error("cannot stat", file, errno);
    MappedFile map;
    Status s = map.open(file);
    if (!s.ok()) return s;
    std::string_view data = map.data();
    auto corrupt = [&](std::string why) {
      return Status::Corruption(fmt::format("snapshot file {}: {}", file, why));
    };
    if (data.size() < kSnapshotHeaderBytes) {
      return corrupt(
          fmt::format("{} bytes, shorter than the {}-byte header", data.size(), kSnapshotHeaderBytes));
    }
    if (data.substr(0, kMagicBytes) != std::string_view(kSnapshotMagic, kMagicBytes))
      return corrupt("bad magic");
    uint64_t length = get_u64(data.data() + 16);
    if (length != data.size() - kSnapshotHeaderBytes) {
      return corrupt(fmt::format("payload length {} does not match the file size {}", length, data.size()));
    }
    std::string_view payload = data.substr(kSnapshotHeaderBytes);
    if (checksum(payload) != get_u32(data.data() + 24)) return corrupt("checksum mismatch");
    *covered = get_u64(data.data() + 8);
    if (visitor.on_snapshot) return visitor.on_snapshot(payload);
    return Status::Ok();
  }

  // Replays one segment. A bad record ends the last segment (truncated there);
  // anywhere else it is corruption.
  Status replay_segment(const std::string& file, bool is_last, const RecoveryVisitor& visitor,
                        uint64_t* records) {
    MappedFile map;
    Status s = map.open(file);
    if (!s.ok()) return s;
    std::string_view data = map.data();
    if (data.size() < kMagicBytes) {
      if (!is_last) return Status::Corruption(fmt::format("{}: truncated segment header at offset 0", file));
      log::warn("wal: {}: torn segment header ({} bytes); rewriting it", file, data.size());
      map.reset();
      return rewrite_segment_header(file);
    }
    if (data.substr(0, kMagicBytes) != std::string_view(kSegmentMagic, kMagicBytes)) {
      return Status::Corruption(fmt::format("{}: bad segment magic at offset 0", file));
    }
    uint64_t offset = kMagicBytes;
    const char* bad = nullptr;
    while (offset < data.size()) {
      uint64_t left = data.size() - offset;
      if (left < kRecordHeaderBytes) {
        bad = "truncated record header";
        break;
      }
      uint32_t length = get_u32(data.data() + offset);
      if (length == 0 || length > kMaxRecordBytes) {
        bad = "invalid record length";
        break;
      }
      if (length > left - kRecordHeaderBytes) {
        bad = "record runs past the end of the file";
        break;
      }
      std::string_view payload = data.substr(offset + kRecordHeaderBytes, length);
      if (checksum(payload) != get_u32(data.data() + offset + 4)) {
        bad = "checksum mismatch";
        break;
      }
      if (visitor.on_record) {
        s = visitor.on_record(payload);
        if (!s.ok()) return s;
      }
      ++*records;
      offset += kRecordHeaderBytes + length;
    }
    if (!bad) return Status::Ok();
    if (!is_last) return Status::Corruption(fmt::format("{}: {} at offset {}", file, bad, offset));
    log::warn("wal: {}: {} at offset {} of the last segment; dropping the torn tail ({} bytes)", file, bad,
              offset, data.size() - offset);
    torn_records_skipped.fetch_add(1);
    map.reset();
    return truncate_durably(file, offset);
  }

  // Replays the directory and returns the number of the segment to start.
  Result<uint64_t> recover(const RecoveryVisitor& visitor) {
    auto started_at = Clock::now();
    if (unlink(path("snapshot.tmp").c_str()) != 0 && errno != ENOENT) {
      return io_error("cannot remove", path("snapshot.tmp"), errno);
    }
    uint64_t covered = 0;
    Status s = read_snapshot(visitor, &covered);
    if (!s.ok()) return s;
    // A real log never comes near 2^63 segments (one a second for 3e11
    // years); a number there is a corrupt snapshot header, and going on would
    // soon wrap the segment numbers.
    if (covered >= kMaxSegmentNumber) {
      return Status::Corruption(fmt::format("{}: the snapshot covers up to segment {}, past the largest ({})",
                                            options.dir, covered, kMaxSegmentNumber));
    }
    auto listed = list_segments(options.dir);
    if (!listed.ok()) return listed.status();
    std::vector<uint64_t> segments;
    for (uint64_t n : listed.value()) {
      // Left behind by a crash between writing a snapshot and deleting what it covers.
      if (n >= kMaxSegmentNumber) {
        return Status::Corruption(fmt::format("{}: segment {} is past the largest number ({})", options.dir,
                                              segment_name(n), kMaxSegmentNumber));
      }
      if (n <= covered) {
        log::info("wal: removing {}, covered by the snapshot", segment_name(n));
        if (unlink(path(segment_name(n)).c_str()) != 0)
          return io_error("cannot remove", path(segment_name(n)), errno);
      } else {
        segments.push_back(n);
      }
    }
    uint64_t records = 0;
    for (size_t i = 0; i < segments.size(); ++i) {
      // Segments are created in sequence and only ever deleted up to a snapshot.
      if (segments[i] != covered + 1 + i) {
        return Status::Corruption(fmt::format("{}: missing segment {} (snapshot covers up to {})",
                                              options.dir, segment_name(covered + 1 + i), covered));
      }
      s = replay_segment(path(segment_name(segments[i])), i + 1 == segments.size(), visitor, &records);
      if (!s.ok()) return s;
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at).count();
    log::info("wal: {}: recovered {} records from {} segments (snapshot covers {}) in {} ms", options.dir,
              records, segments.size(), covered, ms);
    return (segments.empty() ? covered : segments.back()) + 1;
  }

  // --- segments (writer thread, or the calling thread before it starts) ---

  Status create_segment(uint64_t number) {
    const std::string file = path(segment_name(number));
    int new_fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (new_fd < 0) {
      int err = errno;
      out_of_space = is_space_error(err);
      return io_error("cannot create", file, err);
    }
    std::vector<iovec> iov{{const_cast<char*>(kSegmentMagic), kMagicBytes}};
    int err = pwrite_all(new_fd, iov, 0);
    if (err != 0) {
      ::close(new_fd);
      unlink(file.c_str());
      out_of_space = is_space_error(err);
      return io_error("cannot write", file, err);
    }
    // The segment's name must be durable before records in it are acknowledged.
    Status s = sync_dir();
    if (!s.ok()) {
      ::close(new_fd);
      return s;
    }
    fd = new_fd;
    segment = number;
    segment_size = kMagicBytes;
    unacked_from = kMagicBytes;
    writeback_from = 0;
    dirty = true;
    return Status::Ok();
  }

  Status sync_segment() {
    int err = sync_data(fd);
    if (err != 0) return io_error("cannot fdatasync", path(segment_name(segment)), err);
    fsyncs.fetch_add(1);
    dirty = false;
    last_sync = Clock::now();
    return Status::Ok();
  }

  void acknowledge_unacked(std::vector<Completion>* out) {
    for (Done& d : unacked) out->push_back({std::move(d), Status::Ok()});
    unacked.clear();
    unacked_from = segment_size;
  }

  // Moves to the next segment. The old one is synced first, so a torn record can
  // only ever be at the tail of the newest segment.
  Status rotate(std::vector<Completion>* out) {
    Status s = sync_segment();
    if (!s.ok()) return s;
    acknowledge_unacked(out);
    ::close(fd);
    fd = -1;
    return create_segment(segment + 1);
  }

  Status write_group(WriteGroup& group, std::vector<Completion>* out) {
    if (group.records() == 0) return Status::Ok();
    std::vector<iovec> iov = group.iovecs();
    int err = pwrite_all(fd, iov, static_cast<off_t>(segment_size));
    if (err != 0) {
      out_of_space = is_space_error(err);
      return io_error("cannot write", path(segment_name(segment)), err);
    }
    segment_size += group.bytes();
    dirty = true;
    records_written.fetch_add(group.records());
    bytes_written.fetch_add(group.bytes());
    for (Done& d : group.done()) unacked.push_back(std::move(d));
    group.clear();
    // everysec: start writeback as we go, so that the once-a-second fdatasync
    // (which holds up the writer) finds little left to do.
    if (options.fsync == FsyncPolicy::kEverySec && segment_size - writeback_from >= kWritebackBytes) {
      sync_file_range(fd, static_cast<off_t>(writeback_from),
                      static_cast<off_t>(segment_size - writeback_from), SYNC_FILE_RANGE_WRITE);
      writeback_from = segment_size;
    }
    if (options.fsync == FsyncPolicy::kEverySec) acknowledge_unacked(out);
    return Status::Ok();
  }

  // Fails everything not yet acknowledged from batch[next] on and removes the
  // unacknowledged bytes from the segment. A write that failed for lack of
  // room, once those bytes are durably cut off (the segment then ends with
  // its last acknowledged record), leaves the log usable: the next append
  // tries again, so ingest resumes by itself when space is freed. Any other
  // failure makes the log refuse appends until it is reopened.
  void fail(const Status& error, WriteGroup& group, std::vector<Item>& batch, size_t next,
            std::vector<Completion>* out) {
    bool cut = fd < 0;  // no segment open: nothing to cut (create_segment failed)
    if (fd >= 0 && ftruncate(fd, static_cast<off_t>(unacked_from)) == 0) {
      segment_size = unacked_from;
      writeback_from = std::min(writeback_from, segment_size);
      // Durably: a failed record must not come back at recovery after a crash.
      cut = sync_data(fd) == 0;
    }
    if (out_of_space && cut && !writer_failed) {
      write_errors.fetch_add(1);
      failed_write_bytes.store(group.bytes());
      out_of_room.store(true);
      if (space_failures++ == 0) {
        log::error("wal: {}; posts get 503 until a write succeeds again", error.message());
      }
    } else if (!writer_failed) {
      writer_failed = true;
      write_errors.fetch_add(1);
      log::error("wal: {}; refusing appends until reopened", error.message());
      std::lock_guard<std::mutex> lock(mu);
      failure = error.message();
    }
    for (Done& d : unacked) out->push_back({std::move(d), error});
    unacked.clear();
    for (Done& d : group.done()) out->push_back({std::move(d), error});
    group.clear();
    for (size_t i = next; i < batch.size(); ++i) out->push_back({std::move(batch[i].done), error});
  }

  Status failed_status() {
    std::lock_guard<std::mutex> lock(mu);
    return Status::IoError("write-ahead log failed earlier: " + failure);
  }

  void write_batch(std::vector<Item>& batch) {
    uint64_t batch_bytes = 0;
    for (const Item& item : batch) {
      if (!item.is_snapshot) batch_bytes += kRecordHeaderBytes + item.payload.size();
    }
    std::vector<Completion> out;
    WriteGroup group;
    uint64_t settled_bytes = 0;
    // everysec: records complete as soon as their group is written, not at the end of the batch.
    auto write = [&] {
      uint64_t bytes = group.bytes();
      Status st = write_group(group, &out);
      if (st.ok() && options.fsync == FsyncPolicy::kEverySec) {
        settle(&out, bytes);
        settled_bytes += bytes;
      }
      return st;
    };
    Status s = writer_failed ? failed_status() : Status::Ok();
    out_of_space = false;
    // A segment could not be created for lack of room (fail() kept the log
    // usable): create it now.
    if (s.ok() && fd < 0) s = create_segment(segment + 1);
    size_t i = 0;
    for (; i < batch.size() && s.ok(); ++i) {
      Item& item = batch[i];
      if (item.is_snapshot) {
        s = write();
        if (s.ok()) s = rotate(&out);
        if (!s.ok()) break;
        std::lock_guard<std::mutex> lock(snapshot_mu);
        snapshot_jobs.push_back({std::move(item.payload), segment - 1, std::move(item.done), std::move(item.produce)});
        wake_snapshotter.notify_one();
        continue;
      }
      uint64_t record = kRecordHeaderBytes + item.payload.size();
      uint64_t size = segment_size + group.bytes();
      if (size > kMagicBytes && size + record > options.segment_bytes) {
        s = write();
        if (s.ok()) s = rotate(&out);
        if (!s.ok()) break;
      }
      group.add(item);
      if (group.bytes() >= kMaxGroupBytes) s = write();
    }
    if (s.ok()) s = write();
    if (s.ok() && options.fsync == FsyncPolicy::kAlways && !unacked.empty()) {
      s = sync_segment();
      if (s.ok()) acknowledge_unacked(&out);
    }
    if (!s.ok()) {
      fail(s, group, batch, i, &out);
    } else if (space_failures > 0) {
      log::info("wal: writing again after {} write(s) refused for lack of room", space_failures);
      space_failures = 0;
      out_of_room.store(false);
    }
    settle(&out, batch_bytes - settled_bytes);
  }

  // Hands completions to the loop thread, first releasing `bytes` of queue
  // space so that a completed record never counts as queued.
  void settle(std::vector<Completion>* out, uint64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu);
      queued_bytes -= bytes;
    }
    deliver(std::move(*out));
    out->clear();
  }

  // everysec: fdatasync when a second has passed since the last one (or when forced).
  void sync_if_due(bool force) {
    if (!dirty || fd < 0 || writer_failed) return;
    if (!force && Clock::now() - last_sync < kEverySecInterval) return;
    Status s = sync_segment();
    if (s.ok()) return;
    out_of_space = false;  // a failed fdatasync is never retried: the kernel may have dropped the pages
    std::vector<Item> none;
    WriteGroup empty;
    std::vector<Completion> out;
    fail(s, empty, none, 0, &out);
  }

  void writer_main() {
    std::vector<Item> batch;
    for (;;) {
      bool stop;
      {
        std::unique_lock<std::mutex> lock(mu);
        auto ready = [&] { return !queue.empty() || stopping; };
        if (dirty && !writer_failed && options.fsync == FsyncPolicy::kEverySec) {
          wake_writer.wait_until(lock, last_sync + kEverySecInterval, ready);
        } else {
          wake_writer.wait(lock, ready);
        }
        batch.swap(queue);
        stop = stopping && batch.empty();
      }
      if (!batch.empty()) {
        write_batch(batch);
        batch.clear();
      }
      sync_if_due(stop);
      if (stop) break;
    }
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // --- snapshots (snapshot thread) ---

  Status write_snapshot_file(const SnapshotJob& job) {
    const std::string tmp = path("snapshot.tmp");
    const std::string file = path("snapshot");
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return io_error("cannot create", tmp, errno);
    char header[kSnapshotHeaderBytes];
    std::memcpy(header, kSnapshotMagic, kMagicBytes);
    put_u64(header + 8, job.covered_segment);
    put_u64(header + 16, job.payload.size());
    put_u32(header + 24, checksum(job.payload));
    std::vector<iovec> iov{{header, sizeof header}};
    if (!job.payload.empty()) iov.push_back({const_cast<char*>(job.payload.data()), job.payload.size()});
    int err = pwrite_all(out, iov, 0);
    if (err == 0 && fsync(out) != 0) err = errno;
    ::close(out);
    if (err == 0 && rename(tmp.c_str(), file.c_str()) != 0) err = errno;
    if (err != 0) {
      unlink(tmp.c_str());
      return io_error("cannot write snapshot", file, err);
    }
    return sync_dir();
  }

  void remove_covered_segments(uint64_t covered) {
    auto listed = list_segments(options.dir);
    if (!listed.ok()) {
      log::warn("wal: {}", listed.status().message());
      return;
    }
    for (uint64_t n : listed.value()) {
      if (n > covered) break;
      if (unlink(path(segment_name(n)).c_str()) != 0) {
        log::warn("wal: cannot remove {}: {}", path(segment_name(n)), errno_text(errno));
      }
    }
  }

  void snapshot_main() {
    for (;;) {
      SnapshotJob job;
      {
        std::unique_lock<std::mutex> lock(snapshot_mu);
        wake_snapshotter.wait(lock, [&] { return !snapshot_jobs.empty() || snapshot_stopping; });
        if (snapshot_jobs.empty()) return;
        job = std::move(snapshot_jobs.front());
        snapshot_jobs.pop_front();
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
        s = write_snapshot_file(job);
        write_failed = !s.ok();
      }
      if (s.ok()) {
        remove_covered_segments(job.covered_segment);
        snapshots_written.fetch_add(1);
        last_snapshot_bytes.store(kSnapshotHeaderBytes + job.payload.size());
      } else {
        if (write_failed) write_errors.fetch_add(1);
        log::error("wal: {}", s.message());
      }
      job.payload = std::string();  // the memory goes back before the next snapshot
      std::vector<Completion> out;
      out.push_back({std::move(job.done), s});
      deliver(std::move(out));
    }
  }

  // --- completions ---

  void deliver(std::vector<Completion> out) {
    if (out.empty()) return;
    {
      std::lock_guard<std::mutex> lock(completed_mu);
      for (Completion& c : out) completed.push_back(std::move(c));
    }
    uv_async_send(async);
  }

  // Loop thread. Re-entrant: a completion may call close() (which runs the
  // rest, in order) or even destroy the log (we then touch nothing after it).
  void run_completions() {
    {
      std::lock_guard<std::mutex> lock(completed_mu);
      for (Completion& c : completed) running.push_back(std::move(c));
      completed.clear();
    }
    bool destroyed = false;
    bool* outer = destroyed_signal;
    destroyed_signal = &destroyed;
    while (!running.empty()) {
      Completion c = std::move(running.front());
      running.pop_front();
      if (c.done) c.done(c.status);
      if (destroyed) {
        if (outer) *outer = true;
        return;
      }
    }
    destroyed_signal = outer;
  }

  static void on_async(uv_async_t* handle) {
    if (auto* self = static_cast<Impl*>(handle->data)) self->run_completions();
  }

  Status start(uint64_t first_segment) {
    Status s = create_segment(first_segment);
    if (!s.ok()) return s;
    last_sync = Clock::now();
    async = new uv_async_t;
    int rc = uv_async_init(loop, async, &Impl::on_async);
    if (rc != 0) {
      delete async;
      async = nullptr;
      return Status::Internal(fmt::format("uv_async_init: {}", uv_strerror(rc)));
    }
    async->data = this;
    started = true;
    try {
      writer = std::thread([this] { writer_main(); });
      snapshotter = std::thread([this] { snapshot_main(); });
    } catch (const std::system_error& e) {
      close();
      return Status::Internal(fmt::format("cannot start the write-ahead log threads: {}", e.what()));
    }
    return Status::Ok();
  }

  void close() {
    if (closed) return;
    closed = true;
    if (started) {
      {
        std::lock_guard<std::mutex> lock(mu);
        stopping = true;
      }
      wake_writer.notify_all();
      if (writer.joinable()) writer.join();
      {
        std::lock_guard<std::mutex> lock(snapshot_mu);
        snapshot_stopping = true;
      }
      wake_snapshotter.notify_all();
      if (snapshotter.joinable()) snapshotter.join();
    }
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (dir_fd >= 0) ::close(dir_fd);  // releases the directory lock
    dir_fd = -1;
    if (async) {
      run_completions();
      async->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(async),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
      async = nullptr;
    }
  }
};

WriteAheadLog::WriteAheadLog() : impl_(std::make_unique<Impl>()) {}

WriteAheadLog::~WriteAheadLog() {
  if (impl_) impl_->close();
}

Result<std::unique_ptr<WriteAheadLog>> WriteAheadLog::open(uv_loop_t* loop, WalOptions options,
                                                           const RecoveryVisitor& visitor) {
  if (options.dir.empty()) return Status::Invalid("write-ahead log directory is empty");
  std::unique_ptr<WriteAheadLog> wal(new WriteAheadLog());
  Impl& impl = *wal->impl_;
  impl.loop = loop;
  impl.options = std::move(options);
  Status s = impl.lock_directory();
  if (!s.ok()) return s;
  Result<uint64_t> next = impl.recover(visitor);
  if (!next.ok()) return next.status();
  s = impl.start(next.value());
  if (!s.ok()) return s;
  return Result<std::unique_ptr<WriteAheadLog>>(std::move(wal));
}

Status WriteAheadLog::append(std::string payload, std::function<void(const Status&)> done) {
  if (payload.empty()) return Status::Invalid("write-ahead log record is empty");
  if (payload.size() > kMaxRecordBytes) {
    return Status::Invalid(
        fmt::format("write-ahead log record of {} bytes exceeds {}", payload.size(), kMaxRecordBytes));
  }
  Impl& impl = *impl_;
  uint64_t bytes = kRecordHeaderBytes + payload.size();
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    if (impl.stopping || !impl.started) return Status::Unavailable("write-ahead log is closed");
    if (!impl.failure.empty()) return Status::IoError("write-ahead log failed earlier: " + impl.failure);
    if (impl.queued_bytes + bytes > impl.options.max_queued_bytes) {
      return Status::Unavailable(
          fmt::format("write-ahead log queue is full ({} bytes queued)", impl.queued_bytes));
    }
    impl.queued_bytes += bytes;
    impl.queue.push_back({false, std::move(payload), std::move(done)});
  }
  impl.wake_writer.notify_one();
  return Status::Ok();
}

void WriteAheadLog::snapshot(std::string payload, std::function<void(const Status&)> done) {
  Impl& impl = *impl_;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    if (!impl.stopping && impl.started) {
      impl.queue.push_back({true, std::move(payload), std::move(done)});
      impl.wake_writer.notify_one();
      return;
    }
  }
  if (done) done(Status::Unavailable("write-ahead log is closed"));
}

void WriteAheadLog::snapshot(std::function<Result<std::string>()> produce, std::function<void(const Status&)> done) {
  Impl& impl = *impl_;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    if (!impl.stopping && impl.started) {
      Item item{true, std::string(), std::move(done), std::move(produce)};
      impl.queue.push_back(std::move(item));
      impl.wake_writer.notify_one();
      return;
    }
  }
  if (done) done(Status::Unavailable("write-ahead log is closed"));
}

void WriteAheadLog::close() {
  impl_->close();
}

WalStats WriteAheadLog::stats() const {
  const Impl& impl = *impl_;
  WalStats s;
  s.records_written = impl.records_written.load();
  s.bytes_written = impl.bytes_written.load();
  s.fsyncs = impl.fsyncs.load();
  s.write_errors = impl.write_errors.load();
  s.snapshots_written = impl.snapshots_written.load();
  s.last_snapshot_bytes = impl.last_snapshot_bytes.load();
  s.torn_records_skipped = impl.torn_records_skipped.load();
  s.out_of_room = impl.out_of_room.load();
  s.failed_write_bytes = impl.failed_write_bytes.load();
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    s.queued_bytes = impl.queued_bytes;
  }
  return s;
}

}  // namespace taba::store
