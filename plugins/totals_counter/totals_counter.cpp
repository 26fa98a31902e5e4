// TotalsCounter: all-time event count and total of the values.
//
// Payload: a number, or an array whose [0] is a number (the value is used as
// is: no integer truncation, unlike the original). NaN and infinities are
// rejected.
//
// The total is an ExactSum (common/exact_sum.h: each value rounded once to
// 2^-32 and added as an integer), so it is the same whatever the order of
// folds and merges (events folded by the fe or into deltas at the edge).
//
// Render, TABA_FORMAT_JSON: {"count": %llu, "total": %.2f, "average": %.2f}
// with average = total / count, or 0.00 when count is 0.
// TABA_FORMAT_JSON_EXACT: the same with total and average as the shortest
// text within their resolution (ExactSum::tolerance of the count; 2^-32
// for the average): {"count": 3, "total": 0.003, "average": 0.001}. No
// detailed format. TABA_FORMAT_METRICS (docs/prometheus.md, "Families by
// type"): the counters "_total" (the total, as the exact form shows it)
// and "_events_total" (the count).
//
// Serialized form, version 2: varint count, then the total's fixed-point
// form (ExactSum::fixed, zigzag varint of up to 128 bits). Version 1 (still
// read): varint count, then the total as an IEEE-754 double (8 bytes,
// little-endian), read as ExactSum::of the double.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/byte_io.h"
#include "common/exact_sum.h"
#include "common/handler_adapter.h"
#include "common/metric_families.h"
#include "common/numeric_metrics.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

struct TotalsState {
  uint64_t count = 0;  // events folded
  ExactSum total;      // sum of their values
};

// The handler (common/handler_adapter.h makes its C-ABI table).
struct TotalsCounter {
  using State = TotalsState;
  static constexpr char kPluginName[] = "totals_counter";
  static constexpr char kTypeName[] = "TotalsCounter";
  static constexpr char kDescription[] = "all-time count, total and average";
  static constexpr uint32_t kStateVersion = 2;
  static constexpr uint32_t kFormats =
      format_bits({TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_METRICS});

  static State make(std::string_view, double) { return TotalsState(); }
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap) {
    return check_number_event(event, kTypeName, err, err_cap);
  }
  static void fold(State& s, const taba_event* events, size_t n, double now);
  static void merge(State& dst, const State& src, double now);
  static void fold_many(StateSpan<State> states, std::string_view client, const taba_event* events, size_t n,
                        double now);
  static taba_status render(const State& s, uint32_t format, double now, taba_output* out);
  static bool prunable(const State& s, double) { return s.count == 0; }
  static void write(const State& s, ByteWriter* w);
  static bool read(ByteReader* r, uint32_t version, State* s, const char** why);
};

// The events' count and sum, the sum taken in a local fixed-point number
// (kept in registers) before it is added to any state.
void sum_events(const taba_event* events, size_t n, uint64_t* count_out, ExactSum::Fixed* total_out) {
  uint64_t count = 0;
  ExactSum::Fixed total = 0;
  for (size_t i = 0; i < n; ++i) {
    double value;
    if (!event_number(events[i], &value)) continue;
    ++count;
    total = ExactSum::add_saturating(total, ExactSum::fixed_of(value));
  }
  *count_out = count;
  *total_out = total;
}

void TotalsCounter::fold(TotalsState& s, const taba_event* events, size_t n, double) {
  uint64_t count = 0;
  ExactSum::Fixed total = 0;
  sum_events(events, n, &count, &total);
  s.count = add_saturating(s.count, count);
  s.total.add_fixed(total);
}

void TotalsCounter::merge(TotalsState& dst, const TotalsState& src, double) {
  dst.count = add_saturating(dst.count, src.count);
  dst.total.merge(src.total);
}

// The ingest path (handler.h, section 2): the events' count and exact
// total, summed as fold sums a delta's, added to every state as merge adds
// the delta's.
void TotalsCounter::fold_many(StateSpan<TotalsState> states, std::string_view, const taba_event* events, size_t n,
                              double) {
  uint64_t count = 0;
  ExactSum::Fixed total = 0;
  sum_events(events, n, &count, &total);
  for (size_t s = 0; s < states.size(); ++s) {
    states[s].count = add_saturating(states[s].count, count);
    states[s].total.add_fixed(total);
  }
}

taba_status TotalsCounter::render(const TotalsState& s, uint32_t format, double, taba_output* out) {
  if (format == TABA_FORMAT_METRICS) {
    MetricFamilies families;
    add_all_time_counters(&families, s.count, s.total);
    return families.flush_to(out);
  }
  const double total = s.total.value();
  const double average = s.count == 0 ? 0.0 : total / static_cast<double>(s.count);
  TextBuffer text(numbers_for(format));
  text.raw("{\"count\": ").u64(s.count).raw(", \"total\": ").number2(total, ExactSum::tolerance(s.count));
  text.raw(", \"average\": ").number2(average, ExactSum::kResolution).raw("}");
  return text.flush_to(out);
}

void TotalsCounter::write(const TotalsState& s, ByteWriter* w) {
  w->put_varint(s.count);
  w->put_svarint128(s.total.fixed());
}

bool TotalsCounter::read(ByteReader* r, uint32_t version, TotalsState* s, const char** why) {
  if (version == 1) {
    double total;
    if (!r->get_varint(&s->count) || !r->get_double(&total) || !r->at_end()) {
      *why = "expected a varint count and an 8-byte total";
      return false;
    }
    s->total = ExactSum::of(total);  // a double sum that overflowed reads as ExactSum's clamp
    return true;
  }
  ExactSum::Fixed total;
  if (!r->get_varint(&s->count) || !r->get_svarint128(&total) || !r->at_end()) {
    *why = "expected a varint count and a varint fixed-point total";
    return false;
  }
  s->total = ExactSum::from_fixed(total);
  return true;
}

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::TotalsCounter>(host);
}
