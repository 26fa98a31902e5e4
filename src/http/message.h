// HTTP messages as plain values: a header, a request as the server parsed it,
// a response as a handler gives it. Nothing here touches the network, so the
// blocking client (and with it taba-cli and the C++ client library) includes
// this without libuv; the server's connection machinery is in server.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taba::http {

struct Header {
  std::string name;  // lower-cased on receipt
  std::string value;
};

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // the raw request-target, e.g. "/tabs?name=a"
  std::string path;    // target up to '?', not percent-decoded
  std::string query;   // target after '?', not percent-decoded ("" if none)
  std::vector<Header> headers;
  std::optional<uint64_t> content_length;  // when the request had one
  bool chunked = false;                    // Transfer-Encoding: chunked
  int http_minor = 1;                      // 0 for HTTP/1.0
  std::string peer;                        // "ip:port" of the client

  // Value of the first header with this (lower-case) name, or "" if absent.
  std::string_view header(std::string_view lower_name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<Header> headers;  // extra headers, e.g. {"Retry-After", "1"}

  static Response text(int status, std::string body);
  static Response json(int status, std::string body);
};

}  // namespace taba::http
