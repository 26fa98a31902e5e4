// What the two percentile plugins (PercentileGroup and PercentileCounter)
// share, tested on both through the C ABI (include/taba/handler.h):
// check_event, exact percentiles of constant data and of a few values, and
// version-1 states that still load.
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

// Time origin: a multiple of 21600 (so also of 900, 150 and 15): every
// window's bucket starts at kT0.
constexpr double kT0 = 1400004000;
static_assert(static_cast<int64_t>(kT0) % 21600 == 0);

}  // namespace

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
