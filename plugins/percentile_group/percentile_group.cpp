// PercentileGroup: percentiles over four sliding windows. Each window is a
// ring of 4 buckets, each bucket a DDSketch (alpha = 1 %) with exact count,
// sum, min and max, and every value while it holds 5 or fewer:
//   1m = 4 x 15 s, 10m = 4 x 150 s, 1h = 4 x 900 s, 1d = 4 x 21600 s.
// Besides the windows, the all-time count and exact sum (ExactSum,
// common/exact_sum.h) of every value folded, which the Prometheus export
// reads as counters.
// Bucket b of a window of width w covers the epoch seconds [b*w, (b+1)*w)
// (b = floor(second / w), also for negative stamps). As of `now` a window
// holds the bucket containing now and the 3 before it, so it spans between
// 3 and 4 bucket widths (45-60 s, 7.5-10 min, 45-60 min, 18-24 h), as in the
// original.
//
// Payload: a finite number, or an array whose [0] is a finite number.
//
// Render, TABA_FORMAT_JSON (as of `now`; the state is not modified):
//   {"1m": {"count": %llu, "total": %f, "pct": [%.2f x 7]}, "10m": {...},
//    "1h": {...}, "1d": {...}}
// on one line with ": " and ", " separators. Per window, the 4 buckets are
// merged into one sketch; pct is its nearest-rank p25, p50, p75, p90, p95,
// p99, p99.9 (all 0.00 when the window is empty; exact for a window of 5
// values or fewer, and always within the window's [min, max]); total is the
// exact sum of the values (%f, 6 decimals).
//
// Render, TABA_FORMAT_JSON_EXACT: the same value with the totals and the
// percentiles as the shortest text that reads back to the double, so
// timers in seconds (0.0012, 0.0034) do not show as 0.00.
//
// Render, TABA_FORMAT_JSON_DETAILED: per window its 4 buckets as of `now`,
// oldest first, empty ones included, each as
//   [bucket_start, count, total, [p25, p50, p75, p90, p95, p99, p99.9]]
// with bucket_start the bucket's first epoch second (integer), count an
// integer, total and percentiles exact as above (all 0 for an empty
// bucket):
//   {"1m": [[1400000355, 0, 0, [0, 0, 0, 0, 0, 0, 0]], ...,
//   [1400000400, 2, 15.5, [3, ...]]], "10m": [...], "1h": [...], "1d": [...]}
//
// Render, TABA_FORMAT_METRICS (docs/prometheus.md, "Families by type"):
// "_total" and "_events_total", counters, the all-time sum and count;
// "_sum_in_window" and "_events_in_window", gauges labelled window (1m,
// 10m, 1h, 1d), each window's sum and count as of `now`; "", a summary of
// each window's seven percentiles (of its merged buckets, as in the JSON
// render) labelled window and quantile, none for an empty window, without
// _sum and _count. Sums as the exact form shows them (the shortest text
// within their resolution).
//
// Time. fold ends the windows at the latest of now and the newest event;
// merge at the latest of now and `from`'s windows. Windows only move
// forward; rotating by k buckets clears min(k, 4) slots; a jump past the
// window clears it. Events older than a window's oldest bucket are skipped
// for that window (they still count in the longer windows, and always in
// the all-time count and sum).
//
// Cost model. A bucket's sketch is allocated on its first value, so a fresh
// per-request delta is one small allocation plus one sketch per window it
// touches; merge walks only the (at most 4 per window) buckets of `from`
// inside the destination's window and their non-empty bins. On the ingest
// path the host calls fold_many instead (handler.h, section 2): each
// event's sketch bin is found once and its value sorted into the buckets
// a delta would hold, then added to the client's state and the aggregate,
// with no delta built or merged.
//
// Prunable: every window empty as of `now` (the all-time figures alone are
// not kept: the export reads their loss as a counter reset).
//
// Serialized form, version 4: varint window count (4); per window varint
// width, varint bucket count (4), zigzag varint newest bucket number,
// varint number of non-empty buckets, then per non-empty bucket, oldest
// first: varint age (newest - bucket number, < 4, strictly decreasing) and
// the DDSketch form 3 (ddsketch.h: the sum exact). Empty buckets are not
// stored. Then the all-time figures: varint count and the sum's
// fixed-point form (ExactSum::fixed, zigzag varint of up to 128 bits).
// Still read: version 3, the same without the all-time figures, and
// versions 1 and 2, which also have DDSketch forms 1 and 2 (form 2 stores
// the sum as a double). Those had no all-time figures: a state of version
// 1 to 3 starts them from what it holds, the count and the sum of its 1d
// window's buckets (values older than that window are not in them).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/byte_io.h"
#include "common/ddsketch.h"
#include "common/exact_sum.h"
#include "common/handler_adapter.h"
#include "common/metric_families.h"
#include "common/numeric_metrics.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

