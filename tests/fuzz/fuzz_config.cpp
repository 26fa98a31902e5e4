// libFuzzer: the taba.toml loader and validation.
#include <cstdint>
#include <string>

#include "core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  taba::Config c;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (taba::load_config_text(text, "fuzz.toml", &c).ok()) {
    taba::validate_config(c);
    taba::dump_config(c);
  }
  return 0;
}
