#include "common/json_text.h"

#include "common/text.h"

namespace taba::builtin {

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

}  // namespace taba::builtin
