#include "common/window.h"

#include <algorithm>
#include <utility>

namespace taba::builtin {
namespace {

// Sum kinds of the serialized forms (see window.h).
constexpr uint64_t kSumEqualsCount = 0;
constexpr uint64_t kSumInteger = 1;
constexpr uint64_t kSumFixed = 2;   // form 2
constexpr uint64_t kSumDouble = 2;  // form 1
constexpr int64_t kTwoPow53 = int64_t{1} << 53;
// An integer sum of form 2 is at most this in magnitude (its fixed-point
// form, times 2^32, stays within 128 bits).
constexpr __int128 kMaxIntegerSum = static_cast<__int128>(1) << 94;

}  // namespace

BucketWindow::BucketWindow(uint32_t width, uint32_t size, int64_t* sums, uint32_t* counts, int64_t now_second)
    : width_(width),
      size_(size),
      inv_width_(1.0 / width),
      inv_size_(1.0 / size),
      sums_(sums),
      counts_(counts) {
  set_newest(floor_div_by(now_second, width, inv_width_));
}

void BucketWindow::set_newest(int64_t bucket) {
  newest_ = bucket;
  newest_start_ = bucket * width_;
  newest_slot_ = static_cast<uint32_t>(bucket - floor_div_by(bucket, size_, inv_size_) * size_);
}

void BucketWindow::rotate_to(int64_t bucket) {
  if (bucket <= newest_) return;
  if (bucket - newest_ < size_) {  // the common small step: no division
    uint32_t slot = newest_slot_ + static_cast<uint32_t>(bucket - newest_);
    if (slot >= size_) slot -= size_;
    newest_ = bucket;
    newest_start_ = bucket * width_;
    newest_slot_ = slot;
  } else {
    set_newest(bucket);
  }
  const int64_t oldest = oldest_for(bucket);
  if (!empty() && lo_ < oldest) {
    lo_ = oldest;
    if (lo_ > hi_) {
      lo_ = 0;
      hi_ = -1;
    }
  }
}

bool BucketWindow::add(int64_t second, uint64_t count, ExactSum sum) {
  const int64_t b = bucket_of(second);
  if (b > newest_) rotate_to(b);
  if (b < oldest_for(newest_)) return false;
  add_to_bucket(b, count, sum.fixed());
  return true;
}

void BucketWindow::zero_slots(int64_t first, int64_t last) {
  for (int64_t b = first; b <= last; ++b) {
    const uint32_t slot = slot_of(b);
    counts_[slot] = 0;
    sums_[slot] = 0;
    if (high_) high_[slot] = HighWords{0, 0};
  }
}

void BucketWindow::extend_valid_range_slow(int64_t b) {
  if (empty()) {
    zero_slots(b, b);
    lo_ = hi_ = b;
  } else if (b > hi_) {
    zero_slots(hi_ + 1, b);
    hi_ = b;
  } else if (b < lo_) {
    zero_slots(b, lo_ - 1);
    lo_ = b;
  }
}

void BucketWindow::add_wide(uint32_t slot, uint64_t count, Fixed sum) {
  if (!high_) {
    // Every slot's high words extend its low words (garbage in the slots
    // outside the valid range stays garbage).
    std::unique_ptr<HighWords[]> high(new HighWords[size_]);
    for (uint32_t i = 0; i < size_; ++i) high[i] = HighWords{sums_[i] < 0 ? -1 : 0, 0};
    high_ = std::move(high);
  }
  const uint64_t total = add_saturating(count_at(slot), count);
  const Fixed s = ExactSum::add_saturating(sum_at(slot), sum);
  counts_[slot] = static_cast<uint32_t>(total);
  high_[slot].count = static_cast<uint32_t>(total >> 32);
  sums_[slot] = static_cast<int64_t>(static_cast<uint64_t>(s));
  high_[slot].sum = static_cast<int64_t>(s >> 64);
}

void BucketWindow::merge_from(const BucketWindow& from, int64_t now_bucket) {
  rotate_to(std::max(now_bucket, from.newest_));
  if (from.empty()) return;
  for (int64_t b = std::max(from.lo_, oldest_for(newest_)); b <= from.hi_; ++b) {
    const uint32_t slot = from.slot_of(b);
    const uint64_t c = from.count_at(slot);
    if (c != 0) add_to_bucket(b, c, from.sum_at(slot));
  }
}

BucketWindow::Totals BucketWindow::totals(int64_t as_of_bucket) const {
  Totals t;
  if (empty()) return t;
  const int64_t oldest = oldest_for(std::max(as_of_bucket, newest_));
  for (int64_t b = std::max(lo_, oldest); b <= hi_; ++b) {
    const uint32_t slot = slot_of(b);
    t.count = add_saturating(t.count, count_at(slot));
    t.sum.add_fixed(sum_at(slot));
  }
  return t;
}

bool BucketWindow::empty_as_of(int64_t as_of_bucket) const {
  if (empty()) return true;
  const int64_t oldest = oldest_for(std::max(as_of_bucket, newest_));
  for (int64_t b = std::max(lo_, oldest); b <= hi_; ++b) {
    if (count_at(slot_of(b)) != 0) return false;
  }
  return true;
}

BucketWindow::Totals BucketWindow::bucket(int64_t bucket_number) const {
  Totals t;
  if (in_valid_range(bucket_number)) {
    const uint32_t slot = slot_of(bucket_number);
    t.count = count_at(slot);
    t.sum = ExactSum::from_fixed(sum_at(slot));
  }
  return t;
}

void BucketWindow::serialize(ByteWriter* w) const {
  w->put_svarint(newest_);
  uint64_t nonempty = 0;
  for (int64_t b = lo_; b <= hi_; ++b) nonempty += count_at(slot_of(b)) != 0;
  w->put_varint(nonempty);
  bool first = true;
  int64_t prev = 0;
  for (int64_t b = lo_; b <= hi_; ++b) {
    const uint32_t slot = slot_of(b);
    const uint64_t c = count_at(slot);
    if (c == 0) continue;
    const Fixed s = sum_at(slot);
    const auto offset = static_cast<uint64_t>(first ? newest_ - b : b - prev);
    uint64_t kind = kSumFixed;
    if (s == static_cast<Fixed>(c) << 32) {
      kind = kSumEqualsCount;
    } else if ((s & 0xffffffff) == 0) {
      kind = kSumInteger;
    }
    w->put_varint(offset << 2 | kind);
    w->put_varint(c);
    if (kind == kSumInteger) w->put_svarint128(s >> 32);
    if (kind == kSumFixed) w->put_svarint128(s);
    first = false;
    prev = b;
  }
}

bool BucketWindow::deserialize(ByteReader* r, uint32_t form, const char** why) {
  int64_t newest;
  const int64_t limit = kMaxEpochSecond / width_;  // keeps newest * width within the epoch-second range
  if (!r->get_svarint(&newest) || newest > limit || newest < -limit) {
    *why = "window end missing or out of range";
    return false;
  }
  uint64_t n;
  if (!r->get_varint_max(size_, &n)) {
    *why = "window bucket count missing or above the window size";
    return false;
  }
  set_newest(newest);
  lo_ = 0;
  hi_ = -1;
  int64_t prev = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t tagged;
    uint64_t count;
    if (!r->get_varint(&tagged) || !r->get_varint(&count) || count == 0) {
      *why = "window bucket truncated or empty";
      return false;
    }
    const uint64_t offset = tagged >> 2;
    const uint64_t kind = tagged & 3;
    if (k == 0 ? offset >= size_ : (offset == 0 || offset >= size_)) {
      *why = "window bucket offset out of range";
      return false;
    }
    const int64_t b = k == 0 ? newest - static_cast<int64_t>(offset) : prev + static_cast<int64_t>(offset);
    if (b > newest) {
      *why = "window bucket after the window end";
      return false;
    }
    Fixed sum;
    if (kind == kSumEqualsCount) {
      sum = static_cast<Fixed>(count) << 32;
    } else if (kind == kSumInteger) {
      Fixed v;
      const Fixed max = form == 1 ? kTwoPow53 : kMaxIntegerSum;
      if (!r->get_svarint128(&v) || v >= max || v <= -max) {
        *why = "window bucket sum truncated or out of range";
        return false;
      }
      sum = v << 32;
    } else if (kind == kSumFixed && form >= 2) {
      if (!r->get_svarint128(&sum)) {
        *why = "window bucket sum truncated";
        return false;
      }
    } else if (kind == kSumDouble && form == 1) {
      double d;
      if (!r->get_double(&d)) {
        *why = "window bucket sum truncated";
        return false;
      }
      sum = ExactSum::fixed_of(d);  // a double sum that overflowed reads as ExactSum's clamp
    } else {
      *why = "window bucket sum kind unknown";
      return false;
    }
    add_to_bucket(b, count, sum);
    prev = b;
  }
  return true;
}

}  // namespace taba::builtin
