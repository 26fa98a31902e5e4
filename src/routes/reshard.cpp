// GET and POST /reshard: parameters, the store's answer, the reply
// (reshard.h).
#include "routes/reshard.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>

#include "query/params.h"
#include "routes/admin_reply.h"
#include "routes/placement_format.h"

namespace taba::routes {
namespace {

constexpr std::string_view kMoveInProgress = "a move is in progress";

std::optional<uint32_t> parse_u32(std::string_view text) {
  uint32_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return v;
}

// The reply's form: format=json|text when given, else from Accept. ""
// means *refusal holds the answer (400 or 406).
std::string reply_format(const http::Request& req, const std::optional<std::string>& format,
                         http::Response* refusal) {
  if (!format) return pick_reply_format(req, refusal);
  if (*format == "json") return std::string(kApplicationJson);
  if (*format == "text") return std::string(kTextPlain);
  *refusal = http::Response::text(400, fmt::format("format must be json or text, not \"{}\"\n", *format));
  return "";
}

http::Response render(int code, const std::string& format, const store::PlacementStatus& placement) {
  if (format == kApplicationJson) return http::Response::json(code, placement_json(placement));
  return http::Response::text(code, placement_text(placement));
}

}  // namespace

Result<store::VbucketRange> parse_vbucket_range(std::string_view text) {
  const std::string why = fmt::format(
      "vbuckets must be FIRST-LAST (two unsigned integers, FIRST <= LAST) or one vbucket N, not \"{}\"", text);
  size_t dash = text.find('-');
  std::optional<uint32_t> first = parse_u32(text.substr(0, dash));
  std::optional<uint32_t> last = dash == std::string_view::npos ? first : parse_u32(text.substr(dash + 1));
  if (!first || !last) return Status::Invalid(why);
  if (*first > *last) {
    return Status::Invalid(
        fmt::format("vbuckets \"{}\": FIRST ({}) is greater than LAST ({})", text, *first, *last));
  }
  return store::VbucketRange{*first, *last};
}

Result<store::ReshardRequest> parse_reshard_request(const std::vector<std::pair<std::string, std::string>>& params) {
  std::optional<std::string> to, vbuckets, cancel;
  for (const auto& [k, v] : params) {
    if (k == "to") to = v;
    if (k == "vbuckets") vbuckets = v;
    if (k == "cancel") cancel = v;
  }
  store::ReshardRequest request;
  if (cancel) {
    if (*cancel != "1" && *cancel != "true") {
      return Status::Invalid(fmt::format("cancel must be 1 (or true), not \"{}\"", *cancel));
    }
    if (to || vbuckets) return Status::Invalid("cancel=1 takes no to= or vbuckets= (it cancels the move in progress)");
    request.cancel = true;
    return request;
  }
  if (!to || to->empty()) {
    return Status::Invalid("POST /reshard needs to=SHARD (the target shard) with vbuckets=FIRST-LAST, or cancel=1");
  }
  if (!vbuckets) return Status::Invalid("POST /reshard needs vbuckets=FIRST-LAST (the vbuckets to move) with to=SHARD");
  Result<store::VbucketRange> range = parse_vbucket_range(*vbuckets);
  TABA_RETURN_IF_ERROR(range);
  request.to = std::move(*to);
  request.range = *range;
  return request;
}

http::Response reshard_error(const Status& s) {
  if (s.code() == Status::Code::kNotFound) return http::Response::text(404, s.message() + "\n");
  // The store answers Unavailable("a move is in progress ...") when another
  // move's driver is alive: a conflict with the cluster's state, not a
  // failure to retry in a second.
  if (s.code() == Status::Code::kUnavailable && std::string_view(s.message()).starts_with(kMoveInProgress)) {
    return http::Response::text(409, s.message() + "\n");
  }
  return store_error(s);
}

void ReshardRoutes::handle(const http::Request& req, std::string_view body, std::function<void(http::Response)> done) {
  const bool post = req.method == "POST";
  if (!post && req.method != "GET") {
    http::Response r = http::Response::text(
        405, "/reshard accepts GET (the placement) and POST (start or cancel a move)\n");
    r.headers.push_back({"Allow", "GET, POST"});
    return done(std::move(r));
  }
  auto params = post ? query::parse_params(req.query, body, {"to", "vbuckets", "cancel", "format"})
                     : query::parse_params(req.query, "", {"format"});
  if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
  std::optional<std::string> format_param;
  std::vector<std::pair<std::string, std::string>> rest;
  for (auto& [k, v] : params->extra) {
    if (k == "format") {
      format_param = v;
    } else {
      rest.emplace_back(k, v);
    }
  }
  http::Response refusal;
  std::string format = reply_format(req, format_param, &refusal);
  if (format.empty()) return done(std::move(refusal));

  if (!post) {
    return store_->placement([format, done](const Status& s, const store::PlacementStatus& placement) {
      if (!s.ok()) return done(reshard_error(s));
      done(render(200, format, placement));
    });
  }
  Result<store::ReshardRequest> request = parse_reshard_request(rest);
  if (!request.ok()) return done(http::Response::text(400, request.status().message() + "\n"));
  store_->reshard(*request, [format, done](const Status& s, const store::PlacementStatus& placement) {
    if (!s.ok()) return done(reshard_error(s));
    done(render(202, format, placement));
  });
}

}  // namespace taba::routes
