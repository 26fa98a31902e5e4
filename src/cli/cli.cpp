// taba-cli: argument handling, requests to the HTTP API, output formatting.
#include "cli/cli.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>

#include "core/validation.h"
#include "http/client.h"
#include "http/url.h"
#include "protocol/payload.h"

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

struct OptionDoc {
  const char* name;   // without "--"
  const char* value;  // placeholder of its value; nullptr for a flag
  const char* help;
};

struct CommandSpec {
  const char* name;
  const char* synopsis;  // for the command list
  const char* summary;   // one line for the command list
  std::vector<const char*> usages;
  const char* description;
  std::vector<OptionDoc> options;
  std::vector<const char*> examples;
};

const std::vector<OptionDoc>& global_options() {
  static const std::vector<OptionDoc> kGlobal = {
      {"server", "URL", "server URL (default: $TABA_SERVER, else http://127.0.0.1:8300)"},
      {"json", nullptr, "ask for JSON and print the server's reply as it is"},
      {"token", "TOKEN", "send \"Authorization: Bearer TOKEN\" (default: $TABA_TOKEN)"},
      {"timeout-ms", "N", "connect and request timeout in milliseconds (default 10000)"},
      {"help", nullptr, "show help (after COMMAND: that command's)"},
  };
  return kGlobal;
}

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> kCommands = {
      {"agg", "agg NAME...", "aggregate of each tab over all clients, one window per line",
       {"agg NAME..."},
       "Print the aggregate of each tab over all clients (GET /tabs): windowed types one window\n"
       "per line with count and total, other types as the server renders them. A NAME with no\n"
       "data prints \"NAME: (no data)\" and makes the exit status 1.",
       {},
       {"taba-cli agg req_ms color", "taba-cli --json agg req_ms"}},
      {"proj", "proj NAME... [--client C]", "each client's state of the tabs, unaggregated",
       {"proj NAME... [--client C]"},
       "Print each client's state of the tabs, unaggregated, as the server renders it\n"
       "(GET /projection): \"(name, client): <render>\" lines, or {\"name\": {\"client\": <render>}}\n"
       "with --json.",
       {{"client", "C", "only these clients (comma-separated)"}},
       {"taba-cli proj req_ms --client web01,web02"}},
      {"super", "super NAME... [--client C]", "all states of several tabs of one type reduced into one",
       {"super NAME... [--client C]"},
       "Reduce every state of the tabs (all of one type) into one render (GET /supertabs).",
       {{"client", "C", "only these clients (comma-separated)"}},
       {"taba-cli super req.a req.b"}},
      {"names", "names [--client C]", "tab names (only those client C posted, with --client)",
       {"names [--client C]"},
       "List tab names, one per line (GET /names).",
       {{"client", "C", "only names this client posted"}},
       {"taba-cli names --client web01"}},
      {"clients", "clients", "client IDs",
       {"clients"},
       "List client IDs, one per line (GET /clients).",
       {},
       {"taba-cli clients"}},
      {"types", "types [NAME...]", "\"name: Type\" for the given tabs, or for all",
       {"types [NAME...]"},
       "Print \"name: Type\" for the given tabs, or for all, sorted by name (GET /types).\n"
       "A NAME with no type prints \"NAME: (no data)\" and makes the exit status 1.",
       {},
       {"taba-cli types req_ms color"}},
      {"status", "status", "store, queue depth, oldest pending age, per-server load",
       {"status"},
       "Print the server's status (GET /status): the store, the pipeline latency, each Redis\n"
       "shard's queue depth and oldest pending entry, and each server's load.",
       {},
       {"taba-cli status", "taba-cli --json status"}},
      {"servers", "servers", "the deployment's servers and their roles",
       {"servers"},
       "List the servers of the deployment and their roles (GET /servers).",
       {},
       {"taba-cli servers"}},
      {"latency", "latency", "measured pipeline latency",
       {"latency"},
       "Print the measured pipeline latency, enqueue to applied, over the last minute: overall\n"
       "and per server (GET /latency).",
       {},
       {"taba-cli latency"}},
      {"delete", "delete NAME... | --re PATTERN", "remove tabs and all their states",
       {"delete NAME...", "delete --re PATTERN"},
       "Remove tabs and all their states (POST /delete) and print the server's report. With\n"
       "--re, every name the RE2 pattern matches as a whole is removed.",
       {{"re", "PATTERN", "delete the names this RE2 pattern matches (whole name)"}},
       {"taba-cli delete req_ms color", "taba-cli delete --re 'test\\..*'"}},
      {"gc", "gc", "prune empty states and names now",
       {"gc"},
       "Prune now (POST /gc): remove states with nothing left to report and names left with\n"
       "no states. Prints the server's report.",
       {},
       {"taba-cli gc"}},
      {"check", "check [--repair]", "consistency check (repairs with --repair)",
       {"check [--repair]"},
       "Check the store's consistency and print the report (POST /check). Nothing changes\n"
       "unless --repair is given (POST /check?dry=false).",
       {{"repair", nullptr, "repair the problems found"}},
       {"taba-cli check", "taba-cli check --repair"}},
      {"flush", "flush", "apply everything queued now",
       {"flush"},
       "Apply everything queued now and wait for it (POST /flush); prints the server's report.",
       {},
       {"taba-cli flush"}},
      {"post", "post --client C NAME TYPE VALUE...", "send events (a ready v1 body with --file FILE|-)",
       {"post --client C NAME TYPE VALUE...", "post --file FILE|-"},
       "Send events (POST /post); prints nothing on success. With --client: one event per\n"
       "VALUE for tab NAME of type TYPE, stamped now. Each VALUE is JSON text: 12.5, '\"red\"',\n"
       "'[1, 2]' (negative numbers work as they are). With --file: send a ready wire-protocol-v1\n"
       "body from FILE, or from standard input with '-'.",
       {{"client", "C", "the client ID the events come from"},
        {"file", "FILE|-", "send this v1 body as it is ('-': standard input)"}},
       {"taba-cli post --client web01 req_ms CounterGroup 12.5 3",
        "taba-cli post --client web01 color Gauge '\"red\"'", "taba-cli post --file body.txt"}},
  };
  return kCommands;
}

