// A sliding time window of equal-width buckets, each holding an event count
// and a sum of values: the building block of CounterGroup's 1m/10m/1h/1d.
//
// Time is counted in bucket numbers: bucket b covers the epoch seconds
// [b * width, (b + 1) * width), i.e. b = floor(second / width) (floor, also
// for negative stamps). The window ends at its newest bucket and holds the
// `size` buckets newest - size + 1 .. newest. Bucket b lives in slot
// b mod size of a ring, so advancing the window never moves data.
//
// Lazy zeroing. Only the slots of buckets in the "valid range" [lo, hi]
// hold meaningful data; every other bucket is empty by definition and its
// slot may hold garbage. Consequences:
//   - rotation (advancing `newest`) is O(1): it just trims the valid range
//     to the new window; a jump longer than the window empties it;
//   - a write zeroes the slots between the valid range and the bucket it
//     touches (each slot at most once per pass of the window), so writes
//     cost O(1) amortized and O(elapsed buckets) at worst;
//   - a new window needs no zeroing at all (cheap per-request deltas);
//   - merging a window into another costs O(valid range of the source):
//     a delta whose events fell in one bucket merges in O(1).
//
// Counts are 64-bit and sums are ExactSums (exact_sum.h: each value rounded
// once to 2^-32 and added as an integer, so a bucket's sum is the same
// whatever the order of its adds and merges). Both are stored as low words
// in the caller's storage, a 32-bit count and a 64-bit fixed-point sum
// (|sum| < 2^31) per bucket, plus high words allocated for the whole window
// only when some bucket's count passes 2^32 - 1 or its sum leaves the 64-bit
// range. That keeps a CounterGroup state within its memory budget: 12 bytes
// per bucket, as when sums were doubles.
#ifndef TABA_PLUGINS_COMMON_WINDOW_H
#define TABA_PLUGINS_COMMON_WINDOW_H

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/byte_io.h"
#include "common/exact_sum.h"
#include "common/plugin_support.h"

namespace taba::builtin {

class BucketWindow {
 public:
  struct Totals {
    uint64_t count = 0;
    ExactSum sum;
    // How far sum may be from the exact sum of the values.
    double sum_tolerance() const { return ExactSum::tolerance(count); }
  };

  // The serialized form serialize() writes (see serialize()).
  static constexpr uint32_t kForm = 2;

  // width: seconds per bucket; size: number of buckets. `sums` and `counts`
  // are caller storage of `size` elements, uninitialized, that must outlive
  // the window. The window starts empty with its newest bucket holding
  // now_second.
  BucketWindow(uint32_t width, uint32_t size, int64_t* sums, uint32_t* counts, int64_t now_second);
  BucketWindow(const BucketWindow&) = delete;
  BucketWindow& operator=(const BucketWindow&) = delete;

  uint32_t width() const { return width_; }
  uint32_t size() const { return size_; }
  int64_t bucket_of(int64_t second) const {
    const int64_t offset = second - newest_start_;
    if (offset >= 0 && offset < width_) return newest_;  // hot: the current bucket
    return width_ == 1 ? second : floor_div_by(second, width_, inv_width_);
  }
  // Bucket number of the newest bucket.
  int64_t newest() const { return newest_; }
  // Bucket number of the oldest bucket of the window when it ends at `newest`.
  int64_t oldest_for(int64_t newest) const { return newest - (size_ - 1); }

  // Advances the newest bucket to `bucket` when that is later; never moves
  // back. O(1).
  void rotate_to(int64_t bucket);

  // Adds count events with the given sum at epoch second `second`. Rotates
  // forward first when the second is past the newest bucket. Returns false
  // (and changes nothing) when it is older than the window. Throws
  // std::bad_alloc only when a count passes 2^32 - 1 or a sum leaves the
  // 64-bit range for the first time and the high words cannot be allocated.
  bool add(int64_t second, uint64_t count, ExactSum sum);

  // Adds count events with the given sum to bucket number b, rotating
  // forward first when b is past the newest bucket. Returns false (and
  // changes nothing) when b is older than the window. Same failure rule as
  // add().
  bool add_to(int64_t b, uint64_t count, ExactSum sum) {
    if (b > newest_) rotate_to(b);
    if (b < oldest_for(newest_)) return false;
    add_to_bucket(b, count, sum.fixed());
    return true;
  }

  // Cache hints: prefetch_self() for the window's own fields, then (once
  // they have arrived) prefetch_bucket(b) for the slot bucket b will use;
  // no effect on the contents.
  void prefetch_self() const {
    __builtin_prefetch(this, 1);
    __builtin_prefetch(&hi_, 1);  // the fields may straddle two lines
  }
  void prefetch_bucket(int64_t b) const {
    const int64_t ahead = b - newest_;
    if (ahead >= size_ || ahead <= -static_cast<int64_t>(size_)) return;
    int64_t slot = static_cast<int64_t>(newest_slot_) + ahead;
    if (slot >= size_) slot -= size_;
    if (slot < 0) slot += size_;
    __builtin_prefetch(sums_ + slot, 1);
    __builtin_prefetch(counts_ + slot, 1);
  }

  // Adds every bucket of `from` (same width and size) after rotating this
  // window to max(now_bucket, from's newest); buckets of `from` older than
  // the result are ignored. `from` is not modified. O(from's valid range).
  void merge_from(const BucketWindow& from, int64_t now_bucket);

