#include "client/json_text.h"

#include <charconv>
#include <cstdint>

namespace taba::client {

namespace {

std::string at_byte(std::string what, size_t pos) {
  return what + " at byte " + std::to_string(pos);
}

// Length of the UTF-8 sequence starting at text[i] (1..4), or 0 if it is
// not a valid one (overlong forms, surrogates and > U+10FFFF are invalid).
size_t utf8_sequence(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff) return 0;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;
  return n;
}

// A recursive-descent checker: it only says whether the text is JSON.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view text) : t_(text) {}

  std::string run() {
    skip_ws();
    if (!value(0)) return error_;
    skip_ws();
    if (p_ != t_.size()) return at_byte("unexpected characters after the value", p_);
    return {};
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool fail(std::string what) {
    error_ = at_byte(std::move(what), p_);
    return false;
  }
  void skip_ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(p_, word.size()) != word) return fail("expected a value");
    p_ += word.size();
    return true;
  }
  bool digits() {
    size_t start = p_;
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
    return p_ > start || fail("expected a digit");
  }
  bool number() {
    if (t_[p_] == '-') ++p_;
    if (p_ < t_.size() && t_[p_] == '0') {
      ++p_;
    } else if (!digits()) {
      return false;
    }
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      if (!digits()) return false;
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (!digits()) return false;
    }
    return true;
  }
  bool string() {
    ++p_;  // the opening quote
    while (p_ < t_.size()) {
      unsigned char c = static_cast<unsigned char>(t_[p_]);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return fail("control byte in a string");
      if (c == '\\') {
        if (++p_ >= t_.size()) break;
        char e = t_[p_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k) {
            char h = p_ + k < t_.size() ? t_[p_ + k] : '\0';
            bool hex = (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F');
            if (!hex) return fail("bad \\u escape");
          }
          p_ += 5;
        } else if (std::string_view("\"\\/bfnrt").find(e) != std::string_view::npos) {
          ++p_;
        } else {
          return fail("bad escape");
        }
        continue;
      }
      size_t n = utf8_sequence(t_, p_);
      if (n == 0) return fail("invalid UTF-8");
      p_ += n;
    }
    return fail("unterminated string");
  }
  bool container(int depth, char close) {
    ++p_;  // '[' or '{'
    skip_ws();
    if (p_ < t_.size() && t_[p_] == close) {
      ++p_;
      return true;
    }
    for (;;) {
      if (close == '}') {
        if (p_ >= t_.size() || t_[p_] != '"') return fail("expected a string key");
        if (!string()) return false;
        skip_ws();
        if (p_ >= t_.size() || t_[p_] != ':') return fail("expected ':'");
        ++p_;
        skip_ws();
      }
      if (!value(depth + 1)) return false;
      skip_ws();
      if (p_ < t_.size() && t_[p_] == ',') {
        ++p_;
        skip_ws();
        continue;
      }
      if (p_ < t_.size() && t_[p_] == close) {
        ++p_;
        return true;
      }
      return fail(close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
    }
  }
  bool value(int depth) {
    if (depth > kMaxDepth) return fail("nested too deep");
    if (p_ >= t_.size()) return fail("expected a value");
    switch (t_[p_]) {
      case '"':
        return string();
      case '[':
        return container(depth, ']');
      case '{':
        return container(depth, '}');
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        if (t_[p_] == '-' || (t_[p_] >= '0' && t_[p_] <= '9')) return number();
        return fail("expected a value");
    }
  }

  std::string_view t_;
  size_t p_ = 0;
  std::string error_;
};

}  // namespace

void append_json_number(std::string* out, double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  (void)ec;  // 32 bytes always hold the shortest form of a double
  out->append(buf, end);
}

std::string check_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8_sequence(text, i);
    if (n == 0) return at_byte("invalid UTF-8", i);
    i += n;
  }
  return {};
}

std::string check_json_value(std::string_view text) {
  return JsonChecker(text).run();
}

}  // namespace taba::client
