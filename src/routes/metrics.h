// The Prometheus exposition formats every role's GET /metrics answers in
// (the server's, the agent's, the client-proxy's) and GET /metrics/tabs:
// the text format 0.0.4, and OpenMetrics 1.0.0 for a scraper whose Accept
// header prefers it (Prometheus's own does). The two differ only in their
// metadata lines: an OpenMetrics counter family is named without its
// "_total", an info family without its "_info" (0.0.4 has no info type and
// writes a gauge), HELP escapes quotes too, and the text ends in "# EOF".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/latency.h"
#include "http/server.h"

namespace taba::routes {

enum class Exposition { kText, kOpenMetrics };

// The format an Accept header value asks for (text when it names neither).
Exposition exposition_for(std::string_view accept);
// The Content-Type of a reply in `format`.
std::string_view content_type(Exposition format);

// Builds exposition text: one HELP/TYPE header per family, then samples.
class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  explicit MetricsWriter(Exposition format = Exposition::kText) : format_(format) {}
  // Goes on appending to `text` (a part of the same exposition so far).
  MetricsWriter(Exposition format, std::string text) : format_(format), out_(std::move(text)) {}
  // A family's header. `name` is the name its samples carry in 0.0.4 (a
  // counter's ends in "_total", an info's in "_info"); type is "counter",
  // "gauge", "histogram" or "info".
  void family(std::string_view name, std::string_view type, std::string_view help);
  // Sample lines already in exposition form.
  void raw(std::string_view lines) { out_ += lines; }
  void sample(std::string_view name, double value, const Labels& labels = {});
  void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void histogram(std::string_view name, std::string_view help, const LatencyWindow& window);
  // The text (with "# EOF" in OpenMetrics); the writer is then empty.
  std::string take();
  // The text so far, without the end: more of the exposition follows.
  std::string take_part() { return std::move(out_); }
  Exposition format() const { return format_; }

 private:
  Exposition format_;
  std::string out_;
};

// Escapes a label value (backslash, quote, newline).
std::string escape_label(std::string_view value);
// Appends `value` escaped as a label value.
void append_label_value(std::string* out, std::string_view value);
// Appends a sample value: the shortest text that reads back, NaN, +Inf, -Inf.
void append_sample_value(std::string* out, double value);

}  // namespace taba::routes
