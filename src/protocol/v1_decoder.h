// Streaming decoder of wire protocol v1 bodies (docs/api.md §4.1).
//
// Bytes are fed as they arrive; complete lines are decoded in place and only
// a line split across chunks is copied. Every event is validated (names,
// client IDs, JSON, type binding, the handler's check_event) and written to a
// BatchWriter.
//
// The unit of refusal is the (client, name) block. An error inside a block
// (a bad name, a malformed event line, an unknown or conflicting type, a
// payload the handler refuses) takes that block out of the batch, records a
// Refusal ("line N: reason") and decoding goes on with the next block; an
// invalid client ID refuses every block of that client. Only an error in
// the body's framing (the version line, the blank lines around a client ID,
// a line over the length limit, an empty body) stops decoding: then nothing
// of the body may be applied (error()).
//
// Text: a payload that is not valid UTF-8 is read as Latin-1 (core/utf8.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
  // Called when a block whose resolve() succeeded is refused, so that a
  // binding the block made for the first time is forgotten (a refused
  // block binds nothing).
  virtual void refused(std::string_view name) { (void)name; }
};

struct DecodeOptions {
  double now = 0;              // receive time, epoch seconds
  double future_clamp_s = 60;  // stamps beyond now + this become now
  size_t max_line_bytes = 1 << 20;
  // Keep the text of refused blocks (refused_text()), for the agent's dead
  // letters.
  bool keep_refused_text = false;
};

// One refused (client, name) block, or every block of a refused client.
struct Refusal {
  uint64_t line = 0;    // the first bad line (1-based)
  std::string client;   // as sent (printable form when invalid)
  std::string name;     // "" when the whole client was refused
  uint64_t events = 0;  // event lines not applied
  const char* kind = "";  // "client", "name", "event", "type" or "payload"
  std::string reason;   // one line, without the "line N: " prefix
};

class V1Decoder {
 public:
  V1Decoder(TypeResolver* resolver, BatchWriter* out, DecodeOptions options);

  // Decodes what `chunk` completes. False after a framing error (see
  // error()); refused blocks are not errors.
  bool feed(std::string_view chunk);
  // Decodes the final unterminated line, if any, and checks the body ended
  // in a sensible state. False after a framing error.
  bool finish();

  // "line N: reason" of the framing error that stopped decoding, or "".
  const std::string& error() const { return error_; }
  // The refused blocks, in body order.
  const std::vector<Refusal>& refusals() const { return refusals_; }
  // With keep_refused_text: the refused blocks as a v1 body ("" if none).
  std::string refused_text() const;
  // Events written to the batch (refused blocks' events excluded).
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
  // Refuses the current name block with `reason` and takes what it wrote
  // out of the batch; always returns true (decoding goes on).
  bool refuse(const char* kind, std::string reason);
  // A name block ended (blank line or end of body).
  void end_block();
  // Keeps a line of a refused block for refused_text().
  void keep_line(std::string_view text);
  // Starts the refused block's text with its name and the events it had
  // written to the batch.
  void keep_written_events();
  // Reads the payload as Latin-1 when it is not valid UTF-8.
  std::string_view as_utf8(std::string_view payload);

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
  std::string latin1_scratch_;  // a Latin-1 payload as UTF-8
  std::string type_scratch_;
  // Refusals.
  std::vector<Refusal> refusals_;
  bool skip_client_ = false;   // the current client was refused
  bool skip_block_ = false;    // the current name block was refused
  uint64_t block_events_ = 0;  // events of the current block written to the batch
  uint64_t block_clamped_ = 0; // of those, with a clamped timestamp
  std::string block_lines_;    // keep_refused_text: lines of the current block, once refused
  std::string refused_text_;   // keep_refused_text: refused blocks so far
  std::string error_;
  uint64_t line_ = 0;
  uint64_t events_ = 0;
  uint64_t clamped_ = 0;
  bool failed_ = false;
  bool saw_any_ = false;
};

}  // namespace taba::protocol