const CommandSpec* find_command(std::string_view name) {
  for (const CommandSpec& c : commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

// The option named `name` (global or any command's), or nullptr.
const OptionDoc* find_option(std::string_view name) {
  for (const OptionDoc& o : global_options()) {
    if (name == o.name) return &o;
  }
  for (const CommandSpec& c : commands()) {
    for (const OptionDoc& o : c.options) {
      if (name == o.name) return &o;
    }
  }
  return nullptr;
}

bool is_global_option(std::string_view name) {
  return std::any_of(global_options().begin(), global_options().end(),
                     [&](const OptionDoc& o) { return name == o.name; });
}

bool command_has_option(const CommandSpec& command, std::string_view name) {
  return std::any_of(command.options.begin(), command.options.end(),
                     [&](const OptionDoc& o) { return name == o.name; });
}

// "-5", "-0.5", "-.5": a negative number, so a positional VALUE.
bool looks_like_negative_number(std::string_view arg) {
  return arg.size() >= 2 && arg[0] == '-' && ((arg[1] >= '0' && arg[1] <= '9') || arg[1] == '.');
}

std::string option_rows(const std::vector<OptionDoc>& options) {
  std::string out;
  for (const OptionDoc& o : options) {
    std::string left = std::string_view(o.name) == "help" ? "-h, --help" : fmt::format("--{}", o.name);
    if (o.value != nullptr) left += fmt::format(" {}", o.value);
    out += fmt::format("  {:<20}{}\n", left, o.help);
  }
  return out;
}

constexpr const char* kExitStatusHelp =
    "Exit status: 0 ok; 1 the server answered with an error (or without the data asked for);\n"
    "2 usage error, or the server could not be reached.\n";

}  // namespace

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const CommandSpec& c : commands()) names.emplace_back(c.name);
  return names;
}