constexpr int kWindowCount = 4;
constexpr const char* kWindowLabels[kWindowCount] = {"1m", "10m", "1h", "1d"};
constexpr uint32_t kWindowWidths[kWindowCount] = {15, 150, 900, 21600};
constexpr uint32_t kBuckets = 4;

// A window of kBuckets buckets, each an optional sketch. Bucket b lives in
// slot b mod kBuckets; the slots of buckets b in [newest - 3, newest] hold
// exactly their data (or nothing), because rotation clears every slot it
// reuses.
class SketchWindow {
 public:
  SketchWindow(uint32_t width, int64_t now_second) : width_(width) {
    set_newest(floor_div(now_second, width));
  }

  uint32_t width() const { return width_; }
  int64_t newest() const { return newest_; }
  int64_t bucket_of(int64_t second) const {
    const int64_t offset = second - newest_start_;
    if (offset >= 0 && offset < width_) return newest_;  // hot: the current bucket
    return floor_div(second, width_);
  }
  static int64_t oldest_for(int64_t newest) { return newest - (kBuckets - 1); }

  // Moves the newest bucket forward to `bucket` (never back), clearing the
  // slots of the buckets that leave the window. O(min(steps, kBuckets)).
  void rotate_to(int64_t bucket) {
    if (bucket <= newest_) return;
    const int64_t steps = std::min<int64_t>(bucket - newest_, kBuckets);
    for (int64_t k = 1; k <= steps; ++k) slots_[slot_of(newest_ + k)].reset();
    set_newest(bucket);
  }

  // Adds value at epoch second `second`, rotating forward first when it is
  // past the newest bucket; skipped when older than the window. Throws
  // std::bad_alloc.
  void add(int64_t second, double value) {
    const int64_t b = bucket_of(second);
    if (b > newest_) rotate_to(b);
    if (b < oldest_for(newest_)) return;
    sketch_for(b).add(value);
  }

  // Adds `from`'s buckets after rotating to max(now_bucket, from.newest);
  // buckets of `from` older than the result are ignored. O(what `from`
  // holds). Throws std::bad_alloc.
  void merge_from(const SketchWindow& from, int64_t now_bucket) {
    rotate_to(std::max(now_bucket, from.newest_));
    for (int64_t b = std::max(oldest_for(from.newest_), oldest_for(newest_)); b <= from.newest_; ++b) {
      const DDSketch* s = from.slots_[slot_of(b)].get();
      if (s != nullptr && s->count() != 0) sketch_for(b).merge(*s);
    }
  }

  // The sketch of bucket b when the window holds one, else nullptr.
  const DDSketch* sketch_if_any(int64_t b) const {
    return b >= oldest_for(newest_) && b <= newest_ ? slots_[slot_of(b)].get() : nullptr;
  }

  // fold_many's part: adds the values a delta whose window ends at bucket
  // `newest` would hold (by_age[a]: the values of bucket newest - a), with
  // the effect of merge_from of that delta: rotates to `newest` first, and
  // buckets older than the result are skipped. Throws std::bad_alloc.
  void add_prepared(int64_t newest, const PreparedValues* by_age) {
    rotate_to(newest);
    const int64_t lowest = std::max(oldest_for(newest), oldest_for(newest_));
    for (uint32_t age = 0; age < kBuckets && newest - age >= lowest; ++age) {
      if (by_age[age].size() != 0) sketch_for(newest - age).add_prepared(by_age[age]);
    }
  }

