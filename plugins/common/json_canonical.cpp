#include "common/json_canonical.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/text.h"

namespace taba::builtin {
namespace {

constexpr uint32_t kReplacement = 0xFFFD;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The length (2 to 4) of the well-formed UTF-8 sequence at p, whose first
// byte is >= 0x80, or 0 when the bytes there are not one: a stray
// continuation byte, an overlong form, an encoded surrogate, a code point
// beyond U+10FFFF, or a sequence cut short by end.
size_t utf8_sequence(const char* p, const char* end) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(p[i]); };
  const auto avail = static_cast<size_t>(end - p);
  const unsigned char lead = b(0);
  size_t n;
  unsigned char lo = 0x80;  // the range of the second byte
  unsigned char hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;  // overlong below U+0800
    if (lead == 0xED) hi = 0x9F;  // U+D800..U+DFFF
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;  // overlong below U+10000
    if (lead == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (avail < n || b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  }
  return n;
}

void append_utf8(uint32_t cp, std::string* out) {
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

// One decoded character into a canonical string body: ASCII through the
// escaping every render uses, the rest as UTF-8.
void append_code_point(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    const char c = static_cast<char>(cp);
    append_json_escaped(std::string_view(&c, 1), out);
  } else {
    append_utf8(cp, out);
  }
}

// Whether text (starting with '"') is a whole string literal of valid
// UTF-8 with no escape: canonical as it is.
bool plain_string(std::string_view text) {
  if (text.size() < 2 || text.back() != '"') return false;
  const char* p = text.data() + 1;
  const char* const end = text.data() + text.size() - 1;
  while (p < end) {
    const auto c = static_cast<unsigned char>(*p);
    if (c < 0x80) {
      if (c < 0x20 || c == '"' || c == '\\') return false;
      ++p;
      continue;
    }
    const size_t n = utf8_sequence(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

// Whether text is an integer of 1 to 15 digits written the shortest way
// (no leading zero, not -0): its double prints back as the same digits.
bool short_integer(std::string_view text) {
  size_t i = text.front() == '-' ? 1 : 0;
  const size_t digits = text.size() - i;
  if (digits == 0 || digits > 15) return false;
  if (text[i] == '0') return digits == 1 && i == 0;
  for (; i < text.size(); ++i) {
    if (!is_digit(text[i])) return false;
  }
  return true;
}

// The cheap check for the values most events carry: whether text (not
// empty) is canonical as it is.
bool canonical_as_is(std::string_view text) {
  switch (text.front()) {
    case '"':
      return plain_string(text);
    case 't':
    case 'f':
    case 'n':
      return text == "true" || text == "false" || text == "null";
    default:
      return (text.front() == '-' || is_digit(text.front())) && short_integer(text);
  }
}

// Writes the canonical form of the value at [p, end) into *out, by
// recursive descent (at most kMaxJsonDepth levels).
class Writer {
 public:
  Writer(std::string_view text, std::string* out)
      : p_(text.data()), end_(text.data() + text.size()), out_(out) {}

  // One value filling the whole text.
  bool whole_value() { return value(0) && p_ == end_; }

 private:
  void skip_space() {
    while (p_ != end_ && is_space(*p_)) ++p_;
  }

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
      return false;
    out_->append(word);
    p_ += word.size();
    return true;
  }

  bool digits() {
    if (p_ == end_ || !is_digit(*p_)) return false;
    while (p_ != end_ && is_digit(*p_)) ++p_;
    return true;
  }

  // The JSON number grammar, then the double's shortest text.
  bool number() {
    const char* const start = p_;
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (!digits()) {
      return false;
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!digits()) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return false;
    }
    double v = 0;
    const auto res = std::from_chars(start, p_, v);
    if (res.ec != std::errc() || res.ptr != p_ || !std::isfinite(v)) return false;
    append_shortest_double(v, out_);
    return true;
  }

  // Four hex digits at q as a code unit; false when they are not there.
  bool hex4(const char* q, const char* end, uint32_t* unit) const {
    if (end - q < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_value(q[i]);
      if (h < 0) return false;
      v = v * 16 + static_cast<uint32_t>(h);
    }
    *unit = v;
    return true;
  }

  // The escape at q (just after its backslash), before end: its character
  // goes into *out_, and q moves past it.
  bool escape(const char** q, const char* end) {
    const char e = **q;
    ++*q;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        append_code_point(static_cast<unsigned char>(e), out_);
        return true;
      case 'b':
        append_code_point('\b', out_);
        return true;
      case 'f':
        append_code_point('\f', out_);
        return true;
      case 'n':
        append_code_point('\n', out_);
        return true;
      case 'r':
        append_code_point('\r', out_);
        return true;
      case 't':
        append_code_point('\t', out_);
        return true;
      case 'u':
        break;
      default:
        return false;
    }
    uint32_t unit;
    if (!hex4(*q, end, &unit)) return false;
    *q += 4;
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
      append_code_point(kReplacement, out_);  // a low surrogate with no high one before it
      return true;
    }
    if (unit < 0xD800 || unit > 0xDBFF) {
      append_code_point(unit, out_);
      return true;
    }
    // A high surrogate: a code point with the low one right after it,
    // else U+FFFD (and whatever follows is read on its own).
    uint32_t low;
    if (end - *q >= 6 && (*q)[0] == '\\' && (*q)[1] == 'u' && hex4(*q + 2, end, &low) && low >= 0xDC00 &&
        low <= 0xDFFF) {
      *q += 6;
      append_code_point(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), out_);
    } else {
      append_code_point(kReplacement, out_);
    }
    return true;
  }

  bool string() {
    // First pass: find the closing quote and see whether the raw bytes are
    // UTF-8 (escapes are ASCII and skipped; their syntax is checked below).
    const char* const body = p_ + 1;
    const char* q = body;
    bool utf8 = true;
    for (;;) {
      if (q == end_) return false;  // unterminated
      const auto c = static_cast<unsigned char>(*q);
      if (c == '"') break;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (end_ - q < 2) return false;
        q += 2;
      } else if (c >= 0x80) {
        const size_t n = utf8_sequence(q, end_);
        if (n == 0) utf8 = false;
        q += n == 0 ? 1 : n;
      } else {
        ++q;
      }
    }
    const char* const close = q;
    out_->push_back('"');
    for (q = body; q < close;) {
      const auto c = static_cast<unsigned char>(*q);
      if (c == '\\') {
        ++q;
        if (!escape(&q, close)) return false;
      } else if (c >= 0x80 && !utf8) {
        append_utf8(c, out_);  // Latin-1
        ++q;
      } else {
        // A run of bytes that stay as they are: printable ASCII other than
        // '"' and '\' (the first pass refused control bytes), and, in a
        // UTF-8 string, its well-formed sequences.
        const char* run = q;
        while (q < close && *q != '\\' && (utf8 || static_cast<unsigned char>(*q) < 0x80)) ++q;
        out_->append(run, static_cast<size_t>(q - run));
      }
    }
    out_->push_back('"');
    p_ = close + 1;
    return true;
  }

  // The elements of an array or members of an object, from the opening
  // bracket on; `close` is the closing bracket.
  bool container(int depth, char close) {
    out_->push_back(*p_);
    ++p_;
    skip_space();
    if (p_ != end_ && *p_ == close) {
      out_->push_back(close);
      ++p_;
      return true;
    }
    for (;;) {
      skip_space();
      if (close == '}') {
        if (p_ == end_ || *p_ != '"' || !string()) return false;
        skip_space();
        if (p_ == end_ || *p_ != ':') return false;
        out_->push_back(':');
        ++p_;
        skip_space();
      }
      if (!value(depth + 1)) return false;
      skip_space();
      if (p_ == end_) return false;
      const char c = *p_++;
      if (c != ',' && c != close) return false;
      out_->push_back(c);
      if (c == close) return true;
    }
  }

  bool value(int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '"':
        return string();
      case '[':
      case '{':
        return depth < kMaxJsonDepth && container(depth, *p_ == '[' ? ']' : '}');
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  const char* p_;
  const char* end_;
  std::string* out_;
};

}  // namespace

bool canonical_json(std::string_view text, std::string* scratch, std::string_view* out) {
  if (text.empty()) return false;
  if (canonical_as_is(text)) {
    *out = text;
    return true;
  }
  scratch->clear();
  if (!Writer(text, scratch).whole_value()) return false;
  *out = *scratch;
  return true;
}

bool read_stored_value(std::string_view text, bool canonical, std::string* scratch, std::string_view* out) {
  if (!canonical_json(text, scratch, out)) return false;
  return !canonical || *out == text;
}

}  // namespace taba::builtin
