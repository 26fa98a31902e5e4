// The built-in PercentileGroup plugin, loaded from its built .so file and
// used only through the C ABI (include/taba/handler.h), as tabad uses it:
// golden renders in every format, window boundaries and expiry, the
// per-request delta contract, merges, serialization round trips, corrupt
// input, the metrics render and states of version 3.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

// Time origin: a multiple of 21600 (so also of 900, 150 and 15): every
// window's bucket starts at kT0.
constexpr double kT0 = 1400004000;
static_assert(static_cast<int64_t>(kT0) % 21600 == 0);

std::string pg_render(const std::string& m1, const std::string& m10, const std::string& h1,
                      const std::string& d1) {
  return R"({"1m": )" + m1 + R"(, "10m": )" + m10 + R"(, "1h": )" + h1 + R"(, "1d": )" + d1 + "}";
}

// A state of version 3 (no all-time count and sum), written by the plugin
// of that version: c's events 1 at kT0 + 5, 2 at kT0 - 100, 4.5 at
// kT0 - 3000 and 8 at kT0 - 90000 (in no window), folded as of kT0 + 10.
const std::string kVersion3State(
    "\x04\x0f\x04\xc0\xa1\x81\x59\x01\x00\x00\x80\x80\x80\x80\x20\x01\x00\x01\x00\x00\x00\x00\x00\x00"
    "\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\x96\x01\x04\xe0\xa9\xf3\x08\x02\x01\x00\x80\x80\x80"
    "\x80\x40\x01\x46\x01\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00"
    "\x80\x80\x80\x80\x20\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0"
    "\x3f\x84\x07\x04\xd0\xf1\xbd\x01\x02\x01\x00\x80\x80\x80\x80\x40\x01\x46\x01\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x80\x80\x80\x80\x20\x01\x00\x01\x00\x00"
    "\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\xe0\xa8\x01\x04\xde\xf4\x07\x02\x01"
    "\x00\x80\x80\x80\x80\xd0\x01\x02\x46\x01\x29\x01\x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00"
    "\x00\x00\x00\x12\x40\x00\x00\x80\x80\x80\x80\x20\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f"
    "\x00\x00\x00\x00\x00\x00\xf0\x3f",
    224);

// Those events.
Events version3_events() {
  Events ev;
  ev.number(kT0 + 5, 1).number(kT0 - 100, 2).number(kT0 - 3000, 4.5, "4.5").number(kT0 - 90000, 8);
  return ev;
}

// The count of each window in a PercentileGroup render.
std::vector<int> window_counts(const std::string& rendered) {
  std::vector<int> counts;
  for (const char* label :
       {"\"1m\": {\"count\": ", "\"10m\": {\"count\": ", "\"1h\": {\"count\": ", "\"1d\": {\"count\": "}) {
    const size_t at = rendered.find(label);
    REQUIRE(at != std::string::npos);
    counts.push_back(std::atoi(rendered.c_str() + at + std::strlen(label)));
  }
  return counts;
}

}  // namespace

TEST_CASE("PercentileGroup: empty state render", "[plugins][percentile_group]") {
  const State s(percentile_group(), kT0);
  CHECK(s.render(kT0) == pg_render(kEmptySummary, kEmptySummary, kEmptySummary, kEmptySummary));
  CHECK(s.prunable(kT0));
  std::string detailed = s.render(kT0, TABA_FORMAT_JSON_DETAILED);
  CHECK(detailed.rfind(R"({"1m": [[1400003955, 0, 0, [0, 0, 0, 0, 0, 0, 0]], [1400003970, 0, 0, )", 0) == 0);
}

