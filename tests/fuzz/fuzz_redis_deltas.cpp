// libFuzzer: the deltas of a Redis stream entry and a stored state's
// version header (bytes read back from Redis).
#include <cstdint>
#include <vector>

#include "store/redis/layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<taba::redis::Delta> deltas;
  if (taba::redis::decode_deltas(in, &deltas).ok()) {
    // Everything decoded must re-encode to the same bytes.
    taba::redis::DeltaWriter w;
    for (const auto& d : deltas) w.add(d.name, d.type, d.client, d.state_version, d.state);
    if (w.finish() != in) __builtin_trap();
  }
  uint32_t version = 0;
  std::string_view bytes;
  (void)taba::redis::decode_state(in, &version, &bytes);
  return 0;
}
