// Encodes recorded events into wire protocol v1 bodies (docs/api.md §4.1,
// original-taba.md §2): "1", blank, client ID, blank, then per name a name
// line, one `["Type", ts, "payload JSON as a JSON string"]` line per event
// and a blank line; a last blank line ends the client. Events are grouped by
// name; bodies are cut at a size limit, repeating the name line when a name
// block spans two bodies.
//
// Thread-safety: TypeTable is safe from any thread; an Encoder is used by
// one thread (the flush thread).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "client/recorder.h"

namespace taba::client {

// Type names by small id. The built-in types have fixed ids; others (from
// Record()) are added on first use and never removed.
class TypeTable {
 public:
  enum : uint16_t { kCounterGroup, kPercentileGroup, kGauge, kExpiryGauge, kBuffer, kBuiltins };
  static constexpr size_t kMaxTypes = 4096;

  TypeTable();
  // The id of `type` (added if new); false when the table is full.
  bool intern(std::string_view type, uint16_t* id);
  std::string name(uint16_t id) const;

 private:
  mutable std::mutex mu_;
  std::deque<std::string> names_;  // by id
  std::unordered_map<std::string, uint16_t, NameHash, NameEqual> ids_;
};

// One name block inside a body, so that a refusal naming a line ("line N:
// reason") can be traced to the block it refused.
struct BlockSpan {
  size_t begin = 0;         // byte offset of the name line
  size_t end = 0;           // byte offset just past the block's blank line
  uint32_t first_line = 0;  // 1-based line number of the name line
  uint32_t last_line = 0;   // line number of the block's blank line
  uint64_t events = 0;
};

struct Body {
  std::string bytes;
  std::vector<BlockSpan> blocks;
  uint64_t events = 0;
};

// The block holding 1-based line `line` of `body`, or nullptr.
const BlockSpan* block_at_line(const Body& body, uint32_t line);

class Encoder {
 public:
  Encoder(std::string client_id, size_t max_body_bytes);

  struct Result {
    std::vector<Body> bodies;
    uint64_t conflicts = 0;     // events dropped: their name was recorded with another type first
    std::string conflict_note;  // the last such conflict, for last_invalid
  };

  // Encodes every event of `buffers`. A name keeps the first type it was
  // recorded with (in this client's lifetime): events of another type would
  // make the receiver refuse the whole body, so they are dropped here.
  Result encode(const std::vector<std::unique_ptr<EventBuffer>>& buffers, const TypeTable& types);

 private:
  struct Block;
  void append_event_line(std::string* out, std::string_view type, const EventBuffer& buf, const Event& e);

  std::string header_;  // "1\n\n<client>\n\n"
  size_t max_body_bytes_;
  // Type bound to each name seen. Bounded: cleared past kMaxBindings names
  // (a program with more distinct names than that loses only the check).
  static constexpr size_t kMaxBindings = 1 << 20;
  std::unordered_map<std::string, uint16_t, NameHash, NameEqual> bindings_;
  std::string scratch_;
};

}  // namespace taba::client
