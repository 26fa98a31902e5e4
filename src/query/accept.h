// Content negotiation: a proper reading of the Accept header (lists,
// parameters, q-values, wildcards).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace taba::query {

// Picks the best of `offered` (media types such as "text/plain", in the
// server's order of preference) for an Accept header value. A missing or
// empty header accepts anything (the first offered type). Returns "" when
// nothing offered is acceptable (the caller answers 406).
std::string negotiate(std::string_view accept, const std::vector<std::string>& offered);

}  // namespace taba::query