TEST_CASE("PercentileGroup: one event", "[plugins][percentile_group]") {
  State s(percentile_group(), kT0, "web01");
  s.fold(Events().number(kT0 + 0.25, 12.5), kT0 + 0.5);
  const std::string one =
      R"({"count": 1, "total": 12.500000, "pct": [12.50, 12.50, 12.50, 12.50, 12.50, 12.50, 12.50]})";
  CHECK(s.render(kT0 + 1) == pg_render(one, one, one, one));
  CHECK_FALSE(s.prunable(kT0 + 1));
  // An array payload uses its [0].
  State a(percentile_group(), kT0, "web01");
  a.fold(Events().array(kT0, TABA_VALUE_NUMBER, "12.5", 12.5), kT0);
  CHECK(a.render(kT0 + 1) == s.render(kT0 + 1));
}

TEST_CASE("PercentileGroup: timers in seconds - text rounds them to 0.00, the exact form does not",
          "[plugins][percentile_group]") {
  State s(percentile_group(), kT0, "c");
  s.fold(Events().number(kT0, 0.0012).number(kT0 + 1, 0.0034), kT0 + 1);
  const std::string taba =
      R"({"count": 2, "total": 0.004600, "pct": [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]})";
  CHECK(s.render(kT0 + 2) == pg_render(taba, taba, taba, taba));
  const std::string exact = R"({"count": 2, "total": 0.0046, "pct": [0.0012, 0.0012, 0.0034, 0.0034, )"
                            R"(0.0034, 0.0034, 0.0034]})";
  CHECK(s.render(kT0 + 2, TABA_FORMAT_JSON_EXACT) == pg_render(exact, exact, exact, exact));
  const std::string detailed = s.render(kT0 + 2, TABA_FORMAT_JSON_DETAILED);
  CHECK(detailed.find(R"([1400004000, 2, 0.0046, [0.0012, 0.0012, 0.0034, )") != std::string::npos);
}

TEST_CASE("PercentileGroup: window boundaries", "[plugins][percentile_group]") {
  // As of kT0 + 5 the newest bucket of every window starts at kT0, so the
  // windows start at kT0 - 45, kT0 - 450, kT0 - 2700 and kT0 - 64800.
  State s(percentile_group(), kT0 - 90000, "c");
  Events ev;
  ev.number(kT0 + 5, 1)
      .number(kT0 - 45, 2)        // 1m, first second
      .number(kT0 - 46, 4)        // 10m
      .number(kT0 - 450, 8)       // 10m, first second
      .number(kT0 - 451, 16)      // 1h
      .number(kT0 - 2700, 32)     // 1h, first second
      .number(kT0 - 2701, 64)     // 1d
      .number(kT0 - 64800, 128)   // 1d, first second
      .number(kT0 - 64801, 256);  // in no window
  s.fold(ev, kT0 + 5.5);
  // Nearest ranks of p25..p99.9 for n = 2: 1 1 2 2 2 2 2; n = 4: 1 2 3 4 4 4 4;
  // n = 6: 2 3 5 6 6 6 6; n = 8: 2 4 6 8 8 8 8. Up to 5 values the sketch
  // holds them exactly; beyond, rank 1 is the exact min, rank n the exact
  // max and the others their bin's representative (within 1 %).
  CHECK(
      s.render(kT0 + 5.9) ==
      pg_render(
          R"({"count": 2, "total": 3.000000, "pct": [1.00, 1.00, 2.00, 2.00, 2.00, 2.00, 2.00]})",
          R"({"count": 4, "total": 15.000000, "pct": [1.00, 2.00, 4.00, 8.00, 8.00, 8.00, 8.00]})",
          R"({"count": 6, "total": 63.000000, "pct": [1.99, 4.01, 15.96, 32.00, 32.00, 32.00, 32.00]})",
          R"({"count": 8, "total": 255.000000, "pct": [1.99, 7.92, 32.14, 128.00, 128.00, 128.00, 128.00]})"));
  // The value outside every window was skipped entirely.
  CHECK(s.render(kT0 + 5.9, TABA_FORMAT_JSON_DETAILED).find("256") == std::string::npos);
}

