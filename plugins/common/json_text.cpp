#include "common/json_text.h"

#include "common/text.h"

namespace taba::builtin {
namespace {

constexpr int kMaxDepth = 64;

// A recursive-descent checker over [p, end); recursion is bounded by
// kMaxDepth.
class Checker {
 public:
  explicit Checker(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  // One value filling the whole text.
  bool whole_value() { return value(0) && p_ == end_; }

 private:
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
      return false;
    p_ += word.size();
    return true;
  }

  bool digits() {
    if (p_ == end_ || !is_digit(*p_)) return false;
    while (p_ != end_ && is_digit(*p_)) ++p_;
    return true;
  }

  bool number() {
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
    return true;
  }

  bool string() {
    ++p_;  // the opening quote
    while (p_ != end_) {
      const char c = *p_++;
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') continue;
      if (p_ == end_) return false;
      const char e = *p_++;
      switch (e) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          break;
        case 'u':
          for (int i = 0; i < 4; ++i) {
            if (p_ == end_ || !is_hex(*p_)) return false;
            ++p_;
          }
          break;
        default:
          return false;
      }
    }
    return false;  // unterminated
  }

  // Elements of an array or members of an object, after the opening
  // bracket; `close` is the closing bracket.
  bool container(int depth, char close) {
    ++p_;
    skip_ws();
    if (p_ != end_ && *p_ == close) {
      ++p_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (close == '}') {
        if (p_ == end_ || *p_ != '"' || !string()) return false;
        skip_ws();
        if (p_ == end_ || *p_ != ':') return false;
        ++p_;
        skip_ws();
      }
      if (!value(depth + 1)) return false;
      skip_ws();
      if (p_ == end_) return false;
      const char c = *p_++;
      if (c == close) return true;
      if (c != ',') return false;
    }
  }

  bool value(int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '"':
        return string();
      case '[':
      case '{':
        return depth < kMaxDepth && container(depth, *p_ == '[' ? ']' : '}');
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
};

}  // namespace

bool is_scalar_kind(uint32_t kind) {
  return kind == TABA_VALUE_NULL || kind == TABA_VALUE_BOOL || kind == TABA_VALUE_NUMBER ||
         kind == TABA_VALUE_STRING;
}

bool value_text(const taba_value& v, std::string_view* text) {
  if (v.kind == TABA_VALUE_NONE || v.json == nullptr) return false;
  *text = trim_json_space(std::string_view(v.json, v.json_len));
  return !text->empty();
}

bool scalar_text(const taba_value& v, std::string_view* text) {
  return is_scalar_kind(v.kind) && value_text(v, text);
}

bool is_json_value(std::string_view text) {
  return Checker(text).whole_value();
}

bool is_json_scalar(std::string_view text) {
  return !text.empty() && text.front() != '[' && text.front() != '{' && is_json_value(text);
}

}  // namespace taba::builtin
