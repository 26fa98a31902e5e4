// The JSON text of event values, for the handlers that keep values as JSON
// text (Gauge, ExpiryGauge, Buffer, Set): which payload values they accept
// and where their text is. What they store is its canonical form
// (common/json_canonical.h).
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

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_JSON_TEXT_H
