// The built-in ExpiryGauge plugin, loaded from its built .so file and used
// only through the C ABI (include/taba/handler.h), as tabad uses it: golden
// renders, the per-request delta contract, merge order, check_event, the
// metrics render, serialization round trips and corrupt input.
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400000400;

}  // namespace

TEST_CASE("ExpiryGauge: check_event", "[more_plugins][expiry_gauge]") {
  Events ok;
  ok.pair(kT0, str("red"), num(kT0 + 60))
      .pair(kT0, num(1.5, "1.50"), num(kT0 + 60, "1400000460"))
      .pair(kT0, raw(TABA_VALUE_BOOL, "true", 1), num(0))
      .pair(kT0, raw(TABA_VALUE_NULL, "null"), num(-5));
  Events bad;
  bad.value(kT0, str("red"))
      .value(kT0, num(kT0 + 60))
      .value(kT0, raw(TABA_VALUE_OBJECT, "{\"a\": 1}"))
      .pair(kT0, {}, {})
      .pair(kT0, str("red"), {})
      .pair(kT0, str("red"), str("1400000460"))
      .pair(kT0, str("red"), raw(TABA_VALUE_NULL, "null"))
      .pair(kT0, raw(TABA_VALUE_OBJECT, "{}"), num(kT0 + 60))
      .pair(kT0, raw(TABA_VALUE_ARRAY, "[1]"), num(kT0 + 60));
  check_events(expiry_gauge(), ok, bad, "ExpiryGauge payload must be [value, expiry_epoch_seconds]");
}

TEST_CASE("ExpiryGauge: renders clients per value until each expiry", "[more_plugins][expiry_gauge]") {
  const taba_handler& h = expiry_gauge();
  State empty(h, kT0);
  CHECK(empty.render(kT0) == "{}");
  CHECK(empty.prunable(kT0));
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  State c(h, kT0, "c");
  ingest(h, &a, &aggregate, "a", Events().pair(kT0, str("red"), num(kT0 + 100)), kT0);
  CHECK(a.render(kT0) == R"({"red": 1})");
  CHECK(aggregate.render(kT0) == R"({"red": 1})");
  ingest(h, &b, &aggregate, "b", Events().pair(kT0 + 1, str("red"), num(kT0 + 300)), kT0 + 1);
  ingest(h, &c, &aggregate, "c", Events().pair(kT0 + 2, num(7, "7"), num(kT0 + 200)), kT0 + 2);
  CHECK(aggregate.render(kT0 + 2) == R"({"7": 1, "red": 2})");
  CHECK_FALSE(aggregate.prunable(kT0 + 2));
  // Each entry counts while now < its expiry.
  CHECK(aggregate.render(kT0 + 99.5) == R"({"7": 1, "red": 2})");
  CHECK(aggregate.render(kT0 + 100) == R"({"7": 1, "red": 1})");
  CHECK(a.prunable(kT0 + 100));
  CHECK_FALSE(a.prunable(kT0 + 99));
  CHECK(aggregate.render(kT0 + 200) == R"({"red": 1})");
  CHECK_FALSE(aggregate.prunable(kT0 + 299));
  CHECK(aggregate.render(kT0 + 300) == "{}");
  CHECK(aggregate.prunable(kT0 + 300));
  // Rendering did not change anything: earlier times still show it all.
  CHECK(aggregate.render(kT0 + 2) == R"({"7": 1, "red": 2})");
  // Query-time reduction of the client states equals the aggregate.
  State reduced(h, kT0 + 50);
  for (const State* s : {&c, &a, &b}) reduced.merge(*s, kT0 + 50);
  CHECK(reduced.render(kT0 + 50) == aggregate.render(kT0 + 50));
  // Keys follow Gauge's rules: numbers and strings of equal text share one.
  State keys(h, kT0);
  auto post = [&](const std::string& client, const V& v) {
    State cs(h, kT0, client);
    ingest(h, &cs, &keys, client, Events().pair(kT0, v, num(kT0 + 60)), kT0);
  };
  post("n1", num(1.5, "1.50"));
  post("n2", num(5, "5"));
  post("s5", str("5"));
  post("t", raw(TABA_VALUE_BOOL, "true", 1));
  post("z", raw(TABA_VALUE_NULL, " null "));
  post("q", str("say \\\"hi\\\""));
  CHECK(keys.render(kT0) == R"({"1.5": 1, "5": 2, "null": 1, "say \"hi\"": 1, "true": 1})");
  // Values are canonical: equal values however written are one key.
  post("n3", num(1.5, "15e-1"));
  post("p1", str("a\\/b"));
  post("p2", str("a/b"));
  post("z1", str("Z\\u00fcrich"));
  post("z2", str("Z\xc3\xbcrich"));
  post("z3", str("Z\xfcrich"));  // Latin-1
  CHECK(keys.render(kT0) ==
        "{\"1.5\": 2, \"5\": 2, \"Z\xc3\xbcrich\": 3, \"a/b\": 2, \"null\": 1, \"say \\\"hi\\\"\": 1, "
        "\"true\": 1}");
}

