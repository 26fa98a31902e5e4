// CounterGroup: event count, total and average over four sliding windows
// (1m = 60 x 1 s, 10m = 60 x 10 s, 1h = 120 x 30 s, 1d = 96 x 900 s), plus
// an all-time DDSketch with exact count and total for percentiles.
//
// Render, TABA_FORMAT_JSON (as of `now`; windows rotated virtually):
//   {"1m": {"count": %llu, "total": %.2f, "average": %.2f}, "10m": {...},
//    "1h": {...}, "1d": {...},
//    "pct": {"count": %llu, "total": %f, "pct": [p25, p50, p75, p90, p95,
//            p99, p99.9 as %.2f]}}
// on one line, with ": " and ", " separators; average is total / count, or
// 0.00 for an empty window; the seven percentiles are 0.00 when empty.
//
// Render, TABA_FORMAT_JSON_EXACT: the same value with every non-integer
// number in full: the percentiles as the shortest text that reads back to
// the double, and the totals and averages, which are exact sums (below), as
// the shortest text within their resolution (ExactSum::tolerance of the
// count): three events of 0.001 show "total": 0.003 where TABA_FORMAT_JSON
// shows 0.00.
//
// Render, TABA_FORMAT_JSON_DETAILED: every bucket of every window, oldest
// first, empty ones included, as [start, count, sum] with start the bucket's
// first epoch second (integer), count an integer and sum exact (as above):
//   {"1m": [[1400000000, 2, 15.5], [1400000001, 0, 0], ...],
//    "10m": [...], "1h": [...], "1d": [...]}
//
// Render, TABA_FORMAT_METRICS (docs/prometheus.md, "Families by type"):
// "_total" and "_events_total", counters, the all-time sketch's exact sum
// and count; "_sum_in_window" and "_events_in_window", gauges labelled
// window (1m, 10m, 1h, 1d), each window's sum and count as of `now`; "", a
// summary of the all-time sketch's seven percentiles labelled window="all"
// and quantile (none while the sketch is empty), without _sum and _count.
// Sums as the exact form shows them (the shortest text within their
// resolution).
//
// Sums. Every sum (window buckets, the sketch's total) is an ExactSum
// (common/exact_sum.h): each value rounded once to 2^-32 and added as an
// integer, so the states and every render are the same bytes whatever the
// order of folds and merges, e.g. whether events were folded by the fe
// (fold_many) or into deltas at the edge and merged.
//
// Cost model. The host folds each request's events of one (client, name)
// into a fresh delta and merges it into the client's state and the name's
// aggregate (handler.h, section 2), so new_state and merge are the hot path:
// a state is one allocation whose buckets are never zeroed up front (the
// windows zero lazily, see window.h); merging walks only the buckets the
// delta's windows hold and the non-empty bins of its sketch, so a delta of
// a few events costs O(1) to merge whatever the size of the destination.
// Memory: ~4.5 KB per state for the 336 buckets (32-bit counts and 64-bit
// fixed-point sums, with high words added lazily for the window that needs
// them) plus the sketch bins (1-2 bytes each for a
// client state; ~380 bins for values spanning 3.3 decades).
//
// Serialized form, version 3: varint window count (4); per window varint
// width, varint size and the BucketWindow form 2 (window.h: exact sums);
// then the DDSketch form 3 (ddsketch.h: exact sum). Sparse: an idle window
// costs a few bytes. Still read: version 2, the same with BucketWindow form 1
// and DDSketch form 2 (sums as doubles, read as ExactSum::of the double),
// and version 1, which has DDSketch form 1.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/byte_io.h"
#include "common/ddsketch.h"
#include "common/exact_sum.h"
#include "common/handler_adapter.h"
#include "common/metric_families.h"
#include "common/numeric_metrics.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "common/window.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

constexpr int kWindowCount = 4;
constexpr const char* kWindowLabels[kWindowCount] = {"1m", "10m", "1h", "1d"};

struct CounterGroupState {
  explicit CounterGroupState(int64_t now_second)
      : minute(1, now_second), ten_minutes(10, now_second), hour(30, now_second), day(900, now_second) {}

