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

// Appends `s` to *out as a JSON string literal with quotes, in the form of
// replies (JsonControls::kNewlines, core/json_escape.h).
void append_json_string(std::string* out, std::string_view s);

// Parses a JSON number token into *out; false if it is not a valid finite
// JSON number.
bool parse_json_number(std::string_view token, double* out);

// The common number on the ingest path, read without the general parser:
// a JSON number without exponent and with at most 15 digits in all
// ("-12", "1763830000.123", "0.5"). Reads the longest such token at
// [p, end) and returns its length with the value in *out, exactly what
// parse_json_number gives for it (15 digits fit a double exactly and one
// IEEE division by a power of ten <= 1e15 rounds correctly). Returns 0 when
// the text there is anything else (the caller then takes the general path):
// an exponent, more digits, a leading zero before a digit, a lone '-' or
// '.', a '.' without digits after it.
size_t parse_simple_decimal(const char* p, const char* end, double* out);

// Reads the JSON number token at [p, end) (parse_simple_decimal first, the
// general parser for anything longer or with an exponent) and returns its
// length with the value in *out; 0 when no valid finite JSON number starts
// at p.
size_t parse_number_prefix(const char* p, const char* end, double* out);

}  // namespace taba::protocol
