// The Prometheus text exposition format (version 0.0.4) that every role's
// GET /metrics answers in (the server's, the agent's, the client-proxy's),
// and the flattening of a tab's aggregate into gauges for ?tabs=1.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/latency.h"
#include "http/server.h"

namespace taba::routes {

// Builds exposition text: one HELP/TYPE header per family, then samples.
class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, double value, const Labels& labels = {});
  void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void histogram(std::string_view name, std::string_view help, const LatencyWindow& window);
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Escapes a label value (backslash, quote, newline).
std::string escape_label(std::string_view value);

// Appends a sample per numeric leaf of a JSON document, labelled with the
// path of the leaf ("1m.count", "pct.3"): taba_tab{name="…",type="…",field="…"}.
void flatten_tab(MetricsWriter* w, std::string_view name, std::string_view type, std::string_view json);

}  // namespace taba::routes