std::string help_text(std::string_view command) {
  const CommandSpec* spec = find_command(command);
  if (spec == nullptr) {
    std::string text =
        "Usage: taba-cli [--server URL] [--json] [--token TOKEN] [--timeout-ms N] COMMAND [ARGS]\n\n"
        "Query and administer a tabad server.\n\nCommands:\n";
    size_t width = 0;
    for (const CommandSpec& c : commands()) width = std::max(width, std::string_view(c.synopsis).size() + 2);
    for (const CommandSpec& c : commands()) text += fmt::format("  {:<{}}{}\n", c.synopsis, width, c.summary);
    text += "\nGlobal options (before or after COMMAND):\n" + option_rows(global_options());
    text +=
        "\nEnvironment: TABA_SERVER (default server URL), TABA_TOKEN (default bearer token).\n"
        "Run 'taba-cli COMMAND --help' for a command's options and an example.\n";
    return text + kExitStatusHelp;
  }
  std::string text;
  for (size_t i = 0; i < spec->usages.size(); ++i) {
    text += fmt::format("{}taba-cli [GLOBAL OPTIONS] {}\n", i == 0 ? "Usage: " : "       ", spec->usages[i]);
  }
  text += fmt::format("\n{}\n", spec->description);
  if (!spec->options.empty()) text += "\nOptions:\n" + option_rows(spec->options);
  text += "\nGlobal options:\n" + option_rows(global_options());
  text += spec->examples.size() == 1 ? "\nExample:\n" : "\nExamples:\n";
  for (const char* e : spec->examples) text += fmt::format("  {}\n", e);
  return text + "\n" + kExitStatusHelp;
}

Env process_env() {
  Env env;
  if (const char* s = std::getenv("TABA_SERVER"); s != nullptr && *s != '\0') env.server = s;
  if (const char* t = std::getenv("TABA_TOKEN"); t != nullptr && *t != '\0') env.token = t;
  return env;
}

Result<ServerAddress> parse_server(std::string_view text) {
  std::string server(text);
  if (server.find("://") == std::string::npos) server = "http://" + server;
  Result<http::Url> url = http::parse_url(server);
  if (!url.ok()) return Status::Invalid(fmt::format("bad server URL '{}': {}", text, url.status().message()));
  ServerAddress address;
  address.host = url->host;
  address.port = url->port;
  address.origin = url->host.find(':') != std::string::npos ? fmt::format("http://[{}]:{}", url->host, url->port)
                                                            : fmt::format("http://{}:{}", url->host, url->port);
  std::string_view path = url->target;
  path = path.substr(0, path.find('?'));
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  address.base_path = std::string(path);
  return address;
}

