#include "protocol/statsd.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/validation.h"

namespace taba::protocol::statsd {
namespace {

constexpr const char* kBadValue = "bad value";

inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

// The common numbers: digits with at most one '.', 1 to 15 digits in all.
// Then the digits as an integer and the power of ten are exact doubles and
// one division rounds correctly: the same double from_chars gives, without
// its cost. False for anything else (the caller falls back to from_chars).
//
// *shortest (when given) tells whether t is also exactly the text
// format_number writes for the value (see number_text_is_shortest), found
// in the same pass: "0" or digits without a leading zero, then optionally
// '.' and digits not ending in '0', and below 1 at most three zeros after
// the '.'.
inline bool parse_simple_decimal(std::string_view t, double* v, bool* shortest = nullptr) {
  // More than 15 digits and a '.': not ours.
  if (t.empty() || t.size() > 16) return false;
  const char* begin = t.data();
  const char* end = begin + t.size();
  const char* dot = nullptr;
  uint64_t mantissa = 0;
  for (const char* p = begin; p < end; ++p) {
    unsigned d = static_cast<unsigned>(static_cast<unsigned char>(*p)) - '0';
    if (d < 10) {
      mantissa = mantissa * 10 + d;
    } else if (*p == '.' && dot == nullptr) {
      dot = p;
    } else {
      return false;
    }
  }
  size_t digits = t.size() - (dot != nullptr ? 1 : 0);
  if (digits == 0 || digits > 15) return false;
  double m = static_cast<double>(mantissa);
  if (dot == nullptr) {
    *v = m;
    // Digits only: shortest unless a leading zero ("0" itself is).
    if (shortest != nullptr) *shortest = t.size() == 1 || begin[0] != '0';
    return true;
  }
  auto fraction = static_cast<size_t>(end - dot - 1);
  auto int_digits = static_cast<size_t>(dot - begin);
  *v = fraction > 0 ? m / kPow10[fraction] : m;
  if (shortest != nullptr) {
    bool ok = int_digits > 0 && (int_digits == 1 || begin[0] != '0') && fraction != 0 && end[-1] != '0';
    if (ok && int_digits == 1 && begin[0] == '0') {
      // 0.000d is written as such; 0.0000d is 1e-05 to fmt.
      size_t zeros = 0;
      while (begin[2 + zeros] == '0') ++zeros;
      ok = zeros <= 3;
    }
    *shortest = ok;
  }
  return true;
}

// from_chars over the whole text, with the fast path above first.
bool parse_double(std::string_view t, double* v, bool* shortest = nullptr) {
  if (parse_simple_decimal(t, v, shortest)) return true;
  if (shortest != nullptr) *shortest = false;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), *v);
  return ec == std::errc() && end == t.data() + t.size();
}

const char* parse_sample_rate(std::string_view t, double* rate) {
  double r = 0;
  // Written so that NaN fails too.
  if (t.empty() || !parse_double(t, &r) || !(r > 0 && r <= 1)) {
    return "bad sample rate";
  }
  *rate = r;
  return nullptr;
}

const char* parse_timestamp(std::string_view t, int64_t* ts) {
  int64_t v = 0;
  // from_chars for integers takes a '-' but never a '+', so a digit first
  // leaves exactly the positive decimal integers.
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || !is_digit(t[0]) || ec != std::errc() || end != t.data() + t.size() || v <= 0) {
    return "bad timestamp";
  }
  *ts = v;
  return nullptr;
}