TEST_CASE("PercentileGroup: windows expire as time passes - render does not modify",
          "[plugins][percentile_group]") {
  State s(percentile_group(), kT0, "c");
  s.fold(Events().number(kT0, 3).number(kT0 + 14.75, 4), kT0 + 1);
  CHECK(window_counts(s.render(kT0 + 59.9)) == std::vector<int>{2, 2, 2, 2});
  CHECK(window_counts(s.render(kT0 + 60)) == std::vector<int>{0, 2, 2, 2});
  CHECK(window_counts(s.render(kT0 + 599)) == std::vector<int>{0, 2, 2, 2});
  CHECK(window_counts(s.render(kT0 + 600)) == std::vector<int>{0, 0, 2, 2});
  CHECK(window_counts(s.render(kT0 + 3599)) == std::vector<int>{0, 0, 2, 2});
  CHECK(window_counts(s.render(kT0 + 3600)) == std::vector<int>{0, 0, 0, 2});
  CHECK(window_counts(s.render(kT0 + 86399)) == std::vector<int>{0, 0, 0, 2});
  CHECK_FALSE(s.prunable(kT0 + 86399));
  CHECK(s.render(kT0 + 86400) == pg_render(kEmptySummary, kEmptySummary, kEmptySummary, kEmptySummary));
  CHECK(s.prunable(kT0 + 86400));
  CHECK(s.prunable(kT0 + 1e9));
  // Rendering later did not rotate the state.
  CHECK(window_counts(s.render(kT0 + 1)) == std::vector<int>{2, 2, 2, 2});
  CHECK_FALSE(s.prunable(kT0 + 1));
  // Folding later does rotate, one bucket at a time: the 1m window keeps the
  // buckets of kT0 + 15 .. kT0 + 60 as of kT0 + 60.
  s.fold(Events().number(kT0 + 15, 10).number(kT0 + 30, 20).number(kT0 + 45, 30), kT0 + 45);
  CHECK(window_counts(s.render(kT0 + 59)) == std::vector<int>{5, 5, 5, 5});
  s.fold(Events().number(kT0 + 60, 40), kT0 + 60);
  CHECK(window_counts(s.render(kT0 + 60)) == std::vector<int>{4, 6, 6, 6});
  const std::string minute =
      R"({"1m": {"count": 4, "total": 100.000000, "pct": [10.00, 20.00, 30.00, 40.00, )";
  CHECK(s.render(kT0 + 60).substr(0, minute.size()) == minute);
  // Events older than a window count only in the longer ones.
  s.fold(Events().number(kT0 + 5, 1), kT0 + 61);
  CHECK(window_counts(s.render(kT0 + 61)) == std::vector<int>{4, 7, 7, 7});
  // A jump past the 1d window clears everything, even for a state folded
  // again right away.
  s.fold(Events().number(kT0 + 200000, 5), kT0 + 200000);
  const std::string five =
      R"({"count": 1, "total": 5.000000, "pct": [5.00, 5.00, 5.00, 5.00, 5.00, 5.00, 5.00]})";
  CHECK(s.render(kT0 + 200000) == pg_render(five, five, five, five));
  // Time never moves back: an earlier now leaves the windows where they are.
  s.fold(Events().number(kT0 + 199990, 6), kT0 + 100);
  CHECK(window_counts(s.render(kT0 + 100)) == std::vector<int>{2, 2, 2, 2});
}

TEST_CASE("PercentileGroup: event timestamps ahead of now move the windows", "[plugins][percentile_group]") {
  State s(percentile_group(), kT0, "c");
  s.fold(Events().number(kT0 + 50, 1).number(kT0 - 5, 2), kT0);
  // Windows end at the bucket of kT0 + 50 (kT0 + 45 .. kT0 + 60): the 1m
  // window starts at kT0, so kT0 - 5 is out of it.
  CHECK(window_counts(s.render(kT0)) == std::vector<int>{1, 2, 2, 2});
}

