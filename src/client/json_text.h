// JSON text helpers for the client library's encoder and its checks on
// payloads. Small and dependency-free on purpose: the library must not pull
// in the server's JSON parser. (String escaping is core/json_escape.h's.)
#pragma once

#include <string>
#include <string_view>

namespace taba::client {

// Appends the shortest text that reads back as `value` (finite).
void append_json_number(std::string* out, double value);

// Empty when `text` is valid UTF-8, else a reason naming the first bad byte.
std::string check_utf8(std::string_view text);

// Empty when `text` is exactly one JSON value (RFC 8259; whitespace around
// it allowed; strings valid UTF-8; nesting at most 64 deep), else a reason
// with the byte offset, e.g. "expected a value at byte 0".
std::string check_json_value(std::string_view text);

}  // namespace taba::client