// The fields after the type, in any order. A repeated field: the last one
// counts. Unknown fields (|c:container among them) are ignored, as the
// DogStatsD agent does, so newer clients still get through.
const char* parse_extra_fields(std::string_view fields, Line* out) {
  while (!fields.empty()) {
    size_t bar = fields.find('|');
    std::string_view f = fields.substr(0, bar);
    fields.remove_prefix(bar == std::string_view::npos ? fields.size() : bar + 1);
    if (f.empty()) continue;
    const char* why = nullptr;
    switch (f[0]) {
      case '@':
        why = parse_sample_rate(f.substr(1), &out->sample_rate);
        break;
      case '#':
        out->tags = f.substr(1);
        break;
      case 'T':
        why = parse_timestamp(f.substr(1), &out->timestamp);
        break;
      default:
        break;
    }
    if (why) return why;
  }
  return nullptr;
}

}  // namespace

namespace detail {

const char* find_either(const char* p, const char* end, char a, char b) {
#if defined(__SSE2__)
  const __m128i va = _mm_set1_epi8(a);
  const __m128i vb = _mm_set1_epi8(b);
  while (end - p >= 16) {
    __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(chunk, va), _mm_cmpeq_epi8(chunk, vb)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && *p != a && *p != b) ++p;
  return p;
}

}  // namespace detail

namespace {

using detail::find_either;

// detail::parse_number, inline for parse_values.
inline const char* number_value(std::string_view text, double* number, bool* has_sign, bool* shortest) {
  *has_sign = false;
  bool negative = false;
  bool plus = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    *has_sign = true;
    negative = text[0] == '-';
    plus = !negative;
    text.remove_prefix(1);
  }
  // from_chars would also take "nan", "inf" and a second '-'.
  if (text.empty() || !(is_digit(text[0]) || text[0] == '.')) return kBadValue;
  double v = 0;
  // The fast path's numbers are always finite.
  if (!parse_simple_decimal(text, &v, shortest)) {
    if (shortest != nullptr) *shortest = false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) return kBadValue;
  }
  *number = negative ? -v : v;
  if (shortest != nullptr && plus) *shortest = false;  // fmt never writes a '+'
  return nullptr;
}

// Checks every value of a numeric line; the first one fills the Line.
const char* parse_values(Line* out) {
  std::string_view rest = out->values;
  bool first = true;
  for (;;) {
    // Values are short: a plain loop beats a call to memchr.
    size_t colon = 0;
    while (colon < rest.size() && rest[colon] != ':') ++colon;
    if (colon == rest.size()) colon = std::string_view::npos;
    std::string_view v = rest.substr(0, colon);
    double number = 0;
    bool has_sign = false;
    bool shortest = false;
    if (const char* why = number_value(v, &number, &has_sign, &shortest)) return why;
    if (first) {
      out->value = v;
      out->number = number;
      out->value_is_shortest = shortest;
      // StatsD reads a signed gauge value as a change, so "-5" lowers the
      // gauge by 5 rather than setting it to -5.
      if (out->kind == Kind::kGauge && has_sign) out->kind = Kind::kGaugeDelta;
      first = false;
    }
    if (colon == std::string_view::npos) return nullptr;
    rest.remove_prefix(colon + 1);
  }
}

// Byte maps of map_name: the three parts differ in which valid identifier
// bytes must still be replaced so that "name;k=v;k" reads back one way.
enum Part { kName, kKey, kValue };

struct ByteMaps {
  std::array<char, 256> map[3];
};

ByteMaps make_maps() {
  ByteMaps m;
  for (int c = 0; c < 256; ++c) {
    unsigned char u = static_cast<unsigned char>(c);
    char kept = is_identifier_char(u) && u != ';' ? static_cast<char>(u) : '_';
    m.map[kName][u] = kept;
    m.map[kValue][u] = kept;
    m.map[kKey][u] = u == '=' ? '_' : kept;
  }
  return m;
}

// is_identifier_char reads a constant-initialized table, so building these
// during dynamic initialization is safe.
const ByteMaps kMaps = make_maps();

// A tag as sent, with the position of its first ':' (npos if none). Its
// mapped form has the same length: every byte maps to one byte, the ':' to '='.
struct Tag {
  std::string_view text;
  size_t colon;

  char mapped(size_t i) const {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (i == colon) return '=';
    return kMaps.map[i < colon ? kKey : kValue][c];
  }
};

