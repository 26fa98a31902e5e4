// How a tab name becomes a Prometheus metric name and labels
// (docs/prometheus.md, "Metric names"): the base name with every byte
// outside [A-Za-z0-9_] replaced by `_`, its `;key=value` tags as labels, and
// a `tab` label carrying the original whenever the name could not be read
// back from the rest, so two tab names never give the same series.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taba::routes {

// The label names the export writes itself: a handler's samples use only
// these, and a tag whose key is one of them is renamed `tag_<key>`.
bool is_export_label(std::string_view name);

struct MetricName {
  std::string metric;  // prefix + base name made valid
  // Tag labels in the tab name's order, then `tab` when needed.
  std::vector<std::pair<std::string, std::string>> labels;
};

// Maps a tab name (1 or more bytes, as every stored name). `prefix` is [A-Za-z_][A-Za-z0-9_]* or empty (checked when
// the configuration is read).
MetricName metric_name(std::string_view tab_name, std::string_view prefix);

}  // namespace taba::routes
