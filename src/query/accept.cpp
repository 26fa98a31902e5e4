#include "query/accept.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/ascii.h"

namespace taba::query {
namespace {

struct Range {
  std::string type;     // "text", "application", "*"
  std::string subtype;  // "plain", "json", "*"
  double q = 1.0;
  size_t order = 0;
};

std::string lower_trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::vector<Range> parse(std::string_view accept) {
  std::vector<Range> out;
  size_t order = 0;
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string_view item = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    size_t semi = item.find(';');
    std::string media = lower_trim(item.substr(0, semi));
    if (media.empty()) continue;
    size_t slash = media.find('/');
    if (slash == std::string::npos) continue;
    Range r;
    r.type = media.substr(0, slash);
    r.subtype = media.substr(slash + 1);
    r.order = order++;
    std::string_view params = semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
    while (!params.empty()) {
      size_t next = params.find(';');
      std::string p = lower_trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (p.size() > 2 && p[0] == 'q' && p[1] == '=') {
        char* end = nullptr;
        double q = std::strtod(p.c_str() + 2, &end);
        r.q = (end && *end == '\0' && q >= 0 && q <= 1) ? q : 0;
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

// Specificity of a range matching the offered type: 3 exact, 2 type/*, 1 */*; 0 no match.
int match(const Range& r, std::string_view type, std::string_view subtype) {
  if (r.type == "*" && r.subtype == "*") return 1;
  if (r.type != type) return 0;
  if (r.subtype == "*") return 2;
  return r.subtype == subtype ? 3 : 0;
}

}  // namespace

std::string negotiate(std::string_view accept, const std::vector<std::string>& offered) {
  if (offered.empty()) return {};
  std::vector<Range> ranges = parse(accept);
  if (ranges.empty()) return offered.front();
  std::string best;
  double best_q = 0;
  size_t best_order = 0;
  for (const std::string& o : offered) {
    size_t slash = o.find('/');
    std::string_view type(o.data(), slash), subtype(o.data() + slash + 1, o.size() - slash - 1);
    // The most specific range that matches decides this type's quality.
    int spec = 0;
    double q = 0;
    size_t order = 0;
    for (const Range& r : ranges) {
      int m = match(r, type, subtype);
      if (m > spec) {
        spec = m;
        q = r.q;
        order = r.order;
      }
    }
    if (spec == 0 || q <= 0) continue;
    // Higher q wins; on a tie the type the client listed first; then ours.
    if (best.empty() || q > best_q || (q == best_q && order < best_order)) {
      best = o;
      best_q = q;
      best_order = order;
    }
  }
  return best;
}

}  // namespace taba::query
