// Noop: silences a type. Accepts any payload, ignores every event, renders
// the JSON literal `null` (the original printed a bare `noop`, which is not
// JSON) and, as TABA_FORMAT_METRICS, no family (`[]`: the export shows
// nothing rather than the host's fallback from the JSON render), and is
// always prunable.
//
// There is nothing to keep, so every state is one shared, immutable,
// static sentinel: new_state never allocates and free_state does nothing
// (the adapter's stateless handler, common/handler_adapter.h).
// Serialized form, version 1: empty (zero bytes); deserialize refuses any
// byte.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/handler_adapter.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

constexpr char kNull[] = "null";
constexpr char kNoFamilies[] = "[]";

// Nothing to keep: the adapter's one shared, never written state.
struct NoopState {};

// The handler (common/handler_adapter.h makes its C-ABI table).
struct Noop {
  using State = NoopState;
  static constexpr char kPluginName[] = "noop";
  static constexpr char kTypeName[] = "Noop";
  static constexpr char kDescription[] = "ignores its events (silences a type); renders null";
  static constexpr uint32_t kStateVersion = 1;
  static constexpr uint32_t kFormats = format_bits({TABA_FORMAT_JSON, TABA_FORMAT_METRICS});
  static constexpr bool kStateless = true;

  static taba_status check_event(const taba_event*, char*, size_t) { return TABA_OK; }
  static void fold(State&, const taba_event*, size_t, double) {}
  static void merge(State&, const State&, double) {}
  static taba_status render(const State&, uint32_t format, double, taba_output* out) {
    if (out == nullptr || out->write == nullptr) return TABA_ERR_INTERNAL;
    const std::string_view text = format == TABA_FORMAT_METRICS ? kNoFamilies : kNull;
    return out->write(out, text.data(), text.size()) == 0 ? TABA_OK : TABA_ERR_NOMEM;
  }
  static bool prunable(const State&, double) { return true; }
};

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::Noop>(host);
}