// Byte-wise comparison of the mapped forms.
int compare(const Tag& a, const Tag& b) {
  size_t n = a.text.size() < b.text.size() ? a.text.size() : b.text.size();
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = static_cast<unsigned char>(a.mapped(i));
    unsigned char y = static_cast<unsigned char>(b.mapped(i));
    if (x != y) return x < y ? -1 : 1;
  }
  if (a.text.size() == b.text.size()) return 0;
  return a.text.size() < b.text.size() ? -1 : 1;
}

// Every distinct tag adds at least 2 bytes (";x") after a name of at least
// 1, so a result within kMaxIdentifierBytes has fewer tags than this.
constexpr size_t kMaxTags = kMaxIdentifierBytes / 2;

}  // namespace

namespace detail {

const char* parse_number(std::string_view text, double* number, bool* has_sign, bool* shortest) {
  return number_value(text, number, has_sign, shortest);
}

const char* parse_number(std::string_view text, double* number, bool* has_sign) {
  return parse_number(text, number, has_sign, nullptr);
}

}  // namespace detail

const char* parse_line(std::string_view text, Line* out) {
  // One scan for the first ':' or '|', then on for the first '|'.
  const char* end = text.data() + text.size();
  const char* colon = find_either(text.data(), end, ':', '|');
  const char* bar = colon < end && *colon == '|' ? colon : find_either(colon, end, '|', '|');
  return parse_line_at(text, colon, bar, out);
}

const char* parse_line_at(std::string_view text, const char* colon, const char* bar, Line* out) {
  // Field by field: `*out = Line{}` compiles to a slow `rep stos`.
  out->name = {};
  out->value = {};
  out->values = {};
  out->number = 0;
  out->value_is_shortest = false;
  out->sample_rate = 1;
  out->timestamp = 0;
  out->kind = Kind::kCounter;
  out->tags = {};
  if (!text.empty() && text[0] == '_' && (text.starts_with("_e{") || text.starts_with("_sc|"))) {
    return "dogstatsd events/service checks are not supported";
  }
  // The first '|' ends name and values, so a set member may hold ':' but
  // never '|'.
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (bar == end) return "missing '|' type";
  if (colon == bar) return "missing ':' value";
  if (colon == begin) return "empty name";
  out->name = std::string_view(begin, static_cast<size_t>(colon - begin));
  out->values = std::string_view(colon + 1, static_cast<size_t>(bar - colon - 1));

  // The type runs to the next '|' or the end: exactly c, ms, h, d, g or s.
  const char* type = bar + 1;
  size_t type_len = 0;
  if (type < end) {
    switch (*type) {
      case 'c': out->kind = Kind::kCounter; type_len = 1; break;
      case 'h': out->kind = Kind::kHistogram; type_len = 1; break;
      case 'd': out->kind = Kind::kDistribution; type_len = 1; break;
      case 'g': out->kind = Kind::kGauge; type_len = 1; break;
      case 's': out->kind = Kind::kSet; type_len = 1; break;
      case 'm':
        if (type + 1 < end && type[1] == 's') {
          out->kind = Kind::kTimer;
          type_len = 2;
        }
        break;
      default:
        break;
    }
  }
  const char* type_end = type + type_len;
  if (type_len == 0 || (type_end < end && *type_end != '|')) return "unknown type";
  if (type_end < end) {
    if (const char* why = parse_extra_fields(std::string_view(type_end + 1, static_cast<size_t>(end - type_end - 1)), out)) {
      return why;
    }
  }

  if (out->kind == Kind::kSet) {
    if (out->values.empty()) return kBadValue;
    out->value = out->values;
    return nullptr;
  }
  return parse_values(out);
}