TEST_CASE("ExpiryGauge: the latest event by timestamp wins, not the furthest expiry",
          "[more_plugins][expiry_gauge]") {
  const taba_handler& h = expiry_gauge();
  // "A" until kT0+1000, then (a later event) "B" until kT0+100.
  auto a_event = [] {
    Events ev;
    ev.pair(kT0, str("A"), num(kT0 + 1000));
    return ev;
  };
  auto b_event = [] {
    Events ev;
    ev.pair(kT0 + 10, str("B"), num(kT0 + 100));
    return ev;
  };
  auto check = [](const State& s) {
    CHECK(s.render(kT0 + 20) == R"({"B": 1})");
    CHECK(s.render(kT0 + 99) == R"({"B": 1})");
    CHECK(s.render(kT0 + 100) == "{}");  // not "A" again
    CHECK(s.render(kT0 + 500) == "{}");
    CHECK(s.prunable(kT0 + 100));
  };
  SECTION("in one batch, whatever the arrival order") {
    State s(h, kT0, "x");
    Events ev;
    ev.pair(kT0 + 10, str("B"), num(kT0 + 100)).pair(kT0, str("A"), num(kT0 + 1000));
    s.fold(ev, kT0 + 20);
    check(s);
  }
  SECTION("as deltas, in either order") {
    for (const bool b_first : {false, true}) {
      State aggregate(h, kT0);
      State client(h, kT0, "x");
      ingest(h, &client, &aggregate, "x", b_first ? b_event() : a_event(), kT0 + 20);
      ingest(h, &client, &aggregate, "x", b_first ? a_event() : b_event(), kT0 + 20);
      check(aggregate);
      check(client);
    }
  }
  SECTION("an already expired later event clears the client, in either order") {
    for (const bool late_first : {false, true}) {
      State aggregate(h, kT0);
      State client(h, kT0, "x");
      auto expired = [] {
        Events ev;
        ev.pair(kT0 + 30, str("C"), num(kT0 + 40));
        return ev;
      };
      ingest(h, &client, &aggregate, "x", late_first ? expired() : a_event(), kT0 + 50);
      ingest(h, &client, &aggregate, "x", late_first ? a_event() : expired(), kT0 + 50);
      CHECK(aggregate.render(kT0 + 50) == "{}");
      CHECK(client.render(kT0 + 50) == "{}");
      CHECK(aggregate.prunable(kT0 + 50));
    }
  }
  SECTION("ties go to the later event and the later delta") {
    State aggregate(h, kT0);
    State client(h, kT0, "x");
    Events ev;
    ev.pair(kT0, str("first"), num(kT0 + 100)).pair(kT0, str("second"), num(kT0 + 50));
    ingest(h, &client, &aggregate, "x", ev, kT0);
    CHECK(aggregate.render(kT0) == R"({"second": 1})");
    ingest(h, &client, &aggregate, "x", Events().pair(kT0, str("third"), num(kT0 + 10)), kT0);
    CHECK(aggregate.render(kT0) == R"({"third": 1})");
    CHECK(client.render(kT0) == R"({"third": 1})");
  }
}

