// One loaded handler (one tab type) and the C++ face of its hooks. The
// plugin's C table (include/taba/handler.h) is called only through these
// methods, so the error buffers, the render-format fallbacks and the output
// sinks of the ABI are handled in one place.
//
// The hooks the ingest path calls per event or per block (check_event,
// fold, fold_many, prefetch, merge, new_state, free_state) are inline
// one-liners that compile to the same call through the table as writing it
// out; the rest (render, serialize, deserialize) are in handler.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "taba/handler.h"

namespace taba::plugin {

class State;

// The buffer a fallible hook writes its one-line reason into (handler.h,
// "Memory and errors"). The methods that take one clear it before the call.
struct HookError {
  char text[256];

  // The reason the hook gave (NUL-terminated here even if the plugin did
  // not), or `otherwise` when it gave none.
  const char* reason(const char* otherwise) {
    text[sizeof text - 1] = '\0';
    return text[0] ? text : otherwise;
  }
};

struct Handler {
  std::string type_name;        // the name events use, e.g. "CounterGroup"
  const taba_handler* table;    // hooks; owned by the plugin
  // The ABI 1.1 fold_many hook, or nullptr (absent, or a plugin built for
  // 1.0, whose table holds reserved zeros there).
  decltype(taba_handler::fold_many) fold_many_hook = nullptr;
  decltype(taba_handler::prefetch) prefetch_hook = nullptr;  // ABI 1.1, likewise
  // The ABI minor its plugin was built for (at most this host's): which
  // render formats it may be asked for (handler.h, taba_format).
  uint16_t abi_minor = 0;
  std::string plugin_name;      // the plugin that serves it
  std::string plugin_path;

  // The version of the form serialize writes.
  uint32_t state_version() const { return table->state_version; }

  // A new empty state for an aggregate or a query-time reduction (the empty
  // client ID), or nullptr when the plugin is out of memory.
  taba_state* new_state(double now) const { return table->new_state("", 0, now); }
  // A new empty state (or delta) of one client, or nullptr.
  taba_state* new_state(std::string_view client, double now) const {
    return table->new_state(client.data(), client.size(), now);
  }
  void free_state(taba_state* state) const { table->free_state(state); }

  // True when the handler accepts the event; otherwise *why holds its reason.
  bool check_event(const taba_event* event, HookError* why) const {
    why->text[0] = '\0';
    return table->check_event(event, why->text, sizeof why->text) == TABA_OK;
  }
  void fold(taba_state* state, const taba_event* events, size_t n, double now) const {
    table->fold(state, events, n, now);
  }
  void merge(taba_state* into, const taba_state* from, double now) const { table->merge(into, from, now); }
  bool prunable(const taba_state* state, double now) const { return table->prunable(state, now) != 0; }

  // The optional ABI 1.1 hooks: call them only when has_fold_many().
  bool has_fold_many() const { return fold_many_hook != nullptr; }
  void fold_many(taba_state* const* states, size_t count, std::string_view client, const taba_event* events,
                 size_t n, double now) const {
    fold_many_hook(states, count, client.data(), client.size(), events, n, now);
  }
  bool has_prefetch() const { return prefetch_hook != nullptr; }
  void prefetch(const taba_state* const* states, size_t count, const taba_event* events, size_t n,
                double now) const {
    prefetch_hook(states, count, events, n, now);
  }

  // Renders `state` into *out (replacing what it held) in `format`, or in
  // the formats it falls back to (handler.h, taba_format) when the handler
  // does not write it or its plugin predates it. Error when the handler
  // fails (or writes no TABA_FORMAT_JSON); *out is then empty.
  // TABA_FORMAT_METRICS does not fall back: NotFound when the handler does
  // not write it.
  Status render(const taba_state* state, uint32_t format, double now, std::string* out) const;

  // Writes the serialized form of `state` (version state_version()) into
  // *out, replacing what it held: a caller serializing many states reuses
  // one buffer. False when the handler fails; the ABI gives no reason, so
  // callers say what they were serializing. It allocates nothing but *out's
  // growth and logs nothing: the snapshot child calls it after fork().
  bool serialize(const taba_state* state, std::string* out) const;

  // Reads a state serialized with `version` (include plugin/state.h to
  // call it). The error (Corruption) carries the handler's reason exactly
  // as it wrote it, which may be empty; callers add their context.
  Result<State> deserialize(std::string_view bytes, uint32_t version) const;
};

// A taba_output that appends to *out (which must outlive it).
taba_output string_output(std::string* out);

}  // namespace taba::plugin
