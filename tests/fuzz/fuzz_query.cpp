// libFuzzer: query strings / JSON parameter bodies, RE2 patterns, and the
// Accept header. Input: "<query or body>\n<accept>".
#include <cstdint>
#include <string>

#include "query/accept.h"
#include "query/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view first = in.substr(0, nl);
  std::string_view accept = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  bool as_body = !first.empty() && first[0] == '{';
  auto p = taba::query::parse_params(as_body ? std::string_view() : first, as_body ? first : std::string_view(),
                                     {"name", "client", "re"});
  if (p.ok()) {
    auto m = taba::query::Matcher::make(p->names, p->re, p->has_name);
    if (m.ok()) m->matches("some.name");
  }
  taba::query::negotiate(accept, {"text/plain", "application/json", "application/json-detailed"});
  return 0;
}
