// Query parameters (docs/api.md §5.1): from the query string, or from a JSON object
// body when the query string is empty. Unknown parameters are an error.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::query {

struct Params {
  std::vector<std::string> names;    // exact names, or one regex when re
  std::vector<std::string> clients;  // exact client IDs, or one regex when re
  bool re = false;
  bool has_name = false;
  bool has_client = false;
  std::vector<std::pair<std::string, std::string>> extra;  // other allowed keys, raw
};

// Parses parameters; only keys in `allowed` are accepted ("name", "client",
// "re" and route-specific ones, which land in `extra`). Errors are one-line
// reasons, e.g. "unknown parameter(s): foo, bar".
Result<Params> parse_params(std::string_view query_string, std::string_view body,
                            std::initializer_list<std::string_view> allowed);

}  // namespace taba::query
