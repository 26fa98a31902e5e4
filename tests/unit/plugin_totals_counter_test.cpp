// The built-in TotalsCounter plugin, loaded from its built .so file and
// used only through the C ABI (include/taba/handler.h), as tabad uses it:
// renders, merge, serialization round trips, check_event and the metrics
// render.
#include <catch2/catch.hpp>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400000400;

}  // namespace

TEST_CASE("TotalsCounter: renders, no integer truncation, merge", "[plugins][totals_counter]") {
  const taba_handler& h = totals_counter();
  State empty(h, kT0);
  CHECK(empty.render(kT0) == R"({"count": 0, "total": 0.00, "average": 0.00})");
  CHECK(empty.prunable(kT0));
  State a(h, kT0, "a");
  a.fold(Events().number(kT0, 2.9).array(kT0, TABA_VALUE_NUMBER, "1.36", 1.36), kT0);
  CHECK(a.render(kT0) == R"({"count": 2, "total": 4.26, "average": 2.13})");
  CHECK_FALSE(a.prunable(kT0 + 1e9));  // all-time: never expires
  State client(h, kT0, "b");
  State aggregate(h, kT0);
  ingest(h, &client, &aggregate, "b", Events().number(kT0, -1).number(kT0, 0.5), kT0);
  ingest(h, &client, &aggregate, "b", Events().number(kT0, 10), kT0 + 5);
  CHECK(client.render(kT0) == R"({"count": 3, "total": 9.50, "average": 3.17})");
  aggregate.merge(a, kT0);
  CHECK(aggregate.render(kT0) == R"({"count": 5, "total": 13.76, "average": 2.75})");
  taba_status st;
  a.render(kT0, TABA_FORMAT_JSON_DETAILED, &st);
  CHECK(st == TABA_ERR_UNSUPPORTED);
  // Text keeps Taba's two decimals; the exact form every digit.
  State small(h, kT0, "s");
  small.fold(Events().number(kT0, 0.001).number(kT0, 0.001).number(kT0, 0.001), kT0);
  CHECK(small.render(kT0) == R"({"count": 3, "total": 0.00, "average": 0.00})");
  CHECK(small.render(kT0, TABA_FORMAT_JSON_EXACT) == R"({"count": 3, "total": 0.003, "average": 0.001})");
  CHECK(aggregate.render(kT0, TABA_FORMAT_JSON_EXACT) == R"({"count": 5, "total": 13.76, "average": 2.752})");
  check_round_trip_all_formats(h, aggregate, {kT0});
  check_round_trip_all_formats(h, empty, {kT0});
}

TEST_CASE("TotalsCounter: check_event", "[plugins][totals_counter]") {
  const taba_handler& h = totals_counter();
  Events ev;
  ev.number(kT0, 3)
      .array(kT0, TABA_VALUE_NUMBER, "3", 3)
      .value(kT0, TABA_VALUE_STRING, "\"3\"")
      .array(kT0, TABA_VALUE_NONE, "")
      .number(kT0, std::numeric_limits<double>::infinity(), "1e400");
  const std::vector<taba_status> expected = {TABA_OK, TABA_OK, TABA_ERR_PAYLOAD, TABA_ERR_PAYLOAD,
                                             TABA_ERR_PAYLOAD};
  for (size_t i = 0; i < ev.size(); ++i) {
    taba_status st;
    const std::string err = check_error(h, ev[i], &st);
    CHECK(st == expected[i]);
    if (st != TABA_OK) CHECK(err.rfind("TotalsCounter payload must be", 0) == 0);
  }
  std::unique_ptr<State> ignored;
  CHECK(deserialize(h, std::string("\x01\x00", 2), 1, &ignored) == TABA_ERR_CORRUPT);
}

TEST_CASE("TotalsCounter: fold_many gives the states the delta sequence gives", "[plugins][totals_counter]") {
  REQUIRE(plugin("totals_counter.so").abi_minor >= 1);
  check_fold_many_equals_deltas(totals_counter(), kT0, 400, 5000, {0, 100000}, random_numeric_events);
}

TEST_CASE("TotalsCounter: metrics render - the all-time counters", "[plugins][totals_counter][metrics]") {
  const taba_handler& h = totals_counter();
  State s(h, kT0, "c");
  s.fold(Events().number(kT0, 1).number(kT0, 2).array(kT0, TABA_VALUE_NUMBER, "4.5", 4.5), kT0);
  CHECK(s.render(kT0 + 1e6, TABA_FORMAT_METRICS) ==
        R"([["_total", "counter", "Sum of every value recorded (all time).", [[{}, 7.5]]], )"
        R"(["_events_total", "counter", "Events recorded (all time).", [[{}, 3]]]])");
  CHECK(metrics_lines(s, kT0) == "_total counter {} 7.5\n_events_total counter {} 3\n");
  CHECK(host_exposition("jobs", "TotalsCounter", s.render(kT0, TABA_FORMAT_METRICS)) ==
        "# HELP jobs_total TotalsCounter jobs: Sum of every value recorded (all time).\n"
        "# TYPE jobs_total counter\n"
        "jobs_total 7.5\n"
        "# HELP jobs_events_total TotalsCounter jobs: Events recorded (all time).\n"
        "# TYPE jobs_events_total counter\n"
        "jobs_events_total 3\n");
  CHECK(metrics_lines(State(h, kT0), kT0) == "_total counter {} 0\n_events_total counter {} 0\n");
  // The sum to its resolution (as the exact form shows it), and a negative
  // one as it is.
  State small(h, kT0, "s");
  small.fold(Events().number(kT0, 0.001).number(kT0, 0.001).number(kT0, 0.001), kT0);
  CHECK(metrics_lines(small, kT0) == "_total counter {} 0.003\n_events_total counter {} 3\n");
  State negative(h, kT0, "n");
  negative.fold(Events().number(kT0, -5).number(kT0, 1.25), kT0);
  CHECK(metrics_lines(negative, kT0) == "_total counter {} -3.75\n_events_total counter {} 2\n");
}

TEST_CASE("TotalsCounter: metrics of merged states equal those of one state of every event",
          "[plugins][totals_counter][metrics]") {
  const taba_handler& h = totals_counter();
  Events first;
  first.number(kT0, 0.1).number(kT0, 0.7).number(kT0, 1e12);
  Events second;
  second.number(kT0, 0.2).number(kT0, -3);
  const State merged = merge_of_two(h, first, second, kT0, {kT0});
  CHECK(metrics_lines(merged, kT0) == "_total counter {} 999999999998\n_events_total counter {} 5\n");
}
