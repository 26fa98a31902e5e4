#include "protocol/v1_decoder.h"

#include <fmt/format.h>

#include <cstring>

#include "core/utf8.h"
#include "core/validation.h"
#include "protocol/payload.h"
#include "protocol/v1_encoder.h"

namespace taba::protocol {
namespace {

inline bool is_ws(char c) { return c == ' ' || c == '\t'; }

inline void skip_ws(std::string_view t, size_t* p) {
  while (*p < t.size() && is_ws(t[*p])) ++*p;
}

// Finds the end of a JSON string literal whose opening quote is at t[start];
// returns the index of the closing quote (npos if none) and whether the
// literal contains escapes.
size_t find_string_end(std::string_view t, size_t start, bool* has_escape) {
  *has_escape = false;
  for (size_t i = start + 1; i < t.size(); ++i) {
    char c = t[i];
    if (c == '"') return i;
    if (c == '\\') {
      *has_escape = true;
      ++i;
    }
  }
  return std::string_view::npos;
}

constexpr const char* kEventShape = "expected an event [\"Type\", timestamp, \"payload JSON\"]";

}  // namespace

V1Decoder::V1Decoder(TypeResolver* resolver, BatchWriter* out, DecodeOptions options)
    : resolver_(resolver), out_(out), options_(options) {}

bool V1Decoder::fail(std::string reason) {
  if (!failed_) error_ = fmt::format("line {}: {}", line_, reason);
  failed_ = true;
  return false;
}

bool V1Decoder::feed(std::string_view chunk) {
  if (failed_) return false;
  if (!chunk.empty()) saw_any_ = true;
  while (!chunk.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(chunk.data(), '\n', chunk.size()));
    if (!nl) {
      if (partial_.size() + chunk.size() > options_.max_line_bytes) {
        ++line_;
        return fail(fmt::format("line longer than {} bytes", options_.max_line_bytes));
      }
      partial_.append(chunk);
      return true;
    }
    size_t n = static_cast<size_t>(nl - chunk.data());
    bool ok;
    if (partial_.empty()) {
      ok = line(chunk.substr(0, n));
    } else {
      partial_.append(chunk.data(), n);
      ok = line(partial_);
      partial_.clear();
    }
    if (!ok) return false;
    chunk.remove_prefix(n + 1);
  }
  return true;
}

bool V1Decoder::finish() {
  if (failed_) return false;
  if (!partial_.empty()) {
    std::string last = std::move(partial_);
    partial_.clear();
    if (!line(last)) return false;
  }
  if (!saw_any_) return fail("empty body: expected the protocol version line \"1\"");
  if (state_ == State::kVersion || state_ == State::kBlankAfterVersion) {
    return fail("body ended before a client ID");
  }
  if (state_ == State::kEvents) end_block();
  return true;
}

std::string V1Decoder::refused_text() const {
  if (refused_text_.empty()) return {};
  return "1\n\n" + refused_text_;
}

void V1Decoder::keep_line(std::string_view text) {
  if (!options_.keep_refused_text) return;
  block_lines_.append(text);
  block_lines_.push_back('\n');
}

void V1Decoder::keep_written_events() {
  // The block's good lines were not kept (that would copy every line of
  // every block): its events are read back from the batch instead.
  block_lines_.assign(name_);
  block_lines_.push_back('\n');
  if (!handler_) return;  // nothing written yet (the open block is an earlier one)
  const std::string written = out_->open_block_batch();
  BatchReader reader(written, true);
  BatchBlock block;
  std::vector<taba_event> events;
  Status status;
  if (!reader.open().ok() || !reader.next(&block, &events, &status)) return;
  for (const taba_event& e : events) {
    append_event_line(block.type, e.timestamp, std::string_view(e.payload.json, e.payload.json_len), &block_lines_);
  }
}

void V1Decoder::end_block() {
  if (skip_block_ && options_.keep_refused_text) {
    refused_text_.append(client_);
    refused_text_.append("\n\n");
    refused_text_.append(block_lines_);
    refused_text_.append("\n\n");
  }
  skip_block_ = false;
}

