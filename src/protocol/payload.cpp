#include "protocol/payload.h"

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <cmath>

#include "core/json_escape.h"

namespace taba::protocol {
namespace {

constexpr int kMaxDepth = 64;

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

inline void skip_ws(std::string_view t, size_t* p) {
  while (*p < t.size() && is_ws(t[*p])) ++*p;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Scans a string literal starting at the opening quote; *p ends after the
// closing quote.
std::string scan_string(std::string_view t, size_t* p) {
  size_t i = *p + 1;
  while (i < t.size()) {
    unsigned char c = static_cast<unsigned char>(t[i]);
    if (c == '"') {
      *p = i + 1;
      return {};
    }
    if (c < 0x20) return fmt::format("control byte 0x{:02x} inside a string", c);
    if (c == '\\') {
      if (i + 1 >= t.size()) break;
      char e = t[i + 1];
      if (e == 'u') {
        if (i + 5 >= t.size()) break;
        for (int k = 2; k < 6; ++k) {
          if (hex_value(t[i + k]) < 0) return "bad \\u escape in a string";
        }
        i += 6;
        continue;
      }
      if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
        return fmt::format("bad escape '\\{}' in a string", e);
      }
      i += 2;
      continue;
    }
    ++i;
  }
  return "unterminated string";
}

// Scans a number token per the JSON grammar; *p ends after it.
bool scan_number(std::string_view t, size_t* p) {
  size_t i = *p;
  if (i < t.size() && t[i] == '-') ++i;
  if (i >= t.size()) return false;
  if (t[i] == '0') {
    ++i;
  } else if (t[i] >= '1' && t[i] <= '9') {
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  } else {
    return false;
  }
  if (i < t.size() && t[i] == '.') {
    ++i;
    size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    size_t start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    if (i == start) return false;
  }
  *p = i;
  return true;
}

std::string scan(std::string_view t, size_t* p, taba_value* v, int depth);

std::string scan_container(std::string_view t, size_t* p, int depth, char close, bool object) {
  if (depth > kMaxDepth) return "JSON nested too deeply";
  ++*p;  // opening bracket
  skip_ws(t, p);
  if (*p < t.size() && t[*p] == close) {
    ++*p;
    return {};
  }
  while (true) {
    skip_ws(t, p);
    if (object) {
      if (*p >= t.size() || t[*p] != '"') return "expected a string key in an object";
      std::string err = scan_string(t, p);
      if (!err.empty()) return err;
      skip_ws(t, p);
      if (*p >= t.size() || t[*p] != ':') return "expected ':' in an object";
      ++*p;
    }
    taba_value item;
    std::string err = scan(t, p, &item, depth + 1);
    if (!err.empty()) return err;
    skip_ws(t, p);
    if (*p >= t.size()) return object ? "unterminated object" : "unterminated array";
    if (t[*p] == ',') {
      ++*p;
      continue;
    }
    if (t[*p] == close) {
      ++*p;
      return {};
    }
    return fmt::format("expected ',' or '{}' but found '{}'", close, t[*p]);
  }
}

std::string scan(std::string_view t, size_t* p, taba_value* v, int depth) {
  skip_ws(t, p);
  *v = taba_value{};
  if (*p >= t.size()) return "expected a JSON value";
  size_t start = *p;
  char c = t[*p];
  std::string err;
  switch (c) {
    case '"':
      v->kind = TABA_VALUE_STRING;
      err = scan_string(t, p);
      break;
    case '[':
      v->kind = TABA_VALUE_ARRAY;
      err = scan_container(t, p, depth, ']', false);
      break;
    case '{':
      v->kind = TABA_VALUE_OBJECT;
      err = scan_container(t, p, depth, '}', true);
      break;
    case 't':
    case 'f':
    case 'n': {
      std::string_view word = c == 't' ? "true" : c == 'f' ? "false" : "null";
      if (t.substr(*p, word.size()) != word) return fmt::format("unexpected '{}'", c);
      *p += word.size();
      v->kind = c == 'n' ? TABA_VALUE_NULL : TABA_VALUE_BOOL;
      v->number = c == 't' ? 1.0 : 0.0;
      break;
    }
    default: {
      if (!scan_number(t, p)) {
        if (t.substr(*p, 3) == "NaN" || t.substr(*p, 8) == "Infinity" || t.substr(*p, 9) == "-Infinity") {
          return "NaN and Infinity are not valid JSON numbers";
        }
        return fmt::format("unexpected '{}'", c);
      }
      v->kind = TABA_VALUE_NUMBER;
      if (!parse_json_number(t.substr(start, *p - start), &v->number)) return "number out of range";
      break;
    }
  }
  if (!err.empty()) return err;
  v->json = t.data() + start;
  v->json_len = *p - start;
  return {};
}

void append_utf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

bool parse_json_number(std::string_view token, double* out) {
  double d = 0;
  auto res = std::from_chars(token.data(), token.data() + token.size(), d);
  if (res.ec != std::errc() || res.ptr != token.data() + token.size()) return false;
  if (!std::isfinite(d)) return false;
  *out = d;
  return true;
}

namespace {

// Eight ASCII digits at p as their value, or false when any byte is not a
// digit. One load and a few multiplications instead of eight loop rounds:
// each step adds neighbouring groups (digits, pairs, quads) weighted by
// their place value.
inline bool eight_digits(const char* p, uint64_t* out) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // little-endian: p[0] is the low byte
  const uint64_t d = v - 0x3030303030303030ull;
  // A byte is a digit iff it is >= '0' (no borrow made it wrap: bit 7 and
  // the high nibble clear after subtracting) and <= '9' (adding 6 keeps it
  // below 0x10).
  if (((v & 0xF0F0F0F0F0F0F0F0ull) != 0x3030303030303030ull) ||
      (((d + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) != 0)) {
    return false;
  }
  const uint64_t pairs = (d * 10 + (d >> 8)) & 0x00FF00FF00FF00FFull;            // 2-digit groups
  const uint64_t quads = (pairs * 100 + (pairs >> 16)) & 0x0000FFFF0000FFFFull;  // 4-digit groups
  *out = (quads * 10000 + (quads >> 32)) & 0xFFFFFFFFull;
  return true;
}

}  // namespace

size_t parse_simple_decimal(const char* p, const char* end, double* out) {
  static constexpr double kPow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                        1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  const char* const start = p;
  bool negative = false;
  if (p < end && *p == '-') {
    negative = true;
    ++p;
  }
  const char* digits_start = p;
  uint64_t mantissa = 0;
  int digits = 0;
  uint64_t eight;
  if (end - p >= 8 && eight_digits(p, &eight)) {
    mantissa = eight;
    digits = 8;
    p += 8;
  }
  while (p < end && static_cast<unsigned>(*p - '0') < 10) {
    mantissa = mantissa * 10 + static_cast<unsigned>(*p - '0');
    ++digits;
    ++p;
  }
  const int int_digits = digits;
  if (int_digits == 0 || (int_digits > 1 && *digits_start == '0')) return 0;
  int frac_digits = 0;
  if (p < end && *p == '.') {
    ++p;
    while (p < end && static_cast<unsigned>(*p - '0') < 10) {
      mantissa = mantissa * 10 + static_cast<unsigned>(*p - '0');
      ++frac_digits;
      ++p;
    }
    if (frac_digits == 0) return 0;
  }
  if (int_digits + frac_digits > 15) return 0;
  if (p < end && (*p == 'e' || *p == 'E' || *p == '.')) return 0;
  double v = static_cast<double>(mantissa);
  if (frac_digits > 0) v /= kPow10[frac_digits];
  *out = negative ? -v : v;
  return static_cast<size_t>(p - start);
}

size_t parse_number_prefix(const char* p, const char* end, double* out) {
  if (size_t n = parse_simple_decimal(p, end, out)) return n;
  std::string_view t(p, static_cast<size_t>(end - p));
  size_t pos = 0;
  if (!scan_number(t, &pos) || !parse_json_number(t.substr(0, pos), out)) return 0;
  return pos;
}

std::string scan_value(std::string_view text, size_t* pos, taba_value* value) {
  return scan(text, pos, value, 0);
}

std::string parse_payload(std::string_view json, taba_event* event) {
  size_t p = 0;
  // Fast path for the common case: a plain number.
  taba_value& v = event->payload;
  std::string err = scan(json, &p, &v, 0);
  if (!err.empty()) return err;
  skip_ws(json, &p);
  if (p != json.size()) return "trailing characters after the JSON value";
  event->elem0 = taba_value{};
  event->elem1 = taba_value{};
  if (v.kind == TABA_VALUE_ARRAY) {
    std::string_view inner(v.json, v.json_len);
    size_t q = 1;
    skip_ws(inner, &q);
    if (q < inner.size() && inner[q] != ']') {
      err = scan(inner, &q, &event->elem0, 1);
      if (!err.empty()) return err;
      skip_ws(inner, &q);
      if (q < inner.size() && inner[q] == ',') {
        ++q;
        err = scan(inner, &q, &event->elem1, 1);
        if (!err.empty()) return err;
      }
    }
  }
  return {};
}

std::string unescape_json_string(std::string_view body, std::string* out) {
  out->clear();
  out->reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\') {
      if (static_cast<unsigned char>(c) < 0x20) return "control byte inside a string";
      out->push_back(c);
      continue;
    }
    if (++i >= body.size()) return "unterminated escape in a string";
    switch (body[i]) {
      case '"': out->push_back('"'); break;
      case '\\': out->push_back('\\'); break;
      case '/': out->push_back('/'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case 'n': out->push_back('\n'); break;
      case 'r': out->push_back('\r'); break;
      case 't': out->push_back('\t'); break;
      case 'u': {
        auto read4 = [&](size_t at, uint32_t* cp) {
          if (at + 4 > body.size()) return false;
          uint32_t v = 0;
          for (size_t k = 0; k < 4; ++k) {
            int h = hex_value(body[at + k]);
            if (h < 0) return false;
            v = v * 16 + static_cast<uint32_t>(h);
          }
          *cp = v;
          return true;
        };
        uint32_t cp;
        if (!read4(i + 1, &cp)) return "bad \\u escape in a string";
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (i + 2 < body.size() && body[i + 1] == '\\' && body[i + 2] == 'u' && read4(i + 3, &lo) &&
              lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          } else {
            return "unpaired surrogate in a \\u escape";
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return "unpaired surrogate in a \\u escape";
        }
        append_utf8(out, cp);
        break;
      }
      default: return fmt::format("bad escape '\\{}' in a string", body[i]);
    }
  }
  return {};
}

void append_json_string(std::string* out, std::string_view s) {
  out->push_back('"');
  append_json_escaped(out, s, JsonControls::kNewlines);
  out->push_back('"');
}

}  // namespace taba::protocol