Result<Invocation> parse_command_line(const std::vector<std::string>& args, const Env& env,
                                      std::string* command_seen) {
  Invocation inv;
  std::optional<std::string> server, token, timeout;
  std::vector<std::string> command_options;  // command-specific options given
  bool options_done = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!options_done && a == "--") {
      options_done = true;
      continue;
    }
    if (options_done || a.size() < 2 || a[0] != '-' || looks_like_negative_number(a)) {
      if (inv.command.empty()) {
        if (find_command(a) == nullptr) return Status::Invalid(fmt::format("unknown command '{}'", a));
        inv.command = a;
        if (command_seen != nullptr) *command_seen = a;
      } else {
        inv.args.push_back(a);
      }
      continue;
    }
    if (a == "-h" || a == "--help") {
      inv.help = true;
      continue;
    }
    if (a[1] != '-') return Status::Invalid(fmt::format("unknown option '{}'", a));
    std::string_view spelled = std::string_view(a).substr(2);
    std::optional<std::string> value;
    if (size_t eq = spelled.find('='); eq != std::string_view::npos) {
      value = std::string(spelled.substr(eq + 1));
      spelled = spelled.substr(0, eq);
    }
    const OptionDoc* option = find_option(spelled);
    if (option == nullptr) return Status::Invalid(fmt::format("unknown option '--{}'", spelled));
    const std::string name = option->name;
    if (option->value == nullptr) {
      if (value) return Status::Invalid(fmt::format("option '--{}' takes no value", name));
    } else if (!value) {
      if (i + 1 >= args.size()) {
        return Status::Invalid(fmt::format("option '--{}' needs a value ({})", name, option->value));
      }
      value = args[++i];
    }
    if (!is_global_option(name)) command_options.push_back(name);
    if (name == "server") {
      server = value;
    } else if (name == "token") {
      token = value;
    } else if (name == "timeout-ms") {
      timeout = value;
    } else if (name == "json") {
      inv.json = true;
    } else if (name == "client") {
      inv.client = value;
    } else if (name == "re") {
      inv.regex = value;
    } else if (name == "repair") {
      inv.repair = true;
    } else if (name == "file") {
      inv.file = value;
    }
  }
  if (inv.help) return inv;
  if (inv.command.empty()) return Status::Invalid("no command given");
  const CommandSpec& spec = *find_command(inv.command);
  const std::string& cmd = inv.command;
  for (const std::string& o : command_options) {
    if (!command_has_option(spec, o)) return Status::Invalid(fmt::format("'{}' has no option '--{}'", cmd, o));
  }

  if (timeout) {
    int ms = 0;
    const char* end = timeout->data() + timeout->size();
    auto [ptr, ec] = std::from_chars(timeout->data(), end, ms);
    if (ec != std::errc() || ptr != end || ms <= 0) {
      return Status::Invalid(fmt::format("--timeout-ms must be a positive number of milliseconds, not '{}'", *timeout));
    }
    inv.timeout_ms = ms;
  }
  Result<ServerAddress> address = parse_server(server ? *server : env.server.value_or(kDefaultServer));
  if (!address.ok()) return address.status();
  inv.server = std::move(*address);
  inv.token = token ? *token : env.token.value_or("");

  const bool takes_names = cmd == "agg" || cmd == "proj" || cmd == "super" || cmd == "types" || cmd == "delete";
  if (takes_names) {
    if ((cmd == "agg" || cmd == "proj" || cmd == "super") && inv.args.empty()) {
      return Status::Invalid(cmd + " needs at least one NAME");
    }
    for (const std::string& n : inv.args) {
      if (n.empty() || n.find(',') != std::string::npos) {
        return Status::Invalid(fmt::format("'{}' is not a tab name", n));
      }
    }
  } else if (cmd != "post" && !inv.args.empty()) {
    return Status::Invalid(fmt::format("unexpected argument '{}'", inv.args.front()));
  }
  if (cmd == "delete") {
    if (inv.regex && !inv.args.empty()) return Status::Invalid("delete takes NAMEs or --re PATTERN, not both");
    if (!inv.regex && inv.args.empty()) return Status::Invalid("delete needs a NAME or --re PATTERN");
    if (inv.regex && inv.regex->empty()) return Status::Invalid("--re needs a non-empty PATTERN");
  }
  if (cmd == "post") {
    if (inv.file) {
      if (inv.client || !inv.args.empty()) {
        return Status::Invalid("post takes --file FILE or --client C NAME TYPE VALUE..., not both");
      }
      if (inv.file->empty()) return Status::Invalid("--file needs a file name (or '-' for standard input)");
    } else {
      if (!inv.client) return Status::Invalid("post needs --client C (or --file FILE)");
      if (inv.args.size() < 3) return Status::Invalid("post needs NAME, TYPE and at least one VALUE");
    }
  }
  return inv;
}

// ---------------------------------------------------------------------------
// Requests.

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
      if (!body.ok()) return body.status();
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

// ---------------------------------------------------------------------------
// Replies.

