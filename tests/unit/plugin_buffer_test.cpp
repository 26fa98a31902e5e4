// The built-in Buffer plugin, loaded from its built .so file and used only
// through the C ABI (include/taba/handler.h), as tabad uses it: golden
// renders, the 1000-entry cap, merge order, check_event, serialization
// round trips and corrupt input.
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400000400;

}  // namespace

TEST_CASE("Buffer: check_event", "[more_plugins][buffer]") {
  Events ok;
  ok.value(kT0, str("hello"))
      .value(kT0, num(5))
      .value(kT0, raw(TABA_VALUE_OBJECT, "{\"a\": [1, 2]}"))
      .value(kT0, raw(TABA_VALUE_BOOL, "false"))
      .value(kT0, raw(TABA_VALUE_NULL, "null"))
      .pair(kT0, str("v"), num(kT0 + 60))
      .pair(kT0, raw(TABA_VALUE_ARRAY, "[1, 2]"), num(kT0 + 60))
      .pair(kT0, raw(TABA_VALUE_OBJECT, "{}"), num(kT0 + 60));
  Events bad;
  bad.pair(kT0, {}, {})
      .pair(kT0, str("v"), {})
      .pair(kT0, str("v"), str("1400000460"))
      .pair(kT0, num(1), raw(TABA_VALUE_NULL, "null"))
      .pair(kT0, num(1), raw(TABA_VALUE_ARRAY, "[2]"));
  check_events(buffer(), ok, bad, "Buffer payload must be [value, expiry_epoch_seconds]");
}

TEST_CASE("Buffer: renders the newest values first until they expire", "[more_plugins][buffer]") {
  const taba_handler& h = buffer();
  State empty(h, kT0);
  CHECK(empty.render(kT0) == "[]");
  CHECK(empty.prunable(kT0));
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  ingest(h, &a, &aggregate, "a", Events().value(kT0 + 0.5, str("hello")), kT0 + 1);
  CHECK(aggregate.render(kT0 + 1) == R"([["hello", 1400000400.5]])");
  CHECK_FALSE(aggregate.prunable(kT0 + 1));
  ingest(h, &b, &aggregate, "b",
         Events()
             .pair(kT0 + 2, raw(TABA_VALUE_OBJECT, "{\"k\": 1}"), num(kT0 + 10))
             .value(kT0 + 1.125, num(42, "42")),
         kT0 + 3);
  ingest(h, &a, &aggregate, "a", Events().pair(kT0 + 3, raw(TABA_VALUE_ARRAY, "[1, \"x\"]"), num(kT0 + 5000)),
         kT0 + 3);
  // Timestamps print in their shortest round-trip form; values in their
  // canonical one (no whitespace in containers).
  CHECK(aggregate.render(kT0 + 3) ==
        R"([[[1,"x"], 1400000403], [{"k":1}, 1400000402], [42, 1400000401.125], ["hello", 1400000400.5]])");
  CHECK(a.render(kT0 + 3) == R"([[[1,"x"], 1400000403], ["hello", 1400000400.5]])");
  // The explicit expiry, then the bare values' ts + 3600.
  CHECK(aggregate.render(kT0 + 10) ==
        R"([[[1,"x"], 1400000403], [42, 1400000401.125], ["hello", 1400000400.5]])");
  CHECK(aggregate.render(kT0 + 3600.25) ==
        R"([[[1,"x"], 1400000403], [42, 1400000401.125], ["hello", 1400000400.5]])");
  CHECK(aggregate.render(kT0 + 3600.5) == R"([[[1,"x"], 1400000403], [42, 1400000401.125]])");
  CHECK(aggregate.render(kT0 + 3601.125) == R"([[[1,"x"], 1400000403]])");
  CHECK_FALSE(aggregate.prunable(kT0 + 4999));
  CHECK(aggregate.render(kT0 + 5000) == "[]");
  CHECK(aggregate.prunable(kT0 + 5000));
  CHECK(b.prunable(kT0 + 3601.125));
  // Rendering changed nothing.
  CHECK(aggregate.render(kT0 + 3).size() > 90);
  // An event already expired when it arrives is ignored.
  State late(h, kT0, "c");
  late.fold(Events().pair(kT0, str("old"), num(kT0 + 5)).value(kT0 - 4000, str("older")), kT0 + 5);
  CHECK(late.render(kT0 + 5) == "[]");
  CHECK(late.prunable(kT0 + 5));
  // Equal timestamps: by value text.
  State ties(h, kT0, "t");
  ties.fold(Events().value(kT0, str("b")).value(kT0, str("a")).value(kT0, str("c")), kT0);
  CHECK(ties.render(kT0) == R"([["a", 1400000400], ["b", 1400000400], ["c", 1400000400]])");
  // Values are canonical: the same value however written renders alike,
  // and ranks among equal timestamps by its canonical text.
  State spelled(h, kT0, "s");
  spelled.fold(
      Events()
          .value(kT0, str("a\\/b"))
          .value(kT0, str("a/b"))
          .pair(kT0, raw(TABA_VALUE_OBJECT, "{ \"k\" : 1.50, \"c\": \"Z\\u00fcrich\" }"), num(kT0 + 60))
          .value(kT0, str("Z\xfcrich"))
          .value(kT0, num(1.5, "15e-1")),
      kT0);
  CHECK(spelled.render(kT0) ==
        "[[\"Z\xc3\xbcrich\", 1400000400], [\"a/b\", 1400000400], [\"a/b\", 1400000400], "
        "[1.5, 1400000400], [{\"k\":1.5,\"c\":\"Z\xc3\xbcrich\"}, 1400000400]]");
}

