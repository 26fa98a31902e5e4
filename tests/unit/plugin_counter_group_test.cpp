// The built-in CounterGroup plugin, loaded from its built .so file and used
// only through the C ABI (include/taba/handler.h), as tabad uses it: golden
// renders in every format, window boundaries and expiry, the per-request
// delta contract and fold_many, merges, check_event, serialization round
// trips, corrupt input, version-1 states, state sizes and the metrics
// render.
#include <malloc.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/text.h"
#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

// Time origin for the windowed tests: a multiple of 900 (so also of 30, 10, 1).
constexpr double kT0 = 1400000400;

// A number as the exact formats write it.
std::string exact(double v) {
  std::string s;
  taba::builtin::append_shortest_double(v, &s);
  return s;
}

std::string cg_window(const char* label, int count, const char* total, const char* average) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "\"%s\": {\"count\": %d, \"total\": %s, \"average\": %s}", label, count,
                total, average);
  return buf;
}

}  // namespace

TEST_CASE("CounterGroup: empty state render", "[plugins][counter_group]") {
  const State s(counter_group(), kT0);
  CHECK(s.render(kT0) == "{" + cg_window("1m", 0, "0.00", "0.00") + ", " +
                             cg_window("10m", 0, "0.00", "0.00") + ", " + cg_window("1h", 0, "0.00", "0.00") +
                             ", " + cg_window("1d", 0, "0.00", "0.00") +
                             ", \"pct\": {\"count\": 0, \"total\": 0.000000, \"pct\": [0.00, 0.00, 0.00, "
                             "0.00, 0.00, 0.00, 0.00]}}");
  CHECK(s.prunable(kT0));
}

TEST_CASE("CounterGroup: one event", "[plugins][counter_group]") {
  State s(counter_group(), kT0, "web01");
  s.fold(Events().number(kT0 + 0.25, 12.5, "12.5"), kT0 + 0.5);
  CHECK(
      s.render(kT0 + 1) ==
      R"({"1m": {"count": 1, "total": 12.50, "average": 12.50}, "10m": {"count": 1, "total": 12.50, "average": 12.50}, )"
      R"("1h": {"count": 1, "total": 12.50, "average": 12.50}, "1d": {"count": 1, "total": 12.50, "average": 12.50}, )"
      R"("pct": {"count": 1, "total": 12.500000, "pct": [12.50, 12.50, 12.50, 12.50, 12.50, 12.50, 12.50]}})");
  CHECK_FALSE(s.prunable(kT0 + 1));
}

TEST_CASE("CounterGroup: text keeps Taba's two decimals, the exact form every digit",
          "[plugins][counter_group]") {
  State s(counter_group(), kT0, "c");
  s.fold(Events().number(kT0, 0.001).number(kT0 + 0.5, 0.001).number(kT0 + 0.75, 0.001), kT0 + 1);
  const std::string taba_window = R"({"count": 3, "total": 0.00, "average": 0.00})";
  CHECK(s.render(kT0 + 1) == R"({"1m": )" + taba_window + R"(, "10m": )" + taba_window + R"(, "1h": )" +
                                 taba_window + R"(, "1d": )" + taba_window +
                                 R"(, "pct": {"count": 3, "total": 0.003000, )"
                                 R"("pct": [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]}})");
  const std::string exact_window = R"({"count": 3, "total": 0.003, "average": 0.001})";
  CHECK(s.render(kT0 + 1, TABA_FORMAT_JSON_EXACT) ==
        R"({"1m": )" + exact_window + R"(, "10m": )" + exact_window + R"(, "1h": )" + exact_window +
            R"(, "1d": )" + exact_window +
            R"(, "pct": {"count": 3, "total": 0.003, )"
            R"("pct": [0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001]}})");
  const std::string detailed = s.render(kT0 + 1, TABA_FORMAT_JSON_DETAILED);
  CHECK(detailed.find(R"([1400000400, 3, 0.003], [1400000401, 0, 0]])") != std::string::npos);
}

