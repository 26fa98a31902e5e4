// PercentileCounter: all-time percentiles of the values, from one DDSketch
// (alpha = 1 %) with exact count, sum, min and max. Unlike the original's
// (whose new state needed an argument the host never passed), it works
// standalone.
//
// Payload: a finite number, or an array whose [0] is a finite number.
//
// Render, TABA_FORMAT_JSON:
//   {"count": %llu, "total": %f, "pct": [p25, p50, p75, p90, p95, p99, p99.9]}
// with ": " and ", " separators, the percentiles %.2f (nearest rank on the
// sketch; all 0.00 when empty) and total the exact sum (%f, 6 decimals).
// TABA_FORMAT_JSON_EXACT: the same with the total and the percentiles as
// the shortest text that reads back to the double. No detailed format.
//
// Merging is exact and order-free: the bins, count, sum, min, max and the
// exact values of a sketch of 5 values or fewer, hence every rendered
// percentile, are the same for any merge order of any split of the data.
//
// Prunable: count == 0 (the data never expires).
//
// Serialized form, version 2: the DDSketch form 2 (ddsketch.h), nothing
// else. Version 1 (still read): DDSketch form 1.
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "common/byte_io.h"
#include "common/ddsketch.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace taba::builtin {
namespace {

constexpr char kTypeName[] = "PercentileCounter";
constexpr uint32_t kStateVersion = 2;

struct PercentileCounterState {
  DDSketch sketch;
};

PercentileCounterState* state_of(taba_state* s) {
  return reinterpret_cast<PercentileCounterState*>(s);
}
const PercentileCounterState* state_of(const taba_state* s) {
  return reinterpret_cast<const PercentileCounterState*>(s);
}

taba_state* pc_new_state(const char*, size_t, double) {
  return reinterpret_cast<taba_state*>(new (std::nothrow) PercentileCounterState());
}

void pc_free_state(taba_state* state) {
  delete state_of(state);
}

taba_status pc_check_event(const taba_event* event, char* err, size_t err_cap) {
  return check_number_event(event, kTypeName, err, err_cap);
}

void pc_fold(taba_state* state, const taba_event* events, size_t n, double) {
  guard_void([&] {
    DDSketch& sketch = state_of(state)->sketch;
    for (size_t i = 0; i < n; ++i) {
      double value;
      if (event_number(events[i], &value)) sketch.add(value);
    }
  });
}

// O(non-empty bins of `from`).
void pc_merge(taba_state* into, const taba_state* from, double) {
  guard_void([&] { state_of(into)->sketch.merge(state_of(from)->sketch); });
}

taba_status pc_render(const taba_state* state, uint32_t format, double, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    if (format != TABA_FORMAT_JSON && format != TABA_FORMAT_JSON_EXACT) return TABA_ERR_UNSUPPORTED;
    TextBuffer text(numbers_for(format));
    append_percentile_summary(state_of(state)->sketch, &text);
    return text.flush_to(out);
  });
}

int pc_prunable(const taba_state* state, double) {
  return state_of(state)->sketch.count() == 0 ? 1 : 0;
}

taba_status pc_serialize(const taba_state* state, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    ByteWriter w;
    state_of(state)->sketch.serialize(&w);
    return w.flush_to(out);
  });
}

taba_status pc_deserialize(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                           size_t err_cap) {
  return guard_status(err, err_cap, [&] {
    if (version == 0 || version > kStateVersion) {
      set_errorf(err, err_cap,
                 "PercentileCounter state version %" PRIu32 " not supported (newest is %" PRIu32 ")", version,
                 kStateVersion);
      return TABA_ERR_VERSION;
    }
    auto s = std::make_unique<PercentileCounterState>();
    ByteReader r(data, len);
    const char* why = nullptr;
    if (!s->sketch.deserialize(&r, version == 1 ? 1 : DDSketch::kForm, &why)) {
      if (why == nullptr) why = "malformed sketch";
    } else if (!r.at_end()) {
      why = "trailing bytes";
    }
    if (why != nullptr) {
      set_errorf(err, err_cap, "corrupt PercentileCounter state: %s", why);
      return TABA_ERR_CORRUPT;
    }
    *out = reinterpret_cast<taba_state*>(s.release());
    return TABA_OK;
  });
}

const taba_handler kPercentileCounter = {
    sizeof(taba_handler),
    kStateVersion,
    kTypeName,
    "all-time percentiles (p25..p99.9), count and total",
    pc_new_state,
    pc_free_state,
    pc_check_event,
    pc_fold,
    pc_merge,
    pc_render,
    pc_prunable,
    pc_serialize,
    pc_deserialize,
    nullptr,  // fold_many
    nullptr,  // prefetch
    {},
};

const taba_handler* const kHandlers[] = {&kPercentileCounter};

const taba_plugin kPlugin = {
    sizeof(taba_plugin),
    TABA_ABI_MAJOR,
    TABA_ABI_MINOR,
    "percentile_counter",
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
