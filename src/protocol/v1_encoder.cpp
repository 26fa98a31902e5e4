#include "protocol/v1_encoder.h"

#include <fmt/format.h>

#include <vector>

#include "core/json_escape.h"
#include "protocol/batch.h"

namespace taba::protocol {

void V1Encoder::clear() {
  out_.assign("1\n\n");
  lines_ = 2;
  block_lines_.clear();
  client_.clear();
  in_client_ = false;
  in_block_ = false;
  events_ = 0;
}

void V1Encoder::end_block() {
  if (in_block_) {
    out_.push_back('\n');  // a blank line ends the name block
    ++lines_;
  }
  in_block_ = false;
}

void V1Encoder::begin_block(std::string_view client, std::string_view name) {
  end_block();
  if (!in_client_ || client != client_) {
    if (in_client_) {
      out_.push_back('\n');  // one more blank line ends the client
      ++lines_;
    }
    out_.append(client);
    out_.append("\n\n");
    lines_ += 2;
    client_.assign(client);
    in_client_ = true;
  }
  out_.append(name);
  out_.push_back('\n');
  ++lines_;
  block_lines_.push_back({lines_, 0});
  in_block_ = true;
}

void append_event_line(std::string_view type, double timestamp, std::string_view payload_json, std::string* out) {
  out->append("[\"");
  out->append(type);
  out->append("\",");
  // Shortest text that reads back as the same double.
  fmt::format_to(std::back_inserter(*out), "{}", timestamp);
  out->append(",\"");
  append_json_escaped(out, payload_json, JsonControls::kHex);
  out->append("\"]\n");
}

void V1Encoder::add_event(std::string_view type, double timestamp, std::string_view payload_json) {
  append_event_line(type, timestamp, payload_json, &out_);
  ++events_;
  ++lines_;
  if (!block_lines_.empty()) ++block_lines_.back().events;
}

Status V1Encoder::add_batch(std::string_view batch_bytes) {
  return add_batch(batch_bytes, [](size_t) { return true; });
}

Status V1Encoder::add_batch(std::string_view batch_bytes, const std::function<bool(size_t)>& include) {
  BatchReader reader(batch_bytes);
  Status s = reader.open();
  TABA_RETURN_IF_ERROR(s);
  size_t mark = out_.size();
  std::string client_before = client_;
  bool in_client_before = in_client_, in_block_before = in_block_;
  uint64_t events_before = events_;
  uint64_t lines_before = lines_;
  size_t blocks_before = block_lines_.size();
  BatchBlock block;
  std::vector<taba_event> events;
  for (size_t index = 0; reader.next(&block, &events, &s); ++index) {
    if (!include(index)) continue;
    begin_block(block.client, block.name);
    for (const taba_event& e : events) {
      add_event(block.type, e.timestamp, std::string_view(e.payload.json, e.payload.json_len));
    }
  }
  if (!s.ok()) {
    out_.resize(mark);
    client_ = std::move(client_before);
    in_client_ = in_client_before;
    in_block_ = in_block_before;
    events_ = events_before;
    lines_ = lines_before;
    block_lines_.resize(blocks_before);
  }
  return s;
}

std::string V1Encoder::finish() {
  end_block();
  if (in_client_) out_.push_back('\n');
  std::string body = std::move(out_);
  out_.clear();
  clear();
  return body;
}

}  // namespace taba::protocol
