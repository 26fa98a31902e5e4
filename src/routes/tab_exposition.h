// The body of GET /metrics/tabs, built one tab at a time
// (docs/prometheus.md): each tab's TABA_FORMAT_METRICS render (or, for a
// handler without one, its JSON numbers as gauges labelled `field`) is
// checked, named and labelled, and its families are joined with the
// families of the same name from other tabs (the tags of one base name
// share them), so every family is written once, as the exposition formats
// require. Tabs arrive in byte order of their names: the first to claim a
// family name keeps it, and a later tab that claims it with another type
// is left out of it. Every sample left out is counted by reason.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "routes/metrics.h"

namespace simdjson::dom {
class parser;
}

namespace taba::routes {

// Why samples were left out (the `reason` label of
// taba_prometheus_series_left_out_total).
enum class LeftOut { kTabLimit, kReplyLimit, kConflict, kInvalid };
inline constexpr std::array<std::string_view, 4> kLeftOutReasons{"tab_limit", "reply_limit", "conflict", "invalid"};

class TabExposition {
 public:
  struct Limits {
    std::string prefix;
    int64_t max_series_per_tab = 1000;
    int64_t max_series = 1'000'000;
  };
  explicit TabExposition(Limits limits);
  ~TabExposition();

  // Adds one tab: `metrics` is its handler's TABA_FORMAT_METRICS render,
  // or, when `from_json` is true, its TABA_FORMAT_JSON_EXACT render.
  void add(std::string_view tab_name, std::string_view type_name, std::string_view render, bool from_json);

  // The reply in `format`.
  std::string finish(Exposition format);

  uint64_t samples() const { return samples_; }
  const std::array<uint64_t, 4>& left_out() const { return left_out_; }

 private:
  struct Family;
  struct Sample {
    std::string labels;  // "a=\"b\",c=\"d\"" without braces
    double value;
  };
  struct TabFamily {
    std::string suffix, type, help;
    std::vector<Sample> samples;
  };
  // Reads a render into families; false (with *why) when it is not the form.
  bool read_metrics(std::string_view render, std::vector<TabFamily>* out);
  bool read_json(std::string_view render, std::vector<TabFamily>* out);
  void leave_out(LeftOut reason, uint64_t n) { left_out_[static_cast<size_t>(reason)] += n; }

  Limits limits_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  std::vector<std::unique_ptr<Family>> families_;         // in the order first claimed
  std::unordered_map<std::string, Family*> by_name_;      // OpenMetrics family name -> family
  std::unordered_set<std::string> seen_;                  // suffix + labels of the tab being added
  uint64_t samples_ = 0;
  std::array<uint64_t, 4> left_out_{};
};

}  // namespace taba::routes
