// The HTTP message values of message.h: header lookup and the usual replies.
#include "http/message.h"

#include <utility>

namespace taba::http {

std::string_view Request::header(std::string_view lower_name) const {
  for (const Header& h : headers) {
    if (h.name == lower_name) return h.value;
  }
  return {};
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

}  // namespace taba::http
