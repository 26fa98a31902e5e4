// libFuzzer: the v1 body decoder, fed in two chunks split where the first
// byte says, with the built-in plugins checking payloads. A body it accepts
// must read back from its batch.
#include <cstdint>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "plugin/registry.h"
#include "protocol/batch.h"
#include "protocol/v1_decoder.h"

namespace {
taba::plugin::Registry& plugins() {
  static taba::plugin::Registry r;
  static bool loaded = r.load_dir(TABA_FUZZ_PLUGIN_DIR);
  (void)loaded;
  return r;
}
class Resolver : public taba::protocol::TypeResolver {
 public:
  const taba::plugin::Handler* resolve(std::string_view, std::string_view type, std::string* err) override {
    const taba::plugin::Handler* h = plugins().find(type);
    if (!h) *err = "unknown";
    return h;
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = data[0] % size;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  Resolver resolver;
  taba::protocol::BatchWriter writer;
  writer.reset(1400000000.0);
  taba::protocol::DecodeOptions opts;
  opts.now = 1400000000.0;
  opts.keep_refused_text = (data[0] & 1) != 0;
  taba::protocol::V1Decoder dec(&resolver, &writer, opts);
  bool ok = dec.feed(body.substr(0, split)) && dec.feed(body.substr(split < body.size() ? split : body.size())) &&
            dec.finish();
  std::string batch = writer.finish();
  if (ok) {
    taba::protocol::BatchReader reader(batch);
    if (!reader.open().ok()) __builtin_trap();
    taba::protocol::BatchBlock b;
    std::vector<taba_event> evs;
    taba::Status s;
    uint64_t n = 0;
    while (reader.next(&b, &evs, &s)) {
      n += evs.size();
      // Nothing that is not UTF-8 gets into a batch (Latin-1 is converted).
      for (const taba_event& e : evs) {
        if (!taba::is_valid_utf8(std::string_view(e.payload.json, e.payload.json_len))) __builtin_trap();
      }
    }
    if (!s.ok() || n != dec.events()) __builtin_trap();
    // Every refusal names a line of the body.
    for (const taba::protocol::Refusal& r : dec.refusals()) {
      if (r.line == 0 || r.line > dec.line()) __builtin_trap();
    }
  }
  return 0;
}
