// Delta batch: per-(client, name) handler states folded from events at the
// edge (the client-proxy from StatsD lines, the agent from v1 posts), in
// place of the events themselves. An fe merges each delta into the client's
// state and the name's aggregate (embedded store) or routes it to its
// shard's stream (Redis store): no event is parsed twice on its way in.
// docs/architecture.md ("Fold at the edge") explains the design.
//
// A delta batch shares the first byte's meaning with protocol/batch.h (the
// version): events are version 1, deltas version 2, so the WAL and the
// agent's spool hold either and tell them apart by that byte. Layout
// (little-endian):
//
//   u8  version (2) | f64 time (when the deltas were folded) | u32 block_count
//   block: u16 client_len, client | u16 name_len, name | u8 type_len, type |
//          u64 events (how many events the state folds) |
//          u32 state_version | u32 state_len, state (the handler's
//          serialize() bytes)
//
// On the wire (POST /post_delta, Content-Type application/x-taba-delta) a
// batch travels in an envelope that makes it self-checking whatever carries
// it: "TDLT" | u32 crc32 of the batch bytes | batch. A block is the unit of
// refusal, as a (client, name) block of a v1 body is: blocks are numbered
// from 1 in replies ("block N: reason").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace taba::protocol {

inline constexpr uint8_t kDeltaBatchVersion = 2;
inline constexpr std::string_view kDeltaContentType = "application/x-taba-delta";
inline constexpr std::string_view kDeltaMagic = "TDLT";
inline constexpr size_t kDeltaEnvelopeBytes = 8;  // magic + crc32

// True when `batch` (a WAL or spool record's batch bytes) is a delta batch.
inline bool is_delta_batch(std::string_view batch) {
  return !batch.empty() && static_cast<uint8_t>(batch[0]) == kDeltaBatchVersion;
}

struct DeltaBlock {
  std::string_view client;
  std::string_view name;
  std::string_view type;
  uint64_t events = 0;
  uint32_t state_version = 0;
  std::string_view state;
};

class DeltaWriter {
 public:
  explicit DeltaWriter(double time = 0) { reset(time); }
  // Starts a new batch, dropping anything written before.
  void reset(double time);
  void add(std::string_view client, std::string_view name, std::string_view type, uint64_t events,
           uint32_t state_version, std::string_view state);
  void add(const DeltaBlock& b) { add(b.client, b.name, b.type, b.events, b.state_version, b.state); }
  uint32_t block_count() const { return blocks_; }
  uint64_t event_count() const { return events_; }
  size_t size() const { return buf_.size(); }
  // Finishes the batch and moves its bytes out.
  std::string finish();

 private:
  std::string buf_;
  uint32_t blocks_ = 0;
  uint64_t events_ = 0;
};

// Reads a delta batch. Every length is checked: malformed bytes are an
// error naming the block, never an over-read. Client, name and type are
// returned as they are; the caller validates them (core/validation.h).
class DeltaReader {
 public:
  explicit DeltaReader(std::string_view batch) : in_(batch) {}
  Status open();  // the header
  double time() const { return time_; }
  uint32_t block_count() const { return block_count_; }
  // The next block; false at the end (all blocks read, *status OK) or on
  // malformed bytes (*status says what and where; the blocks before it
  // were read whole).
  bool next(DeltaBlock* block, Status* status);

 private:
  std::string_view in_;
  size_t pos_ = 0;
  double time_ = 0;
  uint32_t block_count_ = 0;
  uint32_t blocks_read_ = 0;
};

// The envelope: "TDLT" | crc32(batch) | batch.
std::string wrap_delta_body(std::string_view batch);
// The batch inside an envelope, or an error saying what is wrong with it.
Result<std::string_view> unwrap_delta_body(std::string_view body);

}  // namespace taba::protocol
