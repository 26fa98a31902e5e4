// The client-proxy's StatsD buffer (src/roles/statsd_buffer.h): the v1 bodies
// it builds must be exactly those of the straightforward implementation it
// replaced (parse every value, map its name, format every number with fmt),
// which lives on as the reference in statsd_reference.h; and the number
// helpers it uses (src/protocol/statsd.h) must write what fmt writes.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "protocol/statsd.h"
#include "roles/client_proxy.h"
#include "statsd_reference.h"

using taba::roles::ProxyStats;
using taba::roles::StatsdBuffer;
using taba::test::Reference;
namespace statsd = taba::protocol::statsd;

namespace {

// Feeds the same datagrams (a take_body after each group) to both and
// compares every body and the counters.
void compare(const std::vector<std::vector<std::string>>& flushes, uint64_t max_events = 1'000'000) {
  StatsdBuffer buffer(max_events);
  Reference ref(max_events);
  ProxyStats got;
  taba::test::feed_both(flushes, &buffer, &ref, &got, [&](double) {
    std::string a = "keep:", b = "keep:";
    bool ga = buffer.take_body("host-1", &a);
    bool gb = ref.take_body("host-1", &b);
    CHECK(ga == gb);
    CHECK(a == b);
    CHECK(buffer.events() == 0);
  });
}

}  // namespace

TEST_CASE("proxy buffer: bodies for every StatsD type are those of the reference", "[statsd][proxy-buffer]") {
  auto flushes = taba::test::every_type_flushes();
  flushes.push_back({"jobs.done:3|c|T1763829700\njobs.done:4|c|T12345678901234567\nlat:1|ms|T17|#region:us,env:prod\n"});
  compare(flushes);
}

TEST_CASE("proxy buffer: number texts as sent or formatted", "[statsd][proxy-buffer]") {
  std::vector<std::string> group = taba::test::number_text_lines(true);
  compare({group});
}

TEST_CASE("proxy buffer: set members are escaped twice, as before", "[statsd][proxy-buffer]") {
  compare({{taba::test::kSetMemberLines}});
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("u:a\"b|s\nu:plain|s\n", 1700000000.5, &stats);
  std::string body;
  REQUIRE(buffer.take_body("h", &body));
  CHECK(body ==
        "1\n\nh\n\nu\n"
        "[\"Set\",1700000000.5,\"\\\"a\\\\\\\"b\\\"\"]\n"
        "[\"Set\",1700000000.5,\"\\\"plain\\\"\"]\n"
        "\n\n");
}

TEST_CASE("proxy buffer: the exact body of a small datagram", "[statsd][proxy-buffer]") {
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("hits:1|c\nhits:3|c|@0.5\nlat:12:0.50|ms|#region:us,env:prod\ntemp:42|g\ntemp:-2|g\n",
                      1763830000.1239, &stats);
  buffer.add_datagram("hits:+2|c|T1763829000\n", 1763830000.9, &stats);
  CHECK(buffer.events() == 7);
  std::string body;
  REQUIRE(buffer.take_body("vm", &body));
  CHECK(body ==
        "1\n\nvm\n\n"
        "hits\n"
        "[\"CounterGroup\",1763830000.123,\"1\"]\n"
        "[\"CounterGroup\",1763830000.123,\"6\"]\n"
        "[\"CounterGroup\",1763829000,\"2\"]\n"
        "\n"
        "lat;env=prod;region=us\n"
        "[\"PercentileGroup\",1763830000.123,\"12\"]\n"
        "[\"PercentileGroup\",1763830000.123,\"0.5\"]\n"
        "\n"
        "temp\n"
        "[\"Gauge\",1763830000.123,\"42\"]\n"
        "[\"Gauge\",1763830000.123,\"40\"]\n"
        "\n\n");
  CHECK(stats.datagrams == 2);
  CHECK(stats.lines == 7);
  CHECK(stats.events_buffered == 7);
  CHECK(buffer.events() == 0);
  std::string again;
  CHECK_FALSE(buffer.take_body("vm", &again));
  CHECK(again.empty());
}

