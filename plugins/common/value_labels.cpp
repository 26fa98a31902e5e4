#include "common/value_labels.h"

#include <charconv>
#include <system_error>

namespace taba::builtin {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The character a one-letter escape stands for: \b \f \n \r \t, and '"',
// '\' (and '/') themselves.
char short_escape(char e) {
  switch (e) {
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return e;
  }
}

// The code point of the \uXXXX escape whose hex digits start at p (4 bytes
// readable), or -1 when they are not hex digits.
int escaped_code_point(const char* p) {
  int cp = 0;
  for (int k = 0; k < 4; ++k) {
    const int d = hex_digit(p[k]);
    if (d < 0) return -1;
    cp = cp * 16 + d;
  }
  return cp;
}

// Appends the content of the canonical string literal `literal` (quotes
// included) to *out. Canonical strings escape only '"', '\' and control
// characters (\b \f \n \r \t, or \u00XX): the rest is raw UTF-8, copied
// as it is.
void append_string_content(std::string_view literal, std::string* out) {
  const std::string_view body = literal.substr(1, literal.size() - 2);
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out->push_back(body[i]);
      continue;
    }
    const char e = body[++i];
    if (e != 'u') {
      out->push_back(short_escape(e));
      continue;
    }
    // \u00XX, one byte; any other code point is not canonical and is kept
    // as written.
    const int cp = i + 4 < body.size() ? escaped_code_point(body.data() + i + 1) : -1;
    if (cp >= 0 && cp < 0x80) {
      out->push_back(static_cast<char>(cp));
      i += 4;
    } else {
      out->append("\\u");
    }
  }
}

}  // namespace

bool canonical_number(std::string_view canonical, double* value) {
  if (canonical.empty() ||
      !(canonical.front() == '-' || (canonical.front() >= '0' && canonical.front() <= '9'))) {
    return false;
  }
  const char* const end = canonical.data() + canonical.size();
  const auto res = std::from_chars(canonical.data(), end, *value);
  return res.ec == std::errc() && res.ptr == end;
}

std::string_view cut_label(std::string_view s) {
  if (s.size() <= kMaxLabelBytes) return s;
  size_t n = kMaxLabelBytes;
  // s[n] is the first byte left out: while it continues a character, that
  // character started before n and does not fit.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string value_label(std::string_view canonical) {
  std::string text;
  if (canonical.size() >= 2 && canonical.front() == '"') {
    append_string_content(canonical, &text);
  } else {
    text.assign(canonical.data(), canonical.size());
  }
  text.resize(cut_label(text).size());
  return text;
}

}  // namespace taba::builtin