namespace {

std::string with_newline(std::string_view body) {
  std::string out(body);
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

}  // namespace

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
  if (!text.ok()) return text.status();
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

// ---------------------------------------------------------------------------
// run

namespace {

int usage_error(std::ostream& err, const std::string& message, const std::string& command) {
  err << "taba-cli: " << message << "\n";
  err << (command.empty() ? "Run 'taba-cli --help' for usage.\n"
                          : fmt::format("Run 'taba-cli {} --help' for usage.\n", command));
  return kExitUsage;
}

double now_seconds() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return static_cast<double>(ms) / 1000.0;
}

// The content of --file (or of `in` for "-"); false after reporting on err.
bool read_post_file(const std::string& path, std::istream& in, std::ostream& err, std::string* out) {
  if (path == "-") {
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
      err << "taba-cli: cannot read standard input\n";
      return false;
    }
    return true;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    err << fmt::format("taba-cli: cannot read {}: {}\n", path, std::strerror(errno));
    return false;
  }
  out->assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  if (file.bad()) {
    err << fmt::format("taba-cli: cannot read {}\n", path);
    return false;
  }
  return true;
}

int execute(const Invocation& inv, const HttpCall& call, std::ostream& out, std::ostream& err) {
  const std::string url = inv.server.origin + call.target;
  const auto start = std::chrono::steady_clock::now();
  Result<http::ClientConnection> conn =
      http::ClientConnection::connect(inv.server.host, inv.server.port, inv.timeout_ms);
  if (!conn.ok()) {
    err << fmt::format("taba-cli: cannot connect to {}: {}\n", inv.server.origin,
                       connect_failure_reason(conn.status().message(), inv.server.origin));
    return kExitUsage;
  }
  auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  int left = std::max(1, inv.timeout_ms - static_cast<int>(spent.count()));
  Result<http::ClientResponse> response = conn->request(call.method, call.target, call.headers, call.body, left);
  if (!response.ok()) {
    err << fmt::format("taba-cli: no reply to {} {}: {}\n", call.method, url, response.status().message());
    return kExitUsage;
  }
  if (response->status != 200) {
    err << format_http_error(call.method, url, response->status, response->reason, response->body);
    return kExitServerError;
  }
  if (inv.command == "post" && !trim(response->body).empty()) {
    // The server applied the body but refused some of its name blocks.
    err << fmt::format("taba-cli: {} name block(s) refused, the rest applied ({} {}):\n{}",
                       response->header("taba-refused-blocks"), call.method, url, with_newline(response->body));
    return kExitServerError;
  }
  std::vector<std::string> missing;
  Result<std::string> text = format_reply(inv, response->body, &missing);
  if (!text.ok()) {
    err << fmt::format("taba-cli: unexpected reply from {}: {}\n", url, text.status().message());
    return kExitServerError;
  }
  out << *text;
  if (missing.empty()) return kExitOk;
  std::string list;
  for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
  err << fmt::format("taba-cli: no data from {} for: {}\n", inv.server.origin, list);
  return kExitServerError;
}

}  // namespace

int run(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err) {
  std::string command_seen;
  Result<Invocation> parsed = parse_command_line(args, process_env(), &command_seen);
  if (!parsed.ok()) return usage_error(err, parsed.status().message(), command_seen);
  const Invocation& inv = *parsed;
  if (inv.help) {
    out << help_text(inv.command);
    return kExitOk;
  }
  std::string file_body;
  if (inv.command == "post" && inv.file && !read_post_file(*inv.file, in, err, &file_body)) return kExitUsage;
  Result<HttpCall> call = plan_request(inv, now_seconds(), file_body);
  if (!call.ok()) return usage_error(err, call.status().message(), inv.command);
  return execute(inv, *call, out, err);
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return run(args, std::cin, out, err);
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.empty()) args.push_back("taba-cli");
  return run(args, std::cin, std::cout, std::cerr);
}

}  // namespace taba::cli