  BucketWindow& window(int i) {
    switch (i) {
      case 0:
        return minute;
      case 1:
        return ten_minutes;
      case 2:
        return hour;
      default:
        return day;
    }
  }
  const BucketWindow& window(int i) const { return const_cast<CounterGroupState*>(this)->window(i); }

  FixedBucketWindow<60> minute;
  FixedBucketWindow<60> ten_minutes;
  FixedBucketWindow<120> hour;
  FixedBucketWindow<96> day;
  DDSketch all_time;  // every value ever folded, with exact count and total
};

// The handler (common/handler_adapter.h makes its C-ABI table).
struct CounterGroup {
  using State = CounterGroupState;
  static constexpr char kPluginName[] = "counter_group";
  static constexpr char kTypeName[] = "CounterGroup";
  static constexpr char kDescription[] =
      "count, total and average over 1m/10m/1h/1d windows, plus all-time percentiles";
  static constexpr uint32_t kStateVersion = 3;
  static constexpr uint32_t kFormats =
      format_bits({TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_METRICS});

  static State make(std::string_view client, double now);
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap);
  static void fold(State& s, const taba_event* events, size_t n, double now);
  static void merge(State& dst, const State& src, double now);
  static void fold_many(StateSpan<State> states, std::string_view client, const taba_event* events, size_t n,
                        double now);
  static void prefetch(const taba_state* const* handles, size_t count, const taba_event* events, size_t n,
                       double now);
  static taba_status render(const State& s, uint32_t format, double now, taba_output* out);
  static bool prunable(const State& s, double now);
  static void write(const State& s, ByteWriter* w);
  static bool read(ByteReader* r, uint32_t version, State* s, const char** why);
};

CounterGroupState CounterGroup::make(std::string_view, double now) {
  return CounterGroupState(epoch_second(now));
}

taba_status CounterGroup::check_event(const taba_event* event, char* err, size_t err_cap) {
  return check_number_event(event, kTypeName, err, err_cap);
}

void CounterGroup::fold(CounterGroupState& s, const taba_event* events, size_t n, double now) {
  // Windows end at the latest of now and the newest event.
  int64_t effective_now = epoch_second(now);
  for (size_t i = 0; i < n; ++i) effective_now = std::max(effective_now, epoch_second(events[i].timestamp));
  for (int w = 0; w < kWindowCount; ++w) s.window(w).rotate_to(s.window(w).bucket_of(effective_now));
  for (size_t i = 0; i < n; ++i) {
    double value;
    if (!event_number(events[i], &value)) continue;
    s.all_time.add(value);
    const int64_t second = epoch_second(events[i].timestamp);
    const ExactSum sum = ExactSum::of(value);
    for (int w = 0; w < kWindowCount; ++w) s.window(w).add(second, 1, sum);
  }
}

// O(buckets and bins `from` holds): a one-event delta merges in O(1).
void CounterGroup::merge(CounterGroupState& dst, const CounterGroupState& src, double now) {
  const int64_t now_second = epoch_second(now);
  for (int w = 0; w < kWindowCount; ++w) {
    dst.window(w).merge_from(src.window(w), dst.window(w).bucket_of(now_second));
  }
  dst.all_time.merge(src.all_time);
}

// fold_many: the events are read once, in chunks of up to 64. Per chunk
// and window, events that fall into the same bucket are summed into a run
// (in fixed point, so in any order: ExactSum), and each value's sketch
// bin is found once; then the runs and bins are added to every
// state. The effect is that of fold into a fresh delta and merge into each
// state: each state's windows are rotated to the chunk's newest second
// (or now) first, and runs older than a window are dropped by it.
// (The window widths below are those of CounterGroupState.)
struct Run {  // trivial (not an ExactSum): the chunk's run arrays are left uninitialized
  int64_t bucket;
  uint64_t count;
  ExactSum::Fixed sum;
};

template <uint32_t Width>
int64_t bucket_number(int64_t second) {
  if constexpr (Width == 1) {
    return second;
  } else {
    const int64_t q = second / static_cast<int64_t>(Width);
    return q * static_cast<int64_t>(Width) > second ? q - 1 : q;  // floor, also below 0
  }
}

