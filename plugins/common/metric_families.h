// The TABA_FORMAT_METRICS render (include/taba/handler.h): a handler's state
// as Prometheus families of samples, written as the JSON array the host
// reads (docs/prometheus.md maps each built-in type). A family with no
// samples is left out, so a handler may open one and find nothing to add.
#ifndef TABA_PLUGINS_COMMON_METRIC_FAMILIES_H
#define TABA_PLUGINS_COMMON_METRIC_FAMILIES_H

#include <array>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "common/text.h"
#include "taba/handler.h"

namespace taba::builtin {

// The quantile label values of the seven percentiles every sketch-backed
// type renders (p25 ... p99.9), in render order.
inline constexpr std::array<std::string_view, 7> kQuantileLabels = {"0.25", "0.5",  "0.75", "0.9",
                                                                    "0.95", "0.99", "0.999"};

class MetricFamilies {
 public:
  using Label = std::pair<std::string_view, std::string_view>;

  // Opens a family: suffix ("" or "_..."), type ("counter", "gauge" or
  // "info") and one line of help. Samples added next belong to it.
  void family(std::string_view suffix, std::string_view type, std::string_view help);
  // Adds a sample to the open family (value in full precision).
  void sample(std::initializer_list<Label> labels, double value);
  void sample(double value) { sample({}, value); }
  // Adds a sample of a figure known to within tolerance, such as an
  // ExactSum (ExactSum::tolerance of its count): the shortest number within
  // it, as TABA_FORMAT_JSON_EXACT writes such figures (0.003, not
  // 0.0029999999329447746).
  void sample(std::initializer_list<Label> labels, double value, double tolerance);

  // Hands the array to the host. Returns TABA_OK or TABA_ERR_NOMEM.
  taba_status flush_to(taba_output* out);

 private:
  // Writes a sample's opening and labels; its value follows.
  void open_sample(std::initializer_list<Label> labels);

  TextBuffer text_{Numbers::kExact};
  std::string pending_;     // the open family's head, until its first sample
  bool any_family_ = false;
  bool family_has_samples_ = false;
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_METRIC_FAMILIES_H
