// libFuzzer: what /metrics/tabs reads and writes from untrusted text: a tab
// name (its first line) mapped to a metric name and labels, and a handler's
// metrics render or JSON render (the rest) read into families
// (src/routes/metric_names.h, src/routes/tab_exposition.h).
#include <cstdint>
#include <string>

#include "routes/metric_names.h"
#include "routes/tab_exposition.h"

namespace {
bool valid_name(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view name = in.substr(0, nl == std::string_view::npos ? in.size() : nl);
  const std::string_view render = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  if (name.empty()) return 0;  // a tab name has 1 to 256 bytes (checked at ingest)
  taba::routes::MetricName m = taba::routes::metric_name(name, "");
  if (!valid_name(m.metric)) __builtin_trap();
  for (const auto& [k, v] : m.labels) {
    if (!valid_name(k) || v.empty()) __builtin_trap();
  }
  taba::routes::TabExposition e({"", 100, 1000});
  e.add(name, "T", render, false);
  e.add(name, "T", render, true);
  if (!e.finish(taba::routes::Exposition::kOpenMetrics).ends_with("# EOF\n")) __builtin_trap();
  return 0;
}