TEST_CASE("proxy buffer: type conflicts, unmappable names and bad lines are counted per value", "[statsd][proxy-buffer]") {
  std::string long_name(300, 'n');
  compare({{"x:1|c\nx:1:2:3|ms\nx:5|g\nx:a:b|s\n" + long_name + ":1:2|c\n" + long_name + ":a:b|s\nx:1|c|@2\n",
            "y:1|ms|#a,b\ny:2|h|#b,a\ny:3|c|#a,b\ny:4|c|#b,a\ny:5:6|g|#a,a,b\n"}});
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("x:1|c\nx:1:2:3|ms\n" + long_name + ":1:2|c\n", 1, &stats);
  CHECK(stats.lines == 1);
  CHECK(stats.bad_lines == 5);
  CHECK(stats.type_conflicts == 3);
}

TEST_CASE("proxy buffer: tags in any order are one name, bound to the first type", "[statsd][proxy-buffer]") {
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("lat:1|ms|#a:1,b:2\nlat:2|h|#b:2,a:1\nlat:3|c|#b:2,a:1\nlat:4|ms\n", 1, &stats);
  CHECK(buffer.names() == 2);
  CHECK(stats.lines == 3);
  CHECK(stats.type_conflicts == 1);
  std::string body;
  REQUIRE(buffer.take_body("h", &body));
  CHECK(body ==
        "1\n\nh\n\nlat;a=1;b=2\n[\"PercentileGroup\",1,\"1\"]\n[\"PercentileGroup\",1,\"2\"]\n\n"
        "lat\n[\"PercentileGroup\",1,\"4\"]\n\n\n");
}

TEST_CASE("proxy buffer: a full buffer drops values and keeps gauges right", "[statsd][proxy-buffer]") {
  compare(taba::test::full_buffer_flushes(), 3);
  StatsdBuffer buffer(2);
  ProxyStats stats;
  buffer.add_datagram("g:10|g\ng:+1|g\ng:+100|g\n", 1, &stats);
  CHECK(stats.lines == 3);
  CHECK(stats.events_buffered == 2);
  CHECK(stats.events_dropped_full == 1);
  std::string body;
  REQUIRE(buffer.take_body("h", &body));
  buffer.add_datagram("g:+1|g\n", 1, &stats);
  body.clear();
  REQUIRE(buffer.take_body("h", &body));
  CHECK(body == "1\n\nh\n\ng\n[\"Gauge\",1,\"12\"]\n\n\n");  // 10 + 1 + 1: the dropped +100 never counted
}

TEST_CASE("proxy buffer: many names and spellings across flushes", "[statsd][proxy-buffer]") {
  auto flushes = taba::test::random_names_flushes();
  compare(flushes);
}

TEST_CASE("proxy buffer: line splitting on random bytes and lengths", "[statsd][proxy-buffer]") {
  // (statsd_reference.h says what they hold.)
  auto flushes = taba::test::random_bytes_flushes();
  compare(flushes);
}

TEST_CASE("proxy buffer: forgetting names starts gauges and types over", "[statsd][proxy-buffer]") {
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("g:10|g\nx:1|c\n", 1, &stats);
  std::string body;
  REQUIRE(buffer.take_body("h", &body));
  CHECK(buffer.names() == 2);
  buffer.forget_names();
  CHECK(buffer.names() == 0);
  buffer.add_datagram("g:+1|g\nx:1|ms\n", 1, &stats);
  body.clear();
  REQUIRE(buffer.take_body("h", &body));
  CHECK(body == "1\n\nh\n\ng\n[\"Gauge\",1,\"1\"]\n\nx\n[\"PercentileGroup\",1,\"1\"]\n\n\n");
  CHECK(stats.type_conflicts == 0);
}

TEST_CASE("statsd: append_number writes what fmt writes", "[statsd]") {
  std::vector<double> values = {0.0,   -0.0,   1.0,    -1.0,   6.0,    0.5,    -0.5,   12.5,    1e15 - 1, -(1e15 - 1),
                                1e15,  -1e15,  1e16,   1e21,   1e-5,   1e-4,   0.1 + 0.2, 1763830000.123, 1763830000.0,
                                9007199254740993.0, 123456789012345678.0, 5e-324, 1.7976931348623157e308, 3.0 / 0.1,
                                2.0 / 0.3, 42.0 / 0.25};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    if (std::isfinite(d)) values.push_back(d);
    values.push_back(static_cast<double>(static_cast<int64_t>(rng() % 2000000000000000ull) - 1000000000000000ll));
    values.push_back(static_cast<double>(rng() % 100000) / static_cast<double>(1 + rng() % 1000));
  }
  for (double v : values) {
    std::string got = "x";
    statsd::append_number(v, &got);
    INFO(fmt::format("{:.17g}", v));
    CHECK(got == "x" + fmt::format("{}", v));
  }
}