TEST_CASE("Buffer: the metrics render shows the count and the newest value", "[more_plugins][buffer]") {
  const taba_handler& h = buffer();
  REQUIRE(plugin("buffer.so").abi_minor == TABA_ABI_MINOR);
  State empty(h, kT0);
  CHECK(empty.render(kT0, TABA_FORMAT_METRICS) == R"([["_values", "gauge", "Values held.", [[{}, 0]]]])");
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  ingest(h, &a, &aggregate, "a", Events().value(kT0 + 0.5, str("hello")).number(kT0 + 2.25, 4.5, "4.50"),
         kT0 + 3);
  ingest(h, &b, &aggregate, "b", Events().pair(kT0 + 1, num(3), num(kT0 + 10)), kT0 + 3);
  // The newest is a number.
  CHECK(metrics_lines(aggregate, kT0 + 3) ==
        "_values gauge {} 3\n"
        "_newest_timestamp_seconds gauge {} 1400000402.25\n"
        "_newest gauge {} 4.5\n");
  CHECK(metrics_lines(b, kT0 + 3) ==
        "_values gauge {} 1\n"
        "_newest_timestamp_seconds gauge {} 1400000401\n"
        "_newest gauge {} 3\n");
  // Newer, not numbers: a container as its canonical JSON text, a string
  // as its content.
  ingest(h, &b, &aggregate, "b",
         Events().pair(kT0 + 4, raw(TABA_VALUE_OBJECT, "{\"k\": 1.50, \"s\": \"\\\"\"}"), num(kT0 + 20)),
         kT0 + 4);
  CHECK(metrics_lines(aggregate, kT0 + 4) ==
        "_values gauge {} 4\n"
        "_newest_timestamp_seconds gauge {} 1400000404\n"
        "_newest_info info {value=\"{\"k\":1.5,\"s\":\"\\\"\"}\"} 1\n");
  ingest(h, &a, &aggregate, "a", Events().value(kT0 + 5, str("Z\\u00fcrich \\\"x\\\"")), kT0 + 5);
  CHECK(metrics_lines(aggregate, kT0 + 5) ==
        "_values gauge {} 5\n"
        "_newest_timestamp_seconds gauge {} 1400000405\n"
        "_newest_info info {value=\"Z\xc3\xbcrich \"x\"\"} 1\n");
  // Expired values leave the count, and the newest is the newest left.
  CHECK(metrics_lines(aggregate, kT0 + 20) ==
        "_values gauge {} 3\n"
        "_newest_timestamp_seconds gauge {} 1400000405\n"
        "_newest_info info {value=\"Z\xc3\xbcrich \"x\"\"} 1\n");
  CHECK(metrics_lines(aggregate, kT0 + 3605) == "_values gauge {} 0\n");
  CHECK(metrics_lines(aggregate, kT0 + 3603) ==
        "_values gauge {} 1\n"
        "_newest_timestamp_seconds gauge {} 1400000405\n"
        "_newest_info info {value=\"Z\xc3\xbcrich \"x\"\"} 1\n");
  // Equal timestamps: the first in rank order (by value text).
  State ties(h, kT0, "t");
  ties.fold(Events().value(kT0, str("b")).value(kT0, str("a")).value(kT0, num(7)), kT0);
  CHECK(metrics_lines(ties, kT0) ==
        "_values gauge {} 3\n"
        "_newest_timestamp_seconds gauge {} 1400000400\n"
        "_newest_info info {value=\"a\"} 1\n");
  // The label is cut to 256 bytes at a UTF-8 character boundary (a 3-byte
  // character straddling byte 256 is left out).
  State long_value(h, kT0, "l");
  long_value.fold(Events().value(kT0, str(std::string(254, 'y') + "\xe2\x82\xac" + "more")), kT0);
  const std::string info_line = "_newest_info info {value=\"" + std::string(254, 'y') + "\"} 1\n";
  CHECK(metrics_lines(long_value, kT0) ==
        "_values gauge {} 1\n"
        "_newest_timestamp_seconds gauge {} 1400000400\n" +
            info_line);
}

