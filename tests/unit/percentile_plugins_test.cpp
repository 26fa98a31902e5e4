// The PercentileGroup and PercentileCounter plugins, loaded from their built
// .so files and used only through the C ABI (include/taba/handler.h), as
// tabad uses them: golden renders, window expiry, the per-request delta
// contract, check_event, prunable, serialization round trips and corrupt
// input.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "plugin_abi_harness.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

const taba_handler& percentile_group() {
  return handler("percentile_group.so", "PercentileGroup");
}
const taba_handler& percentile_counter() {
  return handler("percentile_counter.so", "PercentileCounter");
}

// Round trip; every truncation and 300 random corruptions are refused with
// a reason or give a state that renders, merges and serializes.
void check_round_trip(const taba_handler& h, const State& s, const std::vector<double>& render_times) {
  const std::string bytes = s.serialize();
  std::unique_ptr<State> copy;
  std::string reason;
  REQUIRE(deserialize(h, bytes, h.state_version, &copy, &reason) == TABA_OK);
  CHECK(copy->serialize() == bytes);
  for (const double t : render_times) {
    CHECK(copy->render(t) == s.render(t));
    taba_status a;
    taba_status b;
    CHECK(copy->render(t, TABA_FORMAT_JSON_DETAILED, &a) == s.render(t, TABA_FORMAT_JSON_DETAILED, &b));
    CHECK(a == b);
    CHECK(copy->render(t, TABA_FORMAT_JSON_EXACT, &a) == s.render(t, TABA_FORMAT_JSON_EXACT, &b));
    CHECK(a == b);
    CHECK(copy->prunable(t) == s.prunable(t));
  }
  std::unique_ptr<State> ignored;
  CHECK(deserialize(h, bytes, h.state_version + 1, &ignored, &reason) == TABA_ERR_VERSION);
  CHECK(reason.find("not supported") != std::string::npos);
  CHECK(deserialize(h, bytes, 0, &ignored, &reason) == TABA_ERR_VERSION);
  auto exercise = [&](const State& st) {
    taba_status detailed;
    st.render(render_times.front());
    st.render(render_times.front(), TABA_FORMAT_JSON_DETAILED, &detailed);
    CHECK((detailed == TABA_OK || detailed == TABA_ERR_UNSUPPORTED));
    State agg(h, render_times.front());
    agg.merge(st, render_times.front());
    agg.serialize();
    st.prunable(render_times.front());
  };
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::unique_ptr<State> partial;
    const taba_status st = deserialize(h, bytes.substr(0, len), h.state_version, &partial, &reason);
    INFO("truncated to " << len << " of " << bytes.size());
    REQUIRE((st == TABA_OK || st == TABA_ERR_CORRUPT));
    if (st == TABA_OK) {
      exercise(*partial);
    } else {
      CHECK(reason.rfind("corrupt ", 0) == 0);
    }
  }
  std::mt19937_64 rng(bytes.size());
  for (int i = 0; i < 300 && !bytes.empty(); ++i) {
    std::string bad = bytes;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    std::unique_ptr<State> mutated;
    const taba_status st = deserialize(h, bad, h.state_version, &mutated, &reason);
    REQUIRE((st == TABA_OK || st == TABA_ERR_CORRUPT));
    if (st == TABA_OK) exercise(*mutated);
  }
}

// Time origin: a multiple of 21600 (so also of 900, 150 and 15): every
// window's bucket starts at kT0.
constexpr double kT0 = 1400004000;
static_assert(static_cast<int64_t>(kT0) % 21600 == 0);

const std::string kZeroPct = "[0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]";
const std::string kEmptySummary = R"({"count": 0, "total": 0.000000, "pct": )" + kZeroPct + "}";

