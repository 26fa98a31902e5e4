// A fixed-length array of unsigned 64-bit counters stored compactly: every
// element has the same width (1, 2, 4 or 8 bytes), starting at 1 and widened
// for the whole array the first time a value does not fit. Sketch bins of a
// per-client state rarely pass 255 or 65535, so this keeps them 4-8 times
// smaller than plain uint64_t bins, while aggregates widen as they grow.
// Up to kInlineBytes of counters live inside the object: a per-request
// delta whose values fall in a few bins allocates nothing.
#ifndef TABA_PLUGINS_COMMON_COUNT_ARRAY_H
#define TABA_PLUGINS_COMMON_COUNT_ARRAY_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace taba::builtin {

class CountArray {
 public:
  static constexpr size_t kInlineBytes = 16;

  CountArray() = default;
  // size zeroed counters of the given width. Throws std::bad_alloc.
  explicit CountArray(uint32_t size, unsigned width = 1);

  CountArray(CountArray&&) noexcept = default;
  CountArray& operator=(CountArray&&) noexcept = default;
  CountArray(const CountArray&) = delete;
  CountArray& operator=(const CountArray&) = delete;

  uint32_t size() const { return size_; }
  unsigned width() const { return width_; }
  // Bytes of counter storage allocated outside the object.
  size_t heap_bytes() const { return heap_ ? size_t{size_} * width_ : 0; }

  uint64_t get(uint32_t i) const {
    const unsigned char* p = bytes() + size_t{i} * width_;
    switch (width_) {
      case 1:
        return *p;
      case 2:
        return load<uint16_t>(p);
      case 4:
        return load<uint32_t>(p);
      default:
        return load<uint64_t>(p);
    }
  }

  // Stores v at i, widening the array first when v does not fit. Throws
  // std::bad_alloc (the array is then unchanged).
  void set(uint32_t i, uint64_t v) {
    if (v > max_value()) widen(width_for(v));
    store_at(i, v);
  }

  // counter[i] += c, saturating at UINT64_MAX. Same failure rule as set.
  void add(uint32_t i, uint64_t c) {
    const uint64_t old = get(i);
    const uint64_t s = old + c;
    if (s >= old && s <= max_value()) {
      store_at(i, s);  // the common case: no widening
    } else {
      set(i, s < old ? UINT64_MAX : s);
    }
  }

  // Hints the cache to fetch counter i (no effect on the contents).
  void prefetch(uint32_t i) const { __builtin_prefetch(bytes() + size_t{i} * width_, 1); }

  // Copies n counters of src (same width) from src_index to dst_index.
  void copy_from(const CountArray& src, uint32_t src_index, uint32_t dst_index, uint32_t n) {
    std::memcpy(bytes() + size_t{dst_index} * width_, src.bytes() + size_t{src_index} * width_,
                size_t{n} * width_);
  }

  // Widens the whole array to at least `width` bytes per counter. Throws
  // std::bad_alloc (the array is then unchanged).
  void ensure_width(unsigned width) {
    if (width > width_) widen(width);
  }

  // counter[dst + k] += src[src_index + k] for k in [0, n), in one tight
  // loop. The caller guarantees no sum overflows this array's width (e.g.
  // by ensure_width(width_for(bound on every sum))) and width() >=
  // src.width().
  void add_range(uint32_t dst, const CountArray& src, uint32_t src_index, uint32_t n);

  // Index of the first non-zero counter in [from, end), or end. Scans eight
  // bytes at a time, so skipping the empty bins of a sparse range is cheap.
  uint32_t next_nonzero(uint32_t from, uint32_t end) const;

  // Narrowest width (1, 2, 4, 8) that holds v.
  static unsigned width_for(uint64_t v) { return v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8; }

 private:
  // Stores v, which must fit the current width.
  void store_at(uint32_t i, uint64_t v) {
    unsigned char* p = bytes() + size_t{i} * width_;
    switch (width_) {
      case 1:
        *p = static_cast<unsigned char>(v);
        break;
      case 2:
        store(p, static_cast<uint16_t>(v));
        break;
      case 4:
        store(p, static_cast<uint32_t>(v));
        break;
      default:
        store(p, v);
        break;
    }
  }
  template <class T>
  static T load(const unsigned char* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  template <class T>
  static void store(unsigned char* p, T v) {
    std::memcpy(p, &v, sizeof v);
  }
  uint64_t max_value() const { return width_ == 8 ? UINT64_MAX : (uint64_t{1} << (8 * width_)) - 1; }
  void widen(unsigned new_width);

  const unsigned char* bytes() const { return heap_ ? heap_.get() : inline_; }
  unsigned char* bytes() { return heap_ ? heap_.get() : inline_; }

  std::unique_ptr<unsigned char[]> heap_;  // the counters when they need more than inline_
  alignas(8) unsigned char inline_[kInlineBytes] = {};
  uint32_t size_ = 0;
  unsigned char width_ = 1;
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_COUNT_ARRAY_H
