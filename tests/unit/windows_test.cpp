// BucketWindow (plugins/common/window.h): rotation forward only, lazy
// zeroing, events older than the window, merging, serialization; checked
// against a plain reference model. Also the ByteWriter/ByteReader encodings
// the serialized forms are made of.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/byte_io.h"
#include "common/window.h"

using taba::builtin::BucketWindow;
using taba::builtin::ByteReader;
using taba::builtin::ByteWriter;
using taba::builtin::ExactSum;
using taba::builtin::FixedBucketWindow;

namespace {

ExactSum sum_of(double v) {
  return ExactSum::of(v);
}

// The obvious implementation: every bucket ever written, kept forever.
struct ModelWindow {
  int64_t width;
  int64_t size;
  int64_t newest;  // bucket number
  std::map<int64_t, std::pair<uint64_t, double>> buckets;

  static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
  int64_t bucket_of(int64_t second) const { return floor_div(second, width); }
  void rotate_to(int64_t bucket) { newest = std::max(newest, bucket); }
  bool add_bucket(int64_t b, uint64_t count, double sum) {
    rotate_to(b);
    if (b < newest - size + 1) return false;
    buckets[b].first += count;
    buckets[b].second += sum;
    return true;
  }
  bool add(int64_t second, uint64_t count, double sum) { return add_bucket(bucket_of(second), count, sum); }
  std::pair<uint64_t, double> at(int64_t b, int64_t as_of) const {
    const int64_t end = std::max(newest, as_of);
    auto it = buckets.find(b);
    if (it == buckets.end() || b < end - size + 1 || b > end) return {0, 0.0};
    return it->second;
  }
};

// Window and model agree on every bucket and on the totals as of as_of.
void check_same(const BucketWindow& w, const ModelWindow& m, int64_t as_of) {
  REQUIRE(w.newest() == m.newest);
  uint64_t count = 0;
  double sum = 0;
  int64_t expected_b = std::max(m.newest, as_of) - m.size + 1;
  int visited = 0;
  w.for_each_bucket(as_of, [&](int64_t b, uint64_t c, ExactSum s) {
    REQUIRE(b == expected_b);
    const auto want = m.at(b, as_of);
    INFO("bucket " << b);
    REQUIRE(c == want.first);
    REQUIRE(s.value() == want.second);  // the model's sums are dyadic: exact
    count += c;
    sum += s.value();
    ++expected_b;
    ++visited;
  });
  REQUIRE(visited == m.size);
  const BucketWindow::Totals t = w.totals(as_of);
  CHECK(t.count == count);
  CHECK(t.sum.value() == sum);
  CHECK(w.empty_as_of(as_of) == (count == 0));
}

std::string serialized(const BucketWindow& w) {
  ByteWriter out;
  w.serialize(&out);
  return out.bytes();
}

}  // namespace

TEST_CASE("BucketWindow: buckets are floor(second / width), also before 1970", "[windows]") {
  FixedBucketWindow<6> w(10, 0);
  CHECK(w.bucket_of(0) == 0);
  CHECK(w.bucket_of(9) == 0);
  CHECK(w.bucket_of(10) == 1);
  CHECK(w.bucket_of(-1) == -1);
  CHECK(w.bucket_of(-10) == -1);
  CHECK(w.bucket_of(-11) == -2);
  CHECK(w.newest() == 0);
  FixedBucketWindow<6> before(10, -25);
  CHECK(before.newest() == -3);
  CHECK(before.oldest_for(before.newest()) == -8);
}

TEST_CASE("BucketWindow: adds, old events skipped, rotation forward only", "[windows]") {
  const int64_t t0 = 1400000000;   // a multiple of 10
  FixedBucketWindow<6> w(10, t0);  // buckets t0-50 .. t0+9
  CHECK(w.empty_as_of(w.newest()));
  CHECK(w.add(t0 + 9, 1, sum_of(2.5)));
  CHECK(w.add(t0 - 50, 2, sum_of(4.0)));        // oldest bucket: kept
  CHECK_FALSE(w.add(t0 - 51, 1, sum_of(100)));  // older than the window: skipped
  BucketWindow::Totals t = w.totals(w.newest());
  CHECK(t.count == 3);
  CHECK(t.sum.value() == 6.5);
  // Rotation never moves back.
  w.rotate_to(w.newest() - 3);
  CHECK(w.newest() == t0 / 10);
  // Rendering as of a later time does not modify the window.
  CHECK(w.totals(w.newest() + 1).count == 1);  // t0-50 dropped
  CHECK(w.totals(w.newest() + 6).count == 0);
  CHECK(w.totals(w.newest()).count == 3);
  // Adding in the future rotates forward.
  CHECK(w.add(t0 + 10, 1, sum_of(1.0)));
  CHECK(w.newest() == t0 / 10 + 1);
  t = w.totals(w.newest());
  CHECK(t.count == 2);  // t0-50 fell out
  CHECK(t.sum.value() == 3.5);
  CHECK(w.bucket(t0 / 10).count == 1);
  CHECK(w.bucket(t0 / 10 - 5).count == 0);
}

