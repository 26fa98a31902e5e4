// taba-cli: a command-line client for the query, operations and admin API
// (docs/cli.md).
//
//   taba-cli [--server URL] [--json] [--token TOKEN] [--timeout-ms N] COMMAND [ARGS]
//
// The logic lives in plain functions so that tests can drive it, one part a
// file: parse_command_line() (commands.h) turns argv into an Invocation,
// plan_request() (request.h) turns an Invocation into the HTTP request to
// send, format_reply() (format.h) turns a 200 reply into what is printed;
// reshard_and_wait() (reshard_wait.h) is `reshard --wait`'s polling.
// run() strings them together around the network; main.cpp only calls run().
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace taba::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;  // the server answered with an error, a bad reply or without the data asked for
inline constexpr int kExitUsage = 2;        // bad flags or arguments, an unreadable --file, or no answer from the server
inline constexpr int kExitGaveUp = 3;       // reshard --wait: --timeout passed before the move ended

// Runs taba-cli with argv-style arguments; args[0] is the program name.
// Reads `post --file -` from `in`, writes results to `out` and diagnostics
// to `err`; returns the exit code. Reads TABA_SERVER and TABA_TOKEN from the
// process environment.
int run(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

// run() with std::cin as `in`.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// run() over the process's argv, std::cin, std::cout and std::cerr.
int run(int argc, char** argv);

}  // namespace taba::cli
