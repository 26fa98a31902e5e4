// The requests taba-cli sends, and the v1 body of `post` (request.h).
#include "cli/request.h"

#include <fmt/format.h>
#include <simdjson.h>

#include "cli/text.h"
#include "core/validation.h"
#include "http/url.h"
#include "protocol/payload.h"

namespace taba::cli {

namespace {

std::string join_encoded(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ',';
    out += http::percent_encode(n);
  }
  return out;
}

std::string encode_json_string(std::string_view s) {
  std::string out;
  protocol::append_json_string(&out, s);
  return out;
}

// A timestamp as Python's repr of a float writes it: shortest round-trip
// digits, always with a '.' or an exponent.
std::string python_float(double v) {
  std::string text = fmt::format("{}", v);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

}  // namespace

Result<std::string> build_v1_body(std::string_view client, std::string_view name, std::string_view type,
                                  const std::vector<std::string>& values, double now) {
  if (std::string why = check_identifier(client); !why.empty()) {
    return Status::Invalid(fmt::format("invalid client \"{}\": {}", quote_for_error(client), why));
  }
  if (std::string why = check_identifier(name); !why.empty()) {
    return Status::Invalid(fmt::format("invalid name \"{}\": {}", quote_for_error(name), why));
  }
  if (type.empty()) return Status::Invalid("TYPE must not be empty");
  if (values.empty()) return Status::Invalid("post needs at least one VALUE");
  const std::string ts = python_float(now);
  const std::string type_json = encode_json_string(type);
  std::string body = fmt::format("1\n\n{}\n\n{}\n", client, name);
  simdjson::dom::parser parser;
  for (const std::string& value : values) {
    std::string_view text = trim(value);
    simdjson::dom::element element;
    if (text.empty() || parser.parse(text.data(), text.size()).get(element) != simdjson::SUCCESS) {
      return Status::Invalid(fmt::format(
          "VALUE \"{}\" is not JSON text (numbers as they are, strings in double quotes: '\"red\"')",
          quote_for_error(value)));
    }
    body += fmt::format("[{}, {}, {}]\n", type_json, ts, encode_json_string(text));
  }
  body += "\n\n";
  return body;
}

Result<HttpCall> plan_request(const Invocation& inv, double now, std::string_view file_body) {
  const std::string& cmd = inv.command;
  const char* json_or_text = inv.json ? "application/json" : "text/plain";
  HttpCall call;
  call.method = "GET";
  std::string path;
  std::string accept = json_or_text;
  if (cmd == "agg") {
    path = "/tabs?name=" + join_encoded(inv.args);
    accept = "application/json";
  } else if (cmd == "proj" || cmd == "super") {
    path = (cmd == "proj" ? "/projection?name=" : "/supertabs?name=") + join_encoded(inv.args);
    if (inv.client) path += "&client=" + http::percent_encode(*inv.client);
  } else if (cmd == "names") {
    path = "/names";
    if (inv.client) path += "?client=" + http::percent_encode(*inv.client);
    accept = "application/json";
  } else if (cmd == "clients") {
    path = "/clients";
    accept = "application/json";
  } else if (cmd == "types") {
    path = inv.args.empty() ? "/types" : "/types?name=" + join_encoded(inv.args);
    accept = "application/json";
  } else if (cmd == "status" || cmd == "servers" || cmd == "latency") {
    path = "/" + cmd;
  } else if (cmd == "delete") {
    call.method = "POST";
    path = inv.regex ? "/delete?name=" + http::percent_encode(*inv.regex) + "&re=1"
                     : "/delete?name=" + join_encoded(inv.args);
  } else if (cmd == "gc" || cmd == "flush") {
    call.method = "POST";
    path = "/" + cmd;
  } else if (cmd == "check") {
    call.method = "POST";
    path = inv.repair ? "/check?dry=false" : "/check";
  } else if (cmd == "reshard") {
    path = "/reshard";
    if (inv.cancel) {
      call.method = "POST";
      path += "?cancel=1";
    } else if (inv.to && inv.vbuckets) {
      call.method = "POST";
      path += "?to=" + http::percent_encode(*inv.to) + "&vbuckets=" + http::percent_encode(*inv.vbuckets);
    }
    // --wait reads the move's id from the POST's JSON answer.
    if (inv.wait) accept = "application/json";
  } else if (cmd == "post") {
    call.method = "POST";
    path = "/post";
    accept.clear();
    if (inv.file) {
      call.body = std::string(file_body);
    } else {
      if (!inv.client || inv.args.size() < 3) return Status::Invalid("post needs --client C NAME TYPE VALUE...");
      std::vector<std::string> values(inv.args.begin() + 2, inv.args.end());
      Result<std::string> body = build_v1_body(*inv.client, inv.args[0], inv.args[1], values, now);
      TABA_RETURN_IF_ERROR(body);
      call.body = std::move(*body);
    }
  } else {
    return Status::Invalid(fmt::format("unknown command '{}'", cmd));
  }
  call.target = inv.server.base_path + path;
  if (!accept.empty()) call.headers.push_back({"Accept", accept});
  if (!inv.token.empty()) call.headers.push_back({"Authorization", "Bearer " + inv.token});
  return call;
}

}  // namespace taba::cli
