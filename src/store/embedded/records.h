// The records the embedded store appends to its WAL (the payloads wal.h
// frames), told apart by their first byte:
//   batch             the batch bytes as decoded from a request
//                     (protocol/batch.h; batch version 1, first byte 0x01),
//                     or a delta batch as POST /post_delta accepted it
//                     (protocol/delta_batch.h; version 2, first byte 0x02)
//   identified batch  u8 0x81 | u16 id_len | id | batch bytes
//   admin             u8 0x80 | u8 op | f64 time | u32 count |
//                     count x (u16 len, name)
// Live appends and recovery read them through the same functions here.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/le_bytes.h"

namespace taba::store {

// Admin records share the WAL with batches; their first byte (0x80) can
// never start a batch (batch version 1 or 2).
constexpr uint8_t kAdminTag = 0x80;
// A batch with its Taba-Batch-Id.
constexpr uint8_t kIdentifiedBatchTag = 0x81;
enum AdminOp : uint8_t { kDeleteNames = 1, kGc = 2, kRepair = 3 };

inline bool is_admin_record(std::string_view bytes) { return !bytes.empty() && uint8_t(bytes[0]) == kAdminTag; }

// Turns *batch into the batch record carrying its Taba-Batch-Id, in place:
// the tag and id go in front of the batch in the same buffer, which moves
// the batch's bytes but allocates nothing while the buffer has room (the
// ingest route reserves more than a batch needs).
inline void make_identified_batch_record(std::string_view batch_id, std::string* batch) {
  std::string head;
  put_le<uint8_t>(&head, kIdentifiedBatchTag);
  put_le<uint16_t>(&head, static_cast<uint16_t>(batch_id.size()));
  head += batch_id;
  batch->insert(0, head);
}

// Splits an identified batch record into its id and batch; plain batches
// (version 1 or 2 without a client's batch id, or logged before batch ids
// were kept) have no id.
inline bool split_batch_record(std::string_view record, std::string_view* id, std::string_view* batch) {
  if (record.empty() || uint8_t(record[0]) != kIdentifiedBatchTag) {
    *id = {};
    *batch = record;
    return true;
  }
  uint16_t len = 0;
  if (record.size() < 3) return false;
  std::memcpy(&len, record.data() + 1, 2);
  if (record.size() < 3u + len) return false;
  *id = record.substr(3, len);
  *batch = record.substr(3 + len);
  return true;
}

inline std::string admin_record(AdminOp op, double time, const std::vector<std::string>& names) {
  std::string out;
  put_le<uint8_t>(&out, kAdminTag);
  put_le<uint8_t>(&out, op);
  put_le<double>(&out, time);
  put_le<uint32_t>(&out, static_cast<uint32_t>(names.size()));
  for (const std::string& n : names) {
    put_le<uint16_t>(&out, static_cast<uint16_t>(n.size()));
    out += n;
  }
  return out;
}

}  // namespace taba::store
