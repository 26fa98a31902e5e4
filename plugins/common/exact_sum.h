// ExactSum: a sum of doubles whose result does not depend on the order of
// additions, so merging sketches in any order gives bit-identical totals.
//
// Each value is rounded once to a fixed-point number with 32 fractional bits
// (resolution 2^-32, about 2.3e-10) and added as a 128-bit integer; integer
// addition is exact, associative and commutative. Values with magnitude
// beyond 2^90 (about 1.2e27) are clamped to it, and a sum that would leave the
// 128-bit range saturates; both are far outside instrumentation data.
#ifndef TABA_PLUGINS_COMMON_EXACT_SUM_H
#define TABA_PLUGINS_COMMON_EXACT_SUM_H

#include <cmath>
#include <cstdint>
#include <limits>

namespace taba::builtin {

class ExactSum {
 public:
  ExactSum() = default;
  // A sum holding just `value` (e.g. read back from its double form).
  static ExactSum of(double value) {
    ExactSum s;
    s.add(value);
    return s;
  }

  void add(double value) { add_fixed(to_fixed(value)); }
  void merge(const ExactSum& other) { add_fixed(other.fixed_); }

  // The sum, correctly rounded to a double.
  double value() const { return static_cast<double>(fixed_) / kScale; }

  // Each value added is rounded to a multiple of this (2^-32), so a sum of
  // n values is within n times this of their exact sum.
  static constexpr double kResolution = 1.0 / 4294967296.0;

  bool operator==(const ExactSum& other) const { return fixed_ == other.fixed_; }

 private:
  using Fixed = __int128;
  static constexpr double kScale = 4294967296.0;  // 2^32
  static constexpr double kLimit = 1237940039285380274899124224.0;  // 2^90

  static Fixed to_fixed(double value) {
    if (!(value == value)) return 0;  // NaN never reaches a sketch; be safe anyway
    if (value > kLimit) value = kLimit;
    if (value < -kLimit) value = -kLimit;
    return static_cast<Fixed>(std::nearbyint(value * kScale));
  }

  void add_fixed(Fixed x) {
    Fixed out;
    if (__builtin_add_overflow(fixed_, x, &out)) {
      out = x > 0 ? std::numeric_limits<Fixed>::max() : std::numeric_limits<Fixed>::min();
    }
    fixed_ = out;
  }

  Fixed fixed_ = 0;
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_EXACT_SUM_H
