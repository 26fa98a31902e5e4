#include "routes/tab_exposition.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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
  if (type != "gauge" && type != "summary") return false;
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
// as exposition lines, in chunks of about kChunkBytes: the family of a base
// name with thousands of tagged tabs grows to megabytes, and one string
// would be copied whole each time it doubled, and again whole when the
// reply is assembled.
struct TabExposition::Family {
  static constexpr size_t kChunkBytes = 64 << 10;
  std::string sample_name;  // metric + suffix: what its samples are called in 0.0.4
  std::string metric;       // the tab metric name that claimed it
  std::string type, help;
  std::vector<std::string> chunks;
  size_t bytes = 0;

  void append(std::string_view text) {
    if (chunks.empty() || (!chunks.back().empty() && chunks.back().size() + text.size() > kChunkBytes)) {
      // A family's first chunk is as long as its first text (most families
      // have one tab); later ones take kChunkBytes.
      const size_t room = chunks.empty() ? text.size() : std::max(text.size(), kChunkBytes);
      chunks.emplace_back().reserve(room);
    }
    chunks.back() += text;
    bytes += text.size();
  }
};

TabExposition::TabExposition(Limits limits)
    : limits_(std::move(limits)), parser_(std::make_unique<simdjson::dom::parser>()) {}

TabExposition::~TabExposition() = default;

void TabExposition::expect(size_t tabs) {
  // A tab writes 2 (counters) to 5 (CounterGroup) families.
  by_name_.reserve(tabs * 5);
  families_.reserve(tabs * 5);
}

TabExposition::Family* TabExposition::claim(const std::string& metric, std::string_view suffix, std::string_view type,
                                            std::string_view help, uint64_t samples_if_refused) {
  std::string sample_name = metric;
  sample_name += suffix;
  const std::string_view key = family_name(sample_name, type);
  if (auto it = by_name_.find(std::string(key)); it != by_name_.end()) {
    Family* fam = it->second;
    if (fam->metric == metric && fam->type == type && fam->sample_name == sample_name) {
      for (size_t i = 0; i < staged_count_; ++i) {
        if (staged_[i].family == fam) {  // this tab has it already
          leave_out(LeftOut::kInvalid, samples_if_refused);
          return nullptr;
        }
      }
      return fam;
    }
    leave_out(LeftOut::kConflict, samples_if_refused);
    return nullptr;
  }
  for (auto& f : fresh_) {
    if (family_name(f->sample_name, f->type) == key) {  // two families of this tab with one name
      leave_out(LeftOut::kInvalid, samples_if_refused);
      return nullptr;
    }
  }
  auto f = std::make_unique<Family>();
  f->sample_name = std::move(sample_name);
  f->metric = metric;
  f->type = std::string(type);
  f->help = std::string(help);
  fresh_.push_back(std::move(f));
  return fresh_.back().get();
}

void TabExposition::stage_sample(Staged* st, std::string_view suffix, double value) {
  // The label set's hash, with the suffix: one per family and label set.
  const uint64_t h = std::hash<std::string_view>()(labels_) * 31 + std::hash<std::string_view>()(suffix);
  if (!seen_.insert(h).second) {
    leave_out(LeftOut::kInvalid, 1);
    return;
  }
  if (kept_ >= limits_.max_series_per_tab) {
    leave_out(LeftOut::kTabLimit, 1);
    return;
  }
  ++kept_;
  std::string& out = st->lines;
  out += st->family->sample_name;
  if (!labels_.empty() || !tab_labels_.empty()) {
    out += '{';
    out += labels_;
    if (!labels_.empty() && !tab_labels_.empty()) out += ',';
    out += tab_labels_;
    out += '}';
  }
  out += ' ';
  append_sample_value(&out, value);
  out += '\n';
  ++st->samples;
}

bool TabExposition::stage_metrics(std::string_view render, const std::string& metric, std::string_view help_prefix) {
  padded_.assign(render);
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::dom::element doc;
  if (parser_->parse(padded_.data(), render.size(), false).get(doc)) return false;
  simdjson::dom::array families;
  if (doc.get_array().get(families)) return false;
  std::string help;
  for (simdjson::dom::element f : families) {
    simdjson::dom::array parts;
    std::string_view suffix, type, text;
    simdjson::dom::array samples;
    if (f.get_array().get(parts) || parts.size() != 4 || parts.at(0).get_string().get(suffix) ||
        parts.at(1).get_string().get(type) || parts.at(2).get_string().get(text) ||
        parts.at(3).get_array().get(samples) || !valid_suffix(suffix) || !suffix_fits(type, suffix)) {
      leave_out(LeftOut::kInvalid, 1);
      continue;
    }
    help.assign(help_prefix);
    help += one_line(text);
    Family* fam = claim(metric, suffix, type, help, samples.size());
    if (!fam) continue;
    if (staged_count_ == staged_.size()) staged_.emplace_back();
    Staged* st = &staged_[staged_count_++];
    st->family = fam;
    st->lines.clear();
    st->samples = 0;
    const bool counter = type == "counter", summary = type == "summary";
    for (simdjson::dom::element sample : samples) {
      simdjson::dom::array pair;
      simdjson::dom::object labels;
      double value = 0;
      if (sample.get_array().get(pair) || pair.size() != 2 || pair.at(0).get_object().get(labels) ||
          pair.at(1).get_double().get(value) || !std::isfinite(value) || (counter && value < 0)) {
        leave_out(LeftOut::kInvalid, 1);
        continue;
      }
      labels_.clear();
      bool ok = true, has_quantile = false;
      for (auto [key, v] : labels) {
        std::string_view label_value;
        if (!is_export_label(key) || key == "tab" || v.get_string().get(label_value)) {
          ok = false;
          break;
        }
        has_quantile |= key == "quantile";
        append_label(&labels_, key, label_value);
      }
      if (!ok || has_quantile != summary) {
        leave_out(LeftOut::kInvalid, 1);
        continue;
      }
      stage_sample(st, suffix, value);
    }
  }
  return true;
}

