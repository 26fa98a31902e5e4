// taba-cli: a command-line client for the query, operations and admin API
// (SPEC §6, §9).
//
//   taba-cli [--server URL] [--json] [--token TOKEN] [--timeout-ms N] COMMAND [ARGS]
//
// The logic lives here as plain functions so that tests can drive it:
// parse_command_line() turns argv into an Invocation, plan_request() turns an
// Invocation into the HTTP request to send, format_reply() turns a 200 reply
// into what is printed. run() strings them together around the network;
// main.cpp only calls run().
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/message.h"

namespace taba::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;  // the server answered with an error, a bad reply or without the data asked for
inline constexpr int kExitUsage = 2;        // bad flags or arguments, an unreadable --file, or no answer from the server

inline constexpr const char* kDefaultServer = "http://127.0.0.1:8300";
inline constexpr int kDefaultTimeoutMs = 10000;

// Runs taba-cli with argv-style arguments; args[0] is the program name.
// Reads `post --file -` from `in`, writes results to `out` and diagnostics
// to `err`; returns the exit code. Reads TABA_SERVER and TABA_TOKEN from the
// process environment.
int run(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

// run() with std::cin as `in`.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// run() over the process's argv, std::cin, std::cout and std::cerr.
int run(int argc, char** argv);

// ---------------------------------------------------------------------------
// Command line.

// What the environment contributes (TABA_SERVER, TABA_TOKEN; unset or
// empty variables are nullopt).
struct Env {
  std::optional<std::string> server;
  std::optional<std::string> token;
};
Env process_env();

// Where requests go, from --server / $TABA_SERVER / the default.
struct ServerAddress {
  std::string host;       // without brackets for IPv6
  int port = 0;
  std::string origin;     // "http://host:port", for messages
  std::string base_path;  // the URL's path without a trailing '/', often ""
};

// Parses a server URL ("http://host[:port][/path]", or "host[:port]").
// Error (a one-line reason) on anything else, e.g. https.
Result<ServerAddress> parse_server(std::string_view text);

// A parsed command line.
struct Invocation {
  std::string command;  // a subcommand; empty only with help
  bool help = false;    // print help_text(command) and exit 0
  ServerAddress server;
  bool json = false;
  std::string token;  // empty: no Authorization header
  int timeout_ms = kDefaultTimeoutMs;
  std::vector<std::string> args;      // positional arguments after the command word
  std::optional<std::string> client;  // --client (names, proj, super, post)
  std::optional<std::string> regex;   // --re (delete)
  bool repair = false;                // --repair (check)
  std::optional<std::string> file;    // --file (post); "-" is standard input
};

// Parses argv (args[0] is the program name). Options may come before or
// after the command word; "--opt VALUE" and "--opt=VALUE" both work; "--"
// ends options; an argument that looks like a negative number ("-5", "-.5")
// is positional. With --help or -h anywhere, returns at once with help set
// (positional arguments are then not checked). Errors are usage errors,
// Status::Invalid with a one-line message; *command_seen (if given) is set
// to the command word when one was recognised, for the usage hint.
Result<Invocation> parse_command_line(const std::vector<std::string>& args, const Env& env,
                                      std::string* command_seen = nullptr);

// `taba-cli --help` (command empty) or `taba-cli COMMAND --help`: usage,
// what it does, its options, the global options and an example.
std::string help_text(std::string_view command);

// The subcommands, in help order.
std::vector<std::string> command_names();

// ---------------------------------------------------------------------------
// Requests.

struct HttpCall {
  std::string method;                // "GET" or "POST"
  std::string target;                // base path + route + query string
  std::vector<http::Header> headers;  // Accept (except for post), Authorization when a token is set
  std::string body;
};

// The request `inv` sends. `now` (seconds since the epoch) stamps the events
// of `post NAME TYPE VALUE...`; `file_body` is the content of `post --file`.
// Error (usage): an argument that cannot go into the request, e.g. a VALUE
// that is not JSON text or an invalid client ID.
Result<HttpCall> plan_request(const Invocation& inv, double now, std::string_view file_body = {});

// A wire-protocol-v1 body (SPEC §4): one client, one name, one event per
// value, each `[type, now, "<value JSON text>"]` with the timestamp as
// Python writes it (1400000000.25, 1400000002.0). Error: an invalid client
// or name (SPEC §2), an empty type, or a value that is not one JSON value.
Result<std::string> build_v1_body(std::string_view client, std::string_view name, std::string_view type,
                                  const std::vector<std::string>& values, double now);

// ---------------------------------------------------------------------------
// Replies.

// What `inv` prints for a 200 reply `body`, ending in '\n' unless empty.
// agg, names, clients and types format the JSON they asked for (or print it
// as it is with --json); post prints nothing; every other command prints the
// reply as it is. Names asked for that the reply lacks (agg, types) are
// appended to *missing. Error: the reply is not the JSON expected.
Result<std::string> format_reply(const Invocation& inv, std::string_view body, std::vector<std::string>* missing);

// The stderr line for a non-200 reply, ending in '\n':
//   taba-cli: 400 Bad Request: <first line of the body> (POST http://h:p/delete?name=x)
std::string format_http_error(std::string_view method, std::string_view url, int status, std::string_view reason,
                              std::string_view body);

// Why a connection to `url` failed, from the HTTP client's message with the
// URL taken out: "connection refused", "timed out after 10000 ms",
// "cannot resolve host 'x': Name or service not known".
std::string connect_failure_reason(std::string_view message, std::string_view url);

// One `agg` block for `name` given the JSON render of its aggregate, ending
// in '\n'. Windowed renders (an object with "1m", "10m", "1h" and "1d") print
// one window per line with count and total (and per-window pct for
// PercentileGroup), then CounterGroup's all-time "pct" line; any other render
// prints as `name: <render>` exactly as given.
std::string format_agg_block(std::string_view name, std::string_view render_json);

// Formats a /tabs JSON reply ({"name": render, ...}) as agg blocks for
// `names` in the order given. A name absent from the reply prints
// `name: (no data)` and is appended to *missing. Error: the reply is not a
// JSON object.
Result<std::string> format_agg(const std::vector<std::string>& names, std::string_view tabs_json,
                               std::vector<std::string>* missing);

// A JSON array of strings (/names, /clients) as one string per line.
Result<std::string> format_string_list(std::string_view json_array);

// A /types JSON reply ({"name": "Type", ...}) as "name: Type" lines sorted by
// name. Each of `wanted` (may be empty: no check) absent from the reply
// prints `name: (no data)` and is appended to *missing.
Result<std::string> format_types(std::string_view json_object, const std::vector<std::string>& wanted,
                                 std::vector<std::string>* missing);

}  // namespace taba::cli
