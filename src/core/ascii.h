// ASCII character helpers for protocol text: HTTP header names, schemes and
// tokens, Redis replies, percent-escapes. They ignore the C locale on
// purpose: protocols compare case in ASCII whatever the process's locale.
// Header-only, so that the client library (src/client) can use it without
// linking the core layer.
#pragma once

#include <cstddef>
#include <string_view>

namespace taba {

// 'A'..'Z' to 'a'..'z'; every other byte as it is.
inline char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// ASCII case-insensitive equality, for header names and tokens.
inline bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// The value of a hexadecimal digit (either case), or -1.
inline int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace taba
