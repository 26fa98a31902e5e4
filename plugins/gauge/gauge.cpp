// Gauge: per client, the latest value by event timestamp, which expires
// 48 hours (172800 s) after that timestamp; rendered as how many clients
// currently report each value.
//
// Payload: a JSON scalar (string, number, true, false, null), or an array
// whose [0] is a scalar. Empty arrays, objects and nested containers are
// rejected.
//
// Identity. A state knows the client it was created for (new_state's
// client; "" for aggregates). Entries are keyed by client ID: fold writes
// the entry of the state's own client (the latest event of the batch, ties
// going to the later event in arrival order, events already expired
// ignored); merge takes each client's entry from `from` unless `into` holds
// a strictly later one for that client (ties go to `from`), and drops
// expired ones. So a stream of per-request deltas of one client replaces
// that client's entry in the client state and in the name's aggregate.
//
// Values. fold keeps the canonical JSON text of the value
// (common/json_canonical.h), so equal values written differently are one
// value: "a\/b" and "a/b", "Z\u00fcrich" and "Zürich", 1.50 and 15e-1 (as
// 1.5).
//
// Render, TABA_FORMAT_JSON: {"<value>": <clients>, ...} over unexpired
// entries, keys sorted bytewise, ": " and ", " separators, {} when empty.
// A string value's key is its canonical JSON text (quotes included; only
// '"', '\' and control characters escaped, the rest raw UTF-8); any other
// scalar's canonical text is wrapped in quotes (1.50 -> "1.5", true ->
// "true"). A number and a string with the same text share a key. No
// detailed format.
//
// Serialized form: bytes client, varint entry count, then per entry
// (sorted by client): bytes client, bytes value JSON text, double event
// timestamp; "bytes" is a varint length and the bytes. Version 2 holds
// canonical values (deserialize refuses one that is not); version 1, the
// same layout written by earlier releases, holds values as sent, and
// deserialize canonicalizes them (entries are per client, so only their
// texts change: clients whose values become equal count under one key).
//
// The per-client table is common/latest_values.h, shared with ExpiryGauge;
// Gauge is its special case where every entry expires 48 h after its event.
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/byte_io.h"
#include "common/json_canonical.h"
#include "common/json_text.h"
#include "common/latest_values.h"
#include "common/plugin_support.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace taba::builtin {
namespace {

constexpr char kTypeName[] = "Gauge";
constexpr uint32_t kStateVersion = 2;
// The first version whose values are canonical.
constexpr uint32_t kCanonicalSince = 2;
constexpr double kLifetimeSeconds = 48 * 3600;

LatestValues* state_of(taba_state* s) {
  return reinterpret_cast<LatestValues*>(s);
}
const LatestValues* state_of(const taba_state* s) {
  return reinterpret_cast<const LatestValues*>(s);
}

// Finds the JSON text of the value an event sets; false when the payload
// is not acceptable.
bool gauge_value(const taba_event& event, std::string_view* text) {
  if (is_scalar_kind(event.payload.kind)) return scalar_text(event.payload, text);
  return event.payload.kind == TABA_VALUE_ARRAY && scalar_text(event.elem0, text);
}

taba_state* g_new_state(const char* client, size_t client_len, double) {
  try {
    auto s = std::make_unique<LatestValues>(std::string_view(client_len != 0 ? client : "", client_len),
                                            kLifetimeSeconds, kLifetimeSeconds);
    return reinterpret_cast<taba_state*>(s.release());
  } catch (...) {
    return nullptr;
  }
}

void g_free_state(taba_state* state) {
  delete state_of(state);
}

taba_status g_check_event(const taba_event* event, char* err, size_t err_cap) {
  std::string_view text;
  if (event != nullptr && gauge_value(*event, &text)) return TABA_OK;
  set_error(err, err_cap,
            "Gauge payload must be a JSON scalar or a non-empty array whose first element is a scalar");
  return TABA_ERR_PAYLOAD;
}

void g_fold(taba_state* state, const taba_event* events, size_t n, double now) {
  guard_void([&] {
    // Pick the batch's latest event first: one copy per batch. An expired
    // one (every older one is expired too) only clears the client's entry.
    const taba_event* best = nullptr;
    std::string_view best_text;
    for (size_t i = 0; i < n; ++i) {
      std::string_view text;
      if (!gauge_value(events[i], &text)) continue;
      if (best == nullptr || events[i].timestamp >= best->timestamp) {
        best = &events[i];
        best_text = text;
      }
    }
    // The host accepts only values canonical_json accepts: a refusal, which
    // would drop the batch, cannot happen.
    std::string scratch;
    std::string_view value;
    if (best != nullptr && canonical_json(best_text, &scratch, &value)) {
      LatestValues* s = state_of(state);
      s->offer(s->client(), value, best->timestamp, best->timestamp + kLifetimeSeconds, now);
    }
  });
}

// O(entries of `from`) plus, when an entry of `into` has expired, one sweep.
void g_merge(taba_state* into, const taba_state* from, double now) {
  guard_void([&] { state_of(into)->merge_from(*state_of(from), now); });
}

taba_status g_render(const taba_state* state, uint32_t format, double now, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    if (format != TABA_FORMAT_JSON) return TABA_ERR_UNSUPPORTED;
    return state_of(state)->render_counts(now, out);
  });
}

int g_prunable(const taba_state* state, double now) {
  return state_of(state)->any_live(now) ? 0 : 1;
}

taba_status g_serialize(const taba_state* state, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    ByteWriter w;
    state_of(state)->write(&w);
    return w.flush_to(out);
  });
}

taba_status g_deserialize(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                          size_t err_cap) {
  return guard_status(err, err_cap, [&] {
    if (version == 0 || version > kStateVersion) {
      set_errorf(err, err_cap, "Gauge state version %" PRIu32 " not supported (newest is %" PRIu32 ")",
                 version, kStateVersion);
      return TABA_ERR_VERSION;
    }
    auto s = std::make_unique<LatestValues>("", kLifetimeSeconds, kLifetimeSeconds);
    ByteReader r(data, len);
    const char* why = nullptr;
    if (!s->read(&r, version >= kCanonicalSince, &why)) {
      set_errorf(err, err_cap, "corrupt Gauge state: %s", why);
      return TABA_ERR_CORRUPT;
    }
    *out = reinterpret_cast<taba_state*>(s.release());
    return TABA_OK;
  });
}

const taba_handler kGauge = {
    sizeof(taba_handler),
    kStateVersion,
    kTypeName,
    "per client, the latest value (expiring after 48 h); rendered as clients per value",
    g_new_state,
    g_free_state,
    g_check_event,
    g_fold,
    g_merge,
    g_render,
    g_prunable,
    g_serialize,
    g_deserialize,
    nullptr,  // fold_many
    nullptr,  // prefetch
    {},
};

const taba_handler* const kHandlers[] = {&kGauge};

const taba_plugin kPlugin = {
    sizeof(taba_plugin), TABA_ABI_MAJOR, TABA_ABI_MINOR, "gauge", TABA_VERSION_STRING, 1, 0, kHandlers, {},
};

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::host_compatible(host) ? &taba::builtin::kPlugin : nullptr;
}
