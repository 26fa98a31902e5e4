// DDSketch (plugins/common/ddsketch.h): accuracy against exact nearest-rank
// percentiles, exact and order-free merging, collapsing, serialization;
// plus the CountArray and TextBuffer helpers it builds on.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/byte_io.h"
#include "common/count_array.h"
#include "common/ddsketch.h"
#include "common/text.h"

using taba::builtin::ByteReader;
using taba::builtin::ByteWriter;
using taba::builtin::CountArray;
using taba::builtin::DDSketch;
using taba::builtin::TextBuffer;

namespace {

// Exact nearest-rank quantile of sorted data, q = num / den: the value of
// rank ceil(q * n), 1-based; q = 0 gives the minimum.
double exact_quantile(const std::vector<double>& sorted, uint32_t num, uint32_t den) {
  const uint64_t n = sorted.size();
  if (num == 0) return sorted.front();
  const uint64_t rank = (n * num + den - 1) / den;  // n <= 10^6 here: no overflow
  return sorted[rank - 1];
}

// Quantiles checked: the seven rendered ones, plus the extremes and a few more.
const std::vector<uint32_t> kPerMille = {0, 1, 10, 100, 250, 500, 750, 900, 950, 990, 999, 1000};

// The guarantee, with slack for floating rounding at bin boundaries.
void check_accuracy(const DDSketch& sketch, std::vector<double> values, const std::string& what) {
  std::sort(values.begin(), values.end());
  REQUIRE(sketch.count() == values.size());
  for (const uint32_t q : kPerMille) {
    const double exact = exact_quantile(values, q, 1000);
    const double got = sketch.quantile(q, 1000);
    INFO(what << ": q=" << q << "/1000 exact=" << exact << " got=" << got);
    const double tolerance = DDSketch::kRelativeAccuracy * std::fabs(exact) * (1 + 1e-9);
    CHECK(std::fabs(got - exact) <= tolerance);
  }
}

DDSketch sketch_of(const std::vector<double>& values) {
  DDSketch s;
  for (const double v : values) s.add(v);
  return s;
}

std::vector<double> generate(const std::string& kind, size_t n, std::mt19937_64& rng) {
  std::vector<double> v(n);
  std::lognormal_distribution<double> lognormal(0.0, 2.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (size_t i = 0; i < n; ++i) {
    if (kind == "lognormal") {
      v[i] = lognormal(rng);
    } else if (kind == "pareto") {
      v[i] = 1.0 / std::pow(1.0 - uniform(rng), 1.0 / 1.5);  // alpha 1.5, heavy tail
    } else if (kind == "uniform") {
      v[i] = 1000.0 * uniform(rng);
    } else if (kind == "bimodal") {
      v[i] = (i % 3 == 0) ? 5.0 + normal(rng) * 0.1 : 5000.0 + normal(rng) * 50.0;
    } else if (kind == "constant") {
      v[i] = 42.0;
    } else if (kind == "signed") {  // negatives, zeros and positives
      const double x = normal(rng) * 100.0;
      v[i] = (i % 7 == 0) ? 0.0 : x;
    } else if (kind == "negative") {
      v[i] = -lognormal(rng);
    } else {  // "latency": milliseconds spanning ~4 decades, integral
      v[i] = std::round(std::exp(uniform(rng) * std::log(10000.0)));
    }
  }
  return v;
}

}  // namespace

TEST_CASE("DDSketch: nearest rank is exact integer arithmetic", "[ddsketch]") {
  CHECK(DDSketch::nearest_rank(10, 900, 1000) == 9);
  CHECK(DDSketch::nearest_rank(9, 250, 1000) == 3);
  CHECK(DDSketch::nearest_rank(20, 950, 1000) == 19);
  CHECK(DDSketch::nearest_rank(1, 999, 1000) == 1);
  CHECK(DDSketch::nearest_rank(1000, 999, 1000) == 999);
  CHECK(DDSketch::nearest_rank(1001, 999, 1000) == 1000);
  CHECK(DDSketch::nearest_rank(3, 0, 1000) == 0);
  const uint64_t big = uint64_t{1} << 63;
  CHECK(DDSketch::nearest_rank(big, 1000, 1000) == big);
  CHECK(DDSketch::nearest_rank(big + 1, 500, 1000) == big / 2 + 1);
}

TEST_CASE("DDSketch: bins map values within the relative accuracy", "[ddsketch]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-9.0, 300.0);
  for (int i = 0; i < 20000; ++i) {
    const double v = std::pow(10.0, exponent(rng));
    const double rep = DDSketch::bin_value(DDSketch::index_of(v));
    INFO("v=" << v << " rep=" << rep);
    REQUIRE(std::fabs(rep - v) <= DDSketch::kRelativeAccuracy * v * (1 + 1e-9));
  }
  // Bins are ordered: a larger magnitude never maps to a lower bin.
  CHECK(DDSketch::index_of(1.0) == 0);
  CHECK(DDSketch::index_of(1.0000001) == 1);
  CHECK(DDSketch::index_of(0.5) < DDSketch::index_of(0.51));
}

TEST_CASE("DDSketch: every percentile within 1% of the exact nearest-rank value", "[ddsketch]") {
  std::mt19937_64 rng(12345);
  for (const std::string kind :
       {"lognormal", "pareto", "uniform", "bimodal", "constant", "signed", "negative", "latency"}) {
    for (const size_t n :
         {size_t{1}, size_t{2}, size_t{3}, size_t{10}, size_t{101}, size_t{1000}, size_t{100000}}) {
      const std::vector<double> values = generate(kind, n, rng);
      check_accuracy(sketch_of(values), values, kind + " n=" + std::to_string(n));
    }
  }
}

TEST_CASE("DDSketch: zero and tiny values count as zero - min, max and sum are exact", "[ddsketch]") {
  const std::vector<double> values = {-3.0, 0.0, 1e-12, -1e-10, 2.0, 0.0, 7.5};
  const DDSketch s = sketch_of(values);
  CHECK(s.count() == 7);
  CHECK(s.zero_count() == 4);
  CHECK(s.min() == -3.0);
  CHECK(s.max() == 7.5);
  CHECK(s.sum() == Approx(6.5));
  // Ranks 2..5 are the zero-ish values: reported as 0.
  CHECK(s.value_at_rank(1) == Approx(-3.0).epsilon(0.01));
  CHECK(s.value_at_rank(3) == 0.0);
  CHECK(s.value_at_rank(6) == Approx(2.0).epsilon(0.01));
  CHECK(s.value_at_rank(7) == Approx(7.5).epsilon(0.01));
  CHECK(s.value_at_rank(8) == 7.5);  // past the count: the max
  // Only tiny positives: the zero bin's 0 is clamped to the exact min.
  const DDSketch tiny = sketch_of({1e-11, 2e-11});
  CHECK(tiny.quantile(500, 1000) == 1e-11);
}

TEST_CASE("DDSketch: an empty sketch reports zeros", "[ddsketch]") {
  const DDSketch s;
  CHECK(s.count() == 0);
  CHECK(s.min() == 0.0);
  CHECK(s.max() == 0.0);
  CHECK(s.quantile(500, 1000) == 0.0);
  TextBuffer t;
  append_percentile_summary(s, &t);
  CHECK(t.str() == R"({"count": 0, "total": 0.000000, "pct": [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]})");
}

TEST_CASE("DDSketch: percentile summary format", "[ddsketch]") {
  // One value: every percentile is clamped to it exactly.
  TextBuffer t;
  append_percentile_summary(sketch_of({12.5}), &t);
  CHECK(t.str() ==
        R"({"count": 1, "total": 12.500000, "pct": [12.50, 12.50, 12.50, 12.50, 12.50, 12.50, 12.50]})");
}

TEST_CASE("DDSketch: merging in any order gives bit-identical bins", "[ddsketch]") {
  std::mt19937_64 rng(99);
  for (const std::string kind : {"lognormal", "signed", "latency", "bimodal"}) {
    const std::vector<double> values = generate(kind, 20000, rng);
    const DDSketch whole = sketch_of(values);
    // Split over 37 parts at random.
    std::vector<std::vector<double>> parts(37);
    std::uniform_int_distribution<size_t> pick(0, parts.size() - 1);
    for (const double v : values) parts[pick(rng)].push_back(v);
    std::vector<DDSketch> sketches(parts.size());
    for (size_t i = 0; i < parts.size(); ++i) {
      for (const double v : parts[i]) sketches[i].add(v);
    }
    for (int round = 0; round < 5; ++round) {
      std::vector<size_t> order(parts.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      DDSketch merged;
      if (round % 2 == 0) {
        for (const size_t i : order) merged.merge(sketches[i]);
      } else {
        // Tree-shaped: pairs, then pairs of pairs.
        std::vector<DDSketch> level(parts.size());
        for (size_t i = 0; i < order.size(); ++i) level[i].merge(sketches[order[i]]);
        while (level.size() > 1) {
          std::vector<DDSketch> next((level.size() + 1) / 2);
          for (size_t i = 0; i < level.size(); ++i) next[i / 2].merge(level[i]);
          level = std::move(next);
        }
        merged.merge(level[0]);
      }
      INFO(kind << " round " << round);
      REQUIRE(merged.same_distribution(whole));
      CHECK(merged.sum() == Approx(whole.sum()).epsilon(1e-9));
      for (const uint32_t q : kPerMille) CHECK(merged.quantile(q, 1000) == whole.quantile(q, 1000));
      check_accuracy(merged, values, kind + " merged");
    }
  }
}

TEST_CASE("DDSketch: constant data reads exactly at every percentile", "[ddsketch]") {
  // Each of these sits off its bin's representative (3 -> 2.97, 1 -> 0.99,
  // 9 -> 8.94): the clamp to [min, max] brings every percentile back.
  for (const double v : {3.0, 1.0, 9.0, 0.0012, -7.25}) {
    for (const size_t n : {1, 2, 5, 6, 100, 10000}) {
      const DDSketch s = sketch_of(std::vector<double>(n, v));
      INFO(v << " x " << n);
      for (const uint32_t q : kPerMille) CHECK(s.quantile(q, 1000) == v);
      CHECK(s.min() == v);
      CHECK(s.max() == v);
    }
  }
}

TEST_CASE("DDSketch: up to 5 values are kept exactly, beyond them min and max", "[ddsketch]") {
  const DDSketch two = sketch_of({9.0, 1.0});
  CHECK(two.min() == 1.0);
  CHECK(two.max() == 9.0);
  CHECK(two.quantile(0, 1000) == 1.0);
  CHECK(two.quantile(500, 1000) == 1.0);  // rank 1 of 2
  CHECK(two.quantile(750, 1000) == 9.0);  // rank 2 of 2, not its bin's 8.94
  CHECK(two.quantile(1000, 1000) == 9.0);
  // Five values: every rank exact, whatever the order they came in.
  const std::vector<double> five = {12.5, 3.0, 40.0, 7.0, 21.5};
  const std::vector<double> sorted = {3.0, 7.0, 12.5, 21.5, 40.0};
  for (uint64_t rank = 1; rank <= 5; ++rank) CHECK(sketch_of(five).value_at_rank(rank) == sorted[rank - 1]);
  // A sixth value: ranks 1 and 6 stay exact (min, max), the others come
  // from the bins, within 1 % but never outside [min, max].
  DDSketch six = sketch_of(five);
  six.add(0.5);
  CHECK(six.value_at_rank(1) == 0.5);
  CHECK(six.value_at_rank(6) == 40.0);
  CHECK(six.value_at_rank(2) != 3.0);
  CHECK(six.value_at_rank(2) == Approx(3.0).epsilon(0.01));
  std::mt19937_64 rng(11);
  for (const std::string kind : {"lognormal", "signed", "negative", "bimodal"}) {
    for (const size_t n : {6, 20, 1000}) {
      const DDSketch s = sketch_of(generate(kind, n, rng));
      for (uint64_t rank = 1; rank <= n; rank += 1 + n / 50) {
        const double v = s.value_at_rank(rank);
        INFO(kind << " n=" << n << " rank " << rank);
        CHECK(v >= s.min());
        CHECK(v <= s.max());
      }
    }
  }
}

TEST_CASE("DDSketch: exact values merge in any order and with sketches", "[ddsketch]") {
  std::mt19937_64 rng(23);
  std::uniform_real_distribution<double> value(-50, 50);
  for (int trial = 0; trial < 300; ++trial) {
    // 1..8 values split over up to 4 parts, merged in two orders and added
    // in one: the same sketch, exact up to 5 values.
    const size_t n = 1 + rng() % 8;
    std::vector<double> values(n);
    for (double& v : values) v = std::round(value(rng) * 4) / 4;
    std::vector<DDSketch> parts(1 + rng() % 4);
    for (const double v : values) parts[rng() % parts.size()].add(v);
    DDSketch forward;
    for (const DDSketch& p : parts) forward.merge(p);
    DDSketch backward;
    for (size_t i = parts.size(); i > 0; --i) backward.merge(parts[i - 1]);
    const DDSketch whole = sketch_of(values);
    taba::builtin::PreparedValues prepared;
    for (const double v : values) prepared.add(v);
    DDSketch from_prepared;
    from_prepared.add_prepared(prepared);
    std::sort(values.begin(), values.end());
    INFO("trial " << trial << ", " << n << " values in " << parts.size() << " parts");
    for (const DDSketch* s : {&forward, &backward, &from_prepared}) {
      CHECK(s->same_distribution(whole));
      ByteWriter a;
      ByteWriter b;
      s->serialize(&a);
      whole.serialize(&b);
      CHECK(a.bytes() == b.bytes());
      CHECK(s->min() == values.front());
      CHECK(s->max() == values.back());
      for (uint64_t rank = 1; rank <= n && n <= DDSketch::kExactCount; ++rank) {
        CHECK(s->value_at_rank(rank) == values[rank - 1]);
      }
    }
  }
  // -0 and 0 are one value, whatever the order.
  ByteWriter zero_first;
  ByteWriter minus_first;
  sketch_of({0.0, -0.0, 1.0}).serialize(&zero_first);
  sketch_of({-0.0, 0.0, 1.0}).serialize(&minus_first);
  CHECK(zero_first.bytes() == minus_first.bytes());
}

TEST_CASE("DDSketch: form 1 (no exact values) still reads", "[ddsketch]") {
  // {1, 3, 9} as form 1 wrote it: zero count, sum, three positive bins, no
  // negative bins, min and max.
  ByteWriter w;
  w.put_varint(0);
  w.put_double(13);
  w.put_varint(3);
  w.put_svarint(DDSketch::index_of(1));
  w.put_varint(1);
  w.put_varint(static_cast<uint64_t>(DDSketch::index_of(3) - DDSketch::index_of(1)));
  w.put_varint(1);
  w.put_varint(static_cast<uint64_t>(DDSketch::index_of(9) - DDSketch::index_of(3)));
  w.put_varint(1);
  w.put_varint(0);
  w.put_double(1);
  w.put_double(9);
  DDSketch old;
  ByteReader r(w.bytes().data(), w.bytes().size());
  const char* why = nullptr;
  REQUIRE(old.deserialize(&r, 1, &why));
  CHECK(r.at_end());
  CHECK(old.count() == 3);
  CHECK(old.min() == 1);
  CHECK(old.max() == 9);
  // The value between is its bin's, as form 1 rendered it.
  CHECK(old.value_at_rank(2) == DDSketch::bin_value(DDSketch::index_of(3)));
  CHECK(old.value_at_rank(3) == 9);
  // Read as form 2 the same bytes lack the value between.
  DDSketch as_new;
  ByteReader r2(w.bytes().data(), w.bytes().size());
  CHECK_FALSE(as_new.deserialize(&r2, 2, &why));
  // Written again it is form 2, and merges on with new values.
  ByteWriter again;
  old.serialize(&again);
  DDSketch copy;
  ByteReader r3(again.bytes().data(), again.bytes().size());
  REQUIRE(copy.deserialize(&r3, DDSketch::kForm, &why));
  CHECK(copy.same_distribution(old));
  copy.add(0.5);
  CHECK(copy.min() == 0.5);
  CHECK(copy.max() == 9);
  CHECK(copy.value_at_rank(4) == 9);
}

TEST_CASE("DDSketch: form 2 values must be ascending and match the bins", "[ddsketch]") {
  const DDSketch three = sketch_of({1, 3, 9});
  ByteWriter w;
  three.serialize(&w);
  const std::string good = w.bytes();
  auto reads = [](const std::string& bytes) {
    DDSketch s;
    ByteReader r(bytes.data(), bytes.size());
    const char* why = nullptr;
    return s.deserialize(&r, DDSketch::kForm, &why) && r.at_end();
  };
  CHECK(reads(good));
  // The value between (3) is the last 8 bytes.
  auto with_between = [&](double v) {
    ByteWriter tail;
    tail.put_double(v);
    return good.substr(0, good.size() - 8) + tail.bytes();
  };
  CHECK(reads(with_between(2.98)));      // same bin
  CHECK_FALSE(reads(with_between(4)));   // another bin
  CHECK_FALSE(reads(with_between(10)));  // above max
  CHECK_FALSE(reads(with_between(std::nan(""))));
  CHECK_FALSE(reads(good.substr(0, good.size() - 1)));
}

TEST_CASE("DDSketch: a merged sketch differs when the data differs", "[ddsketch]") {
  DDSketch a = sketch_of({1.0, 2.0, 3.0});
  const DDSketch b = sketch_of({1.0, 2.0, 3.5});
  CHECK_FALSE(a.same_distribution(b));
  DDSketch c;
  c.merge(a);
  c.merge(a);
  CHECK(c.count() == 6);
  CHECK_FALSE(c.same_distribution(a));
  a.merge(a);  // merging a sketch into itself doubles it
  CHECK(a.same_distribution(c));
}

TEST_CASE("DDSketch: collapsing keeps the highest 2048 bins, independent of order", "[ddsketch]") {
  std::vector<double> values;
  for (int i = 0; i < 1000; ++i) values.push_back(1.0 + i * 0.001);  // ~1
  for (int i = 0; i < 10; ++i) values.push_back(1e30 * (1 + i * 0.01));
  const DDSketch forward = sketch_of(values);
  std::vector<double> reversed(values.rbegin(), values.rend());
  const DDSketch backward = sketch_of(reversed);
  CHECK(forward.same_distribution(backward));
  CHECK(forward.count() == 1010);
  CHECK(forward.positive().hi() - forward.positive().lo() == DDSketch::kMaxBinsPerStore - 1);
  CHECK(forward.positive().total() == 1010);
  // The top of the distribution stays accurate...
  std::sort(values.begin(), values.end());
  CHECK(std::fabs(forward.quantile(999, 1000) - exact_quantile(values, 999, 1000)) <=
        0.01 * exact_quantile(values, 999, 1000));
  // ...while the collapsed low end reports the lowest kept bin, far above 1.
  CHECK(forward.quantile(500, 1000) > 1e10);
  // Merging parts that collapsed on their own gives the same bins.
  DDSketch low = sketch_of(std::vector<double>(values.begin(), values.begin() + 1000));
  const DDSketch high = sketch_of(std::vector<double>(values.begin() + 1000, values.end()));
  low.merge(high);
  CHECK(low.same_distribution(forward));
  // A value far below the kept range lands in the lowest kept bin.
  DDSketch again = sketch_of({1e30});
  again.add(1e-5);
  again.add(1e300);
  CHECK(again.positive().hi() - again.positive().lo() <= DDSketch::kMaxBinsPerStore - 1);
  CHECK(again.count() == 3);
  CHECK(again.max() == 1e300);
  CHECK(again.min() == 1e-5);
}

TEST_CASE("DDSketch: the negative store collapses the values closest to zero", "[ddsketch]") {
  DDSketch s;
  for (int i = 0; i < 100; ++i) s.add(-1e-6);
  s.add(-1e40);
  CHECK(s.negative().hi() - s.negative().lo() == DDSketch::kMaxBinsPerStore - 1);
  CHECK(s.quantile(0, 1000) == -1e40);
  CHECK(std::fabs(s.value_at_rank(1) + 1e40) <= 1e38);
  // The 100 small negatives now sit in the lowest kept bin (magnitude ~1e22).
  CHECK(s.value_at_rank(50) < -1e20);
}

TEST_CASE("DDSketch: serialization round trip and validation", "[ddsketch]") {
  std::mt19937_64 rng(5);
  for (const std::string kind : {"signed", "latency", "constant"}) {
    const DDSketch original = sketch_of(generate(kind, 5000, rng));
    ByteWriter w;
    original.serialize(&w);
    const std::string bytes = w.bytes();
    DDSketch copy;
    ByteReader r(bytes.data(), bytes.size());
    const char* why = nullptr;
    REQUIRE(copy.deserialize(&r, DDSketch::kForm, &why));
    CHECK(r.at_end());
    CHECK(copy.same_distribution(original));
    CHECK(copy.sum() == original.sum());
    // Every truncation is refused (never read past the end: run under ASan).
    for (size_t len = 0; len < bytes.size(); ++len) {
      DDSketch partial;
      ByteReader pr(bytes.data(), len);
      const char* reason = nullptr;
      if (partial.deserialize(&pr, DDSketch::kForm, &reason)) {
        CHECK(pr.at_end());
      } else {
        CHECK(reason != nullptr);
      }
    }
  }
  // Sparse: a sketch of one value is a handful of bytes.
  ByteWriter small;
  sketch_of({3.0}).serialize(&small);
  CHECK(small.bytes().size() <= 32);
  // Hand-made corrupt forms.
  auto refuses = [](const std::string& bytes) {
    DDSketch s;
    ByteReader r(bytes.data(), bytes.size());
    const char* why = nullptr;
    return !s.deserialize(&r, DDSketch::kForm, &why) && why != nullptr;
  };
  ByteWriter bad_index;  // zero count 0, sum 0, one positive bin at index 10^6
  bad_index.put_varint(0);
  bad_index.put_svarint128(0);  // the sum (form 3: fixed point)
  bad_index.put_varint(1);
  bad_index.put_svarint(1000000);
  bad_index.put_varint(1);
  CHECK(refuses(bad_index.bytes()));
  ByteWriter too_wide;  // two bins 3000 apart
  too_wide.put_varint(0);
  too_wide.put_svarint128(0);  // the sum (form 3: fixed point)
  too_wide.put_varint(2);
  too_wide.put_svarint(0);
  too_wide.put_varint(1);
  too_wide.put_varint(3000);
  too_wide.put_varint(1);
  CHECK(refuses(too_wide.bytes()));
  ByteWriter zero_bin;  // a bin with count 0
  zero_bin.put_varint(0);
  zero_bin.put_svarint128(0);  // the sum (form 3: fixed point)
  zero_bin.put_varint(1);
  zero_bin.put_svarint(5);
  zero_bin.put_varint(0);
  CHECK(refuses(zero_bin.bytes()));
  ByteWriter bad_minmax;  // one zero value, min > max
  bad_minmax.put_varint(1);
  bad_minmax.put_svarint128(0);  // the sum (form 3: fixed point)
  bad_minmax.put_varint(0);
  bad_minmax.put_varint(0);
  bad_minmax.put_double(1.0);
  bad_minmax.put_double(-1.0);
  CHECK(refuses(bad_minmax.bytes()));
}

TEST_CASE("DDSketch: memory stays small for data spanning a few decades", "[ddsketch]") {
  std::mt19937_64 rng(3);
  // 10,000 latencies over 4 decades: ~460 bins of 1 or 2 bytes.
  const DDSketch s = sketch_of(generate("latency", 10000, rng));
  CHECK(s.heap_bytes() <= 1500);
  // Many more events widen the counters, never the bin count.
  DDSketch big;
  for (int i = 0; i < 200; ++i) big.merge(s);
  CHECK(big.count() == 2000000);
  CHECK(big.heap_bytes() <= 4 * 600);
}

TEST_CASE("CountArray: widens on demand and keeps values", "[ddsketch]") {
  CountArray a(4);
  CHECK(a.width() == 1);
  a.add(0, 200);
  a.add(1, 255);
  CHECK(a.width() == 1);
  a.add(0, 100);  // 300 > 255
  CHECK(a.width() == 2);
  CHECK(a.get(0) == 300);
  CHECK(a.get(1) == 255);
  a.set(2, 70000);
  CHECK(a.width() == 4);
  a.add(3, uint64_t{1} << 40);
  CHECK(a.width() == 8);
  CHECK(a.get(0) == 300);
  CHECK(a.get(1) == 255);
  CHECK(a.get(2) == 70000);
  CHECK(a.get(3) == uint64_t{1} << 40);
  a.add(3, UINT64_MAX);  // saturates
  CHECK(a.get(3) == UINT64_MAX);
  CHECK(a.heap_bytes() == 32);
}

TEST_CASE("TextBuffer: printf formats and JSON escaping", "[ddsketch]") {
  TextBuffer t;
  t.u64(UINT64_MAX)
      .raw(" ")
      .i64(-5)
      .raw(" ")
      .number2(2.005)
      .raw(" ")
      .number2(-0.5)
      .raw(" ")
      .number6(1.0 / 3, 0);
  CHECK(t.str() == "18446744073709551615 -5 2.00 -0.50 0.333333");
  TextBuffer big;
  big.number2(1e308);
  CHECK(big.str().size() == 309 + 3);
  TextBuffer s;
  s.json_string(std::string("a\"b\\c\n\t\x01") + "\xc3\xa9");
  CHECK(s.str() == "\"a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\"");
  CHECK(taba::builtin::trim_json_space(" \t\"x\" \r\n") == "\"x\"");
}

TEST_CASE("TextBuffer: the exact number form writes shortest round-trip text", "[ddsketch]") {
  using taba::builtin::Numbers;
  using taba::builtin::numbers_for;
  CHECK(numbers_for(TABA_FORMAT_JSON) == Numbers::kTaba);
  CHECK(numbers_for(TABA_FORMAT_JSON_EXACT) == Numbers::kExact);
  CHECK(numbers_for(TABA_FORMAT_JSON_DETAILED) == Numbers::kExact);
  TextBuffer taba(Numbers::kTaba);
  taba.number2(0.0012).raw(" ").number6(0.0000012, 0).raw(" ").number2(3.0);
  CHECK(taba.str() == "0.00 0.000001 3.00");
  TextBuffer exact(Numbers::kExact);
  exact.number2(0.0012).raw(" ").number6(0.0000012, 0).raw(" ").number2(3.0).raw(" ").number2(0.1 + 0.2);
  exact.raw(" ").number6(0.0029999997, 1e-9);
  CHECK(exact.str() == "0.0012 0.0000012 3 0.30000000000000004 0.003");
}