TEST_CASE("CounterGroup: window boundaries", "[plugins][counter_group]") {
  // As of kT0 + 5 the windows start at: 1m kT0-54, 10m kT0-590, 1h kT0-3570,
  // 1d kT0-85500. Each value sits on one side of a boundary.
  State s(counter_group(), kT0 - 90000, "c");
  Events ev;
  ev.number(kT0 - 85501, 256)  // only in the all-time part
      .number(kT0 + 5, 1)
      .number(kT0 - 54, 2)        // 1m, first second
      .number(kT0 - 55, 4)        // 10m
      .number(kT0 - 590, 8)       // 10m, first bucket
      .number(kT0 - 591, 16)      // 1h
      .number(kT0 - 3570, 32)     // 1h, first bucket
      .number(kT0 - 3571, 64)     // 1d
      .number(kT0 - 85500, 127);  // 1d, first bucket
  s.fold(ev, kT0 + 5.5);
  const std::string rendered = s.render(kT0 + 5.9);
  const std::string windows =
      "{" + cg_window("1m", 2, "3.00", "1.50") + ", " + cg_window("10m", 4, "15.00", "3.75") + ", " +
      cg_window("1h", 6, "63.00", "10.50") + ", " + cg_window("1d", 8, "254.00", "31.75") + ", ";
  CHECK(rendered.substr(0, windows.size()) == windows);
  // All nine values in the percentiles: nearest ranks 3, 5, 7, 9, 9, 9, 9 of
  // 1 2 4 8 16 32 64 127 256, each within 1 %.
  CHECK(
      rendered.substr(windows.size()) ==
      R"("pct": {"count": 9, "total": 510.000000, "pct": [4.01, 15.96, 63.44, 256.00, 256.00, 256.00, 256.00]}})");
}

TEST_CASE("CounterGroup: windows expire as time passes - render does not modify",
          "[plugins][counter_group]") {
  State s(counter_group(), kT0, "c");
  s.fold(Events().number(kT0, 3).number(kT0 + 0.75, 4), kT0 + 1);
  auto counts = [&](double now) {
    const std::string r = s.render(now);
    std::vector<int> c;
    for (const char* label :
         {"\"1m\": {\"count\": ", "\"10m\": {\"count\": ", "\"1h\": {\"count\": ", "\"1d\": {\"count\": "}) {
      const size_t at = r.find(label);
      REQUIRE(at != std::string::npos);
      c.push_back(std::atoi(r.c_str() + at + std::strlen(label)));
    }
    return c;
  };
  CHECK(counts(kT0 + 59.9) == std::vector<int>{2, 2, 2, 2});
  CHECK(counts(kT0 + 60) == std::vector<int>{0, 2, 2, 2});
  CHECK(counts(kT0 + 599) == std::vector<int>{0, 2, 2, 2});
  CHECK(counts(kT0 + 600) == std::vector<int>{0, 0, 2, 2});
  CHECK(counts(kT0 + 3599) == std::vector<int>{0, 0, 2, 2});
  CHECK(counts(kT0 + 3600) == std::vector<int>{0, 0, 0, 2});
  CHECK(counts(kT0 + 86399) == std::vector<int>{0, 0, 0, 2});
  CHECK_FALSE(s.prunable(kT0 + 86399));
  CHECK(counts(kT0 + 86400) == std::vector<int>{0, 0, 0, 0});
  CHECK(s.prunable(kT0 + 86400));
  // The all-time part survives, and rendering later did not rotate the state.
  CHECK(s.render(kT0 + 86400).find("\"pct\": {\"count\": 2, \"total\": 7.000000") != std::string::npos);
  CHECK(counts(kT0 + 1) == std::vector<int>{2, 2, 2, 2});
  // Folding later does rotate: the old events leave the short windows.
  s.fold(Events().number(kT0 + 120, 10), kT0 + 120);
  CHECK(counts(kT0 + 120) == std::vector<int>{1, 3, 3, 3});
  // Events older than a window count only in the longer ones and all-time.
  s.fold(Events().number(kT0 + 30, 1), kT0 + 121);
  CHECK(counts(kT0 + 121) == std::vector<int>{1, 4, 4, 4});
  CHECK(s.render(kT0 + 121).find("\"pct\": {\"count\": 4,") != std::string::npos);
}