std::string pg_render(const std::string& m1, const std::string& m10, const std::string& h1,
                      const std::string& d1) {
  return R"({"1m": )" + m1 + R"(, "10m": )" + m10 + R"(, "1h": )" + h1 + R"(, "1d": )" + d1 + "}";
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

// ---------------------------------------------------------------------------
// Both

TEST_CASE("Percentile plugins: entry tables", "[plugins][percentile]") {
  for (const auto& [file, type, name] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"percentile_group.so", "PercentileGroup", "percentile_group"},
           {"percentile_counter.so", "PercentileCounter", "percentile_counter"}}) {
    const taba_handler& h = handler(file, type);
    CHECK(h.struct_size == sizeof(taba_handler));
    CHECK(h.state_version == 2);
    CHECK(h.description != nullptr);
    const std::string path = std::string(TABA_TEST_PLUGIN_DIR) + "/" + file;
    void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(dl != nullptr);
    auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
    REQUIRE(entry != nullptr);
    taba_host other = kTestHost;
    other.abi_major = TABA_ABI_MAJOR + 1;
    CHECK(entry(&other) == nullptr);
    const taba_plugin* p = entry(&kTestHost);
    REQUIRE(p != nullptr);
    CHECK(std::string(p->name) == name);
    CHECK(p->handler_count == 1);
    // Only the entry point is exported.
    CHECK(dlsym(dl, "_ZN4taba7builtin8DDSketch3addEd") == nullptr);
  }
}

TEST_CASE("Percentile plugins: check_event", "[plugins][percentile]") {
  for (const taba_handler* h : {&percentile_group(), &percentile_counter()}) {
    const std::string type = h->type_name;
    Events ok;
    ok.number(kT0, 1.5).number(kT0, -3).number(kT0, 0).array(kT0, TABA_VALUE_NUMBER, "7", 7);
    // JSON true and false count as 1 and 0 (the original Python client's Counter(name, True)).
    ok.value(kT0, TABA_VALUE_BOOL, "true", 1).value(kT0, TABA_VALUE_BOOL, "false", 0).array(kT0, TABA_VALUE_BOOL, "true", 1);
    for (size_t i = 0; i < ok.size(); ++i) {
      taba_status st;
      CHECK(check_error(*h, ok[i], &st).empty());
      CHECK(st == TABA_OK);
    }
    Events bad;
    bad.value(kT0, TABA_VALUE_STRING, "\"12\"")
        .value(kT0, TABA_VALUE_NULL, "null")
        .value(kT0, TABA_VALUE_OBJECT, "{}")
        .array(kT0, TABA_VALUE_NONE, "")
        .array(kT0, TABA_VALUE_STRING, "\"1\"")
        .value(kT0, TABA_VALUE_NUMBER, "NaN", std::numeric_limits<double>::quiet_NaN())
        .value(kT0, TABA_VALUE_NUMBER, "1e999", std::numeric_limits<double>::infinity())
        .array(kT0, TABA_VALUE_NUMBER, "-1e999", -std::numeric_limits<double>::infinity());
    for (size_t i = 0; i < bad.size(); ++i) {
      taba_status st;
      const std::string err = check_error(*h, bad[i], &st);
      INFO(type << " event " << i);
      CHECK(st == TABA_ERR_PAYLOAD);
      CHECK(err.rfind(type + " payload must be", 0) == 0);
      CHECK(err.find('\n') == std::string::npos);
    }
    char small[8];
    CHECK(h->check_event(&bad[0], small, sizeof small) == TABA_ERR_PAYLOAD);
    CHECK(std::string(small) == type.substr(0, 7));
    CHECK(h->check_event(&bad[0], nullptr, 0) == TABA_ERR_PAYLOAD);
  }
}

TEST_CASE("Percentile plugins: constant data and a few values render exactly", "[plugins][percentile]") {
  for (const taba_handler* h : {&percentile_group(), &percentile_counter()}) {
    INFO(h->type_name);
    State constant(*h, kT0, "c");
    Events threes;
    for (int i = 0; i < 50; ++i) threes.number(kT0 + i % 10, 3);
    constant.fold(threes, kT0 + 10);
    const std::string rendered = constant.render(kT0 + 10);
    CHECK(rendered.find(R"("pct": [3.00, 3.00, 3.00, 3.00, 3.00, 3.00, 3.00])") != std::string::npos);
    CHECK(rendered.find("2.97") == std::string::npos);
    State two(*h, kT0, "c");
    two.fold(Events().number(kT0, 9).number(kT0, 1), kT0);
    CHECK(two.render(kT0).find(R"("pct": [1.00, 1.00, 9.00, 9.00, 9.00, 9.00, 9.00])") != std::string::npos);
    CHECK(two.render(kT0, TABA_FORMAT_JSON_EXACT).find(R"("pct": [1, 1, 9, 9, 9, 9, 9])") !=
          std::string::npos);
    // Merged states keep min and max: a client with {1, 9} and one with
    // seven values between make 9 values, past the exact ones.
    State other(*h, kT0, "d");
    Events between;
    for (int i = 2; i <= 8; ++i) between.number(kT0, i);
    other.fold(between, kT0);
    State aggregate(*h, kT0);
    aggregate.merge(other, kT0);
    aggregate.merge(two, kT0);
    CHECK(aggregate.render(kT0).find(R"(, 9.00, 9.00, 9.00, 9.00]})") != std::string::npos);
    CHECK(aggregate.render(kT0).find(R"("pct": [3.)") == std::string::npos);  // rank 3 of 9 from its bin
  }
}

