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

void CountArray::widen(unsigned new_width) {
  CountArray wider(size_, new_width);
  for (uint32_t i = 0; i < size_; ++i) wider.set(i, get(i));
  *this = std::move(wider);
}

}  // namespace taba::builtin