TEST_CASE("PercentileGroup: json-detailed lists every bucket, oldest first", "[plugins][percentile_group]") {
  State s(percentile_group(), kT0, "c");
  s.fold(Events().number(kT0 - 1, 1.5).number(kT0 - 0.5, 1).number(kT0 - 3000, 7.25), kT0);
  const std::string got = s.render(kT0 + 100, TABA_FORMAT_JSON_DETAILED);
  // Buckets as of kT0 + 100 (bucket starts): 1m kT0+45 .. kT0+90 (all empty);
  // 10m kT0-450 .. kT0 (kT0-150 holds 1.5 and 1); 1h kT0-2700 .. kT0 (kT0-900
  // holds 1.5 and 1; 7.25 at kT0-3000 is before the window); 1d kT0-64800 ..
  // kT0 (kT0-21600 holds all three). Numbers in full precision.
  const std::string empty = ", 0, 0, [0, 0, 0, 0, 0, 0, 0]]";
  const std::string two = ", 2, 2.5, [1, 1, 1.5, 1.5, 1.5, 1.5, 1.5]]";
  const std::string three = ", 3, 9.75, [1, 1.5, 7.25, 7.25, 7.25, 7.25, 7.25]]";
  const std::string expected =
      "{\"1m\": [[1400004045" + empty + ", [1400004060" + empty + ", [1400004075" + empty + ", [1400004090" +
      empty + "], \"10m\": [[1400003550" + empty + ", [1400003700" + empty + ", [1400003850" + two +
      ", [1400004000" + empty + "], \"1h\": [[1400001300" + empty + ", [1400002200" + empty +
      ", [1400003100" + two + ", [1400004000" + empty + "], \"1d\": [[1399939200" + empty + ", [1399960800" +
      empty + ", [1399982400" + three + ", [1400004000" + empty + "]}";
  CHECK(got == expected);
  taba_status st;
  s.render(kT0, 7, &st);
  CHECK(st == TABA_ERR_UNSUPPORTED);
}

TEST_CASE("PercentileGroup: deltas merged into client and aggregate equal one fold",
          "[plugins][percentile_group]") {
  const taba_handler& h = percentile_group();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> value(-40, 400);  // quarters: every sum is exact
  std::uniform_int_distribution<int> lag(0, 400);
  const std::vector<std::string> clients = {"a", "b", "c", "d", "e"};
  State single(h, kT0);
  State aggregate(h, kT0);
  std::vector<State> client_states;
  std::vector<State> client_singles;  // each client's events folded directly
  for (const auto& c : clients) {
    client_states.emplace_back(h, kT0, c);
    client_singles.emplace_back(h, kT0, c);
  }
  double now = kT0;
  for (int request = 0; request < 400; ++request) {
    now += (request % 50 == 49) ? 5000 : lag(rng) / 40.0;  // mostly sub-second steps, some long gaps
    const size_t ci = rng() % clients.size();
    Events ev;
    const int n = 1 + static_cast<int>(rng() % 10);
    for (int i = 0; i < n; ++i) ev.number(now - lag(rng), value(rng) * 0.25);
    ingest(h, &client_states[ci], &aggregate, clients[ci], ev, now);
    single.fold(ev, now);
    client_singles[ci].fold(ev, now);
  }
  for (const double t : {now, now + 30, now + 700, now + 5000, now + 90000}) {
    CHECK(aggregate.render(t) == single.render(t));
    CHECK(aggregate.render(t, TABA_FORMAT_JSON_DETAILED) == single.render(t, TABA_FORMAT_JSON_DETAILED));
    for (size_t i = 0; i < clients.size(); ++i)
      CHECK(client_states[i].render(t) == client_singles[i].render(t));
  }
  CHECK(aggregate.serialize() == single.serialize());
  CHECK(window_counts(aggregate.render(now))[3] > 100);
  // Query-time reduction of the client states, in two orders.
  State reduced(h, now);
  State reversed(h, now);
  for (size_t i = 0; i < clients.size(); ++i) {
    reduced.merge(client_states[i], now);
    reversed.merge(client_states[clients.size() - 1 - i], now);
  }
  CHECK(reduced.render(now) == single.render(now));
  CHECK(reversed.serialize() == reduced.serialize());
}