// States serialized by the releases before exact values (state version 1):
// the values 1, 9 and 3 folded at 1400000400, 1400000401 and 1400000402 as
// of 1400000403 by client "c". They rendered p75 and above as 8.94.
constexpr double kCaptured = 1400000400;
const std::string kPercentileGroupV1(
    "\x04\x0f\x04\xe0\x9d\x81\x59\x01\x00\x00\x00\x00\x00\x00\x00\x00\x2a\x40\x03\x00\x01\x37\x01\x37\x01\x00"
    "\x00"
    "\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x22\x40\x96\x01\x04\xb0\xa9\xf3\x08\x01\x00\x00\x00"
    "\x00"
    "\x00\x00\x00\x00\x2a\x40\x03\x00\x01\x37\x01\x37\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00"
    "\x00"
    "\x00\x22\x40\x84\x07\x04\xc8\xf1\xbd\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x2a\x40\x03\x00\x01\x37\x01"
    "\x37"
    "\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x22\x40\xe0\xa8\x01\x04\xdc\xf4\x07\x01"
    "\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x2a\x40\x03\x00\x01\x37\x01\x37\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00"
    "\x00"
    "\x00\x00\x00\x00\x22\x40",
    168);
const std::string kPercentileCounterV1(
    "\x00\x00\x00\x00\x00\x00\x00\x2a\x40\x03\x00\x01\x37\x01\x37\x01\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00"
    "\x00"
    "\x00\x00\x00\x00\x22\x40",
    33);

TEST_CASE("Percentile plugins: version-1 states still load, and merge on", "[plugins][percentile]") {
  for (const auto& [h, bytes] : std::vector<std::pair<const taba_handler*, std::string>>{
           {&percentile_group(), kPercentileGroupV1}, {&percentile_counter(), kPercentileCounterV1}}) {
    INFO(h->type_name);
    std::unique_ptr<State> old;
    std::string reason;
    REQUIRE(deserialize(*h, bytes, 1, &old, &reason) == TABA_OK);
    // Rank 2 (the 3) is its bin's value, as version 1 rendered it; min and
    // max are exact.
    const std::string summary =
        R"({"count": 3, "total": 13.000000, "pct": [1.00, 2.97, 9.00, 9.00, 9.00, 9.00, 9.00]})";
    CHECK(old->render(kCaptured + 5).find(summary) != std::string::npos);
    // Written again in version 2 it reads back the same.
    std::unique_ptr<State> again;
    REQUIRE(deserialize(*h, old->serialize(), h->state_version, &again, &reason) == TABA_OK);
    CHECK(again->render(kCaptured + 5) == old->render(kCaptured + 5));
    CHECK(again->serialize() == old->serialize());
    // A version-2 reader of the version-1 bytes finds the value missing.
    std::unique_ptr<State> misread;
    CHECK(deserialize(*h, bytes, 2, &misread, &reason) == TABA_ERR_CORRUPT);
    // Merged with new values it keeps min and max.
    State fresh(*h, kCaptured + 5, "d");
    fresh.fold(Events().number(kCaptured + 5, 0.5).number(kCaptured + 5, 5), kCaptured + 5);
    State aggregate(*h, kCaptured + 5);
    aggregate.merge(*old, kCaptured + 5);
    aggregate.merge(fresh, kCaptured + 5);
    CHECK(
        aggregate.render(kCaptured + 5)
            .find(R"({"count": 5, "total": 18.500000, "pct": [1.00, 2.97, 5.00, 9.00, 9.00, 9.00, 9.00]})") !=
        std::string::npos);
    CHECK(aggregate.render(kCaptured + 5, TABA_FORMAT_JSON_EXACT).find(R"("pct": [1, )") !=
          std::string::npos);
  }
}

// ---------------------------------------------------------------------------
// PercentileGroup

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
  check_round_trip(h, empty, {kT0});
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
  check_round_trip(h, s, {kT0 + 2050, kT0 + 2100, kT0 + 4000, kT0 + 100000});
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, s.serialize() + "x", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
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

