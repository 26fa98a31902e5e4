#include "client/encoder.h"

#include <charconv>
#include <limits>

#include "client/json_text.h"
#include "core/json_escape.h"

namespace taba::client {

TypeTable::TypeTable() {
  for (const char* t : {"CounterGroup", "PercentileGroup", "Gauge", "ExpiryGauge", "Buffer"}) {
    uint16_t id;
    intern(t, &id);
  }
}

bool TypeTable::intern(std::string_view type, uint16_t* id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = ids_.find(type); it != ids_.end()) {
    *id = it->second;
    return true;
  }
  if (names_.size() >= kMaxTypes) return false;
  *id = static_cast<uint16_t>(names_.size());
  names_.emplace_back(type);
  ids_.emplace(names_.back(), *id);
  return true;
}

std::string TypeTable::name(uint16_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return id < names_.size() ? names_[id] : std::string();
}

const BlockSpan* block_at_line(const Body& body, uint32_t line) {
  for (const BlockSpan& span : body.blocks) {
    if (line >= span.first_line && line <= span.last_line) return &span;
  }
  return nullptr;
}

// The events of one name, in the order they were taken from the buffers.
struct Encoder::Block {
  std::string_view name;
  uint16_t type = 0;
  std::string type_name;
  std::vector<std::pair<uint32_t, uint32_t>> refs;  // (buffer, event index)
};

Encoder::Encoder(std::string client_id, size_t max_body_bytes)
    : header_("1\n\n" + client_id + "\n\n"), max_body_bytes_(max_body_bytes) {}

void Encoder::append_event_line(std::string* out, std::string_view type, const EventBuffer& buf,
                                const Event& e) {
  out->append("[\"");
  out->append(type);  // a valid identifier: nothing to escape
  out->append("\",");
  char ts[40];
  auto [ts_end, ec] = std::to_chars(ts, ts + sizeof ts, e.timestamp, std::chars_format::fixed, 3);
  (void)ec;  // epoch seconds fit easily
  out->append(ts, ts_end);
  out->append(",\"");
  // The payload's JSON text, then that text escaped again as the line's
  // third element (a JSON string).
  scratch_.clear();
  switch (e.kind) {
    case PayloadKind::kNumber:
      append_json_number(&scratch_, e.number);
      break;
    case PayloadKind::kText:
      scratch_.push_back('"');
      append_json_escaped(&scratch_, buf.text_of(e), JsonControls::kLetters);
      scratch_.push_back('"');
      break;
    case PayloadKind::kNumberExpiry:
      scratch_.push_back('[');
      append_json_number(&scratch_, e.number);
      scratch_.push_back(',');
      append_json_number(&scratch_, e.expiry);
      scratch_.push_back(']');
      break;
    case PayloadKind::kTextExpiry:
      scratch_.append("[\"");
      append_json_escaped(&scratch_, buf.text_of(e), JsonControls::kLetters);
      scratch_.append("\",");
      append_json_number(&scratch_, e.expiry);
      scratch_.push_back(']');
      break;
    case PayloadKind::kRawJson:
      scratch_.append(buf.text_of(e));
      break;
  }
  append_json_escaped(out, scratch_, JsonControls::kLetters);
  out->append("\"]\n");
}

Encoder::Result Encoder::encode(const std::vector<std::unique_ptr<EventBuffer>>& buffers,
                                const TypeTable& types) {
  Result result;
  std::vector<Block> blocks;
  std::unordered_map<std::string_view, uint32_t> block_of_name;
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  if (bindings_.size() > kMaxBindings) bindings_.clear();
  for (uint32_t bi = 0; bi < buffers.size(); ++bi) {
    const EventBuffer& buf = *buffers[bi];
    // Each buffer's name ids map to blocks once, not once per event.
    std::vector<uint32_t> block_of_id(buf.names.size(), kNone);
    for (uint32_t ei = 0; ei < buf.size; ++ei) {
      const Event& e = buf.event(ei);
      uint32_t& bk = block_of_id[e.name];
      if (bk == kNone) {
        std::string_view name = buf.names[e.name];
        auto [it, added] = block_of_name.try_emplace(name, static_cast<uint32_t>(blocks.size()));
        if (added) {
          Block& nb = blocks.emplace_back();
          nb.name = name;
          auto bound = bindings_.find(name);
          if (bound == bindings_.end()) bound = bindings_.emplace(std::string(name), e.type).first;
          nb.type = bound->second;
          nb.type_name = types.name(nb.type);
        }
        bk = it->second;
      }
      Block& block = blocks[bk];
      if (e.type != block.type) {
        ++result.conflicts;
        result.conflict_note = "name \"" + std::string(block.name) + "\": type \"" + types.name(e.type) +
                               "\" conflicts with type \"" + block.type_name + "\" recorded earlier";
        continue;
      }
      block.refs.emplace_back(bi, ei);
    }
  }

  Body body;
  uint32_t line = 0;
  auto start_body = [&] {
    body = Body{};
    body.bytes.reserve(std::min<size_t>(max_body_bytes_ + 4096, 1 << 20));
    body.bytes = header_;
    line = 5;  // lines 1-4: version, blank, client ID, blank
  };
  auto finish_body = [&] {
    body.bytes.push_back('\n');  // the blank line ending the client
    result.bodies.push_back(std::move(body));
  };
  start_body();
  for (const Block& block : blocks) {
    size_t i = 0;
    while (i < block.refs.size()) {
      BlockSpan span;
      span.begin = body.bytes.size();
      span.first_line = line++;
      body.bytes.append(block.name);
      body.bytes.push_back('\n');
      while (i < block.refs.size()) {
        auto [bi, ei] = block.refs[i++];
        append_event_line(&body.bytes, block.type_name, *buffers[bi], buffers[bi]->event(ei));
        ++line;
        ++span.events;
        if (body.bytes.size() >= max_body_bytes_) break;
      }
      body.bytes.push_back('\n');
      span.end = body.bytes.size();
      span.last_line = line++;
      body.events += span.events;
      body.blocks.push_back(span);
      if (body.bytes.size() >= max_body_bytes_) {
        finish_body();
        start_body();
      }
    }
  }
  if (!body.blocks.empty()) finish_body();
  return result;
}

}  // namespace taba::client
