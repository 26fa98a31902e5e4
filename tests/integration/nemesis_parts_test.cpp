// The nemesis run's own parts (tests/nemesis/), checked against a real tabad:
// the checker must report a doubled, a lost and a wrongly summed event (else
// a passing run would prove nothing), and a link must cut, stall, delay and
// relay again as its modes say.
#include <catch2/catch.hpp>

#include <string>

#include "checker.h"
#include "harness.h"
#include "link.h"

using namespace taba;
using namespace taba::test;
using taba::nemesis::CheckResult;
using taba::nemesis::Expected;

TEST_CASE("nemesis checker: a doubled, a lost and a wrongly summed event are each reported", "[nemesis]") {
  TabadProcess p;
  REQUIRE_OK(p.start());
  const double t = now_s();
  NameBlock a{"nem.v1.0", {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "2"),
                            event_line("TotalsCounter", t, "3")}};
  NameBlock b{"nem.v1.1", {event_line("TotalsCounter", t, "5"), event_line("TotalsCounter", t, "5")}};
  NameBlock s{"nem.statsd.0", {event_line("CounterGroup", t, "1"), event_line("CounterGroup", t, "1")}};
  REQUIRE(status_of(p.post("/post", v1_body({{"a", {a}}, {"b", {b}}, {"statsd", {s}}}))) == 200);

  std::map<std::pair<std::string, std::string>, Expected> exact{{{"nem.v1.0", "a"}, {3, 6, 0, 0}},
                                                               {{"nem.v1.1", "b"}, {2, 10, 0, 0}}};
  std::map<std::string, int64_t> statsd{{"nem.statsd.0", 2}};
  CheckResult ok = nemesis::check_until(p.url(), p.url(), exact, statsd, 10'000);
  INFO(ok.read_error);
  for (const auto& d : ok.diffs) INFO(d);
  CHECK(ok.pass());
  CHECK(ok.pairs == 2);
  CHECK(ok.expected_events == 5);
  CHECK(ok.statsd_stored == 2);

  SECTION("stored more than acknowledged: duplicated") {
    auto e = exact;
    e[{"nem.v1.0", "a"}] = {2, 3, 0, 0};
    CheckResult r = nemesis::check_once(p.url(), p.url(), e, statsd);
    CHECK_FALSE(r.pass());
    CHECK(r.duplicated == 1);
    CHECK(r.lost == 0);
  }
  SECTION("more than stored was acknowledged: lost, also for a pair never stored") {
    auto e = exact;
    e[{"nem.v1.1", "b"}] = {3, 15, 0, 0};
    e[{"nem.v1.2", "c"}] = {4, 4, 0, 0};
    CheckResult r = nemesis::check_once(p.url(), p.url(), e, statsd);
    CHECK_FALSE(r.pass());
    CHECK(r.lost == 5);
    CHECK(r.duplicated == 0);
  }
  SECTION("the right count with the wrong total fails") {
    auto e = exact;
    e[{"nem.v1.0", "a"}] = {3, 7, 0, 0};
    CHECK_FALSE(nemesis::check_once(p.url(), p.url(), e, statsd).pass());
  }
  SECTION("events of an unanswered batch may or may not be there") {
    auto e = exact;
    e[{"nem.v1.0", "a"}] = {2, 3, 1, 3};
    CHECK(nemesis::check_once(p.url(), p.url(), e, statsd).pass());
  }
  SECTION("StatsD: fewer stored than sent is loss, more is a failure") {
    CHECK(nemesis::check_once(p.url(), p.url(), exact, {{"nem.statsd.0", 5}}).pass());
    CheckResult r = nemesis::check_once(p.url(), p.url(), exact, {{"nem.statsd.0", 1}});
    CHECK_FALSE(r.pass());
    CHECK(r.statsd_excess == 1);
  }
}

TEST_CASE("nemesis link: cut resets, half-open stalls, delay holds, pass relays again", "[nemesis]") {
  TabadProcess p;
  REQUIRE_OK(p.start());
  nemesis::Link link("test", p.port());
  std::string error;
  REQUIRE(link.start(&error));
  const std::string url = "http://127.0.0.1:" + std::to_string(link.port());
  CHECK(status_of(get(url, "/healthz", "", 2000)) == 200);

  link.set_mode(nemesis::Link::Mode::kCut);
  int64_t t0 = now_ms();
  CHECK(status_of(get(url, "/healthz", "", 2000)) == -1);
  CHECK(now_ms() - t0 < 1500);  // reset at once, not a timeout

  link.set_mode(nemesis::Link::Mode::kHalfOpen);
  t0 = now_ms();
  CHECK(status_of(get(url, "/healthz", "", 700)) == -1);
  CHECK(now_ms() - t0 >= 600);  // nothing answered: the request ran into its timeout

  link.set_mode(nemesis::Link::Mode::kDelay, 300);
  t0 = now_ms();
  CHECK(status_of(get(url, "/healthz", "", 5000)) == 200);
  CHECK(now_ms() - t0 >= 300);

  link.set_mode(nemesis::Link::Mode::kPass);
  CHECK(status_of(get(url, "/healthz", "", 2000)) == 200);
  CHECK(link.connections() >= 4);
}
