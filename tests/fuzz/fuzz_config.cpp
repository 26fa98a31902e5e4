// libFuzzer: the taba.toml loader and validation.
#include <cstdint>
#include <string>

#include "core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  taba::Config c;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (taba::load_config_text(text, "fuzz.toml", &c).ok()) {
    (void)taba::validate_config(c);  // the fuzzer looks for crashes; a refusal is a fine outcome
    taba::dump_config(c);
  }
  return 0;
}
