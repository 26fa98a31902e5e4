// The DDSketch bin of a magnitude (ddsketch.h), found without a logarithm.
//
// The bins are whatever the formula DDSketch has always used gives:
// i = ceil(log(m) * (1 / log(gamma))) with the C library's log, rounding
// included. Stored states, snapshots and Redis hold these indexes, so the
// mapping must stay exactly that function; by_log() is it. Its log() was
// the largest part of adding a value to a sketch (~15 ns), so of() finds
// the same index with two table lookups (~2 ns):
//
//   - lower(i), the smallest double whose by_log() index is i, for every
//     bin of the table's range, found once per process (on first use,
//     ~2 ms) by bisection over the doubles with by_log() itself;
//   - per slice of the doubles (one binary exponent and the top 6 bits of
//     the mantissa: a slice spans a ratio of at most 1 + 1/64, less than
//     a bin's gamma = 1.0202), the bin of the slice's first double. A
//     slice therefore holds at most one bin boundary, and of(m) is the
//     slice's bin, plus one when m >= lower(that bin + 1).
//
// This equals by_log(m) for every m as long as by_log is non-decreasing in
// m. The libm log is within an ulp or two of ln, so by_log could only step
// back within a few ulps of ln(m) around a boundary (|ln m| < 45 in the
// table's range: within a few hundred ulps of m); the unit test
// (tests/unit/sketch_index_test.cpp) compares of() with by_log() on every
// double within 1024 ulps of every boundary, on random doubles over the
// whole range, and on the values the sketch treats as zero.
//
// The table covers magnitudes from kMinMagnitude up to 2^64 (3,255 bins and
// 6,016 slices: 38 KB); outside that range (huge magnitudes, and anything a
// sketch would not bin) of() evaluates by_log().
#ifndef TABA_PLUGINS_COMMON_SKETCH_INDEX_H
#define TABA_PLUGINS_COMMON_SKETCH_INDEX_H

#include <bit>
#include <cstdint>

namespace taba::builtin {

class SketchIndex {
 private:
  // Slices: binary exponents kBottomExponent (that of kMinMagnitude) to
  // kTopExponent (the last below kTableEnd), 2^kSliceBits slices each.
  static constexpr int kSliceBits = 6;
  static constexpr int kBottomExponent = -30;
  static constexpr int kTopExponent = 63;
  // The top 12 + kSliceBits bits of the first slice's doubles.
  static constexpr uint64_t kFirstSlice = static_cast<uint64_t>(1023 + kBottomExponent) << kSliceBits;
  // Room for every bin from by_log(kMinMagnitude) to by_log(2^64).
  static constexpr int32_t kCapacity = 3300;

 public:
  // DDSketch's relative accuracy (alpha) and gamma = (1 + alpha) / (1 - alpha).
  static constexpr double kRelativeAccuracy = 0.01;
  static constexpr double kGamma = (1.0 + kRelativeAccuracy) / (1.0 - kRelativeAccuracy);
  // Magnitudes below this are counted as zero, not binned.
  static constexpr double kMinMagnitude = 1e-9;
  // The index range by_log() clamps to (every magnitude from kMinMagnitude
  // to the largest double lies inside it).
  static constexpr int32_t kMinIndex = -1100;
  static constexpr int32_t kMaxIndex = 36000;
  // The table covers the magnitudes below this (2^64).
  static constexpr double kTableEnd = 18446744073709551616.0;

  // log(gamma), as the formula uses it (bin_value too).
  static double ln_gamma();
  // The defining formula: ceil(log(m) * (1 / log(gamma))), clamped to
  // [kMinIndex, kMaxIndex].
  static int32_t by_log(double magnitude);

  // by_log(magnitude), from the table when it covers the magnitude.
  static int32_t of(double magnitude) { return table().find(magnitude); }

  // The table (built on first use; thread-safe).
  static const SketchIndex& table() {
    static const SketchIndex built;
    return built;
  }

  // The table's bins are first_index() .. last_index(); lower(i) is the
  // smallest double whose index is i, for first_index() < i <=
  // last_index() + 1 (the last one is where the table ends).
  int32_t first_index() const { return first_; }
  int32_t last_index() const { return first_ + count_ - 1; }
  double lower(int32_t index) const { return lower_[index - first_]; }
  // The slices: slice_start(j) is the first double of slice j, and
  // slice_bin(j) the bin of that double (at least first_index()).
  static constexpr int kSlices = (kTopExponent - kBottomExponent + 1) << kSliceBits;
  static double slice_start(int j) {
    return std::bit_cast<double>((kFirstSlice + static_cast<uint64_t>(j)) << (52 - kSliceBits));
  }
  int32_t slice_bin(int j) const { return first_ + slice_[j]; }

  int32_t find(double magnitude) const {
    if (!(magnitude >= kMinMagnitude && magnitude < kTableEnd)) return by_log(magnitude);
    int32_t k = slice_[(std::bit_cast<uint64_t>(magnitude) >> (52 - kSliceBits)) - kFirstSlice];
    k += magnitude >= lower_[k + 1];
    return first_ + k;
  }

 private:
  SketchIndex();

  int32_t first_ = 0;  // by_log(kMinMagnitude)
  int32_t count_ = 0;  // bins in the table: first_ .. first_ + count_ - 1
  // lower_[k]: smallest double of bin first_ + k (lower_[0] = 0, below
  // every magnitude looked up); lower_[count_]: where the table ends.
  double lower_[kCapacity + 1] = {};
  // slice_[j]: bin of slice j's first double, minus first_ (0 when below).
  int16_t slice_[kSlices] = {};
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_SKETCH_INDEX_H
