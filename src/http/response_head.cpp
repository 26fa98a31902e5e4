// The HTTP server's response heads: reason phrases and the status line and
// headers before a body (response_head.h).
#include "http/response_head.h"

#include <fmt/format.h>

#include <iterator>

#include "core/ascii.h"
#include "core/log.h"

namespace taba::http::server_detail {
namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      break;
  }
  if (status >= 200 && status < 300) return "OK";
  if (status >= 400 && status < 500) return "Client Error";
  if (status >= 500 && status < 600) return "Server Error";
  return "Unknown";
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

void write_response_head(const Response& r, bool keep_alive, std::string* out_head) {
  out_head->clear();
  auto out = std::back_inserter(*out_head);
  fmt::format_to(out, "HTTP/1.1 {} {}\r\n", r.status, reason_phrase(r.status));
  if (!bodyless_status(r.status)) {
    if (!r.content_type.empty() && !has_crlf(r.content_type)) {
      fmt::format_to(out, "Content-Type: {}\r\n", r.content_type);
    }
    fmt::format_to(out, "Content-Length: {}\r\n", r.body.size());
  }
  out_head->append(keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
  for (const Header& h : r.headers) {
    if (h.name.empty() || has_crlf(h.name) || has_crlf(h.value) || ascii_iequals(h.name, "content-length") ||
        ascii_iequals(h.name, "connection") || ascii_iequals(h.name, "transfer-encoding") ||
        ascii_iequals(h.name, "content-type")) {
      log::debug("http: dropped response header '{}'", h.name);
      continue;
    }
    fmt::format_to(out, "{}: {}\r\n", h.name, h.value);
  }
  out_head->append("\r\n");
}

}  // namespace taba::http::server_detail
