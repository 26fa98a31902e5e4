// taba-cli's command line: the command table, help texts and argv
// parsing (commands.h).
#include "cli/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "http/url.h"

namespace taba::cli {

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
      {"reshard", "reshard --to S --vbuckets F-L",
       "move vbuckets between Redis shards (or --status, --cancel)",
       {"reshard --to SHARD --vbuckets FIRST-LAST [--wait [--timeout SECONDS]]", "reshard --status",
        "reshard --cancel [--wait [--timeout SECONDS]]"},
       "Re-sharding of the Redis store (docs/api.md, \"/reshard\"). --to with --vbuckets starts a\n"
       "move of the vbuckets FIRST to LAST (inclusive; N alone is N-N) to SHARD (POST /reshard)\n"
       "and prints the placement; --status prints the placement, the move in progress and the\n"
       "recent moves (GET /reshard); --cancel cancels the move in progress. With --wait it polls\n"
       "every second, printing a line when the phase or the counts change, until the move ends,\n"
       "then prints the placement: exit 0 when the move ended done (cancelled, for --cancel),\n"
       "1 when it ended otherwise, 3 when --timeout passed first (the move goes on). A move\n"
       "refused because another is in progress (409) prints the server's message and exits 1.",
       {{"to", "SHARD", "the shard to move the vbuckets to (a [[redis.shards]] name)"},
        {"vbuckets", "FIRST-LAST", "the vbuckets to move, inclusive (N alone: N-N)"},
        {"status", nullptr, "print the placement and the moves"},
        {"cancel", nullptr, "cancel the move in progress"},
        {"wait", nullptr, "with --to or --cancel: wait until the move ends"},
        {"timeout", "SECONDS", "with --wait: give up waiting after this long (default 3600)"}},
       {"taba-cli reshard --status", "taba-cli reshard --to shard3 --vbuckets 0-340 --wait",
        "taba-cli reshard --cancel --wait"}},
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
    out += fmt::format("  {:<19} {}\n", left, o.help);  // a space even after a long option
  }
  return out;
}

constexpr const char* kExitStatusHelp =
    "Exit status: 0 ok; 1 the server answered with an error (or without the data asked for);\n"
    "2 usage error, or the server could not be reached.\n";

// A positive decimal integer that is all of `text`.
bool parse_positive(std::string_view text, int* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && *out > 0;
}

// reshard's options: one mode, --wait and --timeout where they mean
// something; the --timeout value into inv->wait_timeout_s.
Status check_reshard(const std::optional<std::string>& wait_timeout, Invocation* inv) {
  const bool moving = inv->to || inv->vbuckets;
  const int modes = (moving ? 1 : 0) + (inv->placement ? 1 : 0) + (inv->cancel ? 1 : 0);
  if (modes == 0) return Status::Invalid("reshard needs --to SHARD --vbuckets FIRST-LAST, --status or --cancel");
  if (modes > 1) return Status::Invalid("reshard takes one of --to/--vbuckets, --status and --cancel");
  if (moving && !inv->vbuckets) return Status::Invalid("reshard --to needs --vbuckets FIRST-LAST");
  if (moving && !inv->to) return Status::Invalid("reshard --vbuckets needs --to SHARD");
  if (moving && inv->to->empty()) return Status::Invalid("--to needs a shard name");
  if (moving && inv->vbuckets->empty()) return Status::Invalid("--vbuckets needs FIRST-LAST");
  if (inv->wait && inv->placement) return Status::Invalid("--wait goes with --to or --cancel, not --status");
  if (wait_timeout) {
    if (!inv->wait) return Status::Invalid("--timeout goes with --wait");
    int seconds = 0;
    if (!parse_positive(*wait_timeout, &seconds)) {
      return Status::Invalid(fmt::format("--timeout must be a positive number of seconds, not '{}'", *wait_timeout));
    }
    inv->wait_timeout_s = seconds;
  }
  return Status::Ok();
}

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
  std::optional<std::string> server, token, timeout, wait_timeout;
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
    } else if (name == "to") {
      inv.to = value;
    } else if (name == "vbuckets") {
      inv.vbuckets = value;
    } else if (name == "status") {
      inv.placement = true;
    } else if (name == "cancel") {
      inv.cancel = true;
    } else if (name == "wait") {
      inv.wait = true;
    } else if (name == "timeout") {
      wait_timeout = value;
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
    if (!parse_positive(*timeout, &ms)) {
      return Status::Invalid(fmt::format("--timeout-ms must be a positive number of milliseconds, not '{}'", *timeout));
    }
    inv.timeout_ms = ms;
  }
  Result<ServerAddress> address = parse_server(server ? *server : env.server.value_or(kDefaultServer));
  TABA_RETURN_IF_ERROR(address);
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
  if (cmd == "reshard") TABA_RETURN_IF_ERROR(check_reshard(wait_timeout, &inv));
  return inv;
}

}  // namespace taba::cli