  // Calls f(bucket_number, sketch or nullptr) for the kBuckets buckets of the
  // window as of max(as_of_bucket, newest), oldest first.
  template <class F>
  void for_each_bucket(int64_t as_of_bucket, F&& f) const {
    const int64_t newest = std::max(as_of_bucket, newest_);
    for (int64_t b = oldest_for(newest); b <= newest; ++b) {
      const DDSketch* s = b >= oldest_for(newest_) && b <= newest_ ? slots_[slot_of(b)].get() : nullptr;
      f(b, s != nullptr && s->count() != 0 ? s : nullptr);
    }
  }

  bool empty_as_of(int64_t as_of_bucket) const {
    bool empty = true;
    for_each_bucket(as_of_bucket, [&](int64_t, const DDSketch* s) { empty = empty && s == nullptr; });
    return empty;
  }

  void serialize(ByteWriter* w) const {
    w->put_svarint(newest_);
    uint64_t nonempty = 0;
    for_each_bucket(newest_, [&](int64_t, const DDSketch* s) { nonempty += s != nullptr; });
    w->put_varint(nonempty);
    for_each_bucket(newest_, [&](int64_t b, const DDSketch* s) {
      if (s == nullptr) return;
      w->put_varint(static_cast<uint64_t>(newest_ - b));
      s->serialize(w);
    });
  }

  // Reads the serialized form, with sketches of the given DDSketch form,
  // into this window, which must be empty.
  bool deserialize(ByteReader* r, uint32_t sketch_form, const char** why) {
    int64_t newest;
    const int64_t limit = kMaxEpochSecond / width_;  // keeps newest * width within the epoch-second range
    if (!r->get_svarint(&newest) || newest > limit || newest < -limit) {
      *why = "window end missing or out of range";
      return false;
    }
    set_newest(newest);
    uint64_t n;
    if (!r->get_varint_max(kBuckets, &n)) {
      *why = "window bucket count missing or above 4";
      return false;
    }
    uint64_t previous_age = kBuckets;
    for (uint64_t k = 0; k < n; ++k) {
      uint64_t age;
      if (!r->get_varint_max(kBuckets - 1, &age) || age >= previous_age) {
        *why = "window bucket age missing, out of range or out of order";
        return false;
      }
      previous_age = age;
      auto sketch = std::make_unique<DDSketch>();
      if (!sketch->deserialize(r, sketch_form, why)) return false;
      if (sketch->count() == 0) {
        *why = "window bucket stored empty";
        return false;
      }
      slots_[slot_of(newest - static_cast<int64_t>(age))] = std::move(sketch);
    }
    return true;
  }

 private:
  static uint32_t slot_of(int64_t bucket) {
    return static_cast<uint32_t>(static_cast<uint64_t>(bucket) % kBuckets);
  }
  void set_newest(int64_t bucket) {
    newest_ = bucket;
    newest_start_ = bucket * width_;
  }
  // The sketch of bucket b (within the window), created when absent.
  DDSketch& sketch_for(int64_t b) {
    std::unique_ptr<DDSketch>& slot = slots_[slot_of(b)];
    if (!slot) slot = std::make_unique<DDSketch>();
    return *slot;
  }

  uint32_t width_;
  int64_t newest_ = 0;        // bucket number of the newest bucket
  int64_t newest_start_ = 0;  // its first second
  std::unique_ptr<DDSketch> slots_[kBuckets];
};

struct PercentileGroupState {
  explicit PercentileGroupState(int64_t now_second)
      : windows{{kWindowWidths[0], now_second},
                {kWindowWidths[1], now_second},
                {kWindowWidths[2], now_second},
                {kWindowWidths[3], now_second}} {}

  SketchWindow windows[kWindowCount];
  uint64_t count = 0;  // every value folded (all time)
  ExactSum total;      // their sum
};

// The handler (common/handler_adapter.h makes its C-ABI table).
struct PercentileGroup {
  using State = PercentileGroupState;
  static constexpr char kPluginName[] = "percentile_group";
  static constexpr char kTypeName[] = "PercentileGroup";
  static constexpr char kDescription[] =
      "percentiles (p25..p99.9), count and total over 1m/10m/1h/1d windows";
  static constexpr uint32_t kStateVersion = 4;
  static constexpr uint32_t kFormats =
      format_bits({TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_METRICS});

