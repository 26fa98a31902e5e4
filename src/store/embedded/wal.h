// Write-ahead log and snapshots of the embedded store.
//
// The store appends one record per accepted request (an encoded batch of
// events) and applies it to memory only once the log says the record is
// written (fsync="everysec") or written and fsynced (fsync="always"). A
// writer thread does all file I/O with group commit: every record queued
// while the previous write/fsync ran goes out in one write and one fsync, so
// the loop thread never blocks on the disk.
//
// Files under the directory:
//   wal-<20-digit segment number>.log   records, in order
//   snapshot                            the latest snapshot (atomically replaced)
// A record on disk is: u32 length (LE) | u32 crc32 of payload (LE) | payload
// (the shared record log, core/record_log).
// A segment starts with an 8-byte magic "TABAWAL1".
// A snapshot file is: magic "TABASNP1" | u64 covered segment (LE) |
// u64 payload length | u32 crc32 | payload. It reflects every record of every
// segment <= covered segment; recovery replays only later segments.
// The code: wal.cpp (the writer), wal_recovery (open), snapshot_file.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/fsync_policy.h"
#include "core/status.h"

namespace taba::store {

using FsyncPolicy = taba::FsyncPolicy;

struct WalOptions {
  std::string dir;                          // created if missing
  FsyncPolicy fsync = FsyncPolicy::kEverySec;
  uint64_t max_queued_bytes = 256ull << 20; // append() refuses beyond this
  uint64_t segment_bytes = 256ull << 20;    // start a new segment past this size
};

struct WalStats {
  uint64_t records_written = 0;
  uint64_t bytes_written = 0;
  uint64_t fsyncs = 0;
  uint64_t write_errors = 0;
  uint64_t queued_bytes = 0;        // accepted by append(), not yet written
  uint64_t snapshots_written = 0;
  uint64_t last_snapshot_bytes = 0;
  uint64_t torn_records_skipped = 0;  // at recovery
  bool out_of_room = false;  // the last write failed for lack of room (cleared by the next that succeeds)
  uint64_t failed_write_bytes = 0;  // ... and how many bytes it tried to write
};

class WriteAheadLog {
 public:
  // Called for each recovered item, in order: first the snapshot payload
  // (if any), then each record payload of the segments after it.
  struct RecoveryVisitor {
    std::function<Status(std::string_view snapshot_payload)> on_snapshot;
    std::function<Status(std::string_view record_payload)> on_record;
  };

  // Opens the directory, replays what it holds through `visitor` (on the
  // calling thread, before returning), then starts the writer thread and a
  // new segment. A torn or corrupt record at the tail of the last segment is
  // logged and skipped (counted in torn_records_skipped); corruption anywhere
  // else is an error. Completions run on `loop`.
  static Result<std::unique_ptr<WriteAheadLog>> open(uv_loop_t* loop, WalOptions options,
                                                      const RecoveryVisitor& visitor);
  ~WriteAheadLog();

  // Queues a record. `done` runs on the loop thread once the record is
  // durable per the fsync policy (OK), or failed to be written (error; the
  // record is not in the log). Returns Unavailable without queuing (and
  // without calling done) when max_queued_bytes would be exceeded, or
  // IoError when an earlier write failed and the log is refusing appends.
  // A write refused for lack of room (ENOSPC, EDQUOT, EFBIG) fails only the
  // records it carried: they are cut off the segment and the next append
  // tries again, so appends succeed again once room is freed. Any other
  // write or fdatasync error makes the log refuse appends until reopened.
  // Records complete in the order they were appended.
  Status append(std::string payload, std::function<void(const Status&)> done);
  // The same for a payload the caller shares (no copy is made): the log
  // keeps a reference until the record is written (or fails), and lets go
  // of it, on its writer thread, before `done` can run; the bytes must not
  // change meanwhile.
  Status append(std::shared_ptr<const std::string> payload, std::function<void(const Status&)> done);

  // Writes a snapshot that reflects every record appended before this call:
  // the log switches to a new segment at once, and on the writer thread the
  // snapshot file is written (temporary file, fsync, rename, fsync dir) and
  // then the segments it covers are deleted. `done` runs on the loop.
  void snapshot(std::string payload, std::function<void(const Status&)> done);
  // The same, with the payload produced on the snapshot thread by `produce`
  // (which must not touch the caller's data: the embedded store passes a
  // reader of a forked child's pipe). An error from produce fails the
  // snapshot (done gets it) and keeps the previous snapshot and segments.
  void snapshot(std::function<Result<std::string>()> produce, std::function<void(const Status&)> done);

  // Writes and fsyncs everything queued, then stops the writer thread.
  // Pending completions run before close returns. Idempotent.
  void close();

  WalStats stats() const;

 private:
  WriteAheadLog();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::store
