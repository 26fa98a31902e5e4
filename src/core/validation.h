// Names and client IDs (docs/api.md §4.1): 1..256 bytes from
// A-Z a-z 0-9 . _ ~ : / ? @ ! $ ( ) * + ; = -
#pragma once

#include <string>
#include <string_view>

namespace taba {

inline constexpr size_t kMaxIdentifierBytes = 256;

// True when `c` may appear in a name or client ID.
bool is_identifier_char(unsigned char c);

// Empty string when valid, else a one-line reason naming the first bad
// byte, e.g. "contains ' ' (0x20) at byte 4". `what` is "name" or "client".
std::string check_identifier(std::string_view value);

// Printable rendering of an untrusted value for error messages, to be put
// between double quotes: at most 64 bytes, '"' and '\' escaped with a
// backslash, non-printable bytes as \xNN.
std::string quote_for_error(std::string_view value);

}  // namespace taba
