// What taba-cli prints: a 200 reply formatted per command (agg blocks,
// one identifier per line, "name: Type" lines), and the diagnostics for a
// non-200 reply or a failed connection.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "core/status.h"

namespace taba::cli {

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
