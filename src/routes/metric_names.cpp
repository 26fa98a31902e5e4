#include "routes/metric_names.h"

#include <algorithm>

namespace taba::routes {
namespace {

bool is_name_byte(char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `text` with every byte outside [A-Za-z0-9_] replaced by `_`, and `_` in
// front when it starts with a digit (or is empty). True in *same when
// nothing had to change.
std::string valid_name(std::string_view text, bool* same) {
  std::string out;
  out.reserve(text.size() + 1);
  *same = !text.empty() && !is_digit(text[0]);
  if (text.empty() || is_digit(text[0])) out += '_';
  for (char c : text) {
    if (is_name_byte(c)) {
      out += c;
    } else {
      out += '_';
      *same = false;
    }
  }
  return out;
}

}  // namespace

bool is_export_label(std::string_view name) {
  return name == "client" || name == "window" || name == "quantile" || name == "value" || name == "field" ||
         name == "tab";
}

MetricName metric_name(std::string_view tab_name, std::string_view prefix) {
  MetricName out;
  const size_t semi = tab_name.find(';');
  const std::string_view base = tab_name.substr(0, semi);
  bool base_same = false;
  out.metric.reserve(prefix.size() + base.size() + 1);
  out.metric += prefix;
  out.metric += valid_name(base, &base_same);
  if (semi == std::string_view::npos) {
    if (!base_same) out.labels.emplace_back("tab", std::string(base));
    return out;
  }
  // The tags read back when each is key=value with a valid key that is not
  // ours, a non-empty value (Prometheus takes an empty label for none), and
  // the keys strictly increasing (sorted, no key twice).
  bool tags_same = true;
  std::string_view rest = tab_name.substr(semi + 1);
  std::string_view last_key;
  for (;;) {
    const size_t next = rest.find(';');
    const std::string_view tag = rest.substr(0, next);
    const size_t eq = tag.find('=');
    const std::string_view key = tag.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : tag.substr(eq + 1);
    bool key_same = false;
    std::string label = valid_name(key, &key_same);
    if (is_export_label(label) || label.starts_with("__")) {
      label = "tag_" + label;
      key_same = false;
    }
    if (!key_same || eq == std::string_view::npos || value.empty() || (!last_key.empty() && key <= last_key)) {
      tags_same = false;
    }
    last_key = key;
    // A key twice keeps its first value: labels are unique in a series
    // (the `tab` label then tells the names apart).
    const bool dup = std::any_of(out.labels.begin(), out.labels.end(), [&](const auto& l) { return l.first == label; });
    if (dup) {
      tags_same = false;
    } else if (!value.empty()) {
      out.labels.emplace_back(std::move(label), std::string(value));
    }
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  if (!tags_same || base.empty()) {
    out.labels.emplace_back("tab", std::string(tab_name));
  } else if (!base_same) {
    out.labels.emplace_back("tab", std::string(base));
  }
  return out;
}

}  // namespace taba::routes