TEST_CASE("statsd: number_text_is_shortest only for texts fmt would write", "[statsd]") {
  for (const char* yes : {"0", "-0", "7", "-7", "10", "0.5", "-0.25", "12.5", "100.001", "0.0001", "0.00012",
                          "123456789012345", "99999999999999.9", "0.12345678901234"}) {
    INFO(yes);
    CHECK(statsd::number_text_is_shortest(yes));
  }
  for (const char* no : {"", "-", "+1", "+0", "007", "00", "-00", "1.", ".5", "-.5", "0.50", "0.0", "1.0", "1e3",
                         "1E3", "0.00001", "1234567890123456", "0.123456789012345", "1.5.5", "1a", "--1", "0x10", "1 "}) {
    INFO(no);
    CHECK_FALSE(statsd::number_text_is_shortest(no));
  }
  // And parse_line's flag, for the first value and for every value of a
  // multi-value line.
  statsd::Line l;
  REQUIRE(statsd::parse_line("x:+1|c", &l) == nullptr);
  CHECK_FALSE(l.value_is_shortest);
  REQUIRE(statsd::parse_line("x:-0.25|g", &l) == nullptr);
  CHECK(l.value_is_shortest);
  REQUIRE(statsd::parse_line("x:1e3|ms", &l) == nullptr);
  CHECK_FALSE(l.value_is_shortest);
  REQUIRE(statsd::parse_line("x:abc|s", &l) == nullptr);
  CHECK_FALSE(l.value_is_shortest);
  REQUIRE(statsd::parse_line("x:1:1.0:0.00001:7|ms", &l) == nullptr);
  std::vector<bool> flags;
  statsd::for_each_value(l, [&](const statsd::Line& v) { flags.push_back(v.value_is_shortest); });
  CHECK(flags == std::vector<bool>{true, false, false, true});
  // Whenever it says yes, the text is exactly what fmt writes for the number.
  std::mt19937 rng(3);
  const char alphabet[] = "0123456789.-";
  int yes = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string t;
    size_t len = 1 + rng() % 18;
    for (size_t k = 0; k < len; ++k) t.push_back(alphabet[rng() % (k == 0 ? 12 : 11)]);
    double number = 0;
    bool has_sign = false;
    if (statsd::detail::parse_number(t, &number, &has_sign) != nullptr) {
      CHECK_FALSE(statsd::number_text_is_shortest(t));
      continue;
    }
    // parse_line finds the same in its pass over the value.
    statsd::Line line;
    REQUIRE(statsd::parse_line("x:" + t + "|c", &line) == nullptr);
    CHECK(line.value_is_shortest == statsd::number_text_is_shortest(t));
    if (!statsd::number_text_is_shortest(t)) continue;
    ++yes;
    INFO(t);
    CHECK(fmt::format("{}", number) == t);
  }
  CHECK(yes > 1000);
}

TEST_CASE("statsd: parse_number's fast path reads what from_chars reads", "[statsd]") {
  std::mt19937 rng(11);
  const char alphabet[] = "0123456789.";
  for (int i = 0; i < 200000; ++i) {
    std::string t;
    size_t len = 1 + rng() % 20;
    for (size_t k = 0; k < len; ++k) t.push_back(alphabet[rng() % 11]);
    double want = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), want);
    bool want_ok = ec == std::errc() && end == t.data() + t.size() && std::isfinite(want);
    double got = 0;
    bool has_sign = false;
    bool got_ok = statsd::detail::parse_number(t, &got, &has_sign) == nullptr;
    INFO(t);
    REQUIRE(got_ok == want_ok);
    if (got_ok) {
      CHECK(std::memcmp(&got, &want, sizeof got) == 0);
    }
  }
}
