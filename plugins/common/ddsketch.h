// DDSketch: a mergeable percentile sketch with relative-error guarantees
// (Masson, Rim, Lee, "DDSketch", PVLDB 12(12), 2019).
//
// Mapping. With alpha = 0.01 and gamma = (1 + alpha) / (1 - alpha), a
// magnitude m >= kMinMagnitude falls in bin i = ceil(log_gamma(m)), i.e.
// gamma^(i-1) < m <= gamma^i, and the bin stands for 2 gamma^i / (gamma + 1),
// which is within alpha of every magnitude in the bin. Positive and negative
// values have separate bin stores (by magnitude); values with magnitude
// below kMinMagnitude are counted as zero. The index is computed exactly as
// it always was, without a logarithm per value (sketch_index.h).
//
// Exactness. Bins hold integer counts only, so merging (bin-wise addition)
// is exact, commutative and associative: any merge order of any split of
// the data gives bit-identical bins, count, min and max. The sum is an
// ExactSum (fixed point, 2^-32 resolution per value), so it too is the same
// for every order; form 3 stores it exactly (forms 1 and 2 stored its
// correctly rounded double, which loses bits once the sum passes 2^21, so a
// delta sent as form 2 could change an aggregate's total).
//
// Bounded size. Each store keeps at most kMaxBinsPerStore consecutive bin
// indexes; when a value would widen the range further, the lowest bins are
// collapsed into the lowest kept one (for the negative store: the values
// closest to zero). The result depends only on the data, not on the order
// of adds and merges. With 2048 bins of 2 % each a store spans ~17.8
// decades before anything collapses.
//
// Few values exactly. Besides the bins a sketch keeps its exact min and max
// and, while it holds at most kExactCount (5) values, every value: the ones
// between min and max, sorted. Which values it keeps depends only on the
// data (a merge of two sketches holding 5 values or fewer in all merges
// their values), so this is as order-free as the bins (-0 is stored as 0
// for that). Why 5: a window that holds one value every 15 s (4 or 5 in a
// 1m window) then shows every percentile exactly, and the three doubles
// partly fill padding, so a sketch grows only from 160 to 176 bytes (about
// +200 bytes for a PercentileGroup state, whose 16 buckets are sketches);
// each further value would cost 8 bytes more per sketch.
//
// Percentiles. quantile(num, den) is the nearest-rank value: the value of
// rank ceil(q * count) (1-based, computed exactly in integers) in sorted
// order, with q = 0 giving min. Exact when the sketch holds every value
// (count <= 5) and for rank 1 (min) and rank count (max); otherwise the
// bin's representative value clamped to [min, max], within alpha
// (relative) of the exact nearest-rank value of the data unless that value
// sits in collapsed bins. So a reported percentile never lies outside the
// data's [min, max], and constant data reads exactly.
//
// Serialized forms. Form 1 has no exact values but min and max; a sketch
// read from it with 3 to 5 values takes its bins' values (clamped to [min,
// max]) for the ones between, which is what form 1 rendered. Form 2 adds
// them. Form 3 stores the sum exactly.
#ifndef TABA_PLUGINS_COMMON_DDSKETCH_H
#define TABA_PLUGINS_COMMON_DDSKETCH_H

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "common/byte_io.h"
#include "common/count_array.h"
#include "common/exact_sum.h"
#include "common/sketch_index.h"
#include "common/text.h"

namespace taba::builtin {

// Counts per bin index over a dense range of indexes [lo, hi], stored with
// an offset inside a CountArray that has some slack on either side, so a
// steady stream of adds allocates nothing.
class BinStore {
 public:
  static constexpr int32_t kMaxBins = 2048;
  // Bin indexes of DDSketch::kMinMagnitude and of the largest double lie
  // inside these; deserialize refuses anything outside.
  static constexpr int32_t kMinIndex = SketchIndex::kMinIndex;
  static constexpr int32_t kMaxIndex = SketchIndex::kMaxIndex;

  bool empty() const { return total_ == 0; }
  uint64_t total() const { return total_; }
  int32_t lo() const { return lo_; }  // lowest non-empty bin (when !empty)
  int32_t hi() const { return hi_; }  // highest non-empty bin (when !empty)
  uint64_t at(int32_t index) const {
    return empty() || index < lo_ || index > hi_ ? 0 : counts_.get(static_cast<uint32_t>(index - offset_));
  }

