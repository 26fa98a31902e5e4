// The inflater's Adler-32 (src/http/adler32.h) against zlib's adler32: any
// length, alignment, starting value and byte values, in one call or split.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <cstdint>
#include <random>
#include <vector>

#include "http/adler32.h"

using taba::http::adler32_update;

namespace {

uint32_t zlib_adler(uint32_t start, const unsigned char* data, size_t len) {
  return static_cast<uint32_t>(adler32(start, data, static_cast<uInt>(len)));
}

}  // namespace

TEST_CASE("adler32_update equals zlib's adler32", "[inflate][adler32]") {
  std::mt19937_64 rng(3);
  std::vector<unsigned char> random(1 << 20);
  for (unsigned char& c : random) c = static_cast<unsigned char>(rng());
  std::vector<unsigned char> ones(1 << 20, 0xff);  // the largest sums
  std::vector<unsigned char> zeros(1 << 20, 0);
  for (const std::vector<unsigned char>* data : {&random, &ones, &zeros}) {
    // Every length up to 600 at every alignment in a 16-byte block.
    for (size_t offset = 0; offset < 16; ++offset) {
      for (size_t len = 0; len <= 600; ++len) {
        REQUIRE(adler32_update(1, data->data() + offset, len) == zlib_adler(1, data->data() + offset, len));
      }
    }
    // Long inputs: past one 64 KiB chunk of blocks, and the whole megabyte.
    for (size_t len : {size_t{65535}, size_t{65536}, size_t{65537}, size_t{200'003}, data->size() - 16}) {
      REQUIRE(adler32_update(1, data->data() + 3, len) == zlib_adler(1, data->data() + 3, len));
    }
  }
  // Any starting value, and the same result however the input is split.
  for (int i = 0; i < 2000; ++i) {
    const uint32_t start = static_cast<uint32_t>(rng() % 65521) << 16 | static_cast<uint32_t>(rng() % 65521);
    const size_t len = rng() % 70000;
    const size_t cut = len == 0 ? 0 : rng() % len;
    const unsigned char* p = (i % 2 == 0 ? random : ones).data();
    const uint32_t whole = zlib_adler(start, p, len);
    REQUIRE(adler32_update(start, p, len) == whole);
    REQUIRE(adler32_update(adler32_update(start, p, cut), p + cut, len - cut) == whole);
  }
}
