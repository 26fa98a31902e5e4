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

  // Room for about `tabs` tabs, so that the family index is not rehashed
  // (tens of milliseconds at once) while they are added.
  void expect(size_t tabs);

  // Adds one tab: `render` is its handler's TABA_FORMAT_METRICS render,
  // or, when `from_json` is true, its TABA_FORMAT_JSON_EXACT render.
  void add(std::string_view tab_name, std::string_view type_name, std::string_view render, bool from_json);

  // Appends the reply in `format` to *out, about `max_bytes` at a time (a
  // family is never split): false while there is more, true once the whole
  // reply is written. Each family's text is freed as it is written, so a
  // caller can spread a large reply over several loop iterations. No add()
  // after the first call.
  bool write_some(Exposition format, std::string* out, size_t max_bytes);
  // The whole reply at once.
  std::string finish(Exposition format);

  uint64_t samples() const { return samples_; }
  const std::array<uint64_t, 4>& left_out() const { return left_out_; }

 private:
  struct Family;
  // One family of the tab being added, as it is read.
  struct Staged {
    Family* family = nullptr;  // where its samples go (fresh or existing); null when left out
    std::string lines;         // its kept samples as exposition lines (capacity reused)
    uint64_t samples = 0;
  };
  // Reads a render into staged_ (families of the tab); false when it is
  // not the form at all.
  bool stage_metrics(std::string_view render, const std::string& metric, std::string_view help_prefix);
  bool stage_json(std::string_view render, const std::string& metric, std::string_view help_prefix);
  // The family of this tab for (suffix, type): an existing one it may join,
  // a new one, or null (a conflict or a second family of one name, counted).
  Family* claim(const std::string& metric, std::string_view suffix, std::string_view type, std::string_view help,
                uint64_t samples_if_refused);
  // Adds one sample line to `st` if its label set is new for the tab and the
  // tab's limit allows.
  void stage_sample(Staged* st, std::string_view suffix, double value);
  void leave_out(LeftOut reason, uint64_t n) { left_out_[static_cast<size_t>(reason)] += n; }

  Limits limits_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  std::string padded_;                                // the render with simdjson's padding
  std::vector<std::unique_ptr<Family>> families_;     // in the order first claimed
  std::unordered_map<std::string, Family*> by_name_;  // OpenMetrics family name -> family
  // The tab being added.
  std::vector<Staged> staged_;
  size_t staged_count_ = 0;
  std::vector<std::unique_ptr<Family>> fresh_;  // families it would create
  std::unordered_set<uint64_t> seen_;           // hashes of suffix + labels of its samples
  std::string tab_labels_;                      // its tag and tab labels, as label text
  std::string labels_;                          // one sample's labels (capacity reused)
  int64_t kept_ = 0;                            // its samples kept so far
  size_t written_ = 0;                          // families written by write_some
  size_t chunk_ = 0;                            // chunks written of families_[written_]
  uint64_t samples_ = 0;
  std::array<uint64_t, 4> left_out_{};
};

}  // namespace taba::routes
