#include "routes/tab_exposition.h"

#include <simdjson.h>

#include <cmath>
#include <functional>

#include "core/utf8.h"
#include "routes/metric_names.h"

namespace taba::routes {
namespace {

bool valid_suffix(std::string_view s) {
  if (s.empty()) return true;
  if (s[0] != '_') return false;
  for (char c : s) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// The suffix rules of the type (include/taba/handler.h, TABA_FORMAT_METRICS).
bool suffix_fits(std::string_view type, std::string_view suffix) {
  if (type == "counter") return suffix.ends_with("_total");
  if (type == "info") return suffix.ends_with("_info");
  if (type == "summary") return suffix.empty();
  if (type != "gauge") return false;
  return !suffix.ends_with("_total") && !suffix.ends_with("_sum") && !suffix.ends_with("_count") &&
         !suffix.ends_with("_bucket");
}

// The OpenMetrics family name of a family whose samples are named `sample`.
std::string_view family_name(std::string_view sample, std::string_view type) {
  if (type == "counter" && sample.ends_with("_total")) sample.remove_suffix(6);
  if (type == "info" && sample.ends_with("_info")) sample.remove_suffix(5);
  return sample;
}

void append_label(std::string* out, std::string_view name, std::string_view value) {
  if (!out->empty()) *out += ',';
  *out += name;
  *out += "=\"";
  if (is_valid_utf8(value)) {
    append_label_value(out, value);
  } else {
    std::string clean;
    append_sanitized_utf8(value, &clean);
    append_label_value(out, clean);
  }
  *out += '"';
}

std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

// One family of the reply: the metric name that claimed it, and its samples
// as exposition lines.
struct TabExposition::Family {
  std::string sample_name;  // metric + suffix: what its samples are called in 0.0.4
  std::string metric;       // the tab metric name that claimed it
  std::string type, help;
  std::string lines;
};

TabExposition::TabExposition(Limits limits)
    : limits_(std::move(limits)), parser_(std::make_unique<simdjson::dom::parser>()) {}

TabExposition::~TabExposition() = default;

bool TabExposition::read_metrics(std::string_view render, std::vector<TabFamily>* out) {
  simdjson::padded_string padded(render);
  simdjson::dom::element doc;
  if (parser_->parse(padded).get(doc)) return false;
  simdjson::dom::array families;
  if (doc.get_array().get(families)) return false;
  for (simdjson::dom::element f : families) {
    simdjson::dom::array parts;
    std::string_view suffix, type, help;
    simdjson::dom::array samples;
    if (f.get_array().get(parts) || parts.size() != 4 || parts.at(0).get_string().get(suffix) ||
        parts.at(1).get_string().get(type) || parts.at(2).get_string().get(help) ||
        parts.at(3).get_array().get(samples) || !valid_suffix(suffix) || !suffix_fits(type, suffix)) {
      leave_out(LeftOut::kInvalid, 1);
      continue;
    }
    TabFamily tf{std::string(suffix), std::string(type), one_line(help), {}};
    for (simdjson::dom::element s : samples) {
      simdjson::dom::array pair;
      simdjson::dom::object labels;
      double value = 0;
      if (s.get_array().get(pair) || pair.size() != 2 || pair.at(0).get_object().get(labels) ||
          pair.at(1).get_double().get(value) || !std::isfinite(value) || (tf.type == "counter" && value < 0)) {
        leave_out(LeftOut::kInvalid, 1);
        continue;
      }
      Sample sample{{}, value};
      bool ok = true, has_quantile = false;
      for (auto [key, v] : labels) {
        std::string_view text;
        if (!is_export_label(key) || key == "tab" || v.get_string().get(text)) {
          ok = false;
          break;
        }
        has_quantile |= key == "quantile";
        append_label(&sample.labels, key, text);
      }
      if (!ok || has_quantile != (tf.type == "summary")) {
        leave_out(LeftOut::kInvalid, 1);
        continue;
      }
      tf.samples.push_back(std::move(sample));
    }
    out->push_back(std::move(tf));
  }
  return true;
}

bool TabExposition::read_json(std::string_view render, std::vector<TabFamily>* out) {
  simdjson::padded_string padded(render);
  simdjson::dom::element doc;
  if (parser_->parse(padded).get(doc)) return false;
  TabFamily tf{"", "gauge", "Numbers of its JSON render, by path (its type writes no metrics form).", {}};
  std::function<void(const std::string&, simdjson::dom::element)> walk = [&](const std::string& path,
                                                                            simdjson::dom::element e) {
    switch (e.type()) {
      case simdjson::dom::element_type::OBJECT:
        for (auto [key, value] : e.get_object()) walk(path.empty() ? std::string(key) : path + "." + std::string(key), value);
        break;
      case simdjson::dom::element_type::ARRAY: {
        size_t i = 0;
        for (auto value : e.get_array()) {
          walk(path.empty() ? std::to_string(i) : path + "." + std::to_string(i), value);
          ++i;
        }
        break;
      }
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE: {
        Sample s{{}, double(e)};
        append_label(&s.labels, "field", path);
        tf.samples.push_back(std::move(s));
        break;
      }
      default:
        break;  // strings, booleans, null: not numbers
    }
  };
  walk("", doc);
  out->push_back(std::move(tf));
  return true;
}

void TabExposition::add(std::string_view tab_name, std::string_view type_name, std::string_view render, bool from_json) {
  std::vector<TabFamily> families;
  if (!(from_json ? read_json(render, &families) : read_metrics(render, &families))) {
    leave_out(LeftOut::kInvalid, 1);
    return;
  }
  const MetricName name = metric_name(tab_name, limits_.prefix);
  std::string tab_labels;
  for (const auto& [k, v] : name.labels) append_label(&tab_labels, k, v);
  const std::string_view base = tab_name.substr(0, tab_name.find(';'));

  // Which samples stay: distinct suffixes and label sets, the first
  // max_series_per_tab of them, and families no other metric or type holds.
  seen_.clear();
  int64_t kept = 0;
  std::vector<std::pair<Family*, const TabFamily*>> claims;
  std::vector<std::unique_ptr<Family>> fresh;
  std::unordered_set<std::string> suffixes;
  for (TabFamily& tf : families) {
    if (!suffixes.insert(tf.suffix).second) {
      leave_out(LeftOut::kInvalid, tf.samples.size());
      tf.samples.clear();
      continue;
    }
    std::string sample_name = name.metric + tf.suffix;
    const std::string key(family_name(sample_name, tf.type));
    Family* fam = nullptr;
    if (auto it = by_name_.find(key); it != by_name_.end()) {
      fam = it->second;
      if (fam->metric != name.metric || fam->type != tf.type || fam->sample_name != sample_name) {
        leave_out(LeftOut::kConflict, tf.samples.size());
        tf.samples.clear();
        continue;
      }
    } else {
      for (auto& f : fresh) {
        if (family_name(f->sample_name, f->type) == key) fam = f.get();
      }
      if (fam) {  // two families of this tab with one OpenMetrics name
        leave_out(LeftOut::kInvalid, tf.samples.size());
        tf.samples.clear();
        continue;
      }
      auto f = std::make_unique<Family>();
      f->sample_name = std::move(sample_name);
      f->metric = name.metric;
      f->type = tf.type;
      f->help = std::string(type_name) + " " + std::string(base) + ": " + tf.help;
      fam = f.get();
      fresh.push_back(std::move(f));
    }
    std::vector<Sample> keep;
    for (Sample& s : tf.samples) {
      if (!seen_.insert(tf.suffix + "{" + s.labels).second) {
        leave_out(LeftOut::kInvalid, 1);
      } else if (kept >= limits_.max_series_per_tab) {
        leave_out(LeftOut::kTabLimit, 1);
      } else {
        ++kept;
        keep.push_back(std::move(s));
      }
    }
    tf.samples = std::move(keep);
    claims.emplace_back(fam, &tf);
  }
  if (static_cast<int64_t>(samples_) + kept > limits_.max_series) {
    leave_out(LeftOut::kReplyLimit, static_cast<uint64_t>(kept));
    return;
  }
  for (auto& f : fresh) {
    by_name_.emplace(std::string(family_name(f->sample_name, f->type)), f.get());
    families_.push_back(std::move(f));
  }
  for (const auto& [fam, tf] : claims) {
    for (const Sample& s : tf->samples) {
      fam->lines += fam->sample_name;
      if (!s.labels.empty() || !tab_labels.empty()) {
        fam->lines += '{';
        fam->lines += s.labels;
        if (!s.labels.empty() && !tab_labels.empty()) fam->lines += ',';
        fam->lines += tab_labels;
        fam->lines += '}';
      }
      fam->lines += ' ';
      append_sample_value(&fam->lines, s.value);
      fam->lines += '\n';
    }
    samples_ += tf->samples.size();
  }
}

std::string TabExposition::finish(Exposition format) {
  MetricsWriter w(format);
  for (const auto& f : families_) {
    if (f->lines.empty()) continue;
    w.family(f->sample_name, f->type, f->help);
    w.raw(f->lines);
  }
  return w.take();
}

}  // namespace taba::routes
