#include "common/count_array.h"

#include <bit>
#include <cstring>
#include <utility>

namespace taba::builtin {

CountArray::CountArray(uint32_t size, unsigned width)
    : heap_(size_t{size} * width <= kInlineBytes ? nullptr : new unsigned char[size_t{size} * width]()),
      size_(size),
      width_(static_cast<unsigned char>(width)) {}

uint32_t CountArray::next_nonzero(uint32_t from, uint32_t end) const {
  const size_t w = width_;
  const unsigned shift = static_cast<unsigned>(std::countr_zero(w));  // w is 1, 2, 4 or 8
  const unsigned char* d = bytes();
  size_t byte = size_t{from} * w;
  const size_t end_byte = size_t{end} * w;
  // Eight bytes at a time; `byte` stays a multiple of the width, so the
  // first non-zero byte of a word lies in the element it names.
  if constexpr (std::endian::native == std::endian::little) {
    for (; byte + 8 <= end_byte; byte += 8) {
      uint64_t word;
      std::memcpy(&word, d + byte, sizeof word);
      if (word != 0) return static_cast<uint32_t>((byte + (std::countr_zero(word) >> 3)) >> shift);
    }
  }
  for (uint32_t i = static_cast<uint32_t>(byte >> shift); i < end; ++i) {
    if (get(i) != 0) return i;
  }
  return end;
}

namespace {

template <class D, class S>
void add_typed(unsigned char* dst, const unsigned char* src, uint32_t n) {
  for (uint32_t k = 0; k < n; ++k) {
    D d;
    S v;
    std::memcpy(&d, dst + size_t{k} * sizeof(D), sizeof(D));
    std::memcpy(&v, src + size_t{k} * sizeof(S), sizeof(S));
    d = static_cast<D>(d + v);
    std::memcpy(dst + size_t{k} * sizeof(D), &d, sizeof(D));
  }
}

template <class D>
void add_from(unsigned char* dst, const unsigned char* src, unsigned src_width, uint32_t n) {
  switch (src_width) {
    case 1:
      add_typed<D, uint8_t>(dst, src, n);
      break;
    case 2:
      add_typed<D, uint16_t>(dst, src, n);
      break;
    case 4:
      add_typed<D, uint32_t>(dst, src, n);
      break;
    default:
      add_typed<D, uint64_t>(dst, src, n);
      break;
  }
}

}  // namespace

void CountArray::add_range(uint32_t dst, const CountArray& src, uint32_t src_index, uint32_t n) {
  unsigned char* d = bytes() + size_t{dst} * width_;
  const unsigned char* s = src.bytes() + size_t{src_index} * src.width_;
  switch (width_) {
    case 1:
      add_from<uint8_t>(d, s, src.width_, n);
      break;
    case 2:
      add_from<uint16_t>(d, s, src.width_, n);
      break;
    case 4:
      add_from<uint32_t>(d, s, src.width_, n);
      break;
    default:
      add_from<uint64_t>(d, s, src.width_, n);
      break;
  }
}

void CountArray::widen(unsigned new_width) {
  CountArray wider(size_, new_width);
  for (uint32_t i = 0; i < size_; ++i) wider.set(i, get(i));
  *this = std::move(wider);
}

}  // namespace taba::builtin