bool map_name(const Line& line, std::string* out) {
  out->clear();
  if (line.name.empty() || line.name.size() > kMaxIdentifierBytes) return false;
  if (line.tags.empty()) {
    // The common case, without the tag table (whose construction would cost
    // more than the mapping).
    out->resize(line.name.size());
    char* p = out->data();
    for (char c : line.name) *p++ = kMaps.map[kName][static_cast<unsigned char>(c)];
    return true;
  }

  // Distinct tags, kept sorted by insertion: at most kMaxTags fit, and the
  // length check below fails before the array could overflow.
  std::array<Tag, kMaxTags> tags;
  size_t count = 0;
  size_t total = line.name.size();
  std::string_view rest = line.tags;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    Tag tag{rest.substr(0, comma), 0};
    rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    if (tag.text.empty()) continue;
    tag.colon = tag.text.find(':');
    size_t lo = 0, hi = count;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (compare(tags[mid], tag) < 0) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo < count && compare(tags[lo], tag) == 0) continue;
    total += 1 + tag.text.size();
    if (total > kMaxIdentifierBytes) return false;
    for (size_t i = count; i > lo; --i) tags[i] = tags[i - 1];
    tags[lo] = tag;
    ++count;
  }

  out->resize(total);
  char* p = out->data();
  for (char c : line.name) *p++ = kMaps.map[kName][static_cast<unsigned char>(c)];
  for (size_t t = 0; t < count; ++t) {
    *p++ = ';';
    for (size_t i = 0; i < tags[t].text.size(); ++i) *p++ = tags[t].mapped(i);
  }
  return true;
}

char* format_number(double v, char* out) {
  // Integers below 1e15 are exact and fmt writes their digits: "6", "-12".
  // -0 is left to fmt ("-0").
  if (v > -1e15 && v < 1e15 && v == std::trunc(v) && !(v == 0 && std::signbit(v))) {
    char buf[24];
    char* p = buf + sizeof buf;
    bool negative = v < 0;
    auto n = static_cast<uint64_t>(negative ? -v : v);
    do {
      *--p = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n != 0);
    if (negative) *--p = '-';
    size_t len = static_cast<size_t>(buf + sizeof buf - p);
    std::memcpy(out, p, len);
    return out + len;
  }
  // The shortest round trip of a double is at most 24 characters
  // ("-2.2250738585072014e-308").
  return fmt::format_to(out, "{}", v);
}

void append_number(double v, std::string* out) {
  char buf[kMaxNumberText];
  out->append(buf, static_cast<size_t>(format_number(v, buf) - buf));
}

bool number_text_is_shortest(std::string_view text) {
  const char* p = text.data();
  const char* end = p + text.size();
  if (p < end && *p == '-') ++p;
  if (p == end || !is_digit(*p)) return false;
  int digits = 0;
  if (*p == '0') {
    ++p;
    digits = 1;
    if (p < end && is_digit(*p)) return false;  // a leading zero
  } else {
    while (p < end && is_digit(*p)) {
      ++p;
      ++digits;
    }
  }
  if (p == end) return digits <= 15;
  if (*p != '.') return false;
  ++p;
  const char* fraction = p;
  while (p < end && is_digit(*p)) ++p;
  if (p != end || p == fraction || p[-1] == '0') return false;
  digits += static_cast<int>(p - fraction);
  if (digits > 15) return false;
  if (text[text[0] == '-' ? 1 : 0] == '0') {
    // 0.000d... is written 0.000d...; one more zero and fmt uses an exponent.
    int zeros = 0;
    for (const char* z = fraction; *z == '0'; ++z) ++zeros;
    if (zeros > 3) return false;
  }
  return true;
}

std::string_view taba_type(Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return "CounterGroup";
    case Kind::kTimer:
    case Kind::kHistogram:
    case Kind::kDistribution:
      return "PercentileGroup";
    case Kind::kGauge:
    case Kind::kGaugeDelta:
      return "Gauge";
    case Kind::kSet:
      return "Set";
  }
  return "CounterGroup";
}

}  // namespace taba::protocol::statsd