// Adds (second, value) to the runs of one window; the last few runs are
// searched, so a chunk of events in a handful of buckets makes a handful of
// runs, and out-of-order stamps cost a new run at worst.
template <uint32_t Width>
void add_to_runs(Run* runs, size_t* nruns, int64_t second, ExactSum::Fixed value) {
  const int64_t b = bucket_number<Width>(second);
  const size_t n = *nruns;
  for (size_t k = n, seen = 0; k > 0 && seen < 4; --k, ++seen) {
    Run& r = runs[k - 1];
    if (r.bucket == b) {
      ++r.count;
      r.sum = ExactSum::add_saturating(r.sum, value);
      return;
    }
  }
  runs[n] = Run{b, 1, value};
  *nruns = n + 1;
}

void fold_chunk(StateSpan<CounterGroupState> states, const taba_event* events, size_t n, double now) {
  constexpr size_t kChunk = PreparedValues::kCapacity;
  Run runs[kWindowCount][kChunk];
  size_t nruns[kWindowCount] = {0, 0, 0, 0};
  PreparedValues values;
  int64_t effective_now = epoch_second(now);
  for (size_t i = 0; i < n; ++i) {
    const int64_t second = epoch_second(events[i].timestamp);
    effective_now = std::max(effective_now, second);
    double value;
    if (!event_number(events[i], &value)) continue;
    values.add(value);
    const ExactSum::Fixed fixed = ExactSum::fixed_of(value);
    add_to_runs<1>(runs[0], &nruns[0], second, fixed);
    add_to_runs<10>(runs[1], &nruns[1], second, fixed);
    add_to_runs<30>(runs[2], &nruns[2], second, fixed);
    add_to_runs<900>(runs[3], &nruns[3], second, fixed);
  }
  // (The states' cache lines were asked for by prefetch, which the host
  // calls one block ahead.)
  for (size_t s = 0; s < states.size(); ++s) {
    CounterGroupState& st = states[s];
    for (int w = 0; w < kWindowCount; ++w) {
      BucketWindow& window = st.window(w);
      window.rotate_to(window.bucket_of(effective_now));
      for (size_t k = 0; k < nruns[w]; ++k)
        window.add_to(runs[w][k].bucket, runs[w][k].count, ExactSum::from_fixed(runs[w][k].sum));
    }
    st.all_time.add_prepared(values);
  }
}

void CounterGroup::fold_many(StateSpan<CounterGroupState> states, std::string_view, const taba_event* events,
                             size_t n, double now) {
  constexpr size_t kChunk = PreparedValues::kCapacity;
  for (size_t at = 0; at < n; at += kChunk) fold_chunk(states, events + at, std::min(kChunk, n - at), now);
}

// The host's cache hint, one block ahead: every window's fields, then in
// each window the slots of the first and the last event's buckets, and the
// sketch's bins in use (up to 12 cache lines of them, which covers most of
// a client's state).
void CounterGroup::prefetch(const taba_state* const* handles, size_t count, const taba_event* events,
                            size_t n, double) {
  if (n == 0) return;
  const StateSpan<const CounterGroupState> states(handles, count);
  for (size_t s = 0; s < states.size(); ++s) {
    const CounterGroupState& st = states[s];
    for (int w = 0; w < kWindowCount; ++w) st.window(w).prefetch_self();
    st.all_time.prefetch_fields();
  }
  const int64_t first = epoch_second(events[0].timestamp);
  const int64_t last = epoch_second(events[n - 1].timestamp);
  for (size_t s = 0; s < states.size(); ++s) {
    const CounterGroupState& st = states[s];
    for (int w = 0; w < kWindowCount; ++w) {
      const BucketWindow& window = st.window(w);
      const int64_t b = window.bucket_of(first);
      window.prefetch_bucket(b);
      if (const int64_t b2 = window.bucket_of(last); b2 != b) window.prefetch_bucket(b2);
    }
    st.all_time.prefetch_used_bins(12);
  }
}

void render_summary(const CounterGroupState& s, int64_t now_second, TextBuffer* t) {
  t->raw("{");
  for (int w = 0; w < kWindowCount; ++w) {
    const BucketWindow& window = s.window(w);
    const BucketWindow::Totals totals = window.totals(window.bucket_of(now_second));
    const double total = totals.sum.value();
    // The average is within the resolution of one value (2^-32) of exact.
    const double average = totals.count == 0 ? 0.0 : total / static_cast<double>(totals.count);
    t->raw(w == 0 ? "\"" : ", \"").raw(kWindowLabels[w]).raw("\": {\"count\": ").u64(totals.count);
    t->raw(", \"total\": ").number2(total, totals.sum_tolerance());
    t->raw(", \"average\": ").number2(average, ExactSum::kResolution).raw("}");
  }
  t->raw(", \"pct\": ");
  append_percentile_summary(s.all_time, t);
  t->raw("}");
}