TEST_CASE("ExpiryGauge: the metrics render shows the values until each expiry",
          "[more_plugins][expiry_gauge]") {
  const taba_handler& h = expiry_gauge();
  REQUIRE(plugin("expiry_gauge.so").abi_minor == TABA_ABI_MINOR);
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  State c(h, kT0, "c");
  ingest(h, &a, &aggregate, "a", Events().pair(kT0, num(5), num(kT0 + 100)), kT0);
  ingest(h, &b, &aggregate, "b", Events().pair(kT0 + 1, num(44), num(kT0 + 300)), kT0 + 1);
  ingest(h, &c, &aggregate, "c", Events().pair(kT0 + 2, str("red"), num(kT0 + 200)), kT0 + 2);
  CHECK(metrics_lines(aggregate, kT0 + 2) ==
        "_clients gauge {} 3\n"
        "_min gauge {} 5\n"
        "_max gauge {} 44\n"
        "_last gauge {} 44\n"
        " gauge {client=\"a\"} 5\n"
        " gauge {client=\"b\"} 44\n"
        "_info info {client=\"c\",value=\"red\"} 1\n");
  // Each value shows while now < its expiry.
  CHECK(metrics_lines(aggregate, kT0 + 100) ==
        "_clients gauge {} 2\n"
        "_min gauge {} 44\n"
        "_max gauge {} 44\n"
        "_last gauge {} 44\n"
        " gauge {client=\"b\"} 44\n"
        "_info info {client=\"c\",value=\"red\"} 1\n");
  CHECK(metrics_lines(a, kT0 + 100) == "_clients gauge {} 0\n");
  CHECK(metrics_lines(aggregate, kT0 + 200) ==
        "_clients gauge {} 1\n"
        "_min gauge {} 44\n"
        "_max gauge {} 44\n"
        "_last gauge {} 44\n"
        " gauge {client=\"b\"} 44\n");
  CHECK(metrics_lines(aggregate, kT0 + 300) == "_clients gauge {} 0\n");
  // A later value that has expired is a tombstone: it shows nothing, and
  // the older value it replaced does not come back.
  ingest(h, &b, &aggregate, "b", Events().pair(kT0 + 10, num(7), num(kT0 + 20)), kT0 + 10);
  CHECK(metrics_lines(aggregate, kT0 + 15).find(" gauge {client=\"b\"} 7\n") != std::string::npos);
  CHECK(metrics_lines(aggregate, kT0 + 20) ==
        "_clients gauge {} 2\n"
        "_min gauge {} 5\n"
        "_max gauge {} 5\n"
        "_last gauge {} 5\n"
        " gauge {client=\"a\"} 5\n"
        "_info info {client=\"c\",value=\"red\"} 1\n");
  CHECK(metrics_lines(b, kT0 + 20) == "_clients gauge {} 0\n");
}

TEST_CASE("ExpiryGauge: deltas merged in any order equal one fold", "[more_plugins][expiry_gauge]") {
  const taba_handler& h = expiry_gauge();
  std::mt19937_64 rng(7);
  constexpr int kClients = 25;
  const double now = kT0 + 2000;
  // Per client, 1..6 deltas of 1..4 events with distinct timestamps; some
  // expiries already passed at `now`, some pass later.
  struct Ev {
    double ts;
    int value;
    double expiry;
  };
  std::vector<std::vector<std::vector<Ev>>> deltas(kClients);
  std::vector<double> stamps(600);
  std::iota(stamps.begin(), stamps.end(), 0.0);
  std::shuffle(stamps.begin(), stamps.end(), rng);
  size_t next = 0;
  for (auto& client : deltas) {
    client.resize(1 + rng() % 6);
    for (auto& delta : client) {
      delta.resize(1 + rng() % 4);
      for (auto& e : delta) {
        e.ts = kT0 + stamps[next++];
        e.value = static_cast<int>(rng() % 4);
        e.expiry = e.ts + static_cast<double>(rng() % 4000);
      }
    }
  }
  auto events_of = [](const std::vector<Ev>& evs) {
    Events out;
    for (const Ev& e : evs) out.pair(e.ts, str("v" + std::to_string(e.value)), num(e.expiry));
    return out;
  };
  // Reference: one fold of all of a client's events, merged.
  State reference(h, now);
  for (int c = 0; c < kClients; ++c) {
    std::vector<Ev> all;
    for (const auto& d : deltas[c]) all.insert(all.end(), d.begin(), d.end());
    State cs(h, now, "c" + std::to_string(c));
    cs.fold(events_of(all), now);
    reference.merge(cs, now);
  }
  const std::vector<double> times = {now, now + 500, now + 1000, now + 2000, now + 5000};
  std::vector<std::string> want;
  for (const double t : times) want.push_back(reference.render(t));
  CHECK(want.front() != "{}");
  CHECK(want.back() == "{}");
  // Deltas ingested in three shuffled orders (across and within clients).
  for (int round = 0; round < 3; ++round) {
    std::vector<std::pair<int, size_t>> order;
    for (int c = 0; c < kClients; ++c) {
      for (size_t d = 0; d < deltas[c].size(); ++d) order.emplace_back(c, d);
    }
    std::shuffle(order.begin(), order.end(), rng);
    State aggregate(h, now);
    std::vector<State> clients;
    for (int c = 0; c < kClients; ++c) clients.emplace_back(h, now, "c" + std::to_string(c));
    for (const auto& [c, d] : order) {
      ingest(h, &clients[c], &aggregate, "c" + std::to_string(c), events_of(deltas[c][d]), now);
    }
    State reduced(h, now);
    std::vector<int> perm(kClients);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (const int c : perm) reduced.merge(clients[c], now);
    for (size_t i = 0; i < times.size(); ++i) {
      INFO("round " << round << " at +" << times[i] - now);
      CHECK(aggregate.render(times[i]) == want[i]);
      CHECK(reduced.render(times[i]) == want[i]);
    }
  }
}

