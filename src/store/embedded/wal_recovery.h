// Recovery of the write-ahead log (store/embedded/wal): reading its
// directory back when it opens, on the calling thread, before the log's
// threads start. First the snapshot file (store/embedded/snapshot_file),
// then every later segment in order. A torn or corrupt record at the tail of
// the last segment is logged and cut off (a crash in the middle of a write);
// damage anywhere else is corruption.
//
// A segment is a file of the shared record log (core/record_log) named
// wal-<20-digit number>.log and starting with the 8-byte magic "TABAWAL1";
// the constants below are the writer's (wal.cpp) as well.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/record_log.h"
#include "core/status.h"
#include "store/embedded/wal.h"

namespace taba::store {

constexpr std::string_view kWalSegmentMagic{"TABAWAL1", 8};
constexpr recordlog::SegmentName kWalSegmentName{"wal-", ".log"};
// Segment numbers stay below this (see recover_wal).
constexpr uint64_t kMaxWalSegmentNumber = uint64_t{1} << 63;

struct WalRecovery {
  uint64_t next_segment = 0;          // the number of the segment to start
  uint64_t torn_records_skipped = 0;  // torn tails cut off (0 or 1)
};

// Replays `dir` (which the caller holds locked) through `visitor`.
Result<WalRecovery> recover_wal(const std::string& dir, const WriteAheadLog::RecoveryVisitor& visitor);

}  // namespace taba::store
