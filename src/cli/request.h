// The HTTP request each taba-cli invocation sends, and the wire-protocol-v1
// body that `post NAME TYPE VALUE...` builds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "core/status.h"
#include "http/message.h"

namespace taba::cli {

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

// A wire-protocol-v1 body (docs/api.md §4.1): one client, one name, one event per
// value, each `[type, now, "<value JSON text>"]` with the timestamp as
// Python writes it (1400000000.25, 1400000002.0). Error: an invalid client
// or name (docs/api.md §4.1), an empty type, or a value that is not one JSON value.
Result<std::string> build_v1_body(std::string_view client, std::string_view name, std::string_view type,
                                  const std::vector<std::string>& values, double now);

}  // namespace taba::cli