  static State make(std::string_view, double now) { return PercentileGroupState(epoch_second(now)); }
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap) {
    return check_number_event(event, kTypeName, err, err_cap);
  }
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

void PercentileGroup::fold(PercentileGroupState& s, const taba_event* events, size_t n, double now) {
  // Windows end at the latest of now and the newest event.
  int64_t effective_now = epoch_second(now);
  for (size_t i = 0; i < n; ++i) effective_now = std::max(effective_now, epoch_second(events[i].timestamp));
  for (SketchWindow& w : s.windows) w.rotate_to(w.bucket_of(effective_now));
  // The all-time sum is taken in a local first, as a delta's would be
  // before its merge (the same bytes whichever way the events come).
  uint64_t count = 0;
  ExactSum::Fixed total = 0;
  for (size_t i = 0; i < n; ++i) {
    double value;
    if (!event_number(events[i], &value)) continue;
    ++count;
    total = ExactSum::add_saturating(total, ExactSum::fixed_of(value));
    const int64_t second = epoch_second(events[i].timestamp);
    for (SketchWindow& w : s.windows) w.add(second, value);
  }
  s.count = add_saturating(s.count, count);
  s.total.add_fixed(total);
}

void PercentileGroup::merge(PercentileGroupState& dst, const PercentileGroupState& src, double now) {
  const int64_t now_second = epoch_second(now);
  for (int w = 0; w < kWindowCount; ++w) {
    dst.windows[w].merge_from(src.windows[w], dst.windows[w].bucket_of(now_second));
  }
  dst.count = add_saturating(dst.count, src.count);
  dst.total.merge(src.total);
}

// fold_many: the effect of fold into a fresh delta and merge into each
// state. The delta's windows would end at the latest of now and the
// newest event, and hold each event in the bucket of its window's 4 it
// falls into (older events skipped); here each chunk of up to 64 events is
// sorted that way into PreparedValues per window and bucket (each value's
// bin found once), which SketchWindow::add_prepared adds as merge_from
// would add the delta's buckets. The chunk's values are also counted and
// summed into *count and *total (the delta's all-time figures, added to the
// states once every chunk is in).
void fold_chunk(StateSpan<PercentileGroupState> states, const taba_event* events, size_t n,
                const int64_t* newest, uint64_t* count, ExactSum::Fixed* total) {
  PreparedValues by_age[kWindowCount][kBuckets];
  // Per window, the first second and age of the previous event's bucket:
  // consecutive events mostly share it, which saves the division.
  int64_t start[kWindowCount];
  int64_t age[kWindowCount];
  for (int w = 0; w < kWindowCount; ++w) {
    start[w] = newest[w] * kWindowWidths[w];
    age[w] = 0;
  }
  for (size_t i = 0; i < n; ++i) {
    double value;
    if (!event_number(events[i], &value)) continue;
    const SketchValue v = DDSketch::prepare(value);
    ++*count;
    *total = ExactSum::add_saturating(*total, v.sum.fixed());
    const int64_t second = epoch_second(events[i].timestamp);
    for (int w = 0; w < kWindowCount; ++w) {
      if (second < start[w] || second - start[w] >= kWindowWidths[w]) {
        const int64_t b = floor_div(second, kWindowWidths[w]);
        start[w] = b * kWindowWidths[w];
        age[w] = newest[w] - b;
      }
      if (age[w] < kBuckets) by_age[w][age[w]].add(v);
    }
  }
  // The states are cold more often than not (tens of thousands of them):
  // ask for every sketch the adds will touch, then for the bins the values
  // fall in, so that their cache misses overlap instead of coming one
  // after the other. (The host's prefetch hint, a block ahead, asked for
  // the states' own lines.)
  for (size_t s = 0; s < states.size(); ++s) {
    for (int w = 0; w < kWindowCount; ++w) {
      for (uint32_t a = 0; a < kBuckets; ++a) {
        if (by_age[w][a].size() == 0) continue;
        if (const DDSketch* sketch = states[s].windows[w].sketch_if_any(newest[w] - a)) sketch->prefetch_fields();
      }
    }
  }
  for (size_t s = 0; s < states.size(); ++s) {
    for (int w = 0; w < kWindowCount; ++w) {
      for (uint32_t a = 0; a < kBuckets; ++a) {
        if (by_age[w][a].size() == 0) continue;
        if (const DDSketch* sketch = states[s].windows[w].sketch_if_any(newest[w] - a)) {
          sketch->prefetch_bins(by_age[w][a]);
        }
      }
    }
  }
  for (size_t s = 0; s < states.size(); ++s) {
    for (int w = 0; w < kWindowCount; ++w) states[s].windows[w].add_prepared(newest[w], by_age[w]);
  }
}

