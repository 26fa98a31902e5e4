// Bearer-token checks for the HTTP routes ([auth], docs/api.md §3).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "http/server.h"

namespace taba::routes {

enum class Access { kOpen, kIngest, kQuery, kAdmin };

// Which token a request for `path` with `method` needs. Only /reshard
// depends on the method: GET reads (query), POST moves (admin).
Access access_of(std::string_view method, std::string_view path);

// Compares in time that depends only on the lengths, not on where the
// strings differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// A 401/403 response when `request` lacks the token `access` needs under
// `auth`; nothing when it may proceed. Tokens never appear in replies or logs.
std::optional<http::Response> check_access(const Config::Auth& auth, Access access, const http::Request& request);

}  // namespace taba::routes
