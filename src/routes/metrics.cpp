#include "routes/metrics.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <cmath>

namespace taba::routes {

std::string escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}
}  // namespace

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
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

namespace {
void walk(MetricsWriter* w, std::string_view name, std::string_view type, const std::string& path,
          simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT:
      for (auto [key, value] : e.get_object()) {
        walk(w, name, type, path.empty() ? std::string(key) : path + "." + std::string(key), value);
      }
      break;
    case simdjson::dom::element_type::ARRAY: {
      size_t i = 0;
      for (auto value : e.get_array()) {
        walk(w, name, type, path.empty() ? std::to_string(i) : path + "." + std::to_string(i), value);
        ++i;
      }
      break;
    }
    case simdjson::dom::element_type::INT64:
      w->sample("taba_tab", static_cast<double>(int64_t(e)), {{"name", std::string(name)}, {"type", std::string(type)}, {"field", path}});
      break;
    case simdjson::dom::element_type::UINT64:
      w->sample("taba_tab", static_cast<double>(uint64_t(e)), {{"name", std::string(name)}, {"type", std::string(type)}, {"field", path}});
      break;
    case simdjson::dom::element_type::DOUBLE:
      w->sample("taba_tab", double(e), {{"name", std::string(name)}, {"type", std::string(type)}, {"field", path}});
      break;
    default:
      break;  // strings, booleans, null: not numbers
  }
}
}  // namespace

void flatten_tab(MetricsWriter* w, std::string_view name, std::string_view type, std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc)) return;
  walk(w, name, type, "", doc);
}

}  // namespace taba::routes