TEST_CASE("ExpiryGauge: serialization round trip and corrupt input", "[more_plugins][expiry_gauge]") {
  const taba_handler& h = expiry_gauge();
  State aggregate(h, kT0);
  for (int i = 0; i < 30; ++i) {
    const std::string client = "client-" + std::to_string(i);
    State cs(h, kT0, client);
    ingest(h, &cs, &aggregate, client,
           Events().pair(kT0 + i, str("v" + std::to_string(i % 3)), num(kT0 + 100 + 10 * i)), kT0 + i);
  }
  CHECK(aggregate.render(kT0 + 30) == R"({"v0": 10, "v1": 10, "v2": 10})");
  CHECK(aggregate.render(kT0 + 250) == R"({"v0": 4, "v1": 5, "v2": 5})");
  check_round_trip_json(h, aggregate, {kT0 + 30, kT0 + 250, kT0 + 500});
  State client(h, kT0, "solo");
  client.fold(Events().pair(kT0, num(2, "2"), num(kT0 + 60)), kT0);
  check_round_trip_json(h, client, {kT0, kT0 + 60});
  // A deserialized client state still knows its client.
  std::unique_ptr<State> copy;
  REQUIRE(deserialize(h, client.serialize(), h.state_version, &copy) == TABA_OK);
  State delta(h, kT0 + 1, "solo");
  delta.fold(Events().pair(kT0 + 1, num(3, "3"), num(kT0 + 10)), kT0 + 1);
  copy->merge(delta, kT0 + 1);
  CHECK(copy->render(kT0 + 1) == R"({"3": 1})");
  // Hand-made bytes: own client "", 1 entry for "a".
  auto one_entry = [](const std::string& value, double ts, double expiry) {
    return bytes_of({0, 1, 1, 'a', static_cast<int>(value.size())}) + value + le_double(ts) +
           le_double(expiry);
  };
  std::unique_ptr<State> ok;
  REQUIRE(deserialize(h, one_entry("\"x\"", kT0, kT0 + 5), 1, &ok) == TABA_OK);
  CHECK(ok->render(kT0) == R"({"x": 1})");
  std::string reason;
  std::unique_ptr<State> ignored;
  CHECK(deserialize(h, one_entry("[1]", kT0, kT0 + 5), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("scalar") != std::string::npos);
  CHECK(deserialize(h, one_entry("\"x", kT0, kT0 + 5), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(deserialize(h, one_entry("\"x\"", kT0, NAN), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("non-finite") != std::string::npos);
  std::string dup = bytes_of({0, 2});
  for (int i = 0; i < 2; ++i) dup += bytes_of({1, 'a', 1, '1'}) + le_double(kT0) + le_double(kT0 + 5);
  CHECK(deserialize(h, dup, 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("duplicate") != std::string::npos);
  CHECK(deserialize(h, one_entry("\"x\"", kT0, kT0 + 5) + "z", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("trailing") != std::string::npos);
  // Version 1 (values as sent) is canonicalized; version 2 must be canonical.
  REQUIRE(deserialize(h, one_entry("\"a\\/b\"", kT0, kT0 + 5), 1, &ok) == TABA_OK);
  CHECK(ok->render(kT0) == R"({"a/b": 1})");
  CHECK(deserialize(h, one_entry("\"a\\/b\"", kT0, kT0 + 5), 2, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("canonical") != std::string::npos);
  REQUIRE(deserialize(h, one_entry("\"a/b\"", kT0, kT0 + 5), 2, &ok) == TABA_OK);
}
