// The built-in PercentileCounter plugin, loaded from its built .so file
// and used only through the C ABI (include/taba/handler.h), as tabad uses
// it: renders, merge, prunable, serialization round trips, corrupt input
// and the metrics render.
#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400004000;

}  // namespace

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
  check_round_trip_strict(h, empty, {kT0});
  CHECK(empty.serialize().size() <= 12);
  State s(h, kT0, "c");
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> latency(3.0, 1.5);
  Events ev;
  for (int j = 0; j < 500; ++j) ev.number(kT0 + j, latency(rng));
  ev.number(kT0, -2).number(kT0, 0).number(kT0, -1e-3);
  s.fold(ev, kT0);
  check_round_trip_strict(h, s, {kT0});
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, s.serialize() + "x", h.state_version, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason == "corrupt PercentileCounter state: trailing bytes");
  CHECK(deserialize(h, "", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.rfind("corrupt PercentileCounter state: ", 0) == 0);
}

TEST_CASE("PercentileCounter: fold_many gives the states the delta sequence gives", "[plugins][percentile_counter]") {
  REQUIRE(plugin("percentile_counter.so").abi_minor >= 1);
  check_fold_many_equals_deltas(percentile_counter(), kT0, 400, 5000, {0, 100000}, random_numeric_events);
}

TEST_CASE("PercentileCounter: metrics render - all-time counters and percentiles",
          "[plugins][percentile_counter][metrics]") {
  const taba_handler& h = percentile_counter();
  State s(h, kT0, "c");
  s.fold(Events().number(kT0, 1).number(kT0 - 100000, 2).number(kT0 + 5, 4.5, "4.5"), kT0);
  const std::string expected = "_total counter {} 7.5\n_events_total counter {} 3\n" +
                               quantile_lines("all", {1, 2, 4.5, 4.5, 4.5, 4.5, 4.5});
  CHECK(metrics_lines(s, kT0) == expected);
  CHECK(metrics_lines(s, kT0 + 1e6) == expected);  // all time: nothing expires
  // Empty: the counters read 0 and there are no percentile samples.
  CHECK(metrics_lines(State(h, kT0), kT0) == "_total counter {} 0\n_events_total counter {} 0\n");
  // Timers in seconds: the sum to its resolution, the percentiles exact.
  State timer(h, kT0, "t");
  timer.fold(Events().number(kT0, 0.0012).number(kT0, 0.0034), kT0);
  CHECK(
      timer.render(kT0, TABA_FORMAT_METRICS) ==
      R"([["_total", "counter", "Sum of every value recorded (all time).", [[{}, 0.0046]]], )"
      R"(["_events_total", "counter", "Events recorded (all time).", [[{}, 2]]], )"
      R"(["", "summary", "Percentiles of every value recorded (all time).", [)"
      R"([{"window": "all", "quantile": "0.25"}, 0.0012], [{"window": "all", "quantile": "0.5"}, 0.0012], )"
      R"([{"window": "all", "quantile": "0.75"}, 0.0034], [{"window": "all", "quantile": "0.9"}, 0.0034], )"
      R"([{"window": "all", "quantile": "0.95"}, 0.0034], [{"window": "all", "quantile": "0.99"}, 0.0034], )"
      R"([{"window": "all", "quantile": "0.999"}, 0.0034]]]])");
}

TEST_CASE("PercentileCounter: metrics of merged states equal those of one state of every event",
          "[plugins][percentile_counter][metrics]") {
  const taba_handler& h = percentile_counter();
  Events first;
  for (int i = 1; i <= 40; ++i) first.number(kT0 + i, i * 0.5);
  Events second;
  for (int i = 1; i <= 30; ++i) second.number(kT0 - i, -i * 0.1);
  const State merged = merge_of_two(h, first, second, kT0, {kT0});
  // 410 - 46.5; the p99.9 of 70 values is the max, exactly.
  const std::string lines = metrics_lines(merged, kT0);
  CHECK(lines.rfind("_total counter {} 363.5\n_events_total counter {} 70\n", 0) == 0);
  CHECK(lines.find(" summary {window=\"all\",quantile=\"0.999\"} 20\n") != std::string::npos);
}
