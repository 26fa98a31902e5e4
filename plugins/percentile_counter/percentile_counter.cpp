// PercentileCounter: all-time percentiles of the values, from one DDSketch
// (alpha = 1 %) with exact count, sum, min and max. Unlike the original's
// (whose new state needed an argument the host never passed), it works
// standalone.
//
// Payload: a finite number, or an array whose [0] is a finite number.
//
// Render, TABA_FORMAT_JSON:
//   {"count": %llu, "total": %f, "pct": [p25, p50, p75, p90, p95, p99, p99.9]}
// with ": " and ", " separators, the percentiles %.2f (nearest rank on the
// sketch; all 0.00 when empty) and total the exact sum (%f, 6 decimals).
// TABA_FORMAT_JSON_EXACT: the same with the total and the percentiles as
// the shortest text that reads back to the double. No detailed format.
// TABA_FORMAT_METRICS (docs/prometheus.md, "Families by type"): "_total"
// and "_events_total", counters, the sketch's exact sum (the shortest text
// within its resolution) and count; "", a summary of the seven percentiles
// labelled window="all" and quantile (none while the sketch is empty),
// without _sum and _count.
//
// Merging is exact and order-free: the bins, count, sum, min, max and the
// exact values of a sketch of 5 values or fewer, hence every rendered
// percentile, are the same for any merge order of any split of the data.
//
// Prunable: count == 0 (the data never expires).
//
// Serialized form, version 3: the DDSketch form 3 (ddsketch.h: the sum
// exact), nothing else. Still read: version 2, DDSketch form 2 (the sum as
// a double), and version 1, DDSketch form 1.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/byte_io.h"
#include "common/ddsketch.h"
#include "common/handler_adapter.h"
#include "common/metric_families.h"
#include "common/numeric_metrics.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

struct PercentileCounterState {
  DDSketch sketch;
};

// The handler (common/handler_adapter.h makes its C-ABI table).
struct PercentileCounter {
  using State = PercentileCounterState;
  static constexpr char kPluginName[] = "percentile_counter";
  static constexpr char kTypeName[] = "PercentileCounter";
  static constexpr char kDescription[] = "all-time percentiles (p25..p99.9), count and total";
  static constexpr uint32_t kStateVersion = 3;
  static constexpr uint32_t kFormats =
      format_bits({TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_METRICS});

  static State make(std::string_view, double) { return PercentileCounterState(); }
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap) {
    return check_number_event(event, kTypeName, err, err_cap);
  }
  static void fold(State& s, const taba_event* events, size_t n, double) {
    for (size_t i = 0; i < n; ++i) {
      double value;
      if (event_number(events[i], &value)) s.sketch.add(value);
    }
  }
  // O(non-empty bins of `from`).
  static void merge(State& into, const State& from, double) { into.sketch.merge(from.sketch); }
  // The ingest path (handler.h, section 2): each chunk of up to 64 values
  // is prepared once (bins found) and added to every state, which is what
  // merging a delta of them would add.
  static void fold_many(StateSpan<State> states, std::string_view, const taba_event* events, size_t n, double) {
    for (size_t at = 0; at < n; at += PreparedValues::kCapacity) {
      PreparedValues values;
      const size_t end = std::min(n, at + PreparedValues::kCapacity);
      for (size_t i = at; i < end; ++i) {
        double value;
        if (event_number(events[i], &value)) values.add(value);
      }
      for (size_t s = 0; s < states.size(); ++s) states[s].sketch.add_prepared(values);
    }
  }
  static taba_status render(const State& s, uint32_t format, double, taba_output* out) {
    if (format == TABA_FORMAT_METRICS) {
      MetricFamilies families;
      add_all_time_counters(&families, s.sketch.count(), s.sketch.exact_sum());
      open_percentiles(&families, "Percentiles of every value recorded (all time).");
      add_percentile_samples(&families, kAllTimeWindow, s.sketch);
      return families.flush_to(out);
    }
    TextBuffer text(numbers_for(format));
    append_percentile_summary(s.sketch, &text);
    return text.flush_to(out);
  }
  static bool prunable(const State& s, double) { return s.sketch.count() == 0; }
  static void write(const State& s, ByteWriter* w) { s.sketch.serialize(w); }
  static bool read(ByteReader* r, uint32_t version, State* s, const char** why) {
    // Sketch forms: 1 in version 1, 2 in version 2, 3 (DDSketch::kForm) since.
    if (!s->sketch.deserialize(r, version <= 2 ? version : DDSketch::kForm, why)) {
      if (*why == nullptr) *why = "malformed sketch";
    } else if (!r->at_end()) {
      *why = "trailing bytes";
    }
    return *why == nullptr;
  }
};

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::PercentileCounter>(host);
}
