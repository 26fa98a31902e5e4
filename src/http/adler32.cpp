// Adler-32 with SSE2 (see adler32.h).
#include "http/adler32.h"

#include <zlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace taba::http {
namespace {

constexpr uint32_t kBase = 65521;  // the largest prime below 2^16

// Bytes one at a time: a = 1 + sum of the bytes, b = sum of the a's, both
// mod kBase. Short tails only (no reduction inside).
void scalar_tail(uint64_t* a, uint64_t* b, const unsigned char* data, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    *a += data[i];
    *b += *a;
  }
}

}  // namespace

#if defined(__SSE2__)

uint32_t adler32_update(uint32_t adler, const unsigned char* data, size_t len) {
  uint64_t a = adler & 0xffff;
  uint64_t b = adler >> 16;
  // For a block of 16 bytes x[0..15] entered with a: a += sum x[i] and
  // b += 16 a + sum (16 - i) x[i]. Over the blocks of a chunk the vectors
  // keep: the byte sums (psadbw: two 64-bit lanes), the sum of those sums
  // as they stood before each block (for the 16 a terms), and the weighted
  // sums (pmaddwd: four 32-bit lanes, at most 7,905 a block each, so 2^19
  // blocks fit). A chunk is 2^12 blocks; a and b are reduced after each.
  constexpr size_t kChunkBlocks = 4096;
  const __m128i zero = _mm_setzero_si128();
  const __m128i weights_lo = _mm_set_epi16(9, 10, 11, 12, 13, 14, 15, 16);
  const __m128i weights_hi = _mm_set_epi16(1, 2, 3, 4, 5, 6, 7, 8);
  while (len >= 16) {
    const size_t blocks = len / 16 < kChunkBlocks ? len / 16 : kChunkBlocks;
    __m128i sums = zero;      // byte sums, 2 x u64
    __m128i previous = zero;  // sum over blocks of `sums` before the block, 2 x u64
    __m128i weighted = zero;  // weighted sums, 4 x u32
    for (size_t k = 0; k < blocks; ++k) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * k));
      previous = _mm_add_epi64(previous, sums);
      sums = _mm_add_epi64(sums, _mm_sad_epu8(x, zero));
      weighted = _mm_add_epi32(weighted, _mm_madd_epi16(_mm_unpacklo_epi8(x, zero), weights_lo));
      weighted = _mm_add_epi32(weighted, _mm_madd_epi16(_mm_unpackhi_epi8(x, zero), weights_hi));
    }
    alignas(16) uint64_t s[2];
    alignas(16) uint64_t p[2];
    alignas(16) uint32_t w[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(s), sums);
    _mm_store_si128(reinterpret_cast<__m128i*>(p), previous);
    _mm_store_si128(reinterpret_cast<__m128i*>(w), weighted);
    const uint64_t byte_sum = s[0] + s[1];
    const uint64_t weighted_sum = uint64_t{w[0]} + w[1] + w[2] + w[3];
    b = (b + 16 * blocks * a + 16 * (p[0] + p[1]) + weighted_sum) % kBase;
    a = (a + byte_sum) % kBase;
    data += 16 * blocks;
    len -= 16 * blocks;
  }
  scalar_tail(&a, &b, data, len);
  return static_cast<uint32_t>((b % kBase) << 16 | (a % kBase));
}

#else

uint32_t adler32_update(uint32_t adler, const unsigned char* data, size_t len) {
  // zlib's length argument is an unsigned int: feed it in pieces.
  while (len > 0) {
    const uInt n = len > (1u << 30) ? (1u << 30) : static_cast<uInt>(len);
    adler = static_cast<uint32_t>(adler32(adler, data, n));
    data += n;
    len -= n;
  }
  return adler;
}

#endif

}  // namespace taba::http
