// TotalsCounter: all-time event count and total of the values.
//
// Payload: a number, or an array whose [0] is a number (the value is used as
// is: no integer truncation, unlike the original). NaN and infinities are
// rejected.
//
// Render, TABA_FORMAT_JSON: {"count": %llu, "total": %.2f, "average": %.2f}
// with average = total / count, or 0.00 when count is 0.
// TABA_FORMAT_JSON_EXACT: the same with total and average as the shortest
// text that reads back to the double ({"count": 3, "total": 0.003,
// "average": 0.001}). No detailed format.
//
// Serialized form, version 1: varint count, then the total as an IEEE-754
// double (8 bytes, little-endian).
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <new>

#include "common/byte_io.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace taba::builtin {
namespace {

constexpr char kTypeName[] = "TotalsCounter";
constexpr uint32_t kStateVersion = 1;

struct TotalsState {
  uint64_t count = 0;  // events folded
  double total = 0.0;  // sum of their values
};

TotalsState* state_of(taba_state* s) {
  return reinterpret_cast<TotalsState*>(s);
}
const TotalsState* state_of(const taba_state* s) {
  return reinterpret_cast<const TotalsState*>(s);
}

taba_state* tc_new_state(const char*, size_t, double) {
  return reinterpret_cast<taba_state*>(new (std::nothrow) TotalsState());
}

void tc_free_state(taba_state* state) {
  delete state_of(state);
}

taba_status tc_check_event(const taba_event* event, char* err, size_t err_cap) {
  return check_number_event(event, kTypeName, err, err_cap);
}

void tc_fold(taba_state* state, const taba_event* events, size_t n, double) {
  TotalsState& s = *state_of(state);
  for (size_t i = 0; i < n; ++i) {
    double value;
    if (!event_number(events[i], &value)) continue;
    s.count = add_saturating(s.count, 1);
    s.total += value;
  }
}

void tc_merge(taba_state* into, const taba_state* from, double) {
  TotalsState& dst = *state_of(into);
  const TotalsState& src = *state_of(from);
  dst.count = add_saturating(dst.count, src.count);
  dst.total += src.total;
}

taba_status tc_render(const taba_state* state, uint32_t format, double, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    if (format != TABA_FORMAT_JSON && format != TABA_FORMAT_JSON_EXACT) return TABA_ERR_UNSUPPORTED;
    const TotalsState& s = *state_of(state);
    const double average = s.count == 0 ? 0.0 : s.total / static_cast<double>(s.count);
    TextBuffer text(numbers_for(format));
    text.raw("{\"count\": ").u64(s.count).raw(", \"total\": ").number2(s.total);
    text.raw(", \"average\": ").number2(average).raw("}");
    return text.flush_to(out);
  });
}

int tc_prunable(const taba_state* state, double) {
  return state_of(state)->count == 0 ? 1 : 0;
}

taba_status tc_serialize(const taba_state* state, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    ByteWriter w;
    w.put_varint(state_of(state)->count);
    w.put_double(state_of(state)->total);
    return w.flush_to(out);
  });
}

taba_status tc_deserialize(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                           size_t err_cap) {
  return guard_status(err, err_cap, [&] {
    if (version == 0 || version > kStateVersion) {
      set_errorf(err, err_cap,
                 "TotalsCounter state version %" PRIu32 " not supported (newest is %" PRIu32 ")", version,
                 kStateVersion);
      return TABA_ERR_VERSION;
    }
    ByteReader r(data, len);
    TotalsState parsed;
    if (!r.get_varint(&parsed.count) || !r.get_double(&parsed.total) || !r.at_end()) {
      set_error(err, err_cap, "corrupt TotalsCounter state: expected a varint count and an 8-byte total");
      return TABA_ERR_CORRUPT;
    }
    auto* s = new TotalsState(parsed);
    *out = reinterpret_cast<taba_state*>(s);
    return TABA_OK;
  });
}

const taba_handler kTotalsCounter = {
    sizeof(taba_handler),
    kStateVersion,
    kTypeName,
    "all-time count, total and average",
    tc_new_state,
    tc_free_state,
    tc_check_event,
    tc_fold,
    tc_merge,
    tc_render,
    tc_prunable,
    tc_serialize,
    tc_deserialize,
    nullptr,  // fold_many
    nullptr,  // prefetch
    {},
};

const taba_handler* const kHandlers[] = {&kTotalsCounter};

const taba_plugin kPlugin = {
    sizeof(taba_plugin),
    TABA_ABI_MAJOR,
    TABA_ABI_MINOR,
    "totals_counter",
    TABA_VERSION_STRING,
    1,
    0,
    kHandlers,
    {},
};

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::host_compatible(host) ? &taba::builtin::kPlugin : nullptr;
}
