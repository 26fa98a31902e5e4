// The DDSketch bin index: the defining formula and its table of bin
// boundaries (see sketch_index.h).
#include "common/sketch_index.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace taba::builtin {
namespace {

// These two expressions are the ones DDSketch has always used: keep them
// as they are, or the bins move.
const double kLnGamma = std::log(SketchIndex::kGamma);
const double kInvLnGamma = 1.0 / kLnGamma;

// The smallest positive double whose by_log() index is at least `index`,
// searched over the bit patterns (ordered like the positive doubles they
// encode) around gamma^(index - 1), where the formula steps to `index`.
double smallest_of_index(int32_t index) {
  const uint64_t guess = std::bit_cast<uint64_t>(std::exp((index - 1) * kLnGamma));
  uint64_t below = guess;  // some pattern whose index is < index
  uint64_t reach = 1 << 10;
  while (SketchIndex::by_log(std::bit_cast<double>(below)) >= index) {
    below = below > reach ? below - reach : 0;
    reach *= 2;
  }
  uint64_t above = guess;  // some pattern whose index is >= index
  reach = 1 << 10;
  while (SketchIndex::by_log(std::bit_cast<double>(above)) < index) {
    above += reach;
    reach *= 2;
  }
  while (above - below > 1) {
    const uint64_t mid = below + (above - below) / 2;
    if (SketchIndex::by_log(std::bit_cast<double>(mid)) >= index) {
      above = mid;
    } else {
      below = mid;
    }
  }
  return std::bit_cast<double>(above);
}

}  // namespace

double SketchIndex::ln_gamma() {
  return kLnGamma;
}

int32_t SketchIndex::by_log(double magnitude) {
  const double i = std::ceil(std::log(magnitude) * kInvLnGamma);
  return static_cast<int32_t>(std::clamp(i, double{kMinIndex}, double{kMaxIndex}));
}

SketchIndex::SketchIndex() {
  first_ = by_log(kMinMagnitude);
  const int32_t last = by_log(std::nextafter(kTableEnd, 0.0));
  count_ = std::min(last - first_ + 1, kCapacity);
  lower_[0] = 0.0;
  for (int32_t k = 1; k <= count_; ++k) lower_[k] = smallest_of_index(first_ + k);
  for (int j = 0; j < kSlices; ++j) {
    const int32_t k = by_log(slice_start(j)) - first_;
    slice_[j] = static_cast<int16_t>(std::clamp(k, 0, count_ - 1));
  }
}

}  // namespace taba::builtin
