// Encoder of wire protocol v1 bodies (docs/api.md §4.1), the inverse of V1Decoder.
//
// The agent spools validated batches in their binary form and forwards many
// of them as one v1 body; the client-proxy builds bodies from StatsD lines.
// Output is canonical: "\n" line ends, one event per line, a name block per
// (client, name) run, a new client block whenever the client changes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <functional>
#include <vector>

#include "core/status.h"

namespace taba::protocol {

class V1Encoder {
 public:
  V1Encoder() { clear(); }

  // Starts a new body ("1", blank line), dropping what was written.
  void clear();

  // Appends every block of a binary batch (protocol/batch.h). A corrupt
  // batch is an error and leaves the body as it was before the call.
  Status add_batch(std::string_view batch_bytes);
  // The same, with only the blocks (by index in the batch, from 0) for which
  // include(index) is true.
  Status add_batch(std::string_view batch_bytes, const std::function<bool(size_t)>& include);

  // Low-level: starts a name block of `client` (a client block too when the
  // client differs from the previous block's).
  void begin_block(std::string_view client, std::string_view name);
  // One event line of the current block. `payload_json` is the payload's
  // JSON text; it is written encoded again as a JSON string.
  void add_event(std::string_view type, double timestamp, std::string_view payload_json);

  // Ends the body and returns it; the encoder is then empty (clear()).
  std::string finish();

  // Where each name block written so far starts: the 1-based line number
  // of its name line, and its event count (the block spans that line and
  // the events after it), so that a server's "line N: ..." can be traced
  // back to a block.
  struct BlockLines {
    uint64_t name_line = 0;
    uint64_t events = 0;
  };
  const std::vector<BlockLines>& block_lines() const { return block_lines_; }

  size_t size() const { return out_.size(); }
  uint64_t events() const { return events_; }
  bool empty() const { return events_ == 0 && !in_client_; }

 private:
  void end_block();
  std::string out_;
  std::vector<BlockLines> block_lines_;
  uint64_t lines_ = 0;  // complete lines in out_
  std::string client_;
  bool in_client_ = false;
  bool in_block_ = false;
  uint64_t events_ = 0;
};

// Appends one event line, `["Type",ts,"payload"]` and "\n", to *out.
void append_event_line(std::string_view type, double timestamp, std::string_view payload_json, std::string* out);

}  // namespace taba::protocol