TEST_CASE("Buffer: keeps the 1000 newest across clients", "[more_plugins][buffer]") {
  const taba_handler& h = buffer();
  std::mt19937_64 rng(11);
  std::vector<int> seconds(1500);
  std::iota(seconds.begin(), seconds.end(), 0);
  std::shuffle(seconds.begin(), seconds.end(), rng);
  const double now = kT0 + 1500;
  State aggregate(h, now);
  std::vector<State> clients;
  for (int c = 0; c < 7; ++c) clients.emplace_back(h, now, "c" + std::to_string(c));
  for (size_t i = 0; i < seconds.size(); i += 10) {
    Events ev;
    for (size_t j = i; j < i + 10; ++j) ev.value(kT0 + seconds[j], num(seconds[j]));
    const size_t c = (i / 10) % clients.size();
    ingest(h, &clients[c], &aggregate, "c" + std::to_string(c), ev, now);
  }
  const std::string text = aggregate.render(now);
  CHECK(text.rfind("[[1499, 1400001899], [1498, 1400001898], ", 0) == 0);
  CHECK(text.size() >= 20);
  CHECK(text.substr(text.size() - 20) == ", [500, 1400000900]]");
  CHECK(std::count(text.begin(), text.end(), '[') == 1001);
  // The same from the client states, reduced in any order; and from one fold.
  State reduced(h, now);
  for (int c = 6; c >= 0; --c) reduced.merge(clients[c], now);
  CHECK(reduced.render(now) == text);
  State folded(h, now, "all");
  Events all;
  for (const int s : seconds) all.value(kT0 + s, num(s));
  folded.fold(all, now);
  CHECK(folded.render(now) == text);
  CHECK(folded.serialize() == aggregate.serialize());
  // Older values than the 1000 kept never get in again.
  ingest(h, &clients[0], &aggregate, "c0", Events().value(kT0 + 1, str("stale")), now);
  CHECK(aggregate.render(now) == text);
  ingest(h, &clients[0], &aggregate, "c0", Events().value(kT0 + 2000, str("new")), now);
  CHECK(aggregate.render(now).rfind(R"([["new", 1400002400], [1499, 1400001899], )", 0) == 0);
  CHECK(aggregate.render(now).find("[500, ") == std::string::npos);
}

