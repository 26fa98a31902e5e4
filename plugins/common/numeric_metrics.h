// The TABA_FORMAT_METRICS families the numeric built-in types share
// (docs/prometheus.md, "Families by type"): the all-time counters m_total
// and m_events_total, the windowed gauges m_sum_in_window and
// m_events_in_window, and the percentile family m, a summary of quantile
// samples only (one per percentile of a sketch). Each type writes the ones
// it has, in this order, through MetricFamilies.
#ifndef TABA_PLUGINS_COMMON_NUMERIC_METRICS_H
#define TABA_PLUGINS_COMMON_NUMERIC_METRICS_H

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/ddsketch.h"
#include "common/exact_sum.h"
#include "common/metric_families.h"

namespace taba::builtin {

// The window label of all-time percentiles.
inline constexpr std::string_view kAllTimeWindow = "all";

// One window's figures as of the render's time.
struct WindowFigures {
  std::string_view window;  // its label: "1m", "10m", "1h" or "1d"
  uint64_t count;           // events in it
  ExactSum sum;             // sum of their values
};

// "_total" (the sum of every value, shown to its resolution: ExactSum::tolerance
// of the count) and "_events_total" (the count).
void add_all_time_counters(MetricFamilies* families, uint64_t count, const ExactSum& sum);

// "_sum_in_window" and "_events_in_window", one sample per window labelled
// `window`, in the order given.
void add_window_gauges(MetricFamilies* families, const WindowFigures* windows, size_t n);

// Opens the percentile family "" (a summary, without _sum and _count
// samples: m_total and m_events_total are those) with the given help.
void open_percentiles(MetricFamilies* families, std::string_view help);

// Adds to the open family the seven percentiles of the sketch (nearest
// rank, as the JSON renders show them), labelled `window` and `quantile`
// (kQuantileLabels); nothing when the sketch is empty.
void add_percentile_samples(MetricFamilies* families, std::string_view window, const DDSketch& sketch);

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_NUMERIC_METRICS_H