TEST_CASE("CounterGroup: event timestamps ahead of now move the windows", "[plugins][counter_group]") {
  State s(counter_group(), kT0, "c");
  s.fold(Events().number(kT0 + 50, 1).number(kT0 - 5, 2), kT0);
  // Windows end at kT0 + 50: the 1m window starts at kT0 - 9, so kT0 - 5 is in.
  CHECK(s.render(kT0).rfind(R"({"1m": {"count": 2, "total": 3.00, "average": 1.50}, "10m")", 0) == 0);
}

TEST_CASE("CounterGroup: json-detailed lists every bucket, oldest first", "[plugins][counter_group]") {
  State s(counter_group(), kT0, "c");
  s.fold(Events().number(kT0 - 1, 1.5).number(kT0 - 0.5, 1).number(kT0 - 3000, 7.25), kT0);
  std::string expected = "{";
  struct Spec {
    const char* label;
    int width;
    int size;
  };
  const Spec specs[] = {{"1m", 1, 60}, {"10m", 10, 60}, {"1h", 30, 120}, {"1d", 900, 96}};
  const int64_t now = static_cast<int64_t>(kT0) + 100;  // rendered 100 s later
  for (const Spec& spec : specs) {
    expected += std::string(spec.label == specs[0].label ? "\"" : ", \"") + spec.label + "\": [";
    const int64_t newest = now / spec.width;
    for (int64_t b = newest - spec.size + 1; b <= newest; ++b) {
      const int64_t start = b * spec.width;
      int count = 0;
      double sum = 0;
      auto take = [&](int64_t second, double v) {
        if (second / spec.width == b) {
          ++count;
          sum += v;
        }
      };
      take(static_cast<int64_t>(kT0) - 1, 1.5);
      take(static_cast<int64_t>(kT0) - 1, 1);
      take(static_cast<int64_t>(kT0) - 3000, 7.25);
      char buf[80];
      std::snprintf(buf, sizeof buf, "%s[%lld, %d, %s]", b == newest - spec.size + 1 ? "" : ", ",
                    static_cast<long long>(start), count, exact(sum).c_str());
      expected += buf;
    }
    expected += "]";
  }
  expected += "}";
  const std::string got = s.render(kT0 + 100, TABA_FORMAT_JSON_DETAILED);
  CHECK(got == expected);
  // Spot checks of the format itself.
  CHECK(got.rfind(R"({"1m": [[1400000441, 0, 0], )", 0) == 0);
  CHECK(got.find(R"([1400000390, 2, 2.5])") != std::string::npos);   // 10m bucket of kT0 - 1
  CHECK(got.find(R"([1399997400, 1, 7.25])") != std::string::npos);  // 1h bucket of kT0 - 3000
  CHECK(got.find(R"("1d": [[1399914900, 0, 0], )") != std::string::npos);
  taba_status st;
  s.render(kT0, 7, &st);
  CHECK(st == TABA_ERR_UNSUPPORTED);
}

