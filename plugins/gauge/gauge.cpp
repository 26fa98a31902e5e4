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
// Render, TABA_FORMAT_METRICS (docs/prometheus.md): the live values
// themselves, _clients, _min, _max and _last, then each client's numeric
// value (label client) and its other values as the info family _info
// (labels client and value); LatestValues::render_metrics.
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
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/json_canonical.h"
#include "common/json_text.h"
#include "common/latest_values.h"
#include "common/latest_values_hooks.h"
#include "common/plugin_support.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

constexpr double kLifetimeSeconds = 48 * 3600;

// Finds the JSON text of the value an event sets; false when the payload
// is not acceptable.
bool gauge_value(const taba_event& event, std::string_view* text) {
  if (is_scalar_kind(event.payload.kind)) return scalar_text(event.payload, text);
  return event.payload.kind == TABA_VALUE_ARRAY && scalar_text(event.elem0, text);
}

// The handler (common/handler_adapter.h makes its C-ABI table); merge,
// render, prunable and the serialized form are LatestValuesHooks'.
struct Gauge : LatestValuesHooks {
  static constexpr char kPluginName[] = "gauge";
  static constexpr char kTypeName[] = "Gauge";
  static constexpr char kDescription[] =
      "per client, the latest value (expiring after 48 h); rendered as clients per value";

  static State make(std::string_view client, double) {
    return LatestValues(client, kLifetimeSeconds, kLifetimeSeconds);
  }
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap);
  static void fold(State& s, const taba_event* events, size_t n, double now);
};

taba_status Gauge::check_event(const taba_event* event, char* err, size_t err_cap) {
  std::string_view text;
  if (event != nullptr && gauge_value(*event, &text)) return TABA_OK;
  set_error(err, err_cap,
            "Gauge payload must be a JSON scalar or a non-empty array whose first element is a scalar");
  return TABA_ERR_PAYLOAD;
}

void Gauge::fold(LatestValues& s, const taba_event* events, size_t n, double now) {
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
    s.offer(s.client(), value, best->timestamp, best->timestamp + kLifetimeSeconds, now);
  }
}

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::Gauge>(host);
}
