// Reply forms and store errors of the operations and admin routes
// (admin_reply.h).
#include "routes/admin_reply.h"

#include <fmt/format.h>

#include <vector>

#include "protocol/payload.h"
#include "query/accept.h"

namespace taba::routes {

std::string pick_reply_format(const http::Request& req, http::Response* not_acceptable) {
  std::vector<std::string> offered{std::string(kTextPlain), std::string(kApplicationJson)};
  std::string f = query::negotiate(req.header("accept"), offered);
  if (f.empty()) {
    *not_acceptable = http::Response::text(
        406, fmt::format("none of the types in Accept: {} is available; offered: text/plain, application/json\n",
                         req.header("accept")));
  }
  return f;
}

std::string json_string(std::string_view text) {
  std::string out;
  protocol::append_json_string(&out, text);
  return out;
}

http::Response store_error(const Status& s) {
  int code = s.code() == Status::Code::kInvalid ? 400 : 503;
  http::Response r = http::Response::text(code, s.message() + "\n");
  if (code == 503) r.headers.push_back({"Retry-After", "1"});
  return r;
}

}  // namespace taba::routes
