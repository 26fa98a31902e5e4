// taba-cli's output: 200 replies formatted per command, and the
// diagnostics for errors (format.h).
#include "cli/format.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "cli/text.h"

namespace taba::cli {

namespace {

namespace od = simdjson::ondemand;

// True when `json` is one complete, valid JSON document. (On-demand parsing
// below validates only what it visits.)
bool is_valid_json(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  return parser.parse(json.data(), json.size()).get(root) == simdjson::SUCCESS;
}

// Calls visit(key, value) for each member of the JSON object `json`.
Status for_each_member(std::string_view json,
                       const std::function<Status(const std::string&, od::value&)>& visit) {
  if (!is_valid_json(json)) return Status::Corruption("malformed JSON");
  od::parser parser;
  simdjson::padded_string padded(json);
  od::document doc;
  od::object obj;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(obj) != simdjson::SUCCESS) {
    return Status::Corruption("expected a JSON object");
  }
  for (auto member : obj) {
    std::string_view key;
    od::value value;
    if (member.unescaped_key().get(key) != simdjson::SUCCESS ||
        member.value().get(value) != simdjson::SUCCESS) {
      return Status::Corruption("malformed JSON object");
    }
    TABA_RETURN_IF_ERROR(visit(std::string(key), value));
  }
  return Status::Ok();
}

// The JSON text of `value` exactly as it appears in the document.
Status raw_text(od::value& value, std::string* out) {
  od::json_type type;
  if (value.type().get(type) != simdjson::SUCCESS) return Status::Corruption("malformed JSON value");
  std::string_view raw;
  simdjson::error_code ec = simdjson::SUCCESS;
  if (type == od::json_type::object) {
    od::object obj;
    ec = value.get_object().get(obj);
    if (ec == simdjson::SUCCESS) ec = obj.raw_json().get(raw);
  } else if (type == od::json_type::array) {
    od::array arr;
    ec = value.get_array().get(arr);
    if (ec == simdjson::SUCCESS) ec = arr.raw_json().get(raw);
  } else {
    raw = value.raw_json_token();
  }
  if (ec != simdjson::SUCCESS) return Status::Corruption("malformed JSON value");
  *out = std::string(trim(raw));
  return Status::Ok();
}

// An integer-looking rendering of a JSON number (counts may arrive as floats).
bool format_count(simdjson::dom::element e, std::string* out) {
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    *out = std::to_string(i);
  } else if (e.get_uint64().get(u) == simdjson::SUCCESS) {
    *out = std::to_string(u);
  } else if (e.get_double().get(d) == simdjson::SUCCESS) {
    *out = fmt::format("{:.0f}", d);
  } else {
    return false;
  }
  return true;
}

// "[0.09, 0.47, ...]" with every element as %.2f.
bool format_pct(simdjson::dom::array arr, std::string* out) {
  std::string s = "[";
  bool first = true;
  for (simdjson::dom::element e : arr) {
    double d = 0;
    if (e.get_double().get(d) != simdjson::SUCCESS) return false;
    if (!first) s += ", ";
    s += fmt::format("{:.2f}", d);
    first = false;
  }
  *out = s + "]";
  return true;
}

// The lines of a windowed render, or nullopt when `render` is not one.
std::optional<std::vector<std::string>> window_lines(simdjson::dom::object render) {
  static constexpr const char* kWindows[] = {"1m", "10m", "1h", "1d"};
  std::vector<std::string> lines;
  bool any_window_pct = false;
  for (const char* window : kWindows) {
    simdjson::dom::object w;
    simdjson::dom::element count;
    double total = 0;
    if (render[window].get_object().get(w) != simdjson::SUCCESS ||
        w["count"].get(count) != simdjson::SUCCESS ||
        w["total"].get_double().get(total) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    std::string count_text;
    if (!format_count(count, &count_text)) return std::nullopt;
    std::string line = fmt::format("\"{}\": {{\"count\": {}, \"total\": {:.2f}", window, count_text, total);
    simdjson::dom::array pct;
    if (w["pct"].get_array().get(pct) == simdjson::SUCCESS) {
      std::string pct_text;
      if (!format_pct(pct, &pct_text)) return std::nullopt;
      line += ", \"pct\": " + pct_text;
      any_window_pct = true;
    }
    lines.push_back(line + "}");
  }
  if (!any_window_pct) {
    // CounterGroup: the all-time sketch is render["pct"]["pct"].
    simdjson::dom::array pct;
    simdjson::dom::element all_time;
    if (render["pct"].get(all_time) == simdjson::SUCCESS) {
      simdjson::dom::object all_time_obj;
      bool found = all_time.get_object().get(all_time_obj) == simdjson::SUCCESS
                       ? all_time_obj["pct"].get_array().get(pct) == simdjson::SUCCESS
                       : all_time.get_array().get(pct) == simdjson::SUCCESS;
      std::string pct_text;
      if (found && format_pct(pct, &pct_text)) lines.push_back("\"pct\": " + pct_text);
    }
  }
  return lines;
}

}  // namespace

