// UTF-8 checks for text that tabad stores and serves.
//
// The rule (docs/api.md, "Text encoding"): a payload that is not valid
// UTF-8 is read as Latin-1 (ISO-8859-1), where every byte is the code point
// of the same number. The original Java client sends non-ASCII strings as
// Latin-1 bytes (`new StringEntity(body)`), so its "Z\xfcrich" arrives as
// "Zürich"; every other client sends UTF-8, and valid UTF-8 is never
// reinterpreted. Rendered output passes sanitize_utf8 so that a plugin
// that writes invalid bytes cannot make a reply invalid.
#pragma once

#include <string>
#include <string_view>

namespace taba {

// Whether s is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Appends s, read as Latin-1, to *out as UTF-8.
void append_latin1_as_utf8(std::string_view s, std::string* out);

// Appends s to *out with every ill-formed sequence replaced by U+FFFD
// (one per maximal ill-formed subpart, as Unicode recommends).
void append_sanitized_utf8(std::string_view s, std::string* out);

}  // namespace taba