  // Adds count to bin index, collapsing as described above. Throws
  // std::bad_alloc; the store then holds its old bins or the old bins
  // collapsed, always consistent with total().
  void add(int32_t index, uint64_t count) {
    if (total_ != 0 && index >= lo_ && index <= hi_) {  // hot path: a bin in use
      counts_.add(static_cast<uint32_t>(index - offset_), count);
      total_ = total_ + count < total_ ? UINT64_MAX : total_ + count;
      return;
    }
    add_outside(index, count);
  }
  // Hints the cache to fetch bin index when it is allocated already.
  void prefetch(int32_t index) const {
    const int64_t at = int64_t{index} - offset_;
    if (at >= 0 && at < counts_.size()) counts_.prefetch(static_cast<uint32_t>(at));
  }
  // Hints the cache to fetch the bins in [lo, hi], at most max_lines lines.
  void prefetch_used(int max_lines) const {
    if (empty()) return;
    const size_t width = counts_.width();
    const size_t bytes = static_cast<size_t>(hi_ - lo_ + 1) * width;
    const size_t step = 64 / width;
    const size_t lines = std::min<size_t>((bytes + 63) / 64 + 1, static_cast<size_t>(max_lines));
    for (size_t k = 0; k < lines; ++k) prefetch(lo_ + static_cast<int32_t>(k * step));
  }
  // Hints the cache to fetch this store's own fields.
  void prefetch_self() const { __builtin_prefetch(this, 1); }

  // Adds every bin of other. Costs O(other's non-empty bins) plus a scan of
  // other's range 8 bytes at a time, plus a reallocation when this store's
  // range must grow.
  void merge(const BinStore& other);

  bool operator==(const BinStore& other) const;
  size_t heap_bytes() const { return counts_.heap_bytes(); }

  // Sparse form: number of non-empty bins, then the first index (zigzag
  // varint) and count, then (gap to the previous index, count) pairs.
  void serialize(ByteWriter* w) const;
  // Reads the sparse form into this (empty) store; false with a reason on
  // malformed input (indexes out of range, span above the cap, zero counts,
  // overflowing totals).
  bool deserialize(ByteReader* r, const char** why);

 private:
  // add() for a bin outside [lo, hi] or into an empty store.
  void add_outside(int32_t index, uint64_t count);
  // Makes [lo, hi] addressable, keeping the current bins.
  void reserve_range(int32_t lo, int32_t hi);
  // Moves every bin below floor into bin floor.
  void collapse_below(int32_t floor);

  CountArray counts_;
  int32_t offset_ = 0;  // bin index of counts_[0]
  int32_t lo_ = 0;
  int32_t hi_ = -1;
  uint64_t total_ = 0;
};

// While a sketch holds at most this many values it keeps them all exactly.
inline constexpr uint32_t kSketchExactCount = 5;

// One finite value made ready for sketches (DDSketch::prepare): -0 spelled
// 0, its bin found and its fixed-point sum term computed, once however many
// sketches it goes into.
struct SketchValue {
  enum Kind : int32_t { kZero, kPositive, kNegative };
  double value = 0.0;
  int32_t bin = 0;  // kPositive, kNegative: the bin of the magnitude
  Kind kind = kZero;
  ExactSum sum;  // ExactSum::of(value)
};

// The values of a few events prepared once for adding into several
// sketches (the fold_many hook): each value's bin is found once.
class PreparedValues {
 public:
  static constexpr size_t kCapacity = 64;

  void clear() { *this = PreparedValues(); }
  bool full() const { return count_ == kCapacity; }
  size_t size() const { return count_; }
  // Adds a finite value; the caller checks full() first.
  void add(double value);
  // Adds a prepared value; the caller checks full() first.
  void add(const SketchValue& v);

 private:
  friend class DDSketch;
  int32_t positive_[kCapacity];  // bins of the positive values, then
  int32_t negative_[kCapacity];  // of the negative ones (by magnitude)
  uint32_t positives_ = 0;
  uint32_t negatives_ = 0;
  uint32_t zeros_ = 0;
  uint32_t count_ = 0;
  ExactSum sum_;
  double min_ = 0.0;
  double max_ = 0.0;
  double first_[kSketchExactCount] = {};  // the first values, as given
};

class DDSketch {
 public:
  static constexpr double kRelativeAccuracy = SketchIndex::kRelativeAccuracy;
  static constexpr int32_t kMaxBinsPerStore = BinStore::kMaxBins;
  static constexpr double kMinMagnitude = SketchIndex::kMinMagnitude;
  static constexpr uint32_t kExactCount = kSketchExactCount;
  // The serialized form serialize() writes (see the header comment).
  static constexpr uint32_t kForm = 3;

  // Bin of a magnitude >= kMinMagnitude.
  static int32_t index_of(double magnitude) { return SketchIndex::of(magnitude); }
  // A finite value made ready for PreparedValues.
  static SketchValue prepare(double value);
  // Representative (positive) value of bin index.
  static double bin_value(int32_t index);
  // ceil(count * num / den), exactly, for 0 <= num <= den, den > 0.
  static uint64_t nearest_rank(uint64_t count, uint32_t num, uint32_t den);

