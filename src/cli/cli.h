// taba-cli: a command-line client for the query API (SPEC §9).
//
//   taba-cli [--server URL] [--json] [--timeout-ms N] COMMAND [ARGS]
//
// The logic lives here as plain functions so that tests can drive it;
// main.cpp only calls run().
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;  // connection failure, non-200, bad reply, missing data
inline constexpr int kExitUsage = 2;        // bad flags or arguments

inline constexpr const char* kDefaultServer = "http://127.0.0.1:8300";

// Runs taba-cli with argv-style arguments; args[0] is the program name.
// Writes results to `out` and diagnostics to `err`; returns the exit code.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// run() over the process's argv, std::cout and std::cerr.
int run(int argc, char** argv);

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
