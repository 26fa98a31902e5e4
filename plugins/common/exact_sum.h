// ExactSum: a sum of doubles whose result does not depend on the order of
// additions, so merging states in any order (and folding events at the edge
// or at the fe) gives bit-identical totals.
//
// Each value is rounded once to a fixed-point number with 32 fractional bits
// (resolution 2^-32, about 2.3e-10) and added as a 128-bit integer; integer
// addition is exact, associative and commutative. Values with magnitude
// beyond 2^90 (about 1.2e27) are clamped to it, and a sum that would leave the
// 128-bit range saturates; both are far outside instrumentation data.
//
// The fixed-point form itself (fixed_of, fixed, from_fixed) is public for
// code that stores many sums compactly (BucketWindow keeps a 64-bit low word
// per bucket, window.h) and for serialized forms, which store it exactly.
// A sum of n values is within n * kResolution / 2 of their exact sum, so a
// render shows it to that resolution (tolerance(n), TextBuffer::number2 and
// number6 with a tolerance): three values of 0.001 show 0.003.
//
// The sum is kept as two 64-bit words rather than an __int128 member, so an
// ExactSum needs 8-byte alignment only (a TotalsCounter state is 24 bytes,
// not 32).
#ifndef TABA_PLUGINS_COMMON_EXACT_SUM_H
#define TABA_PLUGINS_COMMON_EXACT_SUM_H

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace taba::builtin {

class ExactSum {
 public:
  using Fixed = __int128;

  ExactSum() = default;
  // A sum holding just `value` (e.g. read back from its double form).
  static ExactSum of(double value) { return from_fixed(fixed_of(value)); }
  // The sum whose fixed-point form is f (as fixed() returned it).
  static ExactSum from_fixed(Fixed f) {
    ExactSum s;
    s.set(f);
    return s;
  }

  void add(double value) { add_fixed(fixed_of(value)); }
  void merge(const ExactSum& other) { add_fixed(other.fixed()); }
  // Adds a fixed-point number (a fixed_of(), or a sum of them), saturating.
  void add_fixed(Fixed x) { set(add_saturating(fixed(), x)); }

  // The sum, correctly rounded to a double.
  double value() const { return to_double(fixed()); }
  // The sum in fixed point: value * 2^32, an integer.
  Fixed fixed() const {
    return static_cast<Fixed>(static_cast<unsigned __int128>(static_cast<uint64_t>(hi_)) << 64 | lo_);
  }

  // Each value added is rounded to a multiple of this (2^-32), so a sum of
  // n values is within n times this of their exact sum.
  static constexpr double kResolution = 1.0 / 4294967296.0;
  // How far a sum of n values may be from their exact sum.
  static double tolerance(uint64_t n) { return static_cast<double>(n) * kResolution; }

  bool operator==(const ExactSum& other) const { return lo_ == other.lo_ && hi_ == other.hi_; }

  // value rounded to the nearest multiple of 2^-32 (ties to even), times
  // 2^32; NaN counts as 0, magnitudes beyond 2^90 are clamped. The common
  // case (|value| < 2^30) is one multiplication and one conversion
  // instruction: this runs per event.
  static Fixed fixed_of(double value) {
    const double scaled = value * kScale;
    if (std::fabs(scaled) < kFastLimit) return round_to_int64(scaled);  // false for NaN
    if (!(value == value)) return 0;  // NaN never reaches a handler; be safe anyway
    if (value > kLimit) value = kLimit;
    if (value < -kLimit) value = -kLimit;
    return static_cast<Fixed>(value * kScale);  // an integer already: |value * 2^32| >= 2^62
  }
  // A fixed-point number as a double, correctly rounded.
  static double to_double(Fixed f) { return static_cast<double>(f) / kScale; }
  // a + b, saturating at the ends of the 128-bit range.
  static Fixed add_saturating(Fixed a, Fixed b) {
    Fixed out;
    if (__builtin_add_overflow(a, b, &out)) {
      out = b > 0 ? std::numeric_limits<Fixed>::max() : std::numeric_limits<Fixed>::min();
    }
    return out;
  }

 private:
  static constexpr double kScale = 4294967296.0;                    // 2^32
  static constexpr double kLimit = 1237940039285380274899124224.0;  // 2^90
  static constexpr double kFastLimit = 4611686018427387904.0;       // 2^62

  // x (|x| < 2^62) rounded to the nearest integer, ties to even, as
  // std::nearbyint does in the default rounding mode.
  static int64_t round_to_int64(double x) {
#if defined(__x86_64__) && defined(__SSE2__)
    return _mm_cvtsd_si64(_mm_set_sd(x));  // rounds by MXCSR: to nearest, ties to even
#else
    return static_cast<int64_t>(std::nearbyint(x));
#endif
  }

  void set(Fixed f) {
    lo_ = static_cast<uint64_t>(f);
    hi_ = static_cast<int64_t>(f >> 64);
  }

  uint64_t lo_ = 0;  // bits 0..63 of the fixed-point sum
  int64_t hi_ = 0;   // bits 64..127
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_EXACT_SUM_H
