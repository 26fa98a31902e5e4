// libFuzzer: the strict JSON scanner for payloads and string unescaping.
#include <cstdint>
#include <string>

#include "protocol/payload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  taba_event ev;
  if (taba::protocol::parse_payload(text, &ev).empty()) {
    // Views must lie inside the input.
    auto inside = [&](const taba_value& v) {
      return v.kind == TABA_VALUE_NONE || (v.json >= text.data() && v.json + v.json_len <= text.data() + size);
    };
    if (!inside(ev.payload) || !inside(ev.elem0) || !inside(ev.elem1)) __builtin_trap();
  }
  std::string out;
  taba::protocol::unescape_json_string(text, &out);
  return 0;
}
