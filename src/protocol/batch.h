// Batch: the validated events of one request in a compact binary form.
//
// The ingest path decodes a body straight into a batch (no per-event heap
// allocation); the embedded store writes the batch as its WAL record and
// applies it from the same bytes, so live apply and crash replay run the
// same code. Layout (little-endian, host order on x86-64/arm64):
//
//   u8  version (1) | f64 receive_time | u32 block_count
//   block: u16 client_len, client | u16 name_len, name | u8 type_len, type |
//          u32 event_count | events
//   event: f64 timestamp | u8 payload kind | [f64 number if kind NUMBER] |
//          u32 payload_len | payload JSON text
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "taba/handler.h"

namespace taba::protocol {

class BatchWriter {
 public:
  // Starts a new batch, dropping anything written before.
  void reset(double receive_time);
  // Pre-sizes the buffer (a batch is about as large as its plain v1 body).
  void reserve(size_t bytes) { buf_.reserve(bytes); }
  void begin_block(std::string_view client, std::string_view name, std::string_view type);
  void add_event(double timestamp, const taba_value& payload);
  // Takes the block begun last (and its events) out of the batch.
  void drop_block();
  // The block begun last, with its events so far, as a batch of its own
  // (for re-reading it; "" when no block is open).
  std::string open_block_batch() const;
  // Finishes the batch and moves its bytes out.
  std::string finish();

  uint64_t event_count() const { return total_events_; }
  uint32_t block_count() const { return blocks_; }
  size_t size() const { return used_; }

 private:
  void close_block();
  // Room for n more bytes at buf_.data() + used_.
  char* room(size_t n) {
    if (buf_.size() - used_ < n) grow(n);
    return buf_.data() + used_;
  }
  void grow(size_t n);
  void append(const void* data, size_t n) {
    std::memcpy(room(n), data, n);
    used_ += n;
  }
  template <typename T>
  void append_value(T v) {
    append(&v, sizeof v);
  }
  // The batch is buf_[0, used_). buf_ is sized ahead of the writes (in
  // steps, within the reserved capacity first), so an event is stored
  // with plain copies, not a string append (and its zero-fill) per field.
  std::string buf_;
  size_t used_ = 0;
  uint32_t blocks_ = 0;
  bool block_open_ = false;     // a block was begun and its count is not written yet
  size_t block_start_ = 0;     // offset of the current block's header
  size_t block_count_at_ = 0;  // offset of the current block's event_count
  uint32_t block_events_ = 0;
  uint64_t total_events_ = 0;
};

struct BatchBlock {
  std::string_view client;
  std::string_view name;
  std::string_view type;
  uint32_t event_count = 0;
};

// Reads a batch. Every length is checked: a corrupt record is an error,
// never an over-read.
class BatchReader {
 public:
  // `written_here`: the bytes come from this process's BatchWriter (a live
  // batch), so a number event's JSON text need not be checked against its
  // value. Bytes read from disk (WAL replay, spool) are checked.
  explicit BatchReader(std::string_view bytes, bool written_here = false) : in_(bytes), written_here_(written_here) {}
  Status open();  // reads the header
  double receive_time() const { return receive_time_; }
  uint32_t block_count() const { return block_count_; }
  // Reads the next block and its events into *events (payloads re-parsed
  // into taba_event views pointing into the batch bytes). False at the end;
  // a corrupt block sets *status.
  bool next(BatchBlock* block, std::vector<taba_event>* events, Status* status);
  // Reads the next block's header and steps over its events without parsing
  // their payloads (admission checks that need only clients and names).
  bool next_header(BatchBlock* block, Status* status);

 private:
  // The block header (client, name, type, event count); false at the end or
  // on corruption (*status says which).
  bool read_block_header(BatchBlock* block, Status* status);
  bool corrupt_block(Status* status, const char* what) const;
  bool read(void* out, size_t n);
  bool read_view(size_t n, std::string_view* out);
  std::string_view in_;
  bool written_here_ = false;
  size_t pos_ = 0;
  double receive_time_ = 0;
  uint32_t block_count_ = 0;
  uint32_t blocks_read_ = 0;
};

}  // namespace taba::protocol
