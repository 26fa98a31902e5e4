// Event payloads: strict JSON values decoded into taba_value views.
#pragma once

#include <string>
#include <string_view>

#include "taba/handler.h"

namespace taba::protocol {

// Parses `json` (one complete JSON value, surrounding whitespace allowed)
// into event->payload, ->elem0 and ->elem1. The views point into `json`.
// Returns "" on success, else a one-line reason.
std::string parse_payload(std::string_view json, taba_event* event);

// Scans one JSON value starting at text[*pos] (after optional whitespace),
// fills *value (views into text) and advances *pos past it. Nesting deeper
// than 64 levels is an error. Returns "" or a reason.
std::string scan_value(std::string_view text, size_t* pos, taba_value* value);

// Decodes the contents of a JSON string literal (between the quotes, escapes
// still in place) into *out (UTF-8). Returns "" or a reason.
std::string unescape_json_string(std::string_view body, std::string* out);

// Appends `s` to *out as a JSON string literal with quotes.
void append_json_string(std::string* out, std::string_view s);

// Parses a JSON number token into *out; false if it is not a valid finite
// JSON number.
bool parse_json_number(std::string_view token, double* out);

}  // namespace taba::protocol
