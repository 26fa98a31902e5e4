// libFuzzer: every built-in plugin's deserialize (stored states are
// untrusted bytes). Accepted states must render, merge and serialize.
#include <cstdint>
#include <string>

#include "plugin/registry.h"

namespace {
taba::plugin::Registry& plugins() {
  static taba::plugin::Registry r;
  static bool loaded = r.load_dir(TABA_FUZZ_PLUGIN_DIR);
  (void)loaded;
  return r;
}
int sink_write(taba_output* out, const char* d, size_t n) {
  static_cast<std::string*>(out->host_data)->append(d, n);
  return 0;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto handlers = plugins().handlers();
  if (handlers.empty()) return 0;
  const taba_handler* h = handlers[data[0] % handlers.size()]->table;
  taba_state* st = nullptr;
  char err[128];
  if (h->deserialize(reinterpret_cast<const char*>(data) + 1, size - 1, h->state_version, &st, err, sizeof err) !=
          TABA_OK ||
      !st) {
    return 0;
  }
  std::string out;
  taba_output o{&out, sink_write};
  h->render(st, TABA_FORMAT_JSON, 1400000000.0, &o);
  h->render(st, TABA_FORMAT_JSON_DETAILED, 1400000000.0, &o);
  taba_state* agg = h->new_state("", 0, 1400000000.0);
  h->merge(agg, st, 1400000000.0);
  h->prunable(agg, 1400000000.0);
  h->serialize(agg, &o);
  h->free_state(agg);
  h->free_state(st);
  return 0;
}