bool TabExposition::stage_json(std::string_view render, const std::string& metric, std::string_view help_prefix) {
  padded_.assign(render);
  padded_.append(simdjson::SIMDJSON_PADDING, '\0');
  simdjson::dom::element doc;
  if (parser_->parse(padded_.data(), render.size(), false).get(doc)) return false;
  std::string help(help_prefix);
  help += "Numbers of its JSON render, by path (its type writes no metrics form).";
  Family* fam = claim(metric, "", "gauge", help, 0);
  if (!fam) return true;
  if (staged_count_ == staged_.size()) staged_.emplace_back();
  Staged* st = &staged_[staged_count_++];
  st->family = fam;
  st->lines.clear();
  st->samples = 0;
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
      case simdjson::dom::element_type::DOUBLE:
        labels_.clear();
        append_label(&labels_, "field", path);
        stage_sample(st, "", double(e));
        break;
      default:
        break;  // strings, booleans, null: not numbers
    }
  };
  walk("", doc);
  return true;
}

void TabExposition::add(std::string_view tab_name, std::string_view type_name, std::string_view render, bool from_json) {
  const MetricName name = metric_name(tab_name, limits_.prefix);
  tab_labels_.clear();
  for (const auto& [k, v] : name.labels) append_label(&tab_labels_, k, v);
  std::string help_prefix(type_name);
  help_prefix += ' ';
  help_prefix += tab_name.substr(0, tab_name.find(';'));
  help_prefix += ": ";
  staged_count_ = 0;
  fresh_.clear();
  seen_.clear();
  kept_ = 0;
  const bool read = from_json ? stage_json(render, name.metric, help_prefix)
                              : stage_metrics(render, name.metric, help_prefix);
  if (!read) {
    leave_out(LeftOut::kInvalid, 1);
    return;
  }
  // A tab is kept whole or left out whole at the reply's limit.
  if (static_cast<int64_t>(samples_) + kept_ > limits_.max_series) {
    leave_out(LeftOut::kReplyLimit, static_cast<uint64_t>(kept_));
    return;
  }
  for (auto& f : fresh_) {
    by_name_.emplace(std::string(family_name(f->sample_name, f->type)), f.get());
    families_.push_back(std::move(f));
  }
  for (size_t i = 0; i < staged_count_; ++i) {
    staged_[i].family->append(staged_[i].lines);
    samples_ += staged_[i].samples;
  }
}

bool TabExposition::write_some(Exposition format, std::string* out, size_t max_bytes) {
  if (written_ == 0) {
    // The whole reply's size, so it is allocated once.
    size_t total = 8;
    for (const auto& f : families_) total += f->bytes + 2 * f->sample_name.size() + f->help.size() + 32;
    out->reserve(out->size() + total);
  }
  MetricsWriter w(format, std::move(*out));
  size_t bytes = 0;
  while (written_ < families_.size() && bytes < max_bytes) {
    Family& f = *families_[written_];
    if (chunk_ == 0 && f.bytes > 0) w.family(f.sample_name, f.type, f.help);
    // A chunk at a time, each freed as it is copied.
    while (chunk_ < f.chunks.size() && bytes < max_bytes) {
      w.raw(f.chunks[chunk_]);
      bytes += f.chunks[chunk_].size();
      std::string().swap(f.chunks[chunk_++]);
    }
    bytes += 1;
    if (chunk_ < f.chunks.size()) break;
    by_name_.erase(std::string(family_name(f.sample_name, f.type)));
    families_[written_++].reset();  // nothing of the export is left to free at the end
    chunk_ = 0;
  }
  const bool done = written_ == families_.size();
  *out = done ? w.take() : w.take_part();
  return done;
}

std::string TabExposition::finish(Exposition format) {
  std::string out;
  while (!write_some(format, &out, SIZE_MAX)) {
  }
  return out;
}

}  // namespace taba::routes
