#include "routes/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "query/accept.h"

namespace taba::routes {

void append_label_value(std::string* out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') *out += "\\\\";
    else if (c == '"') *out += "\\\"";
    else if (c == '\n') *out += "\\n";
    else *out += c;
  }
}

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  append_label_value(&out, value);
  return out;
}

Exposition exposition_for(std::string_view accept) {
  static const std::vector<std::string> kOffered{"text/plain", "application/openmetrics-text"};
  return query::negotiate(accept, kOffered) == kOffered[1] ? Exposition::kOpenMetrics : Exposition::kText;
}

std::string_view content_type(Exposition format) {
  return format == Exposition::kOpenMetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                            : "text/plain; version=0.0.4; charset=utf-8";
}

namespace {
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}
}  // namespace

void append_sample_value(std::string* out, double value) { *out += format_value(value); }

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  const bool om = format_ == Exposition::kOpenMetrics;
  std::string_view family = name;
  if (om && type == "counter" && family.ends_with("_total")) family.remove_suffix(6);
  if (type == "info") {
    if (om && family.ends_with("_info")) family.remove_suffix(5);
    if (!om) type = "gauge";
  }
  out_ += "# HELP ";
  out_ += family;
  out_ += ' ';
  for (char c : help) {
    if (c == '\\') out_ += "\\\\";
    else if (c == '\n') out_ += "\\n";
    else if (c == '"' && om) out_ += "\\\"";
    else out_ += c;
  }
  out_ += "\n# TYPE ";
  out_ += family;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

std::string MetricsWriter::take() {
  if (format_ == Exposition::kOpenMetrics) out_ += "# EOF\n";
  return std::move(out_);
}

void MetricsWriter::sample(std::string_view name, double value, const Labels& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += fmt::format("{}=\"{}\"", labels[i].first, escape_label(labels[i].second));
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void MetricsWriter::counter(std::string_view name, std::string_view help, double value, const Labels& labels) {
  family(name, "counter", help);
  sample(name, value, labels);
}

void MetricsWriter::gauge(std::string_view name, std::string_view help, double value, const Labels& labels) {
  family(name, "gauge", help);
  sample(name, value, labels);
}

void MetricsWriter::histogram(std::string_view name, std::string_view help, const LatencyWindow& window) {
  family(name, "histogram", help);
  std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i < LatencyWindow::kBuckets.size(); ++i) {
    sample(bucket, static_cast<double>(window.bucket_counts()[i]),
           {{"le", format_value(LatencyWindow::kBuckets[i])}});
  }
  sample(bucket, static_cast<double>(window.total()), {{"le", "+Inf"}});
  sample(std::string(name) + "_sum", window.sum_s());
  sample(std::string(name) + "_count", static_cast<double>(window.total()));
}

}  // namespace taba::routes