  // Adds a finite value. Throws std::bad_alloc (nothing is then added).
  void add(double value);
  // Adds every value of other. Throws std::bad_alloc.
  void merge(const DDSketch& other);
  // Cache hints for add_prepared: prefetch_fields() first, then (once those
  // have had time to arrive) prefetch_used_bins().
  void prefetch_fields() const {
    __builtin_prefetch(this, 1);
    positive_.prefetch_self();
  }
  // Prefetches the bins in use, at most max_lines cache lines per store.
  void prefetch_used_bins(int max_lines) const {
    positive_.prefetch_used(max_lines);
    negative_.prefetch_used(max_lines);
  }
  // Prefetches the bins the prepared values will be added to (those
  // allocated already).
  void prefetch_bins(const PreparedValues& values) const;
  // Adds the prepared values: the same as add() of each. Throws
  // std::bad_alloc (some values may then be added).
  void add_prepared(const PreparedValues& values);

  uint64_t count() const { return zero_count_ + positive_.total() + negative_.total(); }
  double sum() const { return sum_.value(); }
  // The sum itself, to add to another exact sum.
  const ExactSum& exact_sum() const { return sum_; }
  // How far sum() may be from the exact sum of the values: each was
  // rounded once to ExactSum's resolution.
  double sum_tolerance() const { return static_cast<double>(count()) * ExactSum::kResolution; }
  double min() const { return count() == 0 ? 0.0 : min_; }
  double max() const { return count() == 0 ? 0.0 : max_; }

  // Nearest-rank q-quantile for q = num/den; 0 when empty.
  double quantile(uint32_t num, uint32_t den) const;
  // The value of 1-based rank in sorted order (rank 0 reads as 1; ranks
  // above count give max); 0 when empty.
  double value_at_rank(uint64_t rank) const;
  // Values of several ranks, given in ascending order, in one pass.
  void values_at_ranks(const uint64_t* ranks, size_t n, double* out) const;

  // Same bins, zero count, min, max and exact values (the sum is not
  // compared).
  bool same_distribution(const DDSketch& other) const;
  // Bytes held outside the object itself.
  size_t heap_bytes() const { return positive_.heap_bytes() + negative_.heap_bytes(); }

  // Form 3: zero count, the sum's ExactSum fixed-point form (zigzag varint
  // of up to 128 bits), positive store, negative store, then when
  // count > 0 min and max, and when 3 <= count <= kExactCount the count - 2
  // values between them, ascending (doubles).
  void serialize(ByteWriter* w) const;
  // Reads a sketch of the given form (1, 2 or 3; forms 1 and 2 store the
  // sum as a double) into this (empty) sketch; false with a reason on
  // malformed input.
  bool deserialize(ByteReader* r, uint32_t form, const char** why);

  const BinStore& positive() const { return positive_; }
  const BinStore& negative() const { return negative_; }
  uint64_t zero_count() const { return zero_count_; }

 private:
  // Writes the values, ascending, to out while count() <= kExactCount;
  // returns count().
  uint64_t exact_values(double* out) const;
  // How many of between_ hold values: count() - 2 while 3 <= count() <=
  // kExactCount, else 0.
  uint64_t between_count() const {
    const uint64_t n = count();
    return n > 2 && n <= kExactCount ? n - 2 : 0;
  }
  // Sets min, max and the values between from n >= 1 sorted values.
  void set_exact_values(const double* sorted, uint64_t n);
  // Percentiles from the bins alone (representatives clamped to [min, max]).
  void bin_values_at_ranks(const uint64_t* ranks, size_t n, double* out) const;

  BinStore positive_;
  BinStore negative_;
  uint64_t zero_count_ = 0;
  double min_ = 0.0;  // meaningful only when count() > 0
  ExactSum sum_;
  double max_ = 0.0;
  // The count() - 2 values between min and max, ascending; meaningful only
  // while 3 <= count() <= kExactCount.
  double between_[kExactCount - 2] = {};
};

// The seven percentiles every percentile render shows: p25, p50, p75, p90,
// p95, p99, p99.9, as per-mille fractions.
inline constexpr uint32_t kRenderedPerMille[7] = {250, 500, 750, 900, 950, 990, 999};

// The seven rendered percentiles of the sketch, nearest rank, in the
// order of kRenderedPerMille (all 0 when it is empty).
void rendered_percentiles(const DDSketch& sketch, double out[7]);

// Appends {"count": %llu, "total": %f, "pct": [%.2f, ... 7 values]} for the
// sketch (all seven 0.00 when it is empty); total and percentiles in the
// text's number form (number6, number2: exact in the exact formats).
void append_percentile_summary(const DDSketch& sketch, TextBuffer* text);

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_DDSKETCH_H
