#include "common/numeric_metrics.h"

namespace taba::builtin {

void add_all_time_counters(MetricFamilies* families, uint64_t count, const ExactSum& sum) {
  families->family("_total", "counter", "Sum of every value recorded (all time).");
  families->sample({}, sum.value(), ExactSum::tolerance(count));
  families->family("_events_total", "counter", "Events recorded (all time).");
  families->sample(static_cast<double>(count));
}

void add_window_gauges(MetricFamilies* families, const WindowFigures* windows, size_t n) {
  families->family("_sum_in_window", "gauge", "Sum of the values in the window.");
  for (size_t i = 0; i < n; ++i) {
    families->sample({{"window", windows[i].window}}, windows[i].sum.value(),
                     ExactSum::tolerance(windows[i].count));
  }
  families->family("_events_in_window", "gauge", "Events in the window.");
  for (size_t i = 0; i < n; ++i) {
    families->sample({{"window", windows[i].window}}, static_cast<double>(windows[i].count));
  }
}

void open_percentiles(MetricFamilies* families, std::string_view help) {
  families->family("", "summary", help);
}

void add_percentile_samples(MetricFamilies* families, std::string_view window, const DDSketch& sketch) {
  if (sketch.count() == 0) return;  // an empty window has no percentiles (docs/prometheus.md)
  double values[kQuantileLabels.size()];
  static_assert(kQuantileLabels.size() == sizeof kRenderedPerMille / sizeof kRenderedPerMille[0]);
  rendered_percentiles(sketch, values);
  for (size_t j = 0; j < kQuantileLabels.size(); ++j) {
    families->sample({{"window", window}, {"quantile", kQuantileLabels[j]}}, values[j]);
  }
}

}  // namespace taba::builtin
