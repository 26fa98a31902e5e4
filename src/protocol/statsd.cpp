#include "protocol/statsd.h"

#include <array>
#include <charconv>
#include <cmath>

#include "core/validation.h"

namespace taba::protocol::statsd {
namespace {

constexpr const char* kBadValue = "bad value";

inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool parse_type(std::string_view t, Kind* kind) {
  if (t == "c") {
    *kind = Kind::kCounter;
  } else if (t == "ms") {
    *kind = Kind::kTimer;
  } else if (t == "h") {
    *kind = Kind::kHistogram;
  } else if (t == "d") {
    *kind = Kind::kDistribution;
  } else if (t == "g") {
    *kind = Kind::kGauge;
  } else if (t == "s") {
    *kind = Kind::kSet;
  } else {
    return false;
  }
  return true;
}

const char* parse_sample_rate(std::string_view t, double* rate) {
  double r = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), r);
  // Written so that NaN fails too.
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !(r > 0 && r <= 1)) {
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

// Checks every value of a numeric line; the first one fills the Line.
const char* parse_values(Line* out) {
  std::string_view rest = out->values;
  bool first = true;
  for (;;) {
    size_t colon = rest.find(':');
    std::string_view v = rest.substr(0, colon);
    double number = 0;
    bool has_sign = false;
    if (const char* why = detail::parse_number(v, &number, &has_sign)) return why;
    if (first) {
      out->value = v;
      out->number = number;
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

const char* parse_number(std::string_view text, double* number, bool* has_sign) {
  *has_sign = false;
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    *has_sign = true;
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  // from_chars would also take "nan", "inf" and a second '-'.
  if (text.empty() || !(is_digit(text[0]) || text[0] == '.')) return kBadValue;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) return kBadValue;
  *number = negative ? -v : v;
  return nullptr;
}

}  // namespace detail

const char* parse_line(std::string_view text, Line* out) {
  *out = Line{};
  if (text.starts_with("_e{") || text.starts_with("_sc|")) {
    return "dogstatsd events/service checks are not supported";
  }
  // The first '|' ends name and values, so a set member may hold ':' but
  // never '|'.
  size_t bar = text.find('|');
  if (bar == std::string_view::npos) return "missing '|' type";
  std::string_view head = text.substr(0, bar);
  size_t colon = head.find(':');
  if (colon == std::string_view::npos) return "missing ':' value";
  out->name = head.substr(0, colon);
  if (out->name.empty()) return "empty name";
  out->values = head.substr(colon + 1);

  std::string_view fields = text.substr(bar + 1);
  size_t type_end = fields.find('|');
  if (!parse_type(fields.substr(0, type_end), &out->kind)) return "unknown type";
  if (type_end != std::string_view::npos) {
    if (const char* why = parse_extra_fields(fields.substr(type_end + 1), out)) return why;
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