bool V1Decoder::refuse(const char* kind, std::string reason) {
  Refusal r;
  r.line = line_;
  r.client = client_;
  r.name = name_;
  r.kind = kind;
  r.reason = std::move(reason);
  if (state_ == State::kEvents && options_.keep_refused_text) keep_written_events();
  if (handler_) {
    // Take what the block wrote out of the batch, and the binding it made.
    resolver_->refused(name_);
    out_->drop_block();
    events_ -= block_events_;
    clamped_ -= block_clamped_;
    handler_ = nullptr;
  }
  // The events written before the bad line, and the bad line itself when
  // it is an event line (a refused name line is not one).
  r.events = block_events_ + (state_ == State::kEvents ? 1 : 0);
  block_events_ = 0;
  block_clamped_ = 0;
  skip_block_ = true;
  refusals_.push_back(std::move(r));
  return true;
}

bool V1Decoder::line(std::string_view text) {
  ++line_;
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  switch (state_) {
    case State::kVersion:
      if (text != "1") {
        return fail(fmt::format("expected the protocol version \"1\", got \"{}\"", quote_for_error(text)));
      }
      state_ = State::kBlankAfterVersion;
      return true;
    case State::kBlankAfterVersion:
      if (!text.empty()) return fail("expected a blank line after the protocol version");
      state_ = State::kClient;
      return true;
    case State::kClient: {
      if (text.empty()) return true;  // extra blank lines between clients
      std::string why = check_identifier(text);
      skip_client_ = !why.empty();
      if (skip_client_) {
        // Every block of this client is refused; one refusal names them all.
        client_ = quote_for_error(text);
        Refusal r;
        r.line = line_;
        r.client = client_;
        r.kind = "client";
        r.reason = fmt::format("invalid client ID \"{}\": {}", client_, why);
        refusals_.push_back(std::move(r));
      } else {
        client_.assign(text);
      }
      state_ = State::kBlankAfterClient;
      return true;
    }
    case State::kBlankAfterClient:
      if (!text.empty()) return fail("expected a blank line after the client ID");
      state_ = State::kName;
      return true;
    case State::kName: {
      if (text.empty()) {
        state_ = State::kClient;
        return true;
      }
      block_type_.clear();
      handler_ = nullptr;
      block_events_ = 0;
      block_clamped_ = 0;
      skip_block_ = skip_client_;
      block_lines_.clear();
      if (skip_client_) keep_line(text);
      std::string why = skip_client_ ? std::string() : check_identifier(text);
      if (!why.empty()) {
        keep_line(text);
        name_ = quote_for_error(text);
        refuse("name", fmt::format("invalid name \"{}\": {}", name_, why));
      } else {
        name_.assign(text);
      }
      state_ = State::kEvents;
      return true;
    }
    case State::kEvents:
      if (text.empty()) {
        end_block();
        state_ = State::kName;
        return true;
      }
      if (skip_block_) {
        ++refusals_.back().events;
        keep_line(text);
        return true;
      }
      event_line(text);
      if (skip_block_) keep_line(text);  // the line that refused the block
      return true;
  }
  return fail("decoder in an impossible state");
}

bool V1Decoder::parse_plain_event(std::string_view t, std::string_view* type, double* ts, taba_event* ev) const {
  const char* p = t.data();
  const char* const end = p + t.size();
  if (t.size() < 12 || p[0] != '[' || p[1] != '"') return false;
  p += 2;
  const char* type_start = p;
  while (p < end && *p != '"' && *p != '\\') ++p;
  if (p >= end || *p != '"') return false;
  *type = std::string_view(type_start, static_cast<size_t>(p - type_start));
  ++p;
  if (p < end && *p == ',') ++p;
  else return false;
  if (p < end && *p == ' ') ++p;
  size_t n = parse_number_prefix(p, end, ts);
  if (n == 0 || *ts < 0) return false;
  p += n;
  if (p < end && *p == ',') ++p;
  else return false;
  if (p < end && *p == ' ') ++p;
  if (p >= end || *p != '"') return false;
  ++p;
  const char* payload_start = p;
  double number;
  n = parse_number_prefix(p, end, &number);
  if (n == 0) return false;
  p += n;
  // Exactly `"]` (optionally followed by blanks) must remain.
  if (end - p < 2 || p[0] != '"' || p[1] != ']') return false;
  for (const char* q = p + 2; q < end; ++q) {
    if (!is_ws(*q)) return false;
  }
  ev->payload = taba_value{TABA_VALUE_NUMBER, 0, number, payload_start, static_cast<size_t>(p - payload_start)};
  ev->elem0 = taba_value{};
  ev->elem1 = taba_value{};
  return true;
}

