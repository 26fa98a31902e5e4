// taba-cli's command line: the subcommands and options (with their help
// texts), the server URL and the environment, parsed from argv into an
// Invocation that request.h turns into a request (docs/cli.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::cli {

inline constexpr const char* kDefaultServer = "http://127.0.0.1:8300";
inline constexpr int kDefaultTimeoutMs = 10000;
inline constexpr double kDefaultWaitTimeoutS = 3600;  // reshard --wait

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
  // reshard: exactly one of --to with --vbuckets, --status, --cancel.
  std::optional<std::string> to;        // --to SHARD
  std::optional<std::string> vbuckets;  // --vbuckets FIRST-LAST, as given (the server checks it)
  bool placement = false;               // --status
  bool cancel = false;                  // --cancel
  bool wait = false;                    // --wait (with --to or --cancel)
  double wait_timeout_s = kDefaultWaitTimeoutS;  // --timeout SECONDS (with --wait)
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

}  // namespace taba::cli
