// taba-cli: argument handling, requests to the query API, output formatting.
#include "cli/cli.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>

// GCC 12 reports false -Wmaybe-uninitialized inside <regex> (used by
// cxxopts) in optimized sanitizer builds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cxxopts.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "http/client.h"
#include "http/url.h"

namespace taba::cli {

namespace {

namespace od = simdjson::ondemand;

std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

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
    Status st = visit(std::string(key), value);
    if (!st.ok()) return st;
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
  if (!st.ok()) return st;
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
  if (!st.ok()) return st;
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
// Command line.

namespace {

struct Command {
  const char* name;
  const char* args;     // positional synopsis
  const char* summary;  // one line for the command list
};

constexpr Command kCommands[] = {
    {"agg", "NAME...", "aggregate of each tab over all clients, one window per line"},
    {"names", "[--client C]", "tab names (only those client C posted, with --client)"},
    {"proj", "NAME... [--client C]", "each client's state of the tabs, unaggregated"},
    {"super", "NAME... [--client C]", "all states of several tabs of one type reduced into one"},
    {"clients", "", "client IDs"},
    {"types", "[NAME...]", "\"name: Type\" for the given tabs, or for all"},
};

// Options every command accepts, before or after the command word.
void add_global_options(cxxopts::Options& options) {
  options.add_options("Global")("server", "server URL (default: $TABA_SERVER, else http://127.0.0.1:8300)",
                                cxxopts::value<std::string>())(
      "json", "print the server's JSON reply as it is")("timeout-ms", "request timeout in milliseconds",
                                                        cxxopts::value<int>()->default_value("10000"))(
      "h,help", "show this help");
}

bool takes_value(std::string_view arg) {
  return arg == "--server" || arg == "--timeout-ms";
}

std::string top_level_help() {
  cxxopts::Options options("taba-cli", "Query a tabad server.");
  add_global_options(options);
  std::string text = "Usage: taba-cli [--server URL] [--json] [--timeout-ms N] COMMAND [ARGS]\n\nCommands:\n";
  for (const Command& c : kCommands) {
    text += fmt::format("  {:<27}{}\n", fmt::format("{} {}", c.name, c.args), c.summary);
  }
  std::string options_help = options.help({"Global"});
  size_t group = options_help.find("\n Global options:");
  text += group == std::string::npos ? options_help : options_help.substr(group);
  text += "\nRun 'taba-cli COMMAND --help' for a command's options.\n";
  text += "Exit status: 0 ok, 1 server or connection error, 2 usage error.\n";
  return text;
}

// Where and how to send requests.
struct Context {
  http::Url server;       // host and port
  std::string origin;     // "http://host:port"
  std::string base_path;  // the --server URL's path without a trailing '/', often ""
  int timeout_ms = 10000;
  bool json = false;
  std::ostream& out;
  std::ostream& err;
};

// GETs path_query with the given Accept. The body on 200, else nullopt
// after reporting on stderr.
std::optional<std::string> get_as(const Context& ctx, const std::string& path_query, std::string_view accept) {
  const std::string url = ctx.origin + ctx.base_path + path_query;
  Result<http::ClientResponse> response =
      http::fetch("GET", url, {http::Header{"Accept", std::string(accept)}}, "", ctx.timeout_ms);
  if (!response.ok()) {
    ctx.err << "taba-cli: GET " << url << ": " << response.status().message() << "\n";
    return std::nullopt;
  }
  if (response->status != 200) {
    std::string_view reason = trim(response->body);
    reason = reason.substr(0, std::min(reason.find('\n'), size_t{500}));
    ctx.err << fmt::format("taba-cli: GET {}: {} {}{}{}\n", url, response->status, response->reason,
                           reason.empty() ? "" : ": ", reason);
    return std::nullopt;
  }
  return std::move(response->body);
}

std::optional<std::string> get_json(const Context& ctx, const std::string& path_query) {
  return get_as(ctx, path_query, "application/json");
}

std::string join_encoded(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ',';
    out += http::percent_encode(n);
  }
  return out;
}

// Prints a reply as it is (--json), newline-terminated.
void print_raw(const Context& ctx, std::string_view body) {
  ctx.out << body;
  if (body.empty() || body.back() != '\n') ctx.out << '\n';
}

int report_bad_reply(const Context& ctx, const std::string& path, const Status& st) {
  ctx.err << fmt::format("taba-cli: unexpected reply from {}{}{}: {}\n", ctx.origin, ctx.base_path, path,
                         st.message());
  return kExitServerError;
}

int report_missing(const Context& ctx, const std::vector<std::string>& missing) {
  if (missing.empty()) return kExitOk;
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  ctx.err << fmt::format("taba-cli: no data from {} for: {}\n", ctx.origin, list);
  return kExitServerError;
}

int cmd_agg(const Context& ctx, const std::vector<std::string>& names) {
  const std::string path = "/tabs?name=" + join_encoded(names);
  std::optional<std::string> body = get_json(ctx, path);
  if (!body) return kExitServerError;
  std::vector<std::string> missing;
  Result<std::string> text = format_agg(names, *body, &missing);
  if (!text.ok()) return report_bad_reply(ctx, path, text.status());
  if (ctx.json) {
    print_raw(ctx, *body);
  } else {
    ctx.out << *text;
  }
  return report_missing(ctx, missing);
}

// proj and super: the server's own text (or JSON with --json) as it is.
int cmd_passthrough(const Context& ctx, const std::string& route, const std::vector<std::string>& names,
                    const std::optional<std::string>& client) {
  std::string path = route + "?name=" + join_encoded(names);
  if (client) path += "&client=" + http::percent_encode(*client);
  std::optional<std::string> body = get_as(ctx, path, ctx.json ? "application/json" : "text/plain");
  if (!body) return kExitServerError;
  print_raw(ctx, *body);
  return kExitOk;
}

int cmd_list(const Context& ctx, const std::string& path) {
  std::optional<std::string> body = get_json(ctx, path);
  if (!body) return kExitServerError;
  Result<std::string> text = format_string_list(*body);
  if (!text.ok()) return report_bad_reply(ctx, path, text.status());
  if (ctx.json) {
    print_raw(ctx, *body);
  } else {
    ctx.out << *text;
  }
  return kExitOk;
}

int cmd_types(const Context& ctx, const std::vector<std::string>& names) {
  const std::string path = names.empty() ? "/types" : "/types?name=" + join_encoded(names);
  std::optional<std::string> body = get_json(ctx, path);
  if (!body) return kExitServerError;
  std::vector<std::string> missing;
  Result<std::string> text = format_types(*body, names, &missing);
  if (!text.ok()) return report_bad_reply(ctx, path, text.status());
  if (ctx.json) {
    print_raw(ctx, *body);
  } else {
    ctx.out << *text;
  }
  return report_missing(ctx, missing);
}

// Resolves --server / $TABA_SERVER / the default into ctx. False on a bad URL.
bool resolve_server(const cxxopts::ParseResult& parsed, Context* ctx, std::string* error) {
  std::string server = kDefaultServer;
  if (parsed.count("server") != 0) {
    server = parsed["server"].as<std::string>();
  } else if (const char* env = std::getenv("TABA_SERVER"); env != nullptr && *env != '\0') {
    server = env;
  }
  if (server.find("://") == std::string::npos) server = "http://" + server;
  Result<http::Url> url = http::parse_url(server);
  if (!url.ok()) {
    *error = "bad server URL: " + url.status().message();
    return false;
  }
  ctx->server = *url;
  ctx->origin = url->host.find(':') != std::string::npos ? fmt::format("http://[{}]:{}", url->host, url->port)
                                                         : fmt::format("http://{}:{}", url->host, url->port);
  std::string_view path = url->target;
  path = path.substr(0, path.find('?'));
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  ctx->base_path = std::string(path);
  return true;
}

// Index of the command word in args, or args.size() if there is none.
size_t find_command(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") return i + 1 < args.size() ? i + 1 : args.size();
    if (a.size() > 1 && a[0] == '-') {
      if (takes_value(a)) ++i;
      continue;
    }
    return i;
  }
  return args.size();
}

cxxopts::ParseResult parse_args(cxxopts::Options& options, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  argv.reserve(args.size());
  for (const std::string& a : args) argv.push_back(a.c_str());
  return options.parse(static_cast<int>(argv.size()), argv.data());
}

int usage_error(std::ostream& err, const std::string& message, const std::string& command) {
  err << "taba-cli: " << message << "\n";
  err << (command.empty() ? "Run 'taba-cli --help' for usage.\n"
                          : fmt::format("Run 'taba-cli {} --help' for usage.\n", command));
  return kExitUsage;
}

int run_command(const Command& command, const std::vector<std::string>& args, size_t command_index,
                std::ostream& out, std::ostream& err) {
  const std::string name = command.name;
  cxxopts::Options options("taba-cli " + name, command.summary);
  add_global_options(options);
  bool takes_names = name == "agg" || name == "types" || name == "proj" || name == "super";
  bool takes_client = name == "names" || name == "proj" || name == "super";
  if (takes_names) {
    options.add_options("positional")("names", "tab names", cxxopts::value<std::vector<std::string>>());
    options.parse_positional({"names"});
  }
  if (name == "names") {
    options.add_options(name)("client", "only names this client posted", cxxopts::value<std::string>());
  } else if (takes_client) {
    options.add_options(name)("client", "only these clients (comma-separated)", cxxopts::value<std::string>());
  }
  options.custom_help(fmt::format("[OPTION...] {}", command.args));
  options.positional_help("");

  std::vector<std::string> sub_args{"taba-cli " + name};
  for (size_t i = 1; i < args.size(); ++i) {
    if (i != command_index) sub_args.push_back(args[i]);
  }
  std::optional<cxxopts::ParseResult> parsed;
  try {
    parsed = parse_args(options, sub_args);
  } catch (const cxxopts::exceptions::exception& e) {
    return usage_error(err, e.what(), name);
  }
  if (parsed->count("help") != 0) {
    out << options.help(takes_client ? std::vector<std::string>{"Global", name}
                                     : std::vector<std::string>{"Global"});
    return kExitOk;
  }
  if (!parsed->unmatched().empty()) {
    return usage_error(err, fmt::format("unexpected argument '{}'", parsed->unmatched().front()), name);
  }
  std::vector<std::string> names;
  if (takes_names && parsed->count("names") != 0) names = (*parsed)["names"].as<std::vector<std::string>>();
  if ((name == "agg" || name == "proj" || name == "super") && names.empty()) {
    return usage_error(err, name + " needs at least one NAME", name);
  }
  for (const std::string& n : names) {
    if (n.empty() || n.find(',') != std::string::npos) {
      return usage_error(err, fmt::format("'{}' is not a tab name", n), name);
    }
  }

  Context ctx{.out = out, .err = err};
  ctx.json = parsed->count("json") != 0;
  ctx.timeout_ms = (*parsed)["timeout-ms"].as<int>();
  if (ctx.timeout_ms <= 0) return usage_error(err, "--timeout-ms must be positive", name);
  std::string error;
  if (!resolve_server(*parsed, &ctx, &error)) return usage_error(err, error, name);

  if (name == "agg") return cmd_agg(ctx, names);
  if (name == "proj" || name == "super") {
    std::optional<std::string> client;
    if (parsed->count("client") != 0) client = (*parsed)["client"].as<std::string>();
    return cmd_passthrough(ctx, name == "proj" ? "/projection" : "/supertabs", names, client);
  }
  if (name == "types") return cmd_types(ctx, names);
  if (name == "clients") return cmd_list(ctx, "/clients");
  std::string path = "/names";
  if (parsed->count("client") != 0)
    path += "?client=" + http::percent_encode((*parsed)["client"].as<std::string>());
  return cmd_list(ctx, path);
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  size_t index = find_command(args);
  if (index >= args.size()) {
    cxxopts::Options options("taba-cli", "Query a tabad server.");
    add_global_options(options);
    std::vector<std::string> global_args(args.begin(), args.end());
    if (global_args.empty()) global_args.push_back("taba-cli");
    try {
      cxxopts::ParseResult parsed = parse_args(options, global_args);
      if (parsed.count("help") != 0) {
        out << top_level_help();
        return kExitOk;
      }
    } catch (const cxxopts::exceptions::exception& e) {
      return usage_error(err, e.what(), "");
    }
    return usage_error(err, "no command given", "");
  }
  for (const Command& command : kCommands) {
    if (args[index] == command.name) {
      try {
        return run_command(command, args, index, out, err);
      } catch (const cxxopts::exceptions::exception& e) {
        return usage_error(err, e.what(), command.name);
      }
    }
  }
  return usage_error(err, fmt::format("unknown command '{}'", args[index]), "");
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.empty()) args.push_back("taba-cli");
  return run(args, std::cout, std::cerr);
}

}  // namespace taba::cli
