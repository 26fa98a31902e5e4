// libFuzzer: every built-in plugin's deserialize (stored states are
// untrusted bytes), the handler picked by data[0]. Accepted states must
// render, merge and serialize, and what they serialize to must read back
// and serialize the same (a snapshot of them is read at the next start).
#include <cstdint>
#include <string>

#include "plugin/registry.h"

namespace {
// The built-in plugins (tests/fuzz/CMakeLists.txt builds them first).
constexpr size_t kBuiltInTypes = 9;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

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
  check(handlers.size() == kBuiltInTypes);  // every built-in type is reached
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
  std::string first;
  taba_output first_out{&first, sink_write};
  check(h->serialize(st, &first_out) == TABA_OK);
  taba_state* again = nullptr;
  check(h->deserialize(first.data(), first.size(), h->state_version, &again, err, sizeof err) == TABA_OK && again);
  std::string second;
  taba_output second_out{&second, sink_write};
  check(h->serialize(again, &second_out) == TABA_OK && second == first);
  h->free_state(again);
  h->render(st, TABA_FORMAT_JSON, 1400000000.0, &o);
  h->render(st, TABA_FORMAT_JSON_DETAILED, 1400000000.0, &o);
  h->render(st, TABA_FORMAT_JSON_EXACT, 1400000000.0, &o);
  taba_state* agg = h->new_state("", 0, 1400000000.0);
  h->merge(agg, st, 1400000000.0);
  h->prunable(agg, 1400000000.0);
  h->serialize(agg, &o);
  h->free_state(agg);
  h->free_state(st);
  return 0;
}
