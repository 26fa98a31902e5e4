// The head of the HTTP server's responses: the status line and headers it
// writes before a body, and the interim "100 Continue". Internal to the
// server (connection.cpp, connection_parser.cpp).
#pragma once

#include <string>
#include <string_view>

#include "http/message.h"

namespace taba::http::server_detail {

// What the server writes for "Expect: 100-continue" before reading the body.
inline constexpr char kContinueLine[] = "HTTP/1.1 100 Continue\r\n\r\n";

// A response with this status has no body (1xx, 204, 304): no Content-Type
// or Content-Length either.
inline bool bodyless_status(int status) {
  return status < 200 || status == 204 || status == 304;
}

// Replaces *out with the status line and headers of `r`, up to and with the
// blank line: Content-Type and Content-Length (unless the status is
// bodyless), "Connection: keep-alive" or "Connection: close", then r.headers
// except the ones the server writes itself and any with CR or LF in them
// (dropped, logged at debug). *out keeps its capacity from reply to reply.
void write_response_head(const Response& r, bool keep_alive, std::string* out);

}  // namespace taba::http::server_detail