std::string format_agg_block(std::string_view name, std::string_view render_json) {
  std::string_view raw = trim(render_json);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (parser.parse(raw.data(), raw.size()).get(root) == simdjson::SUCCESS &&
      root.get_object().get(obj) == simdjson::SUCCESS) {
    if (auto lines = window_lines(obj)) {
      std::string out = fmt::format("{}: {{\n", name);
      for (size_t i = 0; i < lines->size(); ++i) {
        out += (*lines)[i];
        out += i + 1 < lines->size() ? ",\n" : "}\n";
      }
      return out;
    }
  }
  return fmt::format("{}: {}\n", name, raw);
}

Result<std::string> format_agg(const std::vector<std::string>& names, std::string_view tabs_json,
                               std::vector<std::string>* missing) {
  std::map<std::string, std::string> renders;
  Status st = for_each_member(tabs_json, [&](const std::string& key, od::value& value) {
    std::string raw;
    Status s = raw_text(value, &raw);
    if (s.ok()) renders.emplace(key, std::move(raw));
    return s;
  });
  TABA_RETURN_IF_ERROR(st);
  std::string out;
  for (const std::string& name : names) {
    auto it = renders.find(name);
    if (it == renders.end()) {
      out += fmt::format("{}: (no data)\n", name);
      missing->push_back(name);
    } else {
      out += format_agg_block(name, it->second);
    }
  }
  return out;
}

Result<std::string> format_string_list(std::string_view json_array) {
  if (!is_valid_json(json_array)) return Status::Corruption("malformed JSON");
  od::parser parser;
  simdjson::padded_string padded(json_array);
  od::document doc;
  od::array arr;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS || doc.get_array().get(arr) != simdjson::SUCCESS) {
    return Status::Corruption("expected a JSON array");
  }
  std::string out;
  for (auto element : arr) {
    std::string_view s;
    if (element.get_string().get(s) != simdjson::SUCCESS) {
      return Status::Corruption("expected a JSON array of strings");
    }
    out.append(s).push_back('\n');
  }
  return out;
}

Result<std::string> format_types(std::string_view json_object, const std::vector<std::string>& wanted,
                                 std::vector<std::string>* missing) {
  std::map<std::string, std::string> types;
  Status st = for_each_member(json_object, [&](const std::string& key, od::value& value) {
    std::string_view type;
    if (value.get_string().get(type) != simdjson::SUCCESS) {
      return Status::Corruption("expected a JSON object of strings");
    }
    types.emplace(key, std::string(type));
    return Status::Ok();
  });
  TABA_RETURN_IF_ERROR(st);
  for (const std::string& name : wanted) {
    if (types.count(name) == 0 && std::find(missing->begin(), missing->end(), name) == missing->end()) {
      missing->push_back(name);
    }
  }
  std::map<std::string, std::string> lines;
  for (const auto& [name, type] : types) lines.emplace(name, type);
  for (const std::string& name : *missing) lines.emplace(name, "(no data)");
  std::string out;
  for (const auto& [name, type] : lines) out += fmt::format("{}: {}\n", name, type);
  return out;
}

// ---------------------------------------------------------------------------
// Replies.

Result<std::string> format_reply(const Invocation& inv, std::string_view body, std::vector<std::string>* missing) {
  const std::string& cmd = inv.command;
  Result<std::string> text = std::string();
  if (cmd == "agg") {
    text = format_agg(inv.args, body, missing);
  } else if (cmd == "names" || cmd == "clients") {
    text = format_string_list(body);
  } else if (cmd == "types") {
    text = format_types(body, inv.args, missing);
  } else if (cmd == "post") {
    return std::string();
  } else {
    return with_newline(body);
  }
  TABA_RETURN_IF_ERROR(text);
  return inv.json ? with_newline(body) : std::move(*text);
}

std::string format_http_error(std::string_view method, std::string_view url, int status, std::string_view reason,
                              std::string_view body) {
  std::string_view line = trim(body);
  line = trim(line.substr(0, std::min(line.find('\n'), size_t{500})));
  std::string head = fmt::format("taba-cli: {}", status);
  if (!trim(reason).empty()) head += fmt::format(" {}", trim(reason));
  if (!line.empty()) head += fmt::format(": {}", line);
  return fmt::format("{} ({} {})\n", head, method, url);
}

std::string connect_failure_reason(std::string_view message, std::string_view url) {
  std::string m(message);
  const std::string prefix = fmt::format("cannot connect to {}: ", url);
  if (m.rfind(prefix, 0) == 0) return m.substr(prefix.size());
  for (const std::string& suffix : {fmt::format(": {}", url), fmt::format(" connecting to {}", url)}) {
    if (m.size() > suffix.size() && m.compare(m.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return m.substr(0, m.size() - suffix.size());
    }
  }
  return m;
}

}  // namespace taba::cli
