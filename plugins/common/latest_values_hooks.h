// The handler hooks Gauge and ExpiryGauge share: both keep a LatestValues
// (common/latest_values.h) and differ only in how an event sets a client's
// entry (make, check_event and fold, which each defines). A handler class
// derives from LatestValuesHooks and common/handler_adapter.h makes its
// table.
#ifndef TABA_PLUGINS_COMMON_LATEST_VALUES_HOOKS_H
#define TABA_PLUGINS_COMMON_LATEST_VALUES_HOOKS_H

#include <cstdint>

#include "common/byte_io.h"
#include "common/handler_adapter.h"
#include "common/latest_values.h"
#include "taba/handler.h"

namespace taba::builtin {

struct LatestValuesHooks {
  using State = LatestValues;
  // Versions 1 and 2 share the layout (latest_values.h); 2 is the first
  // whose values are canonical.
  static constexpr uint32_t kStateVersion = 2;
  static constexpr uint32_t kCanonicalSince = 2;
  // No detailed form.
  static constexpr uint32_t kFormats = format_bits({TABA_FORMAT_JSON, TABA_FORMAT_METRICS});

  // O(entries of `from`) plus, when an entry of `into` is past its
  // retention, one sweep.
  static void merge(State& into, const State& from, double now) { into.merge_from(from, now); }
  static taba_status render(const State& s, uint32_t format, double now, taba_output* out) {
    return format == TABA_FORMAT_METRICS ? s.render_metrics(now, out) : s.render_counts(now, out);
  }
  static bool prunable(const State& s, double now) { return !s.any_live(now); }
  static void write(const State& s, ByteWriter* w) { s.write(w); }
  static bool read(ByteReader* r, uint32_t version, State* s, const char** why) {
    return s->read(r, version >= kCanonicalSince, why);
  }
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_LATEST_VALUES_HOOKS_H
