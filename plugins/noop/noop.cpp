// Noop: silences a type. Accepts any payload, ignores every event, renders
// the JSON literal `null` (the original printed a bare `noop`, which is not
// JSON), and is always prunable.
//
// There is nothing to keep, so every state is one shared, immutable,
// static sentinel: new_state never allocates and free_state does nothing.
// Serialized form, version 1: empty (zero bytes); deserialize refuses any
// byte.
#include <cinttypes>
#include <cstddef>
#include <cstdint>

#include "common/plugin_support.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace taba::builtin {
namespace {

constexpr char kTypeName[] = "Noop";
constexpr uint32_t kStateVersion = 1;
constexpr char kNull[] = "null";

// Never written through: every hook treats the state as read-only.
char g_sentinel = 0;

taba_state* noop_state() {
  return reinterpret_cast<taba_state*>(&g_sentinel);
}

taba_state* n_new_state(const char*, size_t, double) {
  return noop_state();
}

void n_free_state(taba_state*) {}

taba_status n_check_event(const taba_event*, char*, size_t) {
  return TABA_OK;
}

void n_fold(taba_state*, const taba_event*, size_t, double) {}

void n_merge(taba_state*, const taba_state*, double) {}

taba_status n_render(const taba_state*, uint32_t format, double, taba_output* out) {
  if (format != TABA_FORMAT_JSON) return TABA_ERR_UNSUPPORTED;
  if (out == nullptr || out->write == nullptr) return TABA_ERR_INTERNAL;
  return out->write(out, kNull, sizeof kNull - 1) == 0 ? TABA_OK : TABA_ERR_NOMEM;
}

int n_prunable(const taba_state*, double) {
  return 1;
}

taba_status n_serialize(const taba_state*, taba_output* out) {
  return out == nullptr || out->write == nullptr ? TABA_ERR_INTERNAL : TABA_OK;
}

taba_status n_deserialize(const char*, size_t len, uint32_t version, taba_state** out, char* err,
                          size_t err_cap) {
  if (version == 0 || version > kStateVersion) {
    set_errorf(err, err_cap, "Noop state version %" PRIu32 " not supported (newest is %" PRIu32 ")", version,
               kStateVersion);
    return TABA_ERR_VERSION;
  }
  if (len != 0) {
    set_errorf(err, err_cap, "corrupt Noop state: %zu bytes where none are expected", len);
    return TABA_ERR_CORRUPT;
  }
  *out = noop_state();
  return TABA_OK;
}

const taba_handler kNoop = {
    sizeof(taba_handler),
    kStateVersion,
    kTypeName,
    "ignores its events (silences a type); renders null",
    n_new_state,
    n_free_state,
    n_check_event,
    n_fold,
    n_merge,
    n_render,
    n_prunable,
    n_serialize,
    n_deserialize,
    nullptr,  // fold_many
    nullptr,  // prefetch
    {},
};

const taba_handler* const kHandlers[] = {&kNoop};

const taba_plugin kPlugin = {
    sizeof(taba_plugin), TABA_ABI_MAJOR, TABA_ABI_MINOR, "noop", TABA_VERSION_STRING, 1, 0, kHandlers, {},
};

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::host_compatible(host) ? &taba::builtin::kPlugin : nullptr;
}
