#include "query/params.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>

#include "core/validation.h"
#include "http/url.h"

namespace taba::query {
namespace {

void split_list(std::string_view value, std::vector<std::string>* out) {
  while (true) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    if (!item.empty()) out->emplace_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

Status parse_bool(std::string_view key, std::string_view v, bool* out) {
  if (v.empty() || v == "1" || v == "true" || v == "yes" || v == "on") {
    *out = true;
  } else if (v == "0" || v == "false" || v == "no" || v == "off") {
    *out = false;
  } else {
    return Status::Invalid(fmt::format("parameter {}: expected 1 or 0, not \"{}\"", key, v));
  }
  return Status::Ok();
}

// Flattens a JSON object body into key/value pairs: strings, numbers and
// booleans as text; arrays of strings joined with ','.
Result<std::vector<http::QueryParam>> json_body_params(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) {
    return Status::Invalid("request body is not valid JSON (expected an object of parameters)");
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    return Status::Invalid("request body must be a JSON object of parameters");
  }
  std::vector<http::QueryParam> out;
  for (auto field : obj) {
    http::QueryParam p;
    p.key = std::string(field.key);
    simdjson::dom::element v = field.value;
    if (v.is_string()) {
      p.value = std::string(std::string_view(v.get_string()));
    } else if (v.is_bool()) {
      p.value = bool(v.get_bool()) ? "1" : "0";
    } else if (v.is_int64()) {
      p.value = std::to_string(int64_t(v.get_int64()));
    } else if (v.is_array()) {
      for (auto item : v.get_array()) {
        if (!item.is_string()) return Status::Invalid(fmt::format("parameter {}: array items must be strings", p.key));
        if (!p.value.empty()) p.value += ',';
        p.value += std::string_view(item.get_string());
      }
    } else {
      return Status::Invalid(fmt::format("parameter {}: unsupported JSON value", p.key));
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

Result<Params> parse_params(std::string_view query_string, std::string_view body,
                            std::initializer_list<std::string_view> allowed) {
  std::vector<http::QueryParam> raw;
  if (!query_string.empty()) {
    auto parsed = http::parse_query(query_string);
    TABA_RETURN_IF_ERROR(parsed);
    raw = std::move(parsed.value());
  } else if (!body.empty()) {
    auto parsed = json_body_params(body);
    TABA_RETURN_IF_ERROR(parsed);
    raw = std::move(parsed.value());
  }
  Params p;
  std::vector<std::string> unknown;
  for (const http::QueryParam& kv : raw) {
    if (std::find(allowed.begin(), allowed.end(), kv.key) == allowed.end()) {
      unknown.push_back(kv.key);
      continue;
    }
    if (kv.key == "name") {
      p.has_name = true;
      split_list(kv.value, &p.names);
    } else if (kv.key == "client") {
      p.has_client = true;
      split_list(kv.value, &p.clients);
    } else if (kv.key == "re") {
      TABA_RETURN_IF_ERROR(parse_bool("re", kv.value, &p.re));
    } else {
      p.extra.emplace_back(kv.key, kv.value);
    }
  }
  if (!unknown.empty()) {
    if (allowed.size() == 0) {
      return Status::Invalid(fmt::format("unknown parameter(s): {} (this route takes none)", fmt::join(unknown, ", ")));
    }
    return Status::Invalid(fmt::format("unknown parameter(s): {} (allowed: {})", fmt::join(unknown, ", "),
                                       fmt::join(allowed, ", ")));
  }
  if (p.re) {
    // With re=1 each of name and client is one pattern; commas belong to it.
    auto rejoin = [](std::vector<std::string>* v) {
      if (v->size() > 1) {
        std::string joined = fmt::format("{}", fmt::join(*v, ","));
        v->assign(1, joined);
      }
    };
    rejoin(&p.names);
    rejoin(&p.clients);
  }
  return p;
}

}  // namespace taba::query