TEST_CASE("Buffer: merge order does not change the result", "[more_plugins][buffer]") {
  const taba_handler& h = buffer();
  std::mt19937_64 rng(5);
  const double now = kT0 + 100;
  // 30 clients, 2500 events (more than the cap), many equal timestamps and
  // equal values, expiries all after `now` but some soon after.
  struct Ev {
    double ts;
    std::string value;
    double expiry;
  };
  std::vector<std::vector<Ev>> deltas(250);
  for (auto& d : deltas) {
    for (int i = 0; i < 10; ++i) {
      d.push_back({kT0 + static_cast<double>(rng() % 400) / 4, "\"v" + std::to_string(rng() % 50) + "\"",
                   now + 1 + static_cast<double>(rng() % 300)});
    }
  }
  auto events_of = [](const std::vector<Ev>& evs) {
    Events out;
    for (const Ev& e : evs) out.pair(e.ts, raw(TABA_VALUE_STRING, e.value), num(e.expiry));
    return out;
  };
  std::string want_bytes;
  std::vector<std::string> want;
  for (int round = 0; round < 4; ++round) {
    std::vector<size_t> order(deltas.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    State aggregate(h, now);
    std::vector<State> clients;
    for (int c = 0; c < 30; ++c) clients.emplace_back(h, now, "c" + std::to_string(c));
    for (const size_t d : order) {
      const int c = static_cast<int>(d % 30);
      ingest(h, &clients[c], &aggregate, "c" + std::to_string(c), events_of(deltas[d]), now);
    }
    State reduced(h, now);
    for (int c = 0; c < 30; ++c) reduced.merge(clients[(c * 7 + round) % 30], now);
    std::vector<std::string> got;
    for (const double t : {now, now + 100, now + 250}) got.push_back(aggregate.render(t));
    CHECK(reduced.serialize() == aggregate.serialize());
    if (round == 0) {
      want = got;
      want_bytes = aggregate.serialize();
      CHECK(std::count(want[0].begin(), want[0].end(), '[') == 1001);
    } else {
      CHECK(got == want);
      CHECK(aggregate.serialize() == want_bytes);
    }
  }
  CHECK(want[0] != want[1]);
  CHECK(want[1] != want[2]);
}

TEST_CASE("Buffer: serialization round trip and corrupt input", "[more_plugins][buffer]") {
  const taba_handler& h = buffer();
  State s(h, kT0, "a");
  Events ev;
  for (int i = 0; i < 20; ++i) ev.value(kT0 + i * 0.5, str("v" + std::to_string(i)));
  ev.pair(kT0 + 100, raw(TABA_VALUE_OBJECT, "{\"a\": [true, null]}"), num(kT0 + 200));
  s.fold(ev, kT0 + 100);
  check_round_trip_json(h, s, {kT0 + 100, kT0 + 3605, kT0 + 4000});
  State empty(h, kT0);
  check_round_trip_json(h, empty, {kT0});
  auto one = [](const std::string& value, double ts, double expiry) {
    return bytes_of({1, static_cast<int>(value.size())}) + value + le_double(ts) + le_double(expiry);
  };
  std::unique_ptr<State> ok;
  REQUIRE(deserialize(h, one("{\"a\":1}", kT0, kT0 + 5), 1, &ok) == TABA_OK);
  CHECK(ok->render(kT0) == R"([[{"a":1}, 1400000400]])");
  std::string reason;
  std::unique_ptr<State> ignored;
  for (const char* not_json : {"{\"a\":1", "\"x", "[1,]", "01", "tru", "1 2", " 1", "\"\\q\""}) {
    INFO(not_json);
    CHECK(deserialize(h, one(not_json, kT0, kT0 + 5), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
    CHECK(reason.find("not JSON") != std::string::npos);
  }
  CHECK(deserialize(h, one("1", INFINITY, kT0 + 5), 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  // More entries than the cap.
  std::string many = bytes_of({0xe9, 0x07});  // 1001
  for (int i = 0; i < 1001; ++i) many += one("1", kT0, kT0 + 5).substr(1);
  CHECK(deserialize(h, many, 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(deserialize(h, one("1", kT0, kT0 + 5) + "x", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  // A value nested as deep as the host accepts (a bare object, 65 levels)
  // is kept and reads back, in either version (before values were
  // canonical, such a state was written but refused when read).
  std::string deep = "1";
  for (int i = 0; i < 65; ++i) deep = "{\"a\":" + deep + "}";
  State deep_state(h, kT0, "d");
  deep_state.fold(Events().value(kT0, raw(TABA_VALUE_OBJECT, deep)), kT0);
  REQUIRE(deep_state.render(kT0) == "[[" + deep + ", 1400000400]]");
  REQUIRE(deserialize(h, deep_state.serialize(), 1, &ok) == TABA_OK);
  REQUIRE(deserialize(h, deep_state.serialize(), 2, &ok) == TABA_OK);
  CHECK(ok->render(kT0) == deep_state.render(kT0));
  // Version 1 (values as sent) is rewritten, and ranked by the new text;
  // version 2 must be canonical.
  const std::string two =
      bytes_of({2}) + one("\"b\"", kT0, kT0 + 5).substr(1) + one("[ 1.50 ]", kT0, kT0 + 5).substr(1);
  REQUIRE(deserialize(h, two, 1, &ok) == TABA_OK);
  CHECK(ok->render(kT0) == R"([["b", 1400000400], [[1.5], 1400000400]])");
  CHECK(deserialize(h, two, 2, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("canonical") != std::string::npos);
}
