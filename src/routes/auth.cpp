#include "routes/auth.h"

#include <fmt/format.h>

#include "core/ascii.h"

namespace taba::routes {

Access access_of(std::string_view method, std::string_view path) {
  if (path == "/post" || path == "/post_zip" || path == "/post_delta") return Access::kIngest;
  if (path == "/delete" || path == "/gc" || path == "/check" || path == "/flush") return Access::kAdmin;
  if (path == "/reshard") return method == "POST" ? Access::kAdmin : Access::kQuery;
  if (path == "/healthz" || path == "/readyz") return Access::kOpen;
  if (path == "/ui" || path.starts_with("/ui/")) return Access::kOpen;  // the page; its queries need the token
  return Access::kQuery;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = a.size() > b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::optional<http::Response> check_access(const Config::Auth& auth, Access access, const http::Request& request) {
  const std::string* wanted = nullptr;
  const std::string* also = nullptr;  // the admin token opens query routes too
  const char* what = "";
  const char* verb = "";
  switch (access) {
    case Access::kOpen: return std::nullopt;
    case Access::kIngest:
      wanted = &auth.ingest_token;
      what = "ingest";
      verb = "requires";
      break;
    case Access::kQuery:
      wanted = &auth.query_token;
      also = &auth.admin_token;
      what = "queries";
      verb = "require";
      break;
    case Access::kAdmin:
      wanted = &auth.admin_token;
      what = "admin routes";
      verb = "require";
      break;
  }
  if (wanted->empty()) return std::nullopt;
  std::string_view header = request.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  // The scheme is case-insensitive (RFC 7235).
  bool is_bearer = header.size() > kBearer.size() && ascii_iequals(header.substr(0, kBearer.size()), kBearer);
  if (!is_bearer) {
    http::Response r = http::Response::text(
        401, fmt::format("{} {} a bearer token (Authorization: Bearer TOKEN)\n", what, verb));
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"tabad\""});
    return r;
  }
  std::string_view token = header.substr(kBearer.size());
  bool ok = constant_time_equal(token, *wanted);
  if (also && !also->empty()) ok = constant_time_equal(token, *also) || ok;
  if (!ok) return http::Response::text(403, fmt::format("the bearer token is not valid for {}\n", what));
  return std::nullopt;
}

}  // namespace taba::routes
