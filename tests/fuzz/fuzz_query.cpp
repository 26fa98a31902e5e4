// libFuzzer: query strings / JSON parameter bodies with the allowed keys of
// every route, RE2 patterns (name and client, re=1) matched against
// untrusted text, the Accept header with each route's offered types, and
// the URL helpers under them. Input: "<query or body>\n<accept>"; the
// accept line doubles as the identifier the matchers are tried on.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/matcher.h"
#include "http/url.h"
#include "query/accept.h"
#include "query/params.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void parse_for_route(std::string_view query, std::string_view body, std::string_view subject,
                     std::initializer_list<std::string_view> allowed) {
  auto p = taba::query::parse_params(query, body, allowed);
  if (!p.ok()) return;
  // With re=1 a list is one pattern.
  if (p->re) check(p->names.size() <= 1 && p->clients.size() <= 1);
  for (const auto& [key, value] : p->extra) {
    (void)value;
    check(key != "name" && key != "client" && key != "re");
  }
  auto names = taba::Matcher::make(p->names, p->re, p->has_name);
  if (names.ok()) (void)names->matches(subject);
  auto clients = taba::Matcher::make(p->clients, p->re, p->has_client);
  if (clients.ok()) (void)clients->matches(subject);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view first = in.substr(0, nl);
  std::string_view accept = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  bool as_body = !first.empty() && first[0] == '{';
  std::string_view query = as_body ? std::string_view() : first;
  std::string_view body = as_body ? first : std::string_view();

  // The allowed keys of each route that reads parameters: the query routes
  // (/tabs and the rest, /clients, /types), /delete, /check, /gc and
  // /flush, the ops routes (no body), /metrics (no body).
  parse_for_route(query, body, accept, {"name", "client", "re"});
  parse_for_route(query, body, accept, {"client", "re"});
  parse_for_route(query, body, accept, {"name", "re"});
  parse_for_route(query, body, accept, {"dry"});
  parse_for_route(query, body, accept, {});
  parse_for_route(query, "", accept, {});
  parse_for_route(query, "", accept, {"tabs", "name", "re"});

  std::string decoded;
  if (taba::http::percent_decode(first, &decoded)) {
    // Decoding what percent_encode made gives the text back.
    std::string again;
    check(taba::http::percent_decode(taba::http::percent_encode(decoded), &again) && again == decoded);
  }
  (void)taba::http::parse_url(first);

  taba::query::negotiate(accept, {"text/plain", "application/json"});
  std::string picked = taba::query::negotiate(accept, {"text/plain", "application/json", "application/json-detailed"});
  check(picked.empty() || picked == "text/plain" || picked == "application/json" ||
        picked == "application/json-detailed");
  return 0;
}