TEST_CASE("BucketWindow: a jump longer than the window empties it - huge jumps are O(1)", "[windows]") {
  FixedBucketWindow<60> w(1, 1000);
  for (int64_t s = 941; s <= 1000; ++s) REQUIRE(w.add(s, 1, sum_of(1.0)));
  CHECK(w.totals(w.newest()).count == 60);
  w.rotate_to(1059);  // keeps only second 1000
  CHECK(w.totals(w.newest()).count == 1);
  w.rotate_to(1060);
  CHECK(w.empty_as_of(w.newest()));
  // Slots reused after the jump start from zero (lazy zeroing).
  CHECK(w.add(1060, 1, sum_of(5.0)));
  CHECK(w.add(1055, 1, sum_of(7.0)));  // the slot second 995 used
  CHECK_FALSE(w.add(1000, 1, sum_of(1.0)));
  CHECK(w.totals(w.newest()).count == 2);
  CHECK(w.totals(w.newest()).sum.value() == 12.0);
  // Thousands of years ahead: rotation does not walk the elapsed buckets.
  const int64_t far = int64_t{1} << 50;
  w.rotate_to(far);
  CHECK(w.newest() == far);
  CHECK(w.empty_as_of(far));
  CHECK(w.add(far, 3, sum_of(3.0)));
  CHECK(w.totals(far).count == 3);
}

TEST_CASE("BucketWindow: matches a reference model under random operations", "[windows]") {
  struct Shape {
    uint32_t width;
    int64_t start;
  };
  std::mt19937_64 rng(2024);
  for (const Shape shape :
       {Shape{1, 1400000000}, Shape{10, 1400000003}, Shape{30, -7777}, Shape{900, 1400000450}}) {
    FixedBucketWindow<7> w(shape.width, shape.start);
    FixedBucketWindow<7> other(shape.width, shape.start);
    ModelWindow m{shape.width, 7, ModelWindow::floor_div(shape.start, shape.width), {}};
    ModelWindow om = m;
    std::uniform_int_distribution<int> op(0, 9);
    std::uniform_int_distribution<int> small(0, 3);
    for (int step = 0; step < 4000; ++step) {
      const int kind = op(rng);
      const int64_t newest_second = m.newest * shape.width;
      if (kind <= 4) {  // add around the window, including too old
        std::uniform_int_distribution<int64_t> delta(-10 * int64_t{shape.width}, 2 * int64_t{shape.width});
        const int64_t second = newest_second + delta(rng);
        const uint64_t count = 1 + small(rng);
        const double sum = static_cast<double>(small(rng)) - 1.5;
        CHECK(w.add(second, count, sum_of(sum)) == m.add(second, count, sum));
      } else if (kind <= 6) {  // rotate a little or a lot
        const int64_t by = op(rng) == 0 ? 5 + small(rng) * 7 : small(rng);
        w.rotate_to(w.newest() + by);
        m.rotate_to(m.newest + by);
      } else if (kind == 7) {  // grow the other window
        const int64_t second = om.newest * shape.width + (small(rng) - 2) * int64_t{shape.width};
        CHECK(other.add(second, 2, sum_of(0.25)) == om.add(second, 2, 0.25));
        if (small(rng) == 0) {
          other.rotate_to(other.newest() + small(rng) * 3);
          om.rotate_to(om.newest + (other.newest() - om.newest));
        }
      } else if (kind == 8) {  // merge the other window in
        const std::string before = serialized(other);
        const int64_t now_bucket = m.newest + small(rng) - 1;
        w.merge_from(other, now_bucket);
        m.rotate_to(std::max(now_bucket, om.newest));
        for (const auto& [b, cs] : om.buckets) {
          if (b >= om.newest - om.size + 1) m.add_bucket(b, cs.first, cs.second);
        }
        CHECK(serialized(other) == before);  // `from` unchanged
      } else {                               // serialization round trip
        const std::string bytes = serialized(w);
        FixedBucketWindow<7> copy(shape.width, 0);
        ByteReader r(bytes.data(), bytes.size());
        const char* why = nullptr;
        REQUIRE(copy.deserialize(&r, BucketWindow::kForm, &why));
        CHECK(r.at_end());
        check_same(copy, m, m.newest);
        CHECK(serialized(copy) == bytes);
      }
      check_same(w, m, m.newest);
      check_same(w, m, m.newest + small(rng));
    }
  }
}