void PercentileGroup::fold_many(StateSpan<PercentileGroupState> states, std::string_view, const taba_event* events,
                                size_t n, double now) {
  // As fold: the windows end at the latest of now and the newest event.
  int64_t effective_now = epoch_second(now);
  for (size_t i = 0; i < n; ++i) effective_now = std::max(effective_now, epoch_second(events[i].timestamp));
  int64_t newest[kWindowCount];
  for (int w = 0; w < kWindowCount; ++w) newest[w] = floor_div(effective_now, kWindowWidths[w]);
  // Most events land in each window's newest bucket: ask for those sketches
  // now, so that they arrive while the first chunk's values are sorted.
  for (size_t s = 0; s < states.size(); ++s) {
    for (int w = 0; w < kWindowCount; ++w) {
      if (const DDSketch* sketch = states[s].windows[w].sketch_if_any(newest[w])) sketch->prefetch_fields();
    }
  }
  constexpr size_t kChunk = PreparedValues::kCapacity;
  uint64_t count = 0;
  ExactSum::Fixed total = 0;
  for (size_t at = 0; at < n; at += kChunk) {
    fold_chunk(states, events + at, std::min(kChunk, n - at), newest, &count, &total);
  }
  for (size_t s = 0; s < states.size(); ++s) {
    states[s].count = add_saturating(states[s].count, count);
    states[s].total.add_fixed(total);
  }
}

// The host's cache hint, one block ahead: the states' own lines (the
// windows and their bucket pointers), which fold_many reads first.
void PercentileGroup::prefetch(const taba_state* const* handles, size_t count, const taba_event*, size_t,
                               double) {
  const StateSpan<const PercentileGroupState> states(handles, count);
  for (size_t s = 0; s < states.size(); ++s) {
    const char* bytes = reinterpret_cast<const char*>(&states[s]);
    for (size_t at = 0; at < sizeof(PercentileGroupState); at += 64) __builtin_prefetch(bytes + at, 1);
  }
}

// [p25, p50, p75, p90, p95, p99, p99.9] as number2 (all 0 when empty).
void append_pct_list(const DDSketch* sketch, TextBuffer* t) {
  double values[7] = {};
  if (sketch != nullptr) rendered_percentiles(*sketch, values);
  t->raw("[");
  for (int j = 0; j < 7; ++j) {
    if (j != 0) t->raw(", ");
    t->number2(values[j]);
  }
  t->raw("]");
}

// The window's buckets as of now_second, merged (oldest first) into one
// sketch. Throws std::bad_alloc.
DDSketch merged_window(const SketchWindow& window, int64_t now_second) {
  DDSketch merged;
  window.for_each_bucket(window.bucket_of(now_second), [&](int64_t, const DDSketch* bucket) {
    if (bucket != nullptr) merged.merge(*bucket);
  });
  return merged;
}

void render_summary(const PercentileGroupState& s, int64_t now_second, TextBuffer* t) {
  t->raw("{");
  for (int w = 0; w < kWindowCount; ++w) {
    const DDSketch merged = merged_window(s.windows[w], now_second);
    t->raw(w == 0 ? "\"" : ", \"").raw(kWindowLabels[w]).raw("\": ");
    append_percentile_summary(merged, t);
  }
  t->raw("}");
}