void render_detailed(const CounterGroupState& s, int64_t now_second, TextBuffer* t) {
  t->raw("{");
  for (int w = 0; w < kWindowCount; ++w) {
    const BucketWindow& window = s.window(w);
    t->raw(w == 0 ? "\"" : ", \"").raw(kWindowLabels[w]).raw("\": [");
    bool first = true;
    window.for_each_bucket(window.bucket_of(now_second), [&](int64_t bucket, uint64_t count, ExactSum sum) {
      t->raw(first ? "[" : ", [")
          .i64(bucket * window.width())
          .raw(", ")
          .u64(count)
          .raw(", ")
          .number2(sum.value(), ExactSum::tolerance(count))
          .raw("]");
      first = false;
    });
    t->raw("]");
  }
  t->raw("}");
}

taba_status render_metrics(const CounterGroupState& s, int64_t now_second, taba_output* out) {
  MetricFamilies families;
  add_all_time_counters(&families, s.all_time.count(), s.all_time.exact_sum());
  WindowFigures windows[kWindowCount];
  for (int w = 0; w < kWindowCount; ++w) {
    const BucketWindow& window = s.window(w);
    const BucketWindow::Totals totals = window.totals(window.bucket_of(now_second));
    windows[w] = WindowFigures{kWindowLabels[w], totals.count, totals.sum};
  }
  add_window_gauges(&families, windows, kWindowCount);
  open_percentiles(&families, "Percentiles of every value recorded (all time).");
  add_percentile_samples(&families, kAllTimeWindow, s.all_time);
  return families.flush_to(out);
}

taba_status CounterGroup::render(const CounterGroupState& s, uint32_t format, double now, taba_output* out) {
  if (format == TABA_FORMAT_METRICS) return render_metrics(s, epoch_second(now), out);
  TextBuffer text(numbers_for(format));
  if (format == TABA_FORMAT_JSON_DETAILED) {
    render_detailed(s, epoch_second(now), &text);
  } else {
    render_summary(s, epoch_second(now), &text);
  }
  return text.flush_to(out);
}

// Prunable once every window is empty: the all-time part alone is not worth
// keeping (as in the original).
bool CounterGroup::prunable(const CounterGroupState& s, double now) {
  const int64_t now_second = epoch_second(now);
  for (int w = 0; w < kWindowCount; ++w) {
    if (!s.window(w).empty_as_of(s.window(w).bucket_of(now_second))) return false;
  }
  return true;
}

void CounterGroup::write(const CounterGroupState& s, ByteWriter* w) {
  w->put_varint(kWindowCount);
  for (int i = 0; i < kWindowCount; ++i) {
    w->put_varint(s.window(i).width());
    w->put_varint(s.window(i).size());
    s.window(i).serialize(w);
  }
  s.all_time.serialize(w);
}

bool CounterGroup::read(ByteReader* r, uint32_t version, CounterGroupState* s, const char** why) {
  uint64_t windows;
  if (!r->get_varint(&windows) || windows != kWindowCount) *why = "window count missing or not 4";
  for (int i = 0; i < kWindowCount && *why == nullptr; ++i) {
    uint64_t width;
    uint64_t size;
    if (!r->get_varint(&width) || !r->get_varint(&size) || width != s->window(i).width() ||
        size != s->window(i).size()) {
      *why = "window shape missing or unexpected";
    } else {
      s->window(i).deserialize(r, version <= 2 ? 1 : BucketWindow::kForm, why);
    }
  }
  // Sketch forms: 1 in version 1, 2 in version 2, 3 (DDSketch::kForm) since.
  if (*why == nullptr) s->all_time.deserialize(r, version <= 2 ? version : DDSketch::kForm, why);
  if (*why == nullptr && !r->at_end()) *why = "trailing bytes";
  return *why == nullptr;
}

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::CounterGroup>(host);
}
