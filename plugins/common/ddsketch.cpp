#include "common/ddsketch.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/plugin_support.h"

namespace taba::builtin {
namespace {

// 2 / (gamma + 1): bin i stands for gamma^i * kRepresentativeFactor.
constexpr double kRepresentativeFactor = 2.0 / (SketchIndex::kGamma + 1.0);

// Spare bins allocated beyond the range in use, on the side it grows
// toward: enough that a stream of adds rarely reallocates, small enough to
// keep a per-client state compact.
int32_t slack_for(int32_t range) {
  return std::clamp(range / 4, 8, 128);
}

// Inserts v into the n ascending values at `sorted` (room for n + 1).
void insert_sorted(double* sorted, uint64_t n, double v) {
  for (; n > 0 && sorted[n - 1] > v; --n) sorted[n] = sorted[n - 1];
  sorted[n] = v;
}

}  // namespace

// ---------------------------------------------------------------------------
// BinStore

void BinStore::reserve_range(int32_t a, int32_t b) {
  if (!empty()) {
    a = std::min(a, lo_);
    b = std::max(b, hi_);
  }
  const int32_t end = offset_ + static_cast<int32_t>(counts_.size());
  const bool allocated = counts_.size() > 0;
  if (allocated && a >= offset_ && b < end) return;
  const int32_t need = b - a + 1;
  const int32_t slack = slack_for(need);
  const bool grow_down = allocated && a < offset_;
  const bool grow_up = !allocated || b >= end;
  int32_t below = 0;
  if (grow_down && grow_up) {
    below = slack / 2;
  } else if (grow_down) {
    below = slack;
  }
  const int32_t above = slack - below;
  CountArray bigger(static_cast<uint32_t>(need + below + above), counts_.width());
  const int32_t new_offset = a - below;
  if (!empty()) {
    bigger.copy_from(counts_, static_cast<uint32_t>(lo_ - offset_), static_cast<uint32_t>(lo_ - new_offset),
                     static_cast<uint32_t>(hi_ - lo_ + 1));
  }
  counts_ = std::move(bigger);
  offset_ = new_offset;
}

void BinStore::collapse_below(int32_t floor) {
  const int32_t last = std::min(hi_, floor - 1);
  uint64_t moved = 0;
  for (int32_t i = lo_; i <= last; ++i) moved = add_saturating(moved, at(i));
  if (floor > hi_) {
    // Every bin collapses into the single bin `floor`: start a fresh array
    // rather than one spanning the old and the new range.
    const int32_t slack = slack_for(1);
    CountArray fresh(static_cast<uint32_t>(1 + slack), CountArray::width_for(moved));
    fresh.set(0, moved);
    counts_ = std::move(fresh);
    offset_ = floor;
    lo_ = hi_ = floor;
    return;
  }
  // Add first: if widening fails nothing has changed yet.
  counts_.add(static_cast<uint32_t>(floor - offset_), moved);
  for (int32_t i = lo_; i <= last; ++i) counts_.set(static_cast<uint32_t>(i - offset_), 0);
  lo_ = floor;
}

void BinStore::add_outside(int32_t index, uint64_t count) {
  if (count == 0) return;
  if (empty()) {
    reserve_range(index, index);
    counts_.add(static_cast<uint32_t>(index - offset_), count);
    lo_ = hi_ = index;
    total_ = count;
    return;
  }
  const int32_t new_hi = std::max(hi_, index);
  const int32_t floor = new_hi - (kMaxBins - 1);
  if (lo_ < floor) collapse_below(floor);
  const int32_t target = std::max(index, floor);
  reserve_range(target, target);
  counts_.add(static_cast<uint32_t>(target - offset_), count);
  lo_ = std::min(lo_, target);
  hi_ = std::max(hi_, target);
  total_ = add_saturating(total_, count);
}

void BinStore::merge(const BinStore& other) {
  if (other.empty()) return;
  // Size the array for the final range once, then add bin by bin.
  const int32_t new_hi = empty() ? other.hi_ : std::max(hi_, other.hi_);
  const int32_t floor = new_hi - (kMaxBins - 1);
  if (!empty() && lo_ < floor) collapse_below(floor);
  const int32_t new_lo = std::max(empty() ? other.lo_ : std::min(lo_, other.lo_), floor);
  reserve_range(new_lo, new_hi);
  // [new_lo, new_hi] is addressable now; bins of other below the floor
  // land in the floor bin.
  const uint64_t bound = total_ + other.total_ < total_ ? UINT64_MAX : total_ + other.total_;
  const unsigned need = std::max(CountArray::width_for(bound), other.counts_.width());
  const auto floor_slot = static_cast<uint32_t>(new_lo - offset_);
  uint32_t first = static_cast<uint32_t>(other.lo_ - other.offset_);
  const auto end = static_cast<uint32_t>(other.hi_ - other.offset_) + 1;
  if (need > counts_.width() && total_ <= 0xffff) {
    // A small state (a client's): add bin by bin, widening only when a bin
    // really outgrows its width, which keeps per-client states narrow.
    const int32_t shift = other.offset_ - offset_;
    for (uint32_t k = other.counts_.next_nonzero(first, end); k < end;
         k = other.counts_.next_nonzero(k + 1, end)) {
      const int32_t slot = static_cast<int32_t>(k) + shift;
      counts_.add(slot < static_cast<int32_t>(floor_slot) ? floor_slot : static_cast<uint32_t>(slot),
                  other.counts_.get(k));
    }
    const bool was_empty = empty();
    total_ = bound;
    lo_ = was_empty ? new_lo : std::min(lo_, new_lo);
    hi_ = was_empty ? new_hi : std::max(hi_, new_hi);
    return;
  }
  // No bin can exceed the two totals together: widen once for that (large
  // states: aggregates), then add the range in one tight loop unchecked.
  counts_.ensure_width(need);
  if (other.lo_ < new_lo) {
    const auto dense_from = static_cast<uint32_t>(new_lo - other.offset_);
    uint64_t below = 0;
    for (uint32_t k = first; k < dense_from && k < end; ++k) below += other.counts_.get(k);
    counts_.add(floor_slot, below);
    first = dense_from;
  }
  if (first < end) {
    counts_.add_range(static_cast<uint32_t>(other.offset_ + static_cast<int32_t>(first) - offset_), other.counts_,
                      first, end - first);
  }
  const bool was_empty = empty();
  total_ = bound;
  lo_ = was_empty ? new_lo : std::min(lo_, new_lo);
  hi_ = was_empty ? new_hi : std::max(hi_, new_hi);
}

bool BinStore::operator==(const BinStore& other) const {
  if (total_ != other.total_) return false;
  if (empty()) return true;
  if (lo_ != other.lo_ || hi_ != other.hi_) return false;
  for (int32_t i = lo_; i <= hi_; ++i) {
    if (at(i) != other.at(i)) return false;
  }
  return true;
}

void BinStore::serialize(ByteWriter* w) const {
  uint64_t nonzero = 0;
  for (int32_t i = lo_; i <= hi_ && !empty(); ++i) nonzero += at(i) != 0;
  w->put_varint(nonzero);
  if (empty()) return;
  bool first = true;
  int32_t prev = 0;
  for (int32_t i = lo_; i <= hi_; ++i) {
    const uint64_t c = at(i);
    if (c == 0) continue;
    if (first) {
      w->put_svarint(i);
      first = false;
    } else {
      w->put_varint(static_cast<uint64_t>(i - prev));
    }
    w->put_varint(c);
    prev = i;
  }
}

bool BinStore::deserialize(ByteReader* r, const char** why) {
  uint64_t n;
  if (!r->get_varint_max(kMaxBins, &n)) {
    *why = "sketch bin count missing or above the cap";
    return false;
  }
  int32_t first = 0;
  int32_t prev = 0;
  for (uint64_t k = 0; k < n; ++k) {
    int32_t index;
    if (k == 0) {
      int64_t v;
      if (!r->get_svarint(&v) || v < kMinIndex || v > kMaxIndex) {
        *why = "sketch bin index missing or out of range";
        return false;
      }
      index = first = static_cast<int32_t>(v);
    } else {
      uint64_t gap;
      if (!r->get_varint_max(kMaxBins - 1, &gap) || gap == 0) {
        *why = "sketch bin gap missing or invalid";
        return false;
      }
      index = prev + static_cast<int32_t>(gap);
      if (index > kMaxIndex || index - first >= kMaxBins) {
        *why = "sketch bins span more than the cap";
        return false;
      }
    }
    uint64_t c;
    if (!r->get_varint(&c) || c == 0 || total_ + c < total_) {
      *why = "sketch bin count missing, zero or overflowing";
      return false;
    }
    add(index, c);
    prev = index;
  }
  return true;
}

// ---------------------------------------------------------------------------
// DDSketch

double DDSketch::bin_value(int32_t index) {
  return std::exp(index * SketchIndex::ln_gamma()) * kRepresentativeFactor;
}

SketchValue DDSketch::prepare(double value) {
  SketchValue v;
  v.value = value == 0 ? 0.0 : value;  // as add(): one spelling of zero
  const double magnitude = std::fabs(v.value);
  if (magnitude >= kMinMagnitude) {
    v.kind = v.value > 0 ? SketchValue::kPositive : SketchValue::kNegative;
    v.bin = index_of(magnitude);
  }
  v.sum = ExactSum::of(v.value);
  return v;
}

uint64_t DDSketch::nearest_rank(uint64_t count, uint32_t num, uint32_t den) {
  const uint64_t q = count / den;
  const uint64_t r = count % den;
  return q * num + (r * num + den - 1) / den;
}

void DDSketch::add(double value) {
  if (value == 0) value = 0.0;  // -0 and 0 are one value: keep one spelling
  double values[kExactCount];
  const uint64_t before = exact_values(values);  // count(), and the values while few
  const double magnitude = std::fabs(value);
  if (magnitude < kMinMagnitude) {
    zero_count_ = add_saturating(zero_count_, 1);
  } else if (value > 0) {
    positive_.add(index_of(magnitude), 1);
  } else {
    negative_.add(index_of(magnitude), 1);
  }
  if (before < kExactCount) {
    insert_sorted(values, before, value);
    set_exact_values(values, before + 1);
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  sum_.add(value);
}

void PreparedValues::add(double value) {
  add(DDSketch::prepare(value));
}

void PreparedValues::add(const SketchValue& v) {
  if (count_ < kSketchExactCount) first_[count_] = v.value;
  switch (v.kind) {
    case SketchValue::kZero:
      ++zeros_;
      break;
    case SketchValue::kPositive:
      positive_[positives_++] = v.bin;
      break;
    case SketchValue::kNegative:
      negative_[negatives_++] = v.bin;
      break;
  }
  if (count_++ == 0) {
    min_ = max_ = v.value;
  } else {
    min_ = std::min(min_, v.value);
    max_ = std::max(max_, v.value);
  }
  sum_.merge(v.sum);
}

void DDSketch::prefetch_bins(const PreparedValues& values) const {
  for (uint32_t i = 0; i < values.positives_; ++i) positive_.prefetch(values.positive_[i]);
  for (uint32_t i = 0; i < values.negatives_; ++i) negative_.prefetch(values.negative_[i]);
}

void DDSketch::add_prepared(const PreparedValues& values) {
  if (values.count_ == 0) return;
  const uint64_t before = count();
  double merged[kExactCount];
  const bool exact = before + values.count_ <= kExactCount;
  if (exact) {
    const uint64_t n = exact_values(merged);
    for (uint32_t i = 0; i < values.count_; ++i) insert_sorted(merged, n + i, values.first_[i]);
  }
  for (uint32_t i = 0; i < values.positives_; ++i) positive_.add(values.positive_[i], 1);
  for (uint32_t i = 0; i < values.negatives_; ++i) negative_.add(values.negative_[i], 1);
  zero_count_ = add_saturating(zero_count_, values.zeros_);
  if (exact) {
    set_exact_values(merged, before + values.count_);
  } else if (before == 0) {
    min_ = values.min_;
    max_ = values.max_;
  } else {
    min_ = std::min(min_, values.min_);
    max_ = std::max(max_, values.max_);
  }
  sum_.merge(values.sum_);
}

void DDSketch::merge(const DDSketch& other) {
  const uint64_t theirs = other.count();
  if (theirs == 0) return;
  const uint64_t before = count();
  double merged[kExactCount];
  const bool exact = before + theirs <= kExactCount;
  if (exact) {
    double mine[kExactCount];
    double others[kExactCount];
    exact_values(mine);
    other.exact_values(others);
    std::merge(mine, mine + before, others, others + theirs, merged);
  }
  positive_.merge(other.positive_);
  negative_.merge(other.negative_);
  zero_count_ = add_saturating(zero_count_, other.zero_count_);
  if (exact) {
    set_exact_values(merged, before + theirs);
  } else if (before == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  sum_.merge(other.sum_);
}

uint64_t DDSketch::exact_values(double* out) const {
  const uint64_t n = count();
  if (n == 0 || n > kExactCount) return n;
  out[0] = min_;
  for (uint64_t k = 0; k + 2 < n; ++k) out[k + 1] = between_[k];
  out[n - 1] = max_;
  return n;
}

void DDSketch::set_exact_values(const double* sorted, uint64_t n) {
  min_ = sorted[0];
  max_ = sorted[n - 1];
  for (uint64_t k = 0; k + 2 < n; ++k) between_[k] = sorted[k + 1];
}

double DDSketch::quantile(uint32_t num, uint32_t den) const {
  const uint64_t n = count();
  if (n == 0) return 0.0;
  if (num == 0) return min_;
  return value_at_rank(nearest_rank(n, num, den));
}

double DDSketch::value_at_rank(uint64_t rank) const {
  double v = 0.0;
  values_at_ranks(&rank, 1, &v);
  return v;
}

void DDSketch::values_at_ranks(const uint64_t* ranks, size_t n, double* out) const {
  const uint64_t total = count();
  if (total == 0) {
    std::fill(out, out + n, 0.0);
    return;
  }
  if (total <= kExactCount) {
    double values[kExactCount];
    exact_values(values);
    for (size_t k = 0; k < n; ++k) out[k] = values[std::clamp<uint64_t>(ranks[k], 1, total) - 1];
    return;
  }
  bin_values_at_ranks(ranks, n, out);
  // The lowest and the highest rank are known exactly.
  for (size_t k = 0; k < n; ++k) {
    if (ranks[k] <= 1) out[k] = min_;
    if (ranks[k] >= total) out[k] = max_;
  }
}

void DDSketch::bin_values_at_ranks(const uint64_t* ranks, size_t n, double* out) const {
  size_t k = 0;
  uint64_t seen = 0;
  auto emit = [&](double v) {
    const double clamped = std::min(std::max(v, min_), max_);
    while (k < n && ranks[k] <= seen) out[k++] = clamped;
  };
  // Ascending order: negatives from the largest magnitude down, zeros,
  // then positives from the smallest magnitude up.
  if (!negative_.empty()) {
    for (int32_t i = negative_.hi(); i >= negative_.lo() && k < n; --i) {
      const uint64_t c = negative_.at(i);
      if (c == 0) continue;
      seen += c;
      emit(-bin_value(i));
    }
  }
  if (zero_count_ != 0 && k < n) {
    seen += zero_count_;
    emit(0.0);
  }
  if (!positive_.empty()) {
    for (int32_t i = positive_.lo(); i <= positive_.hi() && k < n; ++i) {
      const uint64_t c = positive_.at(i);
      if (c == 0) continue;
      seen += c;
      emit(bin_value(i));
    }
  }
  while (k < n) out[k++] = max_;
}

bool DDSketch::same_distribution(const DDSketch& other) const {
  if (count() != other.count() || zero_count_ != other.zero_count_) return false;
  if (count() != 0 && (min_ != other.min_ || max_ != other.max_)) return false;
  if (!std::equal(between_, between_ + between_count(), other.between_)) return false;
  return positive_ == other.positive_ && negative_ == other.negative_;
}

void DDSketch::serialize(ByteWriter* w) const {
  w->put_varint(zero_count_);
  w->put_svarint128(sum_.fixed());
  positive_.serialize(w);
  negative_.serialize(w);
  if (count() != 0) {
    w->put_double(min_);
    w->put_double(max_);
  }
  for (uint64_t k = 0; k < between_count(); ++k) w->put_double(between_[k]);
}

bool DDSketch::deserialize(ByteReader* r, uint32_t form, const char** why) {
  if (!r->get_varint(&zero_count_)) {
    *why = "sketch header truncated";
    return false;
  }
  if (form >= 3) {
    ExactSum::Fixed fixed;
    if (!r->get_svarint128(&fixed)) {
      *why = "sketch header truncated";
      return false;
    }
    sum_ = ExactSum::from_fixed(fixed);
  } else {
    double sum = 0;
    if (!r->get_double(&sum)) {
      *why = "sketch header truncated";
      return false;
    }
    if (!std::isfinite(sum)) {
      *why = "sketch sum is not finite";
      return false;
    }
    sum_ = ExactSum::of(sum);
  }
  if (!positive_.deserialize(r, why) || !negative_.deserialize(r, why)) return false;
  const uint64_t stores = positive_.total() + negative_.total();
  if (stores < positive_.total() || zero_count_ + stores < stores) {
    *why = "sketch count overflows";
    return false;
  }
  if (count() != 0) {
    if (!r->get_double(&min_) || !r->get_double(&max_)) {
      *why = "sketch min/max truncated";
      return false;
    }
    if (!std::isfinite(min_) || !std::isfinite(max_) || min_ > max_) {
      *why = "sketch min/max invalid";
      return false;
    }
    if (min_ == 0) min_ = 0.0;  // as add(): one spelling of zero
    if (max_ == 0) max_ = 0.0;
  }
  const uint64_t n = count();
  if (n < 3 || n > kExactCount) return true;
  if (form == 1) {
    // No exact values in form 1: the bins' (what form 1 rendered).
    uint64_t ranks[kExactCount - 2];
    for (uint64_t k = 0; k + 2 < n; ++k) ranks[k] = k + 2;
    bin_values_at_ranks(ranks, n - 2, between_);
    return true;
  }
  double values[kExactCount];
  values[0] = min_;
  values[n - 1] = max_;
  for (uint64_t k = 1; k + 1 < n; ++k) {
    if (!r->get_double(&values[k])) {
      *why = "sketch values truncated";
      return false;
    }
    if (values[k] == 0) values[k] = 0.0;
  }
  // The values must be ascending, and be the values the bins count.
  DDSketch check;
  for (uint64_t k = 0; k < n; ++k) {
    if (!std::isfinite(values[k]) || (k > 0 && values[k] < values[k - 1])) {
      *why = "sketch values invalid";
      return false;
    }
    check.add(values[k]);
  }
  if (check.zero_count_ != zero_count_ || !(check.positive_ == positive_) ||
      !(check.negative_ == negative_)) {
    *why = "sketch values do not match its bins";
    return false;
  }
  set_exact_values(values, n);
  return true;
}

void rendered_percentiles(const DDSketch& sketch, double out[7]) {
  uint64_t ranks[7];
  for (int j = 0; j < 7; ++j) ranks[j] = DDSketch::nearest_rank(sketch.count(), kRenderedPerMille[j], 1000);
  sketch.values_at_ranks(ranks, 7, out);
}

void append_percentile_summary(const DDSketch& sketch, TextBuffer* text) {
  double values[7];
  rendered_percentiles(sketch, values);
  text->raw("{\"count\": ")
      .u64(sketch.count())
      .raw(", \"total\": ")
      .number6(sketch.sum(), sketch.sum_tolerance())
      .raw(", \"pct\": [");
  for (int j = 0; j < 7; ++j) {
    if (j != 0) text->raw(", ");
    text->number2(values[j]);
  }
  text->raw("]}");
}

}  // namespace taba::builtin