TEST_CASE("PercentileGroup: merge leaves from unchanged and rotates to the later state",
          "[plugins][percentile_group]") {
  const taba_handler& h = percentile_group();
  State early(h, kT0, "a");
  early.fold(Events().number(kT0, 1), kT0);
  State late(h, kT0 + 120, "b");
  late.fold(Events().number(kT0 + 120, 2), kT0 + 120);
  const std::string late_bytes = late.serialize();
  early.merge(late, kT0);  // now is behind `from`: the result still ends at kT0 + 120
  CHECK(late.serialize() == late_bytes);
  CHECK(window_counts(early.render(kT0)) == std::vector<int>{1, 2, 2, 2});
  // A `from` whose buckets are older than the destination's window adds nothing there.
  State old(h, kT0, "c");
  old.fold(Events().number(kT0, 9), kT0);
  early.merge(old, kT0 + 700);
  CHECK(window_counts(early.render(kT0 + 700)) == std::vector<int>{0, 0, 3, 3});
}

TEST_CASE("PercentileGroup: serialization round trip and corrupt input", "[plugins][percentile_group]") {
  const taba_handler& h = percentile_group();
  State empty(h, kT0);
  check_round_trip_strict(h, empty, {kT0});
  CHECK(empty.serialize().size() <= 40);
  State s(h, kT0, "c");
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> latency(3.0, 1.5);
  for (int i = 0; i < 30; ++i) {
    Events ev;
    for (int j = 0; j < 20; ++j) ev.number(kT0 + i * 70 + j, latency(rng));
    ev.number(kT0 + i * 70, -2).number(kT0 + i * 70, 0).number(kT0 + i * 70, 5);
    s.fold(ev, kT0 + i * 70 + 20);
  }
  check_round_trip_strict(h, s, {kT0 + 2050, kT0 + 2100, kT0 + 4000, kT0 + 100000});
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, s.serialize() + "x", h.state_version, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("trailing") != std::string::npos);
  CHECK(deserialize(h, std::string("\x03", 1), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.rfind("corrupt PercentileGroup state: ", 0) == 0);
  // Hand-made: 4 windows of the right shapes, the 1m one holding two buckets.
  auto window = [](int width, const std::string& buckets) {
    std::string w;
    w += static_cast<char>(width < 128 ? width : (width & 0x7f) | 0x80);
    if (width >= 128) {
      for (int rest = width >> 7; rest != 0; rest >>= 7)
        w += static_cast<char>(rest >= 128 ? (rest & 0x7f) | 0x80 : rest);
    }
    return w + "\x04" + "\x02" + buckets;  // 4 buckets; newest bucket number 1 (zigzag 2)
  };
  // A one-value sketch: zero count 0, sum 1.0, one positive bin (index 0,
  // count 1), no negative bins, min 1.0, max 1.0.
  const std::string one = std::string("\x00", 1) + std::string("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8) +
                          std::string("\x01\x00\x01\x00", 4) +
                          std::string("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8) +
                          std::string("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
  const std::string rest = window(150, std::string("\x00", 1)) + window(900, std::string("\x00", 1)) +
                           window(21600, std::string("\x00", 1));
  std::unique_ptr<State> ok;
  REQUIRE(deserialize(h, "\x04" + window(15, "\x02\x01" + one + std::string("\x00", 1) + one) + rest, 1, &ok,
                      &reason) == TABA_OK);
  CHECK(window_counts(ok->render(30)) == std::vector<int>{2, 0, 0, 0});
  // Ages out of order, repeated, or beyond the window; more buckets than 4; an empty bucket.
  for (const std::string& bad_window :
       {std::string("\x02\x00", 2) + one + "\x01" + one, "\x02\x01" + one + std::string("\x01", 1) + one,
        "\x01\x04" + one, "\x05" + one, std::string("\x01\x00", 2) + std::string(11, '\0')}) {
    CHECK(deserialize(h, "\x04" + window(15, bad_window) + rest, 1, &ignored, &reason) == TABA_ERR_CORRUPT);
    CHECK(reason.rfind("corrupt PercentileGroup state: ", 0) == 0);
  }
  // Wrong shapes.
  CHECK(deserialize(h, "\x04" + window(16, std::string("\x00", 1)) + rest, 1, &ignored, &reason) ==
        TABA_ERR_CORRUPT);
  CHECK(deserialize(h, "\x05" + window(15, std::string("\x00", 1)) + rest, 1, &ignored, &reason) ==
        TABA_ERR_CORRUPT);
}

TEST_CASE("PercentileGroup: fold_many gives the states the delta sequence gives", "[plugins][percentile_group]") {
  REQUIRE(plugin("percentile_group.so").abi_minor >= 1);
  check_fold_many_equals_deltas(percentile_group(), kT0, 400, 100000, {0, 20, 200, 1000, 4000, 30000, 90000}, random_numeric_events);
}

TEST_CASE(
    "PercentileGroup: metrics render - all-time counters, windows and their percentiles, none when empty",
    "[plugins][percentile_group][metrics]") {
  const taba_handler& h = percentile_group();
  State s(h, kT0, "c");
  s.fold(version3_events(), kT0 + 10);
  // All time: every value, also 8, which is in no window. Each window's
  // nearest ranks (1 value: all 1; 2: 1 1 2 2 2 2 2; 3: 1 2 3 3 3 3 3).
  CHECK(metrics_lines(s, kT0 + 10) ==
        "_total counter {} 15.5\n"
        "_events_total counter {} 4\n" +
            window_lines("_sum_in_window", {1, 3, 3, 7.5}) + window_lines("_events_in_window", {1, 2, 2, 3}) +
            quantile_lines("1m", {1, 1, 1, 1, 1, 1, 1}) + quantile_lines("10m", {1, 1, 2, 2, 2, 2, 2}) +
            quantile_lines("1h", {1, 1, 2, 2, 2, 2, 2}) +
            quantile_lines("1d", {1, 2, 4.5, 4.5, 4.5, 4.5, 4.5}));
  const std::string text = s.render(kT0 + 10, TABA_FORMAT_METRICS);
  CHECK(text.find(R"(["", "summary", "Percentiles of the values in the window.", )"
                  R"([[{"window": "1m", "quantile": "0.25"}, 1], )") != std::string::npos);
  // An empty window has no percentile samples: as of kT0 + 70 the 1m
  // window (kT0 + 15 .. kT0 + 75) is empty.
  CHECK(metrics_lines(s, kT0 + 70) ==
        "_total counter {} 15.5\n"
        "_events_total counter {} 4\n" +
            window_lines("_sum_in_window", {0, 3, 3, 7.5}) + window_lines("_events_in_window", {0, 2, 2, 3}) +
            quantile_lines("10m", {1, 1, 2, 2, 2, 2, 2}) + quantile_lines("1h", {1, 1, 2, 2, 2, 2, 2}) +
            quantile_lines("1d", {1, 2, 4.5, 4.5, 4.5, 4.5, 4.5}));
  // A day later every window is empty: no percentile family at all; the
  // all-time counters stay. An empty state has them at 0.
  const std::string idle =
      window_lines("_sum_in_window", {0, 0, 0, 0}) + window_lines("_events_in_window", {0, 0, 0, 0});
  CHECK(metrics_lines(s, kT0 + 86400) == "_total counter {} 15.5\n_events_total counter {} 4\n" + idle);
  CHECK(metrics_lines(State(h, kT0), kT0) == "_total counter {} 0\n_events_total counter {} 0\n" + idle);
}

TEST_CASE("PercentileGroup: metrics of merged states equal those of one state of every event",
          "[plugins][percentile_group][metrics]") {
  const taba_handler& h = percentile_group();
  Events first;
  first.number(kT0 - 30, 1).number(kT0 - 4000, 0.1).number(kT0, 17.25).number(kT0 - 100000, 3);
  Events second;
  second.number(kT0 - 2, 2).number(kT0 - 400, 0.2).number(kT0 - 40000, 4.5);
  const State merged = merge_of_two(h, first, second, kT0, {kT0, kT0 + 60, kT0 + 1000, kT0 + 90000});
  // 3 is in no window; 0.1 and 4.5 in the day's only. The 1m window
  // (kT0 - 45 .. kT0 + 15) holds 1, 17.25 and 2; the 10m and 1h windows
  // also 0.2.
  const std::string lines = metrics_lines(merged, kT0);
  CHECK(lines.rfind("_total counter {} 28.05\n"
                    "_events_total counter {} 7\n" +
                        window_lines("_sum_in_window", {20.25, 20.45, 20.45, 25.05}) +
                        window_lines("_events_in_window", {3, 4, 4, 6}) +
                        quantile_lines("1m", {1, 2, 17.25, 17.25, 17.25, 17.25, 17.25}) +
                        quantile_lines("10m", {0.2, 1, 2, 17.25, 17.25, 17.25, 17.25}),
                    0) == 0);
}

TEST_CASE("PercentileGroup: a version 3 state starts its all-time figures from its 1d window",
          "[plugins][percentile_group][metrics][upgrade]") {
  const taba_handler& h = percentile_group();
  REQUIRE(h.state_version == 4);
  std::unique_ptr<State> old;
  std::string reason;
  REQUIRE(deserialize(h, kVersion3State, 3, &old, &reason) == TABA_OK);
  // Its windows are those of the same events folded now; its all-time
  // figures are the 1d window's (8 was in no window, so it is not there).
  State fresh(h, kT0, "c");
  fresh.fold(version3_events(), kT0 + 10);
  for (const double t : {kT0 + 10, kT0 + 70, kT0 + 4000, kT0 + 90000}) {
    for (const uint32_t format : {TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_JSON_DETAILED}) {
      INFO("at " << fmt_double(t) << ", format " << format);
      CHECK(old->render(t, format) == fresh.render(t, format));
    }
  }
  const std::string windows = window_lines("_sum_in_window", {1, 3, 3, 7.5}) +
                              window_lines("_events_in_window", {1, 2, 2, 3}) +
                              quantile_lines("1m", {1, 1, 1, 1, 1, 1, 1});
  CHECK(metrics_lines(*old, kT0 + 10)
            .rfind("_total counter {} 7.5\n_events_total counter {} 3\n" + windows, 0) == 0);
  CHECK(metrics_lines(fresh, kT0 + 10)
            .rfind("_total counter {} 15.5\n_events_total counter {} 4\n" + windows, 0) == 0);
  // Written again at version 4, it reads back the same.
  const std::string bytes = old->serialize();
  CHECK(bytes.size() > kVersion3State.size());
  std::unique_ptr<State> again;
  REQUIRE(deserialize(h, bytes, 4, &again, &reason) == TABA_OK);
  CHECK(again->serialize() == bytes);
  CHECK(again->render(kT0 + 10, TABA_FORMAT_METRICS) == old->render(kT0 + 10, TABA_FORMAT_METRICS));
  // New events add on.
  State aggregate(h, kT0 + 10);
  aggregate.merge(*old, kT0 + 10);
  ingest(h, &fresh, &aggregate, "c", Events().number(kT0 + 12, 10), kT0 + 12);
  CHECK(metrics_lines(aggregate, kT0 + 12)
            .rfind("_total counter {} 17.5\n_events_total counter {} 4\n" +
                       window_lines("_sum_in_window", {11, 13, 13, 17.5}),
                   0) == 0);
  // The version 3 bytes are not a version 4 state: the all-time figures are missing.
  std::unique_ptr<State> ignored;
  CHECK(deserialize(h, kVersion3State, 4, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason == "corrupt PercentileGroup state: all-time count or sum missing");
}