// ---------------------------------------------------------------------------
// PercentileCounter

TEST_CASE("PercentileCounter: standalone renders, merge, prunable", "[plugins][percentile_counter]") {
  const taba_handler& h = percentile_counter();
  State empty(h, kT0);
  CHECK(empty.render(kT0) == kEmptySummary);
  CHECK(empty.prunable(kT0));
  State a(h, kT0, "a");
  a.fold(Events().number(kT0, 12.5), kT0);
  CHECK(a.render(kT0) ==
        R"({"count": 1, "total": 12.500000, "pct": [12.50, 12.50, 12.50, 12.50, 12.50, 12.50, 12.50]})");
  CHECK_FALSE(a.prunable(kT0 + 1e9));  // all-time: never expires
  // Values 1..100, -5 and 0, in two clients through the ingest contract.
  State b(h, kT0, "b");
  State c(h, kT0, "c");
  State aggregate(h, kT0);
  State single(h, kT0);
  for (int i = 1; i <= 100; i += 10) {
    Events ev;
    for (int j = i; j < i + 10; ++j) ev.number(kT0 + j, j);
    ingest(h, i % 20 == 1 ? &b : &c, &aggregate, i % 20 == 1 ? "b" : "c", ev, kT0 + i);
    single.fold(ev, kT0 + i);
  }
  Events extra;
  extra.number(kT0, -5).array(kT0, TABA_VALUE_NUMBER, "0", 0);
  ingest(h, &b, &aggregate, "b", extra, kT0 + 200);
  single.fold(extra, kT0);
  // n = 102: ranks 26, 51, 77, 92, 97, 101, 102 of -5, 0, 1..100.
  const std::string expected =
      R"({"count": 102, "total": 5045.000000, "pct": [23.81, 48.91, 74.45, 89.13, 94.64, 98.50, 100.00]})";
  CHECK(aggregate.render(kT0) == expected);
  CHECK(single.render(kT0) == expected);
  CHECK(aggregate.serialize() == single.serialize());
  State reduced(h, kT0);
  reduced.merge(c, kT0);
  reduced.merge(b, kT0);
  CHECK(reduced.render(kT0) == expected);
  CHECK(b.render(kT0).rfind(R"({"count": 52, )", 0) == 0);
  taba_status st;
  a.render(kT0, TABA_FORMAT_JSON_DETAILED, &st);
  CHECK(st == TABA_ERR_UNSUPPORTED);
  // Negative values only.
  State neg(h, kT0, "n");
  neg.fold(Events().number(kT0, -1).number(kT0, -2).number(kT0, -4).number(kT0, -8), kT0);
  CHECK(neg.render(kT0) ==
        R"({"count": 4, "total": -15.000000, "pct": [-8.00, -4.00, -2.00, -1.00, -1.00, -1.00, -1.00]})");
  // Timers in seconds: text rounds them to 0.00, the exact form does not.
  State timer(h, kT0, "t");
  timer.fold(Events().number(kT0, 0.0012).number(kT0, 0.0034), kT0);
  CHECK(timer.render(kT0) ==
        R"({"count": 2, "total": 0.004600, "pct": [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]})");
  CHECK(timer.render(kT0, TABA_FORMAT_JSON_EXACT) ==
        R"({"count": 2, "total": 0.0046, "pct": [0.0012, 0.0012, 0.0034, 0.0034, )"
        R"(0.0034, 0.0034, 0.0034]})");
}

TEST_CASE("PercentileCounter: serialization round trip and corrupt input", "[plugins][percentile_counter]") {
  const taba_handler& h = percentile_counter();
  State empty(h, kT0);
  check_round_trip(h, empty, {kT0});
  CHECK(empty.serialize().size() <= 12);
  State s(h, kT0, "c");
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> latency(3.0, 1.5);
  Events ev;
  for (int j = 0; j < 500; ++j) ev.number(kT0 + j, latency(rng));
  ev.number(kT0, -2).number(kT0, 0).number(kT0, -1e-3);
  s.fold(ev, kT0);
  check_round_trip(h, s, {kT0});
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, s.serialize() + "x", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason == "corrupt PercentileCounter state: trailing bytes");
  CHECK(deserialize(h, "", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.rfind("corrupt PercentileCounter state: ", 0) == 0);
}
