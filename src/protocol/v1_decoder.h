// Streaming decoder of wire protocol v1 bodies (SPEC §4).
//
// Bytes are fed as they arrive; complete lines are decoded in place and only
// a line split across chunks is copied. Every event is validated (names,
// client IDs, JSON, type binding, the handler's check_event) and written to a
// BatchWriter. The first error stops decoding with "line N: reason"; the
// caller then discards the batch, so a body is all-or-nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "plugin/registry.h"
#include "protocol/batch.h"

namespace taba::protocol {

// Decides which handler serves events of `type` under `name`: the type must
// exist and agree with the name's bound type. Returns nullptr and sets *err
// (one line) otherwise.
class TypeResolver {
 public:
  virtual ~TypeResolver() = default;
  virtual const plugin::Handler* resolve(std::string_view name, std::string_view type, std::string* err) = 0;
};

struct DecodeOptions {
  double now = 0;              // receive time, epoch seconds
  double future_clamp_s = 60;  // stamps beyond now + this become now
  size_t max_line_bytes = 1 << 20;
};

class V1Decoder {
 public:
  V1Decoder(TypeResolver* resolver, BatchWriter* out, DecodeOptions options);

  // Decodes what `chunk` completes. False after an error (see error()).
  bool feed(std::string_view chunk);
  // Decodes the final unterminated line, if any, and checks the body ended
  // in a sensible state. False after an error.
  bool finish();

  const std::string& error() const { return error_; }
  uint64_t events() const { return events_; }
  uint64_t clamped() const { return clamped_; }
  uint64_t line() const { return line_; }

 private:
  enum class State { kVersion, kBlankAfterVersion, kClient, kBlankAfterClient, kName, kEvents };
  bool line(std::string_view text);
  bool event_line(std::string_view text);
  // The common event shape ["Type", 1763830000.123, "12.5"] (no escapes,
  // single spaces or none, a plain number payload): parsed without the
  // general scanner into *type, *ts and *ev. False (nothing consumed, no
  // error) for anything else, which event_line then parses in full.
  bool parse_plain_event(std::string_view t, std::string_view* type, double* ts, taba_event* ev) const;
  // Binds the type, validates and writes one parsed event.
  bool accept_event(std::string_view type, double ts, std::string_view payload, taba_event* ev);
  bool fail(std::string reason);

  TypeResolver* resolver_;
  BatchWriter* out_;
  DecodeOptions options_;
  State state_ = State::kVersion;
  std::string partial_;      // bytes of a line not yet terminated
  std::string client_;
  std::string name_;
  std::string block_type_;   // type of the current name block ("" before its first event)
  const plugin::Handler* handler_ = nullptr;
  std::string scratch_;      // unescaped payload when it had escapes
  std::string type_scratch_;
  std::string error_;
  uint64_t line_ = 0;
  uint64_t events_ = 0;
  uint64_t clamped_ = 0;
  bool failed_ = false;
  bool saw_any_ = false;
};

}  // namespace taba::protocol