TEST_CASE("CounterGroup: deltas merged into client and aggregate equal one fold",
          "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> value(-40, 400);
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
  for (int request = 0; request < 300; ++request) {
    now += (request % 50 == 49) ? 4000 : lag(rng) / 40.0;  // mostly sub-second steps, some long gaps
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
  // Query-time reduction of the client states, in two different orders.
  State reduced(h, now);
  State reversed(h, now);
  for (size_t i = 0; i < clients.size(); ++i) {
    reduced.merge(client_states[i], now);
    reversed.merge(client_states[clients.size() - 1 - i], now);
  }
  CHECK(reduced.render(now) == single.render(now));
  CHECK(reversed.serialize() == reduced.serialize());
  CHECK(aggregate.render(now).find("\"pct\": {\"count\": 0") == std::string::npos);
}

TEST_CASE("CounterGroup: fold_many gives the states the delta sequence gives", "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  REQUIRE(plugin("counter_group.so").abi_minor >= 1);
  REQUIRE(h.fold_many != nullptr);
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> value(-400, 4000);
  std::uniform_int_distribution<int> lag(0, 1200);
  const std::vector<std::string> clients = {"a", "b", "c"};
  State by_delta(h, kT0);
  State by_many(h, kT0);
  std::vector<State> delta_clients;
  std::vector<State> many_clients;
  for (const auto& c : clients) {
    delta_clients.emplace_back(h, kT0, c);
    many_clients.emplace_back(h, kT0, c);
  }
  double now = kT0;
  for (int request = 0; request < 400; ++request) {
    now += (request % 60 == 59) ? 5000 : lag(rng) / 100.0;
    const size_t ci = rng() % clients.size();
    Events ev;
    // Up to 150 events: more than one 64-event chunk; stamps out of order,
    // some ahead of now, some older than the 1m and 10m windows; zeros and
    // negatives for every part of the sketch.
    const int n = 1 + static_cast<int>(rng() % 150);
    for (int i = 0; i < n; ++i) {
      const double stamp = (i % 17 == 3) ? now + 5 : now - lag(rng);
      ev.number(stamp, (i % 11 == 0) ? 0.0 : value(rng) * 0.25);
    }
    ingest(h, &delta_clients[ci], &by_delta, clients[ci], ev, now);
    taba_state* const targets[2] = {many_clients[ci].raw(), by_many.raw()};
    h.fold_many(targets, 2, clients[ci].data(), clients[ci].size(), ev.data(), ev.size(), now);
  }
  CHECK(by_many.serialize() == by_delta.serialize());
  for (size_t i = 0; i < clients.size(); ++i)
    CHECK(many_clients[i].serialize() == delta_clients[i].serialize());
  for (const double t : {now, now + 45, now + 900, now + 7200}) {
    CHECK(by_many.render(t) == by_delta.render(t));
    CHECK(by_many.render(t, TABA_FORMAT_JSON_DETAILED) == by_delta.render(t, TABA_FORMAT_JSON_DETAILED));
  }
  // A fresh state folded with fold_many equals one folded with fold.
  State folded(h, now, "z");
  State many(h, now, "z");
  Events ev;
  for (int i = 0; i < 100; ++i) ev.number(now - i, i * 0.5);
  folded.fold(ev, now);
  taba_state* const one[1] = {many.raw()};
  h.fold_many(one, 1, "z", 1, ev.data(), ev.size(), now);
  CHECK(many.serialize() == folded.serialize());
}

TEST_CASE("CounterGroup: merge leaves `from` unchanged and rotates to the later state",
          "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  State early(h, kT0, "a");
  early.fold(Events().number(kT0, 1), kT0);
  State late(h, kT0 + 120, "b");
  late.fold(Events().number(kT0 + 120, 2), kT0 + 120);
  const std::string late_bytes = late.serialize();
  early.merge(late, kT0);  // now is behind `from`: the result still ends at kT0 + 120
  CHECK(late.serialize() == late_bytes);
  CHECK(early.render(kT0).rfind(R"({"1m": {"count": 1, "total": 2.00, "average": 2.00}, "10m": {"count": 2,)",
                                0) == 0);
}

TEST_CASE("CounterGroup: check_event", "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  Events ok;
  ok.number(kT0, 1.5).number(kT0, -3).number(kT0, 0).array(kT0, TABA_VALUE_NUMBER, "7", 7);
  // JSON true and false count as 1 and 0 (the original Python client's Counter(name, True)).
  ok.value(kT0, TABA_VALUE_BOOL, "true", 1).value(kT0, TABA_VALUE_BOOL, "false", 0).array(kT0, TABA_VALUE_BOOL, "true", 1);
  for (size_t i = 0; i < ok.size(); ++i) {
    taba_status st;
    CHECK(check_error(h, ok[i], &st).empty());
    CHECK(st == TABA_OK);
  }
  Events bad;
  bad.value(kT0, TABA_VALUE_STRING, "\"12\"")
      .value(kT0, TABA_VALUE_NULL, "null")
      .value(kT0, TABA_VALUE_OBJECT, "{}")
      .array(kT0, TABA_VALUE_NONE, "")
      .array(kT0, TABA_VALUE_STRING, "\"1\"")
      .number(kT0, std::numeric_limits<double>::quiet_NaN(), "NaN")
      .number(kT0, std::numeric_limits<double>::infinity(), "1e999")
      .array(kT0, TABA_VALUE_NUMBER, "-1e999", -std::numeric_limits<double>::infinity());
  for (size_t i = 0; i < bad.size(); ++i) {
    taba_status st;
    const std::string err = check_error(h, bad[i], &st);
    INFO("event " << i);
    CHECK(st == TABA_ERR_PAYLOAD);
    CHECK(err.find("CounterGroup payload must be") == 0);
    CHECK(err.find('\n') == std::string::npos);
  }
  // The reason is truncated to the buffer, NUL included.
  char small[8];
  CHECK(h.check_event(&bad[0], small, sizeof small) == TABA_ERR_PAYLOAD);
  CHECK(std::string(small) == "Counter");
  CHECK(h.check_event(&bad[0], nullptr, 0) == TABA_ERR_PAYLOAD);
}

TEST_CASE("CounterGroup: serialization round trip and corrupt input", "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  State empty(h, kT0);
  check_round_trip_all_formats(h, empty, {kT0});
  CHECK(empty.serialize().size() <= 48);
  State s(h, kT0, "c");
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> latency(3.0, 1.5);
  for (int i = 0; i < 30; ++i) {
    Events ev;
    for (int j = 0; j < 20; ++j) ev.number(kT0 + i * 50 + j, latency(rng));
    ev.number(kT0 + i * 50, -2).number(kT0 + i * 50, 0).number(kT0 + i * 50, 5);
    s.fold(ev, kT0 + i * 50 + 20);
  }
  check_round_trip_all_formats(h, s, {kT0 + 1500, kT0 + 1530, kT0 + 4000, kT0 + 100000});
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, s.serialize() + "x", h.state_version, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("trailing") != std::string::npos);
  CHECK(deserialize(h, std::string("\x03", 1), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.rfind("corrupt CounterGroup state: ", 0) == 0);
}

// A state serialized by the releases before exact sketch values (state
// version 1): the values 1, 9 and 3 folded at 1400000400, 1400000401 and
// 1400000402 as of 1400000403 by client "c". It rendered the all-time
// p75 and above as 8.94.
const std::string kCounterGroupV1(
    "\x04\x01\x3c\xa6\xbe\x92\xb7\x0a\x03\x0c\x01\x05\x01\x12\x05\x01\x06\x0a\x3c\xd0\xec\xc1\x85\x01\x01\x01"
    "\x03"
    "\x1a\x1e\x78\xf0\xce\xc0\x2c\x01\x01\x03\x1a\x84\x07\x60\xc8\xf1\xbd\x01\x01\x01\x03\x1a\x00\x00\x00\x00"
    "\x00"
    "\x00\x00\x2a\x40\x03\x00\x01\x37\x01\x37\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00"
    "\x22"
    "\x40",
    82);

TEST_CASE("CounterGroup: version-1 states still load, and merge on", "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  std::unique_ptr<State> old;
  std::string reason;
  REQUIRE(deserialize(h, kCounterGroupV1, 1, &old, &reason) == TABA_OK);
  const std::string window = R"({"count": 3, "total": 13.00, "average": 4.33})";
  CHECK(
      old->render(kT0 + 5) ==
      R"({"1m": )" + window + R"(, "10m": )" + window + R"(, "1h": )" + window + R"(, "1d": )" + window +
          R"(, "pct": {"count": 3, "total": 13.000000, "pct": [1.00, 2.97, 9.00, 9.00, 9.00, 9.00, 9.00]}})");
  std::unique_ptr<State> again;
  REQUIRE(deserialize(h, old->serialize(), h.state_version, &again, &reason) == TABA_OK);
  CHECK(again->serialize() == old->serialize());
  std::unique_ptr<State> misread;
  CHECK(deserialize(h, kCounterGroupV1, 2, &misread, &reason) == TABA_ERR_CORRUPT);
  // Merged with new values it keeps min and max.
  State fresh(h, kT0 + 5, "d");
  fresh.fold(Events().number(kT0 + 5, 0.5).number(kT0 + 5, 5), kT0 + 5);
  State aggregate(h, kT0 + 5);
  aggregate.merge(*old, kT0 + 5);
  aggregate.merge(fresh, kT0 + 5);
  CHECK(
      aggregate.render(kT0 + 5).find(
          R"("pct": {"count": 5, "total": 18.500000, "pct": [1.00, 2.97, 5.00, 9.00, 9.00, 9.00, 9.00]}})") !=
      std::string::npos);
}

TEST_CASE("CounterGroup: percentiles of constant data and of a few values are exact",
          "[plugins][counter_group]") {
  State constant(counter_group(), kT0, "c");
  Events threes;
  for (int i = 0; i < 50; ++i) threes.number(kT0 + i % 10, 3);
  constant.fold(threes, kT0 + 10);
  CHECK(constant.render(kT0 + 10).find(R"("pct": [3.00, 3.00, 3.00, 3.00, 3.00, 3.00, 3.00]})") !=
        std::string::npos);
  State two(counter_group(), kT0, "c");
  two.fold(Events().number(kT0, 9).number(kT0, 1), kT0);
  CHECK(two.render(kT0, TABA_FORMAT_JSON_EXACT).find(R"("pct": [1, 1, 9, 9, 9, 9, 9]})") !=
        std::string::npos);
}

TEST_CASE("CounterGroup: state sizes in memory and serialized", "[plugins][counter_group]") {
  const taba_handler& h = counter_group();
  // Typical data: a client sending ~20 latencies per second for a day,
  // values spanning ~3 decades (1 ms .. 2 s).
  std::mt19937_64 rng(8);
  std::uniform_real_distribution<double> exponent(0.0, std::log(2000.0));
  constexpr int kStates = 50;
  const size_t heap_before = mallinfo2().uordblks;
  std::vector<State> states;
  states.reserve(kStates);
  for (int k = 0; k < kStates; ++k) {
    states.emplace_back(h, kT0, "c");
    for (int minute = 0; minute < 24 * 60; minute += 7) {
      Events ev;
      for (int i = 0; i < 20; ++i)
        ev.number(kT0 + minute * 60 + i, std::round(std::exp(exponent(rng)) * 100) / 100);
      states.back().fold(ev, kT0 + minute * 60 + 20);
    }
  }
  const size_t heap_after = mallinfo2().uordblks;
  const size_t serialized = states.back().serialize().size();
  INFO("CounterGroup, a day of latencies: " << (heap_after - heap_before) / kStates
                                            << " bytes in memory per state, " << serialized << " serialized");
  if (heap_after > heap_before)
    CHECK((heap_after - heap_before) / kStates <= 6144);  // 0 under ASan's allocator
  CHECK(serialized <= 2500);
}

TEST_CASE("CounterGroup: metrics render - all-time counters, windows, all-time percentiles",
          "[plugins][counter_group][metrics]") {
  const taba_handler& h = counter_group();
  State s(h, kT0, "c");
  // 1 in every window; 2 in the ten minutes', the hour's and the day's (not
  // the last minute's); 4.5 in the day's only.
  s.fold(Events().number(kT0 + 10, 1).number(kT0 - 100, 2).number(kT0 - 5000, 4.5, "4.5"), kT0 + 20);
  // Nearest ranks of 3 values: 1 2 3 3 3 3 3, exact (the sketch keeps them).
  const std::string all_time = quantile_lines("all", {1, 2, 4.5, 4.5, 4.5, 4.5, 4.5});
  CHECK(metrics_lines(s, kT0 + 20) ==
        "_total counter {} 7.5\n"
        "_events_total counter {} 3\n" +
            window_lines("_sum_in_window", {1, 3, 3, 7.5}) + window_lines("_events_in_window", {1, 2, 2, 3}) +
            all_time);
  // Two days later the windows are empty; the all-time figures stay.
  CHECK(metrics_lines(s, kT0 + 2 * 86400) ==
        "_total counter {} 7.5\n"
        "_events_total counter {} 3\n" +
            window_lines("_sum_in_window", {0, 0, 0, 0}) + window_lines("_events_in_window", {0, 0, 0, 0}) +
            all_time);
  // Rendering did not move the windows.
  CHECK(metrics_lines(s, kT0 + 20).find("_sum_in_window gauge {window=\"1m\"} 1\n") != std::string::npos);
  // The help lines.
  const std::string text = s.render(kT0 + 20, TABA_FORMAT_METRICS);
  CHECK(text.rfind(
            R"([["_total", "counter", "Sum of every value recorded (all time).", [[{}, 7.5]]], )"
            R"(["_events_total", "counter", "Events recorded (all time).", [[{}, 3]]], )"
            R"(["_sum_in_window", "gauge", "Sum of the values in the window.", [[{"window": "1m"}, 1], )",
            0) == 0);
  CHECK(text.find(R"(["_events_in_window", "gauge", "Events in the window.", )") != std::string::npos);
  CHECK(text.find(R"(["", "summary", "Percentiles of every value recorded (all time).", )"
                  R"([[{"window": "all", "quantile": "0.25"}, 1], )") != std::string::npos);
}

TEST_CASE("CounterGroup: metrics render of an empty state has no percentile samples",
          "[plugins][counter_group][metrics]") {
  const State s(counter_group(), kT0);
  CHECK(metrics_lines(s, kT0) ==
        "_total counter {} 0\n"
        "_events_total counter {} 0\n" +
            window_lines("_sum_in_window", {0, 0, 0, 0}) + window_lines("_events_in_window", {0, 0, 0, 0}));
}

TEST_CASE("CounterGroup: metrics render - sums to their resolution, a negative sum as it is",
          "[plugins][counter_group][metrics]") {
  State small(counter_group(), kT0, "c");
  small.fold(Events().number(kT0, 0.001).number(kT0, 0.001).number(kT0, 0.001), kT0);
  const std::string text = small.render(kT0, TABA_FORMAT_METRICS);
  CHECK(text.find(R"(["_total", "counter", "Sum of every value recorded (all time).", [[{}, 0.003]]])") !=
        std::string::npos);
  CHECK(text.find(R"([{"window": "1m"}, 0.003])") != std::string::npos);
  CHECK(text.find("0.00299") == std::string::npos);
  State negative(counter_group(), kT0, "c");
  negative.fold(Events().number(kT0, -5).number(kT0, 2), kT0);
  CHECK(metrics_lines(negative, kT0) ==
        "_total counter {} -3\n"
        "_events_total counter {} 2\n" +
            window_lines("_sum_in_window", {-3, -3, -3, -3}) +
            window_lines("_events_in_window", {2, 2, 2, 2}) + quantile_lines("all", {-5, -5, 2, 2, 2, 2, 2}));
}

TEST_CASE("CounterGroup: metrics of merged states equal those of one state of every event",
          "[plugins][counter_group][metrics]") {
  const taba_handler& h = counter_group();
  Events first;
  first.number(kT0 - 30, 1).number(kT0, 17.25);
  Events second;
  second.number(kT0 - 2, 2).number(kT0 - 500, 0.2).number(kT0 - 40000, 4.5);
  const State merged = merge_of_two(h, first, second, kT0, {kT0, kT0 + 60, kT0 + 1000, kT0 + 90000});
  // The sums to their resolution (24.95, not the fixed-point sum's
  // digits); nearest ranks of 5 values: 2 3 4 5 5 5 5.
  CHECK(metrics_lines(merged, kT0) ==
        "_total counter {} 24.95\n"
        "_events_total counter {} 5\n" +
            window_lines("_sum_in_window", {20.25, 20.45, 20.45, 24.95}) +
            window_lines("_events_in_window", {3, 4, 4, 5}) +
            quantile_lines("all", {1, 2, 4.5, 17.25, 17.25, 17.25, 17.25}));
}

// Known to fail today, hence [!mayfail]: docs/prometheus.md gives these
// types a counter m_total and a summary m, and in OpenMetrics both are the
// family "m" (a counter's family name drops its _total), so tabad's
// exposition (routes/tab_exposition.cpp) keeps m_total and leaves the seven
// percentile samples out as invalid. Drop the tag once the names differ.
TEST_CASE("Numeric types: tabad exports every sample of their metrics renders",
          "[plugins][metrics][!mayfail]") {
  struct Case {
    const taba_handler* h;
    const char* name;
  };
  for (const Case& c : {Case{&counter_group(), "api.latency"}, Case{&percentile_group(), "rpc"},
                        Case{&percentile_counter(), "queue_wait"}}) {
    State s(*c.h, kT0, "c");
    s.fold(Events().number(kT0, 1).number(kT0, 2).number(kT0, 4.5, "4.5"), kT0);
    INFO(c.h->type_name);
    const std::string exposed = host_exposition(c.name, c.h->type_name, s.render(kT0, TABA_FORMAT_METRICS));
    CHECK(exposed.find(" summary\n") != std::string::npos);
    CHECK(exposed.find("quantile=\"0.75\"") != std::string::npos);
  }
}
