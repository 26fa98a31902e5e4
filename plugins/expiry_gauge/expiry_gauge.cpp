// ExpiryGauge: per client, the latest value by event timestamp, shown until
// the expiry the event carries; rendered as how many clients currently
// report each value.
//
// Payload: [value, expiry_epoch_seconds], value a JSON scalar (string,
// number, true, false, null), expiry a finite number. Anything else is
// refused by check_event. (The ABI exposes only an array's first two
// elements, so elements after [1] cannot be seen and are ignored.)
//
// Semantics. Unlike the original, which kept the entry with the furthest
// expiry, the latest event by timestamp wins (ties: the later one in
// arrival order, and the later merged state): a client that first sets
// "A" until t+1000 and then "B" until t+100 shows "B", and nothing once
// t+100 has passed, not "A" again. An entry counts while now < expiry.
// An expired entry is kept as a tombstone until 48 h after its event (or
// its expiry, if later) so that an older value of the same client merged
// late, or merged in another order, cannot resurrect; events older than
// that horizon and already expired are ignored. Identity, merge and
// sweeping work as for Gauge (common/latest_values.h).
//
// Values: as Gauge, fold keeps the canonical JSON text of the value
// (common/json_canonical.h): "a\/b" and "a/b" are one value, and so are
// "Z\u00fcrich" and "Zürich", or 1.50 and 15e-1 (1.5).
//
// Render, TABA_FORMAT_JSON: as Gauge, {"<value>": <clients>, ...} over the
// live entries, keys sorted bytewise, ": " and ", " separators, {} when
// empty; a string value's key is its canonical JSON text, any other
// scalar's canonical text is quoted (1.50 -> "1.5"). No detailed format.
//
// Render, TABA_FORMAT_METRICS: as Gauge, the live values themselves
// (LatestValues::render_metrics; docs/prometheus.md).
//
// prunable: no entry is live as of now.
//
// Serialized form: bytes client, varint entry count, then per entry
// (sorted by client): bytes client, bytes value JSON text, double event
// timestamp, double expiry ("bytes" is a varint length and the bytes;
// doubles are 8 bytes little-endian). Version 2 holds canonical values
// (deserialize refuses one that is not); version 1, the same layout
// written by earlier releases, holds values as sent, and deserialize
// canonicalizes them.
#include <cmath>
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

// How long after its event an expired entry still hides older values.
constexpr double kTombstoneSeconds = 48 * 3600;

// The value's JSON text and the expiry an event carries; false when the
// payload is not acceptable.
bool event_value(const taba_event& event, std::string_view* text, double* expiry) {
  if (event.payload.kind != TABA_VALUE_ARRAY || event.elem1.kind != TABA_VALUE_NUMBER ||
      !std::isfinite(event.elem1.number)) {
    return false;
  }
  *expiry = event.elem1.number;
  return scalar_text(event.elem0, text);
}

// The handler (common/handler_adapter.h makes its C-ABI table); merge,
// render, prunable and the serialized form are LatestValuesHooks'.
struct ExpiryGauge : LatestValuesHooks {
  static constexpr char kPluginName[] = "expiry_gauge";
  static constexpr char kTypeName[] = "ExpiryGauge";
  static constexpr char kDescription[] =
      "per client, the latest value until the expiry it carries; rendered as clients per value";

  static State make(std::string_view client, double) { return LatestValues(client, kTombstoneSeconds, 0.0); }
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap);
  static void fold(State& s, const taba_event* events, size_t n, double now);
};

taba_status ExpiryGauge::check_event(const taba_event* event, char* err, size_t err_cap) {
  std::string_view text;
  double expiry;
  if (event != nullptr && event_value(*event, &text, &expiry)) return TABA_OK;
  set_error(err, err_cap,
            "ExpiryGauge payload must be [value, expiry_epoch_seconds]: a JSON scalar and a finite number");
  return TABA_ERR_PAYLOAD;
}

void ExpiryGauge::fold(LatestValues& s, const taba_event* events, size_t n, double now) {
  // The batch's latest event (ties: the later in arrival order), whatever
  // its expiry: one copy per batch.
  const taba_event* best = nullptr;
  std::string_view best_text;
  double best_expiry = 0;
  for (size_t i = 0; i < n; ++i) {
    std::string_view text;
    double expiry;
    if (!event_value(events[i], &text, &expiry)) continue;
    if (best == nullptr || events[i].timestamp >= best->timestamp) {
      best = &events[i];
      best_text = text;
      best_expiry = expiry;
    }
  }
  // The host accepts only values canonical_json accepts: a refusal, which
  // would drop the batch, cannot happen.
  std::string scratch;
  std::string_view value;
  if (best != nullptr && canonical_json(best_text, &scratch, &value)) {
    s.offer(s.client(), value, best->timestamp, best_expiry, now);
  }
}

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::ExpiryGauge>(host);
}
