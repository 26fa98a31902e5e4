// The DDSketch bin index without a logarithm (plugins/common/sketch_index.h):
// SketchIndex::of must give exactly the bins of the defining formula
// (SketchIndex::by_log, the one stored states were made with) for every
// magnitude a sketch bins, and sketches must treat zeros, subnormals and
// negatives as before.
#include <catch2/catch.hpp>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "common/byte_io.h"
#include "common/ddsketch.h"
#include "common/sketch_index.h"

using taba::builtin::ByteWriter;
using taba::builtin::DDSketch;
using taba::builtin::PreparedValues;
using taba::builtin::SketchIndex;

namespace {

// The formula, written out here as DDSketch wrote it before the table
// (ceil(log(m) / log(gamma)) through the reciprocal, clamped), so that a
// change to by_log itself is caught too.
int32_t formula(double m) {
  const double inv_ln_gamma = 1.0 / std::log((1.0 + 0.01) / (1.0 - 0.01));
  const double i = std::ceil(std::log(m) * inv_ln_gamma);
  return static_cast<int32_t>(std::fmin(std::fmax(i, -1100.0), 36000.0));
}

std::string serialized(const DDSketch& s) {
  ByteWriter w;
  s.serialize(&w);
  return w.bytes();
}

}  // namespace

TEST_CASE("SketchIndex: by_log is the formula the stored bins were made with", "[ddsketch][sketch_index]") {
  std::mt19937_64 rng(11);
  const uint64_t lo = std::bit_cast<uint64_t>(1e-9);
  const uint64_t hi = std::bit_cast<uint64_t>(std::numeric_limits<double>::max());
  for (int i = 0; i < 200000; ++i) {
    const double m = std::bit_cast<double>(lo + rng() % (hi - lo));
    REQUIRE(SketchIndex::by_log(m) == formula(m));
  }
  CHECK(SketchIndex::by_log(1.0) == 0);
  CHECK(SketchIndex::ln_gamma() == std::log(SketchIndex::kGamma));
}

TEST_CASE("SketchIndex: the table holds the smallest double of every bin", "[ddsketch][sketch_index]") {
  const SketchIndex& table = SketchIndex::table();
  CHECK(table.first_index() == formula(1e-9));
  CHECK(table.last_index() == formula(std::nextafter(SketchIndex::kTableEnd, 0.0)));
  CHECK(table.last_index() - table.first_index() + 1 > 3000);
  for (int32_t i = table.first_index() + 1; i <= table.last_index() + 1; ++i) {
    const double lower = table.lower(i);
    INFO("bin " << i << " starts at " << lower);
    REQUIRE(formula(lower) == i);
    REQUIRE(formula(std::nextafter(lower, 0.0)) == i - 1);
    REQUIRE(table.lower(i - 1) < lower);
  }
  CHECK(table.lower(table.last_index() + 1) >= SketchIndex::kTableEnd);
}

// of() takes a slice's bin and compares with the next bin's lower bound,
// so no slice may hold two bin boundaries.
TEST_CASE("SketchIndex: a slice holds at most one bin boundary", "[ddsketch][sketch_index]") {
  const SketchIndex& table = SketchIndex::table();
  CHECK(SketchIndex::slice_start(0) <= SketchIndex::kMinMagnitude);
  CHECK(SketchIndex::slice_start(0) * 2 > SketchIndex::kMinMagnitude);
  CHECK(SketchIndex::slice_start(SketchIndex::kSlices) == SketchIndex::kTableEnd);
  for (int j = 0; j < SketchIndex::kSlices; ++j) {
    const double start = SketchIndex::slice_start(j);
    const double end = SketchIndex::slice_start(j + 1);
    const int32_t bin = table.slice_bin(j);
    INFO("slice " << j << " [" << start << ", " << end << ") bin " << bin);
    REQUIRE(end / start <= 1.0 + 1.0 / 64);
    // The slice's first double that a sketch bins is in `bin`, and the
    // slice ends before the bin after next starts.
    REQUIRE(formula(std::fmax(start, SketchIndex::kMinMagnitude)) == bin);
    if (bin + 2 <= table.last_index() + 1) REQUIRE(table.lower(bin + 2) >= end);
  }
}

