// What the operations and admin routes (admin.h, reshard.h) share in their
// replies: the form a reply takes, text/plain (the default) or
// application/json, negotiated from Accept; JSON string literals; and the
// answer to an error the store reports (docs/api.md §7, §8).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "http/server.h"

namespace taba::routes {

inline constexpr std::string_view kTextPlain = "text/plain";
inline constexpr std::string_view kApplicationJson = "application/json";

// kTextPlain or kApplicationJson from the request's Accept; "" means 406,
// with *not_acceptable filled in.
std::string pick_reply_format(const http::Request& request, http::Response* not_acceptable);

// `text` as a JSON string literal, quotes included, in the form of replies
// (protocol::append_json_string).
std::string json_string(std::string_view text);

// A store's error: Invalid is 400, anything else 503 with Retry-After: 1;
// the body is the store's message.
http::Response store_error(const Status& status);

}  // namespace taba::routes
