// Recovery of the write-ahead log (see wal_recovery.h).
#include "store/embedded/wal_recovery.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "core/file_io.h"
#include "core/log.h"
#include "core/mapped_file.h"
#include "store/embedded/snapshot_file.h"

namespace taba::store {
namespace {

using Clock = std::chrono::steady_clock;
using fileio::io_error;
using fileio::sync_data;

std::string segment_name(uint64_t number) { return kWalSegmentName.format(number); }

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
  std::vector<iovec> iov{{const_cast<char*>(kWalSegmentMagic.data()), kWalSegmentMagic.size()}};
  int err = fileio::pwrite_all(fd, iov, 0);
  if (err == 0) err = sync_data(fd);
  ::close(fd);
  return err == 0 ? Status::Ok() : io_error("cannot rewrite", path, err);
}

// Replays one segment. A bad record ends the last segment (truncated there);
// anywhere else it is corruption.
Status replay_segment(const std::string& file, bool is_last, const WriteAheadLog::RecoveryVisitor& visitor,
                      uint64_t* records, uint64_t* torn_records_skipped) {
  fileio::MappedFile map;
  TABA_RETURN_IF_ERROR(map.open(file));
  std::string_view data = map.data();
  const size_t magic_bytes = kWalSegmentMagic.size();
  if (data.size() < magic_bytes) {
    if (!is_last) return Status::Corruption(fmt::format("{}: truncated segment header at offset 0", file));
    log::warn("wal: {}: torn segment header ({} bytes); rewriting it", file, data.size());
    map.reset();
    return rewrite_segment_header(file);
  }
  if (data.substr(0, magic_bytes) != kWalSegmentMagic) {
    return Status::Corruption(fmt::format("{}: bad segment magic at offset 0", file));
  }
  recordlog::Reader reader(data, magic_bytes, recordlog::Reader::Empty::kInvalid);
  std::string_view payload;
  recordlog::ReadResult read;
  while ((read = reader.next(&payload)) == recordlog::ReadResult::kRecord) {
    if (visitor.on_record) {
      TABA_RETURN_IF_ERROR(visitor.on_record(payload));
    }
    ++*records;
  }
  if (read == recordlog::ReadResult::kEnd) return Status::Ok();
  const char* bad = recordlog::describe(read);
  const uint64_t offset = reader.record_offset();
  if (!is_last) return Status::Corruption(fmt::format("{}: {} at offset {}", file, bad, offset));
  log::warn("wal: {}: {} at offset {} of the last segment; dropping the torn tail ({} bytes)", file, bad,
            offset, data.size() - offset);
  ++*torn_records_skipped;
  map.reset();
  return truncate_durably(file, offset);
}

}  // namespace

Result<WalRecovery> recover_wal(const std::string& dir, const WriteAheadLog::RecoveryVisitor& visitor) {
  auto started_at = Clock::now();
  auto path = [&](const std::string& name) { return dir + "/" + name; };
  WalRecovery recovered;
  uint64_t covered = 0;
  Status s = read_snapshot_file(dir, visitor.on_snapshot, &covered);
  TABA_RETURN_IF_ERROR(s);
  // A real log never comes near 2^63 segments (one a second for 3e11
  // years); a number there is a corrupt snapshot header, and going on would
  // soon wrap the segment numbers.
  if (covered >= kMaxWalSegmentNumber) {
    return Status::Corruption(fmt::format("{}: the snapshot covers up to segment {}, past the largest ({})", dir,
                                          covered, kMaxWalSegmentNumber));
  }
  auto listed = recordlog::list_segments(dir, {kWalSegmentName});
  TABA_RETURN_IF_ERROR(listed);
  std::vector<uint64_t> segments;
  for (const recordlog::ListedSegment& found : listed.value()) {
    const uint64_t n = found.number;
    // Left behind by a crash between writing a snapshot and deleting what it covers.
    if (n >= kMaxWalSegmentNumber) {
      return Status::Corruption(fmt::format("{}: segment {} is past the largest number ({})", dir,
                                            segment_name(n), kMaxWalSegmentNumber));
    }
    if (n <= covered) {
      log::info("wal: removing {}, covered by the snapshot", segment_name(n));
      if (unlink(path(segment_name(n)).c_str()) != 0) return io_error("cannot remove", path(segment_name(n)), errno);
    } else {
      segments.push_back(n);
    }
  }
  uint64_t records = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    // Segments are created in sequence and only ever deleted up to a snapshot.
    if (segments[i] != covered + 1 + i) {
      return Status::Corruption(fmt::format("{}: missing segment {} (snapshot covers up to {})", dir,
                                            segment_name(covered + 1 + i), covered));
    }
    s = replay_segment(path(segment_name(segments[i])), i + 1 == segments.size(), visitor, &records,
                       &recovered.torn_records_skipped);
    TABA_RETURN_IF_ERROR(s);
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at).count();
  log::info("wal: {}: recovered {} records from {} segments (snapshot covers {}) in {} ms", dir, records,
            segments.size(), covered, ms);
  recovered.next_segment = (segments.empty() ? covered : segments.back()) + 1;
  return recovered;
}

}  // namespace taba::store