// The formula could step back only within a few ulps of ln(m) of a bin
// boundary (the libm log is within an ulp or two of ln), which is a few
// hundred ulps of m at most in the table's range. So comparing every
// double within 1024 ulps of every boundary shows both that the formula
// is non-decreasing there and that the table reproduces it; between those
// windows the formula cannot change its value.
TEST_CASE("SketchIndex: of() equals the formula around every bin boundary", "[ddsketch][sketch_index]") {
  const SketchIndex& table = SketchIndex::table();
  constexpr int64_t kWindow = 1024;
  uint64_t compared = 0;
  for (int32_t i = table.first_index() + 1; i <= table.last_index() + 1; ++i) {
    const uint64_t at = std::bit_cast<uint64_t>(table.lower(i));
    for (int64_t d = -kWindow; d <= kWindow; ++d) {
      const double m = std::bit_cast<double>(at + static_cast<uint64_t>(d));
      if (m < SketchIndex::kMinMagnitude) continue;
      const int32_t want = formula(m);
      if (SketchIndex::of(m) != want) {
        INFO("m = " << m << " (" << d << " ulps from the start of bin " << i << ")");
        REQUIRE(SketchIndex::of(m) == want);
      }
      ++compared;
    }
  }
  CHECK(compared > 6'000'000);
  // The ends of the range a sketch bins.
  for (const double m : {SketchIndex::kMinMagnitude, std::nextafter(SketchIndex::kMinMagnitude, 1.0),
                         std::nextafter(SketchIndex::kTableEnd, 0.0), SketchIndex::kTableEnd,
                         std::nextafter(SketchIndex::kTableEnd, 1e300), std::numeric_limits<double>::max()}) {
    INFO("m = " << m);
    CHECK(SketchIndex::of(m) == formula(m));
  }
}

TEST_CASE("SketchIndex: of() equals the formula on random magnitudes", "[ddsketch][sketch_index]") {
  std::mt19937_64 rng(5);
  const uint64_t lo = std::bit_cast<uint64_t>(SketchIndex::kMinMagnitude);
  const uint64_t hi = std::bit_cast<uint64_t>(std::numeric_limits<double>::max());
  const uint64_t table_hi = std::bit_cast<uint64_t>(SketchIndex::kTableEnd);
  for (int i = 0; i < 2'000'000; ++i) {
    // Uniform over the doubles of the whole range, of the table's range,
    // and the values instrumentation sends: decimals with a few digits.
    const double whole = std::bit_cast<double>(lo + rng() % (hi - lo + 1));
    const double in_table = std::bit_cast<double>(lo + rng() % (table_hi - lo));
    const double decimal = static_cast<double>(rng() % 100'000'000) / (i % 2 == 0 ? 100.0 : 1000.0);
    for (const double m : {whole, in_table, decimal}) {
      if (m < SketchIndex::kMinMagnitude) continue;
      if (SketchIndex::of(m) != formula(m)) {
        INFO("m = " << m);
        REQUIRE(SketchIndex::of(m) == formula(m));
      }
    }
  }
}

TEST_CASE("SketchIndex: zeros, subnormals and negatives go where they always went", "[ddsketch][sketch_index]") {
  const double subnormal = std::numeric_limits<double>::denorm_min();
  const double values[] = {0.0,
                           -0.0,
                           subnormal,
                           -subnormal,
                           std::numeric_limits<double>::min(),
                           5e-10,
                           -5e-10,
                           std::nextafter(1e-9, 0.0),
                           1e-9,
                           -1e-9,
                           -1.0,
                           -2.5,
                           -123456.789,
                           1e-3,
                           1e12};
  DDSketch added;
  DDSketch prepared_sketch;
  PreparedValues prepared;
  uint64_t zeros = 0;
  for (const double v : values) {
    added.add(v);
    prepared.add(DDSketch::prepare(v));
    const double m = std::fabs(v);
    if (m < 1e-9) {
      ++zeros;
      CHECK(DDSketch::prepare(v).kind == taba::builtin::SketchValue::kZero);
    } else {
      CHECK(DDSketch::prepare(v).bin == formula(m));
      CHECK(DDSketch::index_of(m) == formula(m));
    }
  }
  prepared_sketch.add_prepared(prepared);
  CHECK(added.zero_count() == zeros);
  CHECK(added.negative().at(formula(1.0)) == 1);
  CHECK(added.negative().at(formula(2.5)) == 1);
  CHECK(added.negative().at(formula(123456.789)) == 1);
  CHECK(added.negative().at(formula(1e-9)) == 1);
  CHECK(added.positive().at(formula(1e-3)) == 1);
  CHECK(added.positive().at(formula(1e12)) == 1);
  CHECK(added.same_distribution(prepared_sketch));
  CHECK(serialized(added) == serialized(prepared_sketch));
  // Magnitudes past the table (each in its own sketch: together they
  // would collapse the low bins).
  for (const double v : {1e30, -1e30, std::numeric_limits<double>::max(), -std::numeric_limits<double>::max()}) {
    INFO("v = " << v);
    DDSketch one;
    one.add(v);
    CHECK(DDSketch::prepare(v).bin == formula(std::fabs(v)));
    CHECK((v > 0 ? one.positive() : one.negative()).at(formula(std::fabs(v))) == 1);
  }
  // of() hands what a sketch never bins to the formula.
  CHECK(SketchIndex::of(subnormal) == formula(subnormal));
  CHECK(SketchIndex::of(5e-10) == formula(5e-10));
}
