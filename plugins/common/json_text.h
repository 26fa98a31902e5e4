// JSON text checks for the handlers that keep event values as JSON text
// (Gauge, ExpiryGauge, Buffer, Set): which payload values they accept, and
// whether text read back from a serialized state is valid JSON, so that a
// corrupt store can never make a render emit malformed output.
#ifndef TABA_PLUGINS_COMMON_JSON_TEXT_H
#define TABA_PLUGINS_COMMON_JSON_TEXT_H

#include <cstdint>
#include <string_view>

#include "taba/handler.h"

namespace taba::builtin {

// Whether kind is a JSON scalar: null, true/false, a number or a string.
bool is_scalar_kind(uint32_t kind);

// The JSON text of v without surrounding whitespace when v is a scalar with
// non-empty text; false otherwise.
bool scalar_text(const taba_value& v, std::string_view* text);

// The JSON text of v without surrounding whitespace when v is any value
// (scalar or container) with non-empty text; false otherwise.
bool value_text(const taba_value& v, std::string_view* text);

// Whether text is exactly one JSON value (RFC 8259), whitespace allowed
// only inside containers, containers nested at most 64 deep. Strings are
// checked for their escapes and control bytes, not for UTF-8 validity.
bool is_json_value(std::string_view text);

// Same, and the value is a scalar (no array or object).
bool is_json_scalar(std::string_view text);

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_JSON_TEXT_H