bool V1Decoder::event_line(std::string_view t) {
  {
    std::string_view type;
    double ts;
    taba_event ev;
    if (parse_plain_event(t, &type, &ts, &ev)) {
      return accept_event(type, ts, std::string_view(ev.payload.json, ev.payload.json_len), &ev);
    }
  }
  size_t p = 0;
  skip_ws(t, &p);
  if (p >= t.size() || t[p] != '[') return refuse("event", kEventShape);
  ++p;
  skip_ws(t, &p);
  // The type: a JSON string.
  if (p >= t.size() || t[p] != '"') return refuse("event", std::string(kEventShape) + ": the type must be a string");
  bool esc = false;
  size_t end = find_string_end(t, p, &esc);
  if (end == std::string_view::npos) return refuse("event", "unterminated type string");
  std::string_view type = t.substr(p + 1, end - p - 1);
  if (esc) {
    std::string why = unescape_json_string(type, &type_scratch_);
    if (!why.empty()) return refuse("event", "type: " + why);
    type = type_scratch_;
  }
  p = end + 1;
  skip_ws(t, &p);
  if (p >= t.size() || t[p] != ',') return refuse("event", std::string(kEventShape) + ": expected ',' after the type");
  ++p;
  // The timestamp: a JSON number.
  taba_value ts_value;
  std::string why = scan_value(t, &p, &ts_value);
  if (!why.empty()) return refuse("event", "timestamp: " + why);
  if (ts_value.kind != TABA_VALUE_NUMBER) return refuse("event", "timestamp must be a number of epoch seconds");
  double ts = ts_value.number;
  if (ts < 0) return refuse("event", "timestamp must not be negative");
  skip_ws(t, &p);
  if (p >= t.size() || t[p] != ',') return refuse("event", std::string(kEventShape) + ": expected ',' after the timestamp");
  ++p;
  skip_ws(t, &p);
  // The payload: its JSON text, encoded again as a JSON string.
  if (p >= t.size() || t[p] != '"') {
    return refuse("event", "payload must be a JSON string holding the value's JSON text, e.g. \"12.5\" or \"\\\"red\\\"\"");
  }
  end = find_string_end(t, p, &esc);
  if (end == std::string_view::npos) return refuse("event", "unterminated payload string");
  std::string_view payload = as_utf8(t.substr(p + 1, end - p - 1));
  if (esc) {
    why = unescape_json_string(payload, &scratch_);
    if (!why.empty()) return refuse("event", "payload: " + why);
    payload = scratch_;
  }
  p = end + 1;
  skip_ws(t, &p);
  if (p >= t.size() || t[p] != ']') return refuse("event", std::string(kEventShape) + ": expected ']' after the payload");
  ++p;
  skip_ws(t, &p);
  if (p != t.size()) return refuse("event", "unexpected characters after the event");

  taba_event ev;
  why = parse_payload(payload, &ev);
  if (!why.empty()) {
    // The type is checked before the payload, as for every event.
    if (!handler_ || type == block_type_) {
      std::string err;
      if (!handler_ && !resolver_->resolve(name_, type, &err)) return refuse("type", err);
      if (!handler_) resolver_->refused(name_);  // resolved only to order the errors
      return refuse("payload", fmt::format("payload \"{}\": {}", quote_for_error(payload), why));
    }
  }
  return accept_event(type, ts, payload, &ev);
}

bool V1Decoder::accept_event(std::string_view type, double ts, std::string_view payload, taba_event* ev) {
  // Type binding: all events of a name block share the name's type.
  if (!handler_) {
    std::string err;
    handler_ = resolver_->resolve(name_, type, &err);
    if (!handler_) return refuse("type", err);
    block_type_.assign(type);
    out_->begin_block(client_, name_, block_type_);
  } else if (type != block_type_) {
    return refuse("type", fmt::format("type \"{}\" conflicts with type \"{}\" of name \"{}\"",
                                      quote_for_error(type), block_type_, name_));
  }

  if (ts > options_.now + options_.future_clamp_s) {
    ts = options_.now;
    ++clamped_;
    ++block_clamped_;
  }
  ev->timestamp = ts;
  plugin::HookError why;
  if (!handler_->check_event(ev, &why)) {
    return refuse("payload", fmt::format("{} payload \"{}\" rejected: {}", block_type_, quote_for_error(payload),
                                         why.reason("invalid payload")));
  }
  out_->add_event(ts, ev->payload);
  ++events_;
  ++block_events_;
  return true;
}

std::string_view V1Decoder::as_utf8(std::string_view payload) {
  if (is_valid_utf8(payload)) return payload;
  latin1_scratch_.clear();
  append_latin1_as_utf8(payload, &latin1_scratch_);
  return latin1_scratch_;
}

}  // namespace taba::protocol