  // Count and sum over the window as of max(as_of_bucket, newest), without
  // modifying it.
  Totals totals(int64_t as_of_bucket) const;
  // Whether no event is in the window as of max(as_of_bucket, newest).
  bool empty_as_of(int64_t as_of_bucket) const;

  // Calls f(bucket_number, count, sum (an ExactSum)) for each of the `size` buckets of the
  // window as of max(as_of_bucket, newest), oldest first, empty ones included.
  template <class F>
  void for_each_bucket(int64_t as_of_bucket, F&& f) const {
    const int64_t newest = as_of_bucket > newest_ ? as_of_bucket : newest_;
    for (int64_t b = oldest_for(newest); b <= newest; ++b) {
      if (in_valid_range(b)) {
        const uint32_t slot = slot_of(b);
        f(b, count_at(slot), ExactSum::from_fixed(sum_at(slot)));
      } else {
        f(b, uint64_t{0}, ExactSum());
      }
    }
  }

  // Count and sum of one bucket (0 when it is outside the window).
  Totals bucket(int64_t bucket_number) const;

  // Form 2: newest (zigzag varint), number of non-empty buckets, then per
  // non-empty bucket, oldest first: varint (offset << 2 | sum kind), varint
  // count, and the sum by kind (0: equals the count, nothing stored; 1: an
  // integer, zigzag varint; 2: the exact fixed-point sum, value * 2^32,
  // zigzag varint of up to 128 bits). The offset of the first bucket is its
  // age (newest - bucket), of the others the gap to the previous one.
  // Form 1 (written before sums were exact) is the same with kind 2 a raw
  // double (8 bytes) and integers below 2^53; its sums are read as
  // ExactSum::of(the double).
  void serialize(ByteWriter* w) const;
  // Reads form 1 or 2 into this window, which must be empty; validates
  // every number. false with a reason on malformed input.
  bool deserialize(ByteReader* r, uint32_t form, const char** why);

  // Bytes held outside the caller storage and the object (the high words).
  size_t heap_bytes() const { return high_ ? size_t{size_} * sizeof(HighWords) : 0; }

 private:
  bool empty() const { return lo_ > hi_; }
  bool in_valid_range(int64_t b) const { return b >= lo_ && b <= hi_; }
  // Slot of bucket b, which must be within the window: no division.
  uint32_t slot_of(int64_t b) const {
    const auto age = static_cast<uint32_t>(newest_ - b);
    return newest_slot_ >= age ? newest_slot_ - age : newest_slot_ + size_ - age;
  }
  using Fixed = ExactSum::Fixed;  // a sum in fixed point (ExactSum::fixed_of)

  // The high words of one bucket: bits 64..127 of its fixed-point sum and
  // bits 32..63 of its count.
  struct HighWords {
    int64_t sum;
    uint32_t count;
  };

  uint64_t count_at(uint32_t slot) const {
    return counts_[slot] | (high_ ? uint64_t{high_[slot].count} << 32 : 0);
  }
  Fixed sum_at(uint32_t slot) const {
    if (!high_) return sums_[slot];
    using U = unsigned __int128;
    return static_cast<Fixed>(static_cast<U>(high_[slot].sum) << 64 | static_cast<uint64_t>(sums_[slot]));
  }
  void set_newest(int64_t bucket);
  void zero_slots(int64_t first, int64_t last);
  // Adds to bucket b, which must be within the window.
  void add_to_bucket(int64_t b, uint64_t count, Fixed sum) {
    extend_valid_range(b);
    const uint32_t slot = slot_of(b);
    if (!high_) {  // the common case: both stay within their low words
      const uint64_t c = uint64_t{counts_[slot]} + count;
      int64_t s;
      if (c >= count && c <= UINT32_MAX && sum == static_cast<int64_t>(sum) &&
          !__builtin_add_overflow(sums_[slot], static_cast<int64_t>(sum), &s)) {
        counts_[slot] = static_cast<uint32_t>(c);
        sums_[slot] = s;
        return;
      }
    }
    add_wide(slot, count, sum);
  }
  // Makes bucket b (within the window) part of the valid range, zeroing
  // the slots that join it.
  void extend_valid_range(int64_t b) {
    if (b >= lo_ && b <= hi_) return;
    extend_valid_range_slow(b);
  }
  void extend_valid_range_slow(int64_t b);
  // add_to_bucket with the high words (allocated here when missing).
  void add_wide(uint32_t slot, uint64_t count, Fixed sum);

  uint32_t width_;
  uint32_t size_;
  double inv_width_;  // 1.0 / width_ and 1.0 / size_, for floor_div_by
  double inv_size_;
  int64_t* sums_;                      // low 64 bits of each fixed-point sum
  uint32_t* counts_;                   // low 32 bits of each count
  std::unique_ptr<HighWords[]> high_;  // the high words, once needed
  int64_t newest_;                     // bucket number of the newest bucket
  int64_t newest_start_;               // its first second: newest_ * width_
  uint32_t newest_slot_;               // its slot: newest_ mod size_
  int64_t lo_ = 0;                     // valid range [lo_, hi_]; empty when lo_ > hi_
  int64_t hi_ = -1;
};

// A BucketWindow that carries its own storage for N buckets.
template <uint32_t N>
class FixedBucketWindow : public BucketWindow {
 public:
  FixedBucketWindow(uint32_t width, int64_t now_second)
      : BucketWindow(width, N, sums_, counts_, now_second) {}

 private:
  int64_t sums_[N];
  uint32_t counts_[N];
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_WINDOW_H