void render_detailed(const PercentileGroupState& s, int64_t now_second, TextBuffer* t) {
  t->raw("{");
  for (int w = 0; w < kWindowCount; ++w) {
    const SketchWindow& window = s.windows[w];
    t->raw(w == 0 ? "\"" : ", \"").raw(kWindowLabels[w]).raw("\": [");
    bool first = true;
    window.for_each_bucket(window.bucket_of(now_second), [&](int64_t bucket, const DDSketch* sketch) {
      t->raw(first ? "[" : ", [").i64(bucket * window.width()).raw(", ");
      t->u64(sketch != nullptr ? sketch->count() : 0).raw(", ");
      t->number6(sketch != nullptr ? sketch->sum() : 0.0, sketch != nullptr ? sketch->sum_tolerance() : 0.0);
      t->raw(", ");
      append_pct_list(sketch, t);
      t->raw("]");
      first = false;
    });
    t->raw("]");
  }
  t->raw("}");
}

taba_status render_metrics(const PercentileGroupState& s, int64_t now_second, taba_output* out) {
  MetricFamilies families;
  add_all_time_counters(&families, s.count, s.total);
  DDSketch merged[kWindowCount];
  WindowFigures figures[kWindowCount];
  for (int w = 0; w < kWindowCount; ++w) {
    merged[w] = merged_window(s.windows[w], now_second);
    figures[w] = WindowFigures{kWindowLabels[w], merged[w].count(), merged[w].exact_sum()};
  }
  add_window_gauges(&families, figures, kWindowCount);
  open_percentiles(&families, "Percentiles of the values in the window.");
  for (int w = 0; w < kWindowCount; ++w) add_percentile_samples(&families, kWindowLabels[w], merged[w]);
  return families.flush_to(out);
}

taba_status PercentileGroup::render(const PercentileGroupState& s, uint32_t format, double now,
                                    taba_output* out) {
  if (format == TABA_FORMAT_METRICS) return render_metrics(s, epoch_second(now), out);
  TextBuffer text(numbers_for(format));
  if (format == TABA_FORMAT_JSON_DETAILED) {
    render_detailed(s, epoch_second(now), &text);
  } else {
    render_summary(s, epoch_second(now), &text);
  }
  return text.flush_to(out);
}

bool PercentileGroup::prunable(const PercentileGroupState& s, double now) {
  const int64_t now_second = epoch_second(now);
  for (const SketchWindow& w : s.windows) {
    if (!w.empty_as_of(w.bucket_of(now_second))) return false;
  }
  return true;
}

void PercentileGroup::write(const PercentileGroupState& s, ByteWriter* w) {
  w->put_varint(kWindowCount);
  for (const SketchWindow& window : s.windows) {
    w->put_varint(window.width());
    w->put_varint(kBuckets);
    window.serialize(w);
  }
  w->put_varint(s.count);
  w->put_svarint128(s.total.fixed());
}

// The all-time figures a state of version 1 to 3 starts from: the count
// and sum of its 1d window's buckets.
void start_all_time_from_day(PercentileGroupState* s) {
  const SketchWindow& day = s->windows[kWindowCount - 1];
  day.for_each_bucket(day.newest(), [&](int64_t, const DDSketch* bucket) {
    if (bucket == nullptr) return;
    s->count = add_saturating(s->count, bucket->count());
    s->total.merge(bucket->exact_sum());
  });
}

bool PercentileGroup::read(ByteReader* r, uint32_t version, PercentileGroupState* s, const char** why) {
  uint64_t windows;
  if (!r->get_varint(&windows) || windows != kWindowCount) *why = "window count missing or not 4";
  for (int i = 0; i < kWindowCount && *why == nullptr; ++i) {
    uint64_t width;
    uint64_t buckets;
    if (!r->get_varint(&width) || !r->get_varint(&buckets) || width != kWindowWidths[i] ||
        buckets != kBuckets) {
      *why = "window shape missing or unexpected";
    } else if (!s->windows[i].deserialize(r, version <= 2 ? version : DDSketch::kForm, why) &&
               *why == nullptr) {
      *why = "malformed window";
    }
  }
  if (*why == nullptr && version <= 3) {
    start_all_time_from_day(s);
  } else if (*why == nullptr) {
    ExactSum::Fixed total;
    if (!r->get_varint(&s->count) || !r->get_svarint128(&total)) {
      *why = "all-time count or sum missing";
    } else {
      s->total = ExactSum::from_fixed(total);
    }
  }
  if (*why == nullptr && !r->at_end()) *why = "trailing bytes";
  return *why == nullptr;
}

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::PercentileGroup>(host);
}