TEST_CASE("BucketWindow: merge costs nothing for buckets the source does not hold", "[windows]") {
  FixedBucketWindow<96> into(900, 1400000400);
  FixedBucketWindow<96> delta(900, 1400000400);
  for (int i = 0; i < 96; ++i) into.add(1400000400 - 900 * i, 1, sum_of(1.0));
  delta.add(1400000401, 4, sum_of(10.0));
  into.merge_from(delta, into.bucket_of(1400000401));
  CHECK(into.totals(into.newest()).count == 100);
  CHECK(into.bucket(into.newest()).count == 5);
  CHECK(into.bucket(into.newest()).sum.value() == 11.0);
  // The source is later: the destination rotates to it first.
  FixedBucketWindow<96> later(900, 1400000400 + 900 * 10);
  later.add(1400000400 + 900 * 10, 1, sum_of(1.0));
  into.merge_from(later, 0);
  CHECK(into.newest() == later.newest());
  CHECK(into.totals(into.newest()).count == 100 - 10 + 1);  // 10 oldest buckets left the window
}

TEST_CASE("BucketWindow: counts past 2^32 keep all 64 bits", "[windows]") {
  FixedBucketWindow<4> w(1, 100);
  const uint64_t big = (uint64_t{1} << 32) + 5;
  w.add(100, big, sum_of(1.0));
  w.add(99, 7, sum_of(7.0));
  CHECK(w.bucket(100).count == big);
  CHECK(w.heap_bytes() == 4 * 16);  // a count and a sum high word per bucket
  w.add(100, uint64_t{3} << 32, sum_of(0.0));
  CHECK(w.bucket(100).count == big + (uint64_t{3} << 32));
  CHECK(w.totals(100).count == big + (uint64_t{3} << 32) + 7);
  // Lazy zeroing clears the high words too.
  w.rotate_to(104);
  w.add(104, 1, sum_of(1.0));  // the slot bucket 100 used
  CHECK(w.bucket(104).count == 1);
  const std::string bytes = serialized(w);
  FixedBucketWindow<4> copy(1, 0);
  ByteReader r(bytes.data(), bytes.size());
  const char* why = nullptr;
  REQUIRE(copy.deserialize(&r, BucketWindow::kForm, &why));
  CHECK(copy.totals(104).count == 1);
  FixedBucketWindow<4> huge(1, 100);
  huge.add(100, big, sum_of(0.5));
  const std::string huge_bytes = serialized(huge);
  FixedBucketWindow<4> huge_copy(1, 0);
  ByteReader hr(huge_bytes.data(), huge_bytes.size());
  REQUIRE(huge_copy.deserialize(&hr, BucketWindow::kForm, &why));
  CHECK(huge_copy.bucket(100).count == big);
  CHECK(huge_copy.bucket(100).sum.value() == 0.5);
}

