// The embedded store's snapshot file, and the thread that writes it.
//
// A snapshot file is: magic "TABASNP1" | u64 covered segment (LE) | u64
// payload length (LE) | u32 crc32 of the payload (LE) | payload. It reflects
// every record of every WAL segment <= covered segment; recovery replays only
// later segments (store/embedded/wal). It is written as "snapshot.tmp",
// fsynced, renamed to "snapshot" and the directory fsynced, so that a crash
// leaves the old snapshot or the new one, never a part of one. A large
// snapshot takes a while to write: SnapshotWriter does it on a thread of its
// own, so that the WAL's writer thread never waits for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/completion_queue.h"
#include "core/status.h"

namespace taba::store {

constexpr size_t kSnapshotHeaderBytes = 28;  // magic | u64 covered | u64 length | u32 crc32

// Removes a "snapshot.tmp" left in `dir` by a crash, then reads "snapshot"
// if there is one: its payload goes to on_payload (when set) and *covered
// gets the segment it covers (it stays 0 without a snapshot). A damaged file
// is Corruption naming it.
Status read_snapshot_file(const std::string& dir, const std::function<Status(std::string_view)>& on_payload,
                          uint64_t* covered);

// A snapshot to write, queued by the WAL's writer thread.
struct SnapshotJob {
  std::string payload;
  uint64_t covered_segment = 0;
  CompletionQueue::Done done;
  std::function<Result<std::string>()> produce;  // when set, makes payload first (on the snapshot thread)
};

class SnapshotWriter {
 public:
  // Starts the snapshot thread (throws std::system_error when it cannot).
  // `dir_fd` is `dir` opened, fsynced after each rename. `on_written(covered)`
  // runs on the snapshot thread once a snapshot file is durable (the WAL then
  // deletes the segments it covers); `done` of each job then runs through
  // `completions`.
  void start(std::string dir, int dir_fd, CompletionQueue* completions,
             std::function<void(uint64_t covered)> on_written);
  void add(SnapshotJob job);
  // Writes what is queued, then stops the thread. Idempotent.
  void stop();

  uint64_t snapshots_written() const { return snapshots_written_.load(); }
  uint64_t last_snapshot_bytes() const { return last_snapshot_bytes_.load(); }
  uint64_t write_errors() const { return write_errors_.load(); }

 private:
  void run();
  Status write_file(const SnapshotJob& job);

  std::string dir_;
  int dir_fd_ = -1;
  CompletionQueue* completions_ = nullptr;
  std::function<void(uint64_t)> on_written_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<SnapshotJob> jobs_;  // guarded by mu_
  bool stopping_ = false;         // guarded by mu_

  std::atomic<uint64_t> snapshots_written_{0}, last_snapshot_bytes_{0}, write_errors_{0};
  std::thread thread_;
};

}  // namespace taba::store