TEST_CASE("BucketWindow: serialized form is sparse and validated", "[windows]") {
  FixedBucketWindow<120> w(30, 1400000000);
  CHECK(serialized(w).size() <= 6);   // end + zero buckets
  w.add(1400000000, 3, sum_of(3.0));  // sum equals count: no sum bytes
  w.add(1400000000 - 30 * 50, 2, sum_of(-7.0));
  w.add(1400000000 - 30 * 51, 1, sum_of(0.1));
  const std::string bytes = serialized(w);
  CHECK(bytes.size() <= 6 + 2 + 3 + 10 + 2);
  // Every truncation is refused without reading past the end.
  for (size_t len = 0; len < bytes.size(); ++len) {
    FixedBucketWindow<120> copy(30, 0);
    ByteReader r(bytes.data(), len);
    const char* why = nullptr;
    CHECK_FALSE(copy.deserialize(&r, BucketWindow::kForm, &why));
    CHECK(why != nullptr);
  }
  auto refuses = [](const ByteWriter& bw) {
    FixedBucketWindow<120> copy(30, 0);
    ByteReader r(bw.bytes().data(), bw.bytes().size());
    const char* why = nullptr;
    return !copy.deserialize(&r, BucketWindow::kForm, &why) && why != nullptr;
  };
  ByteWriter too_many;  // 121 buckets in a 120-bucket window
  too_many.put_svarint(1000);
  too_many.put_varint(121);
  CHECK(refuses(too_many));
  ByteWriter too_old;  // first bucket 120 before the end
  too_old.put_svarint(1000);
  too_old.put_varint(1);
  too_old.put_varint(120 << 2);
  too_old.put_varint(1);
  CHECK(refuses(too_old));
  ByteWriter past_end;  // second bucket after the end
  past_end.put_svarint(1000);
  past_end.put_varint(2);
  past_end.put_varint(1 << 2);
  past_end.put_varint(1);
  past_end.put_varint(2 << 2);
  past_end.put_varint(1);
  CHECK(refuses(past_end));
  ByteWriter bad_kind;
  bad_kind.put_svarint(1000);
  bad_kind.put_varint(1);
  bad_kind.put_varint(3);
  bad_kind.put_varint(1);
  CHECK(refuses(bad_kind));
  ByteWriter zero_count;
  zero_count.put_svarint(1000);
  zero_count.put_varint(1);
  zero_count.put_varint(0);
  zero_count.put_varint(0);
  CHECK(refuses(zero_count));
  ByteWriter far_end;  // end beyond 2^53
  far_end.put_svarint(int64_t{1} << 60);
  far_end.put_varint(0);
  CHECK(refuses(far_end));
}

TEST_CASE("ByteWriter/ByteReader: varints, zigzag, doubles, byte strings", "[windows]") {
  ByteWriter w;
  const std::vector<uint64_t> unsigned_values = {0, 1, 127, 128, 300, uint64_t{1} << 35, UINT64_MAX};
  const std::vector<int64_t> signed_values = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
  const std::vector<double> doubles = {0.0, -0.0, 1.5, -1e300, std::numeric_limits<double>::infinity()};
  for (const uint64_t v : unsigned_values) w.put_varint(v);
  for (const int64_t v : signed_values) w.put_svarint(v);
  for (const double v : doubles) w.put_double(v);
  w.put_bytes("hello");
  CHECK(w.bytes().substr(0, 5) == std::string("\x00\x01\x7f\x80\x01", 5));
  ByteReader r(w.bytes().data(), w.bytes().size());
  for (const uint64_t v : unsigned_values) {
    uint64_t got;
    REQUIRE(r.get_varint(&got));
    CHECK(got == v);
  }
  for (const int64_t v : signed_values) {
    int64_t got;
    REQUIRE(r.get_svarint(&got));
    CHECK(got == v);
  }
  for (const double v : doubles) {
    double got;
    REQUIRE(r.get_double(&got));
    CHECK(std::memcmp(&got, &v, sizeof v) == 0);
  }
  std::string_view bytes;
  REQUIRE(r.get_bytes(5, &bytes));
  CHECK(bytes == "hello");
  CHECK(r.at_end());
  uint64_t v;
  CHECK_FALSE(r.get_varint(&v));
  // Malformed varints: truncated, 11 bytes, a 10th byte above 1.
  ByteReader truncated("\x80\x80", 2);
  CHECK_FALSE(truncated.get_varint(&v));
  const std::string eleven = std::string(10, '\xff') + "\x01";
  ByteReader too_long(eleven.data(), eleven.size());
  CHECK_FALSE(too_long.get_varint(&v));
  const std::string tenth = std::string(9, '\xff') + "\x02";
  ByteReader overflow(tenth.data(), tenth.size());
  CHECK_FALSE(overflow.get_varint(&v));
  // Limits: get_varint_max and get_bytes refuse without consuming.
  ByteReader limited("\x05\x61\x62", 3);
  CHECK_FALSE(limited.get_varint_max(4, &v));
  CHECK_FALSE(limited.get_bytes(10, &bytes));  // length 5 > 2 bytes left
  CHECK(limited.remaining() == 3);
  REQUIRE(limited.get_varint_max(5, &v));
  CHECK(v == 5);
  double d;
  ByteReader short_double("\x00\x00\x00", 3);
  CHECK_FALSE(short_double.get_double(&d));
}
