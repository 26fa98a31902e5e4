// The built-in Gauge plugin, loaded from its built .so file and used only
// through the C ABI (include/taba/handler.h), as tabad uses it: check_event,
// the latest value per client, value keys, expiry after 48 h, the metrics
// render, serialization round trips and corrupt input.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400000400;

}  // namespace

TEST_CASE("Gauge: check_event", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  Events ok;
  ok.value(kT0, TABA_VALUE_STRING, "\"red\"")
      .number(kT0, 1.5, "1.50")
      .value(kT0, TABA_VALUE_BOOL, "true", 1)
      .value(kT0, TABA_VALUE_NULL, "null")
      .array(kT0, TABA_VALUE_STRING, "\"red\"")
      .array(kT0, TABA_VALUE_NUMBER, "3", 3);
  for (size_t i = 0; i < ok.size(); ++i) {
    taba_status st;
    check_error(h, ok[i], &st);
    CHECK(st == TABA_OK);
  }
  Events bad;
  bad.value(kT0, TABA_VALUE_OBJECT, "{\"a\": 1}")
      .array(kT0, TABA_VALUE_NONE, "")
      .array(kT0, TABA_VALUE_ARRAY, "[1]")
      .array(kT0, TABA_VALUE_OBJECT, "{}");
  for (size_t i = 0; i < bad.size(); ++i) {
    taba_status st;
    const std::string err = check_error(h, bad[i], &st);
    CHECK(st == TABA_ERR_PAYLOAD);
    CHECK(err.rfind("Gauge payload must be", 0) == 0);
  }
}

TEST_CASE("Gauge: per client the latest value by event time", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  State empty(h, kT0);
  CHECK(empty.render(kT0) == "{}");
  CHECK(empty.prunable(kT0));
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  State c(h, kT0, "c");
  ingest(h, &a, &aggregate, "a", Events().value(kT0, TABA_VALUE_STRING, "\"red\""), kT0);
  ingest(h, &b, &aggregate, "b", Events().value(kT0 + 1, TABA_VALUE_STRING, "\"red\""), kT0 + 1);
  // Latest by timestamp within the batch, whatever the arrival order.
  ingest(
      h, &c, &aggregate, "c",
      Events().value(kT0 + 5, TABA_VALUE_STRING, "\"blue\"").value(kT0 + 2, TABA_VALUE_STRING, "\"green\""),
      kT0 + 5);
  CHECK(aggregate.render(kT0 + 5) == R"({"blue": 1, "red": 2})");
  CHECK(a.render(kT0 + 5) == R"({"red": 1})");
  CHECK(c.render(kT0 + 5) == R"({"blue": 1})");
  // A newer value of client a replaces its old one, in both states.
  ingest(h, &a, &aggregate, "a", Events().value(kT0 + 10, TABA_VALUE_STRING, "\"blue\""), kT0 + 10);
  CHECK(aggregate.render(kT0 + 10) == R"({"blue": 2, "red": 1})");
  CHECK(a.render(kT0 + 10) == R"({"blue": 1})");
  // An older one (a late delta) does not.
  ingest(h, &a, &aggregate, "a", Events().value(kT0 + 3, TABA_VALUE_STRING, "\"green\""), kT0 + 11);
  CHECK(aggregate.render(kT0 + 11) == R"({"blue": 2, "red": 1})");
  // Ties: the later event in arrival order, and the later delta, win.
  ingest(h, &b, &aggregate, "b",
         Events().value(kT0 + 20, TABA_VALUE_STRING, "\"x\"").value(kT0 + 20, TABA_VALUE_STRING, "\"y\""),
         kT0 + 20);
  CHECK(aggregate.render(kT0 + 20) == R"({"blue": 2, "y": 1})");
  ingest(h, &b, &aggregate, "b", Events().value(kT0 + 20, TABA_VALUE_STRING, "\"z\""), kT0 + 21);
  CHECK(aggregate.render(kT0 + 21) == R"({"blue": 2, "z": 1})");
  CHECK(b.render(kT0 + 21) == R"({"z": 1})");
  // Query-time reduction of client states equals the aggregate.
  State reduced(h, kT0 + 21);
  for (const State* s : {&c, &b, &a}) reduced.merge(*s, kT0 + 21);
  CHECK(reduced.render(kT0 + 21) == aggregate.render(kT0 + 21));
  State reduced_again(h, kT0 + 21);
  reduced_again.merge(reduced, kT0 + 21);
  reduced_again.merge(aggregate, kT0 + 21);  // same clients: no double counting
  CHECK(reduced_again.render(kT0 + 21) == aggregate.render(kT0 + 21));
}

TEST_CASE("Gauge: value keys", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  State aggregate(h, kT0);
  auto post = [&](const std::string& client, const Events& ev) {
    State cs(h, kT0, client);
    ingest(h, &cs, &aggregate, client, ev, kT0);
  };
  post("n1", Events().number(kT0, 1.5, "1.50"));
  post("n2", Events().number(kT0, 5, "5"));
  post("s5", Events().value(kT0, TABA_VALUE_STRING, "\"5\""));
  post("t", Events().value(kT0, TABA_VALUE_BOOL, "true", 1));
  post("z", Events().value(kT0, TABA_VALUE_NULL, " null "));
  post("q", Events().array(kT0, TABA_VALUE_STRING, "\"say \\\"hi\\\"\""));
  post("u", Events().value(kT0, TABA_VALUE_STRING, "\"\\u00e9t\\u00e9\""));
  // Sorted bytewise by key text; the number 5 and the string "5" share a
  // key; values are canonical (1.50 is 1.5, non-ASCII raw UTF-8).
  CHECK(aggregate.render(kT0) ==
        "{\"1.5\": 1, \"5\": 2, \"null\": 1, \"say \\\"hi\\\"\": 1, \"true\": 1, \"\xc3\xa9t\xc3\xa9\": 1}");
}

TEST_CASE("Gauge: equal values however written are one key", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  State aggregate(h, kT0);
  int n = 0;
  auto post = [&](const Events& ev) {
    const std::string client = "c" + std::to_string(n++);
    State cs(h, kT0, client);
    ingest(h, &cs, &aggregate, client, ev, kT0);
  };
  post(Events().value(kT0, TABA_VALUE_STRING, R"("a\/b")"));
  post(Events().value(kT0, TABA_VALUE_STRING, R"("a/b")"));
  post(Events().value(kT0, TABA_VALUE_STRING, R"("Z\u00fcrich")"));
  post(Events().value(kT0, TABA_VALUE_STRING, "\"Z\xc3\xbcrich\""));
  post(Events().value(kT0, TABA_VALUE_STRING, "\"Z\xfcrich\""));  // Latin-1
  post(Events().number(kT0, 1.5, "1.5"));
  post(Events().number(kT0, 1.5, "1.50"));
  post(Events().array(kT0, TABA_VALUE_NUMBER, "15e-1", 1.5));
  CHECK(aggregate.render(kT0) == "{\"1.5\": 3, \"Z\xc3\xbcrich\": 3, \"a/b\": 2}");
  // The client's own state holds the canonical text too.
  State one(h, kT0, "x");
  one.fold(Events().value(kT0, TABA_VALUE_STRING, R"("\ud83d\ude00 \u0041")"), kT0);
  CHECK(one.render(kT0) == "{\"\xf0\x9f\x98\x80 A\": 1}");
}

TEST_CASE("Gauge: values expire 48 h after their event", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  constexpr double kDay = 86400;
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  ingest(h, &a, &aggregate, "a", Events().value(kT0, TABA_VALUE_STRING, "\"on\""), kT0);
  ingest(h, &b, &aggregate, "b", Events().value(kT0 + kDay, TABA_VALUE_STRING, "\"on\""), kT0 + kDay);
  CHECK(aggregate.render(kT0 + 2 * kDay - 1) == R"({"on": 2})");
  CHECK(aggregate.render(kT0 + 2 * kDay) == R"({"on": 1})");
  CHECK_FALSE(aggregate.prunable(kT0 + 3 * kDay - 1));
  CHECK(aggregate.render(kT0 + 3 * kDay) == "{}");
  CHECK(aggregate.prunable(kT0 + 3 * kDay));
  CHECK(a.prunable(kT0 + 2 * kDay));
  CHECK_FALSE(b.prunable(kT0 + 2 * kDay));
  // An event already expired when it arrives is ignored.
  State late(h, kT0 + 3 * kDay, "c");
  late.fold(Events().value(kT0, TABA_VALUE_STRING, "\"old\""), kT0 + 3 * kDay);
  CHECK(late.render(kT0 + 3 * kDay) == "{}");
  CHECK(late.prunable(kT0 + 3 * kDay));
  // Merging drops expired entries; the aggregate keeps working afterwards.
  State fresh(h, kT0 + 3 * kDay);
  fresh.merge(aggregate, kT0 + 2 * kDay + 10);  // a's entry is expired by then
  CHECK(fresh.render(kT0 + 2 * kDay + 10) == R"({"on": 1})");
  State c(h, kT0, "c");
  ingest(h, &c, &aggregate, "c", Events().value(kT0 + 4 * kDay, TABA_VALUE_NUMBER, "7", 7), kT0 + 4 * kDay);
  CHECK(aggregate.render(kT0 + 4 * kDay) == R"({"7": 1})");
  CHECK(aggregate.serialize().size() < 40);  // a and b were swept out
}

TEST_CASE("Gauge: serialization round trip and corrupt input", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  State aggregate(h, kT0);
  for (int i = 0; i < 40; ++i) {
    const std::string client = "client-" + std::to_string(i);
    State cs(h, kT0, client);
    ingest(h, &cs, &aggregate, client,
           Events().value(kT0 + i, TABA_VALUE_STRING, "\"v" + std::to_string(i % 3) + "\""), kT0 + i);
  }
  CHECK(aggregate.render(kT0 + 40) == R"({"v0": 14, "v1": 13, "v2": 13})");
  check_round_trip_all_formats(h, aggregate, {kT0 + 40, kT0 + 172800 + 20});
  State client(h, kT0, "solo");
  client.fold(Events().number(kT0, 2, "2"), kT0);
  check_round_trip_all_formats(h, client, {kT0});
  // The deserialized client state still knows its client: a newer delta
  // replaces its entry rather than adding one.
  std::unique_ptr<State> copy;
  REQUIRE(deserialize(h, client.serialize(), h.state_version, &copy) == TABA_OK);
  State delta(h, kT0 + 1, "solo");
  delta.fold(Events().number(kT0 + 1, 3, "3"), kT0 + 1);
  copy->merge(delta, kT0 + 1);
  CHECK(copy->render(kT0 + 1) == R"({"3": 1})");
  std::unique_ptr<State> ignored;
  std::string reason;
  // Duplicate client entries are refused.
  std::string dup = std::string("\x00\x02", 2);
  for (int i = 0; i < 2; ++i)
    dup += std::string(
               "\x01"
               "a"
               "\x01"
               "1",
               4) +
           std::string(8, '\0');
  CHECK(deserialize(h, dup, 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("duplicate") != std::string::npos);
  // Version 1 (values as sent) is canonicalized; version 2 must be canonical.
  const std::string one_entry = std::string(
                                    "\x00\x01\x01"
                                    "a"
                                    "\x04"
                                    "1.50",
                                    9) +
                                std::string(8, '\0');
  std::unique_ptr<State> old_form;
  REQUIRE(deserialize(h, one_entry, 1, &old_form) == TABA_OK);
  CHECK(old_form->render(0) == R"({"1.5": 1})");
  CHECK(deserialize(h, one_entry, 2, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(reason.find("canonical") != std::string::npos);
}

TEST_CASE("Gauge: the metrics render shows the live values", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  REQUIRE(plugin("gauge.so").abi_minor == TABA_ABI_MINOR);
  constexpr double kDay = 86400;
  State empty(h, kT0);
  CHECK(empty.render(kT0, TABA_FORMAT_METRICS) ==
        R"([["_clients", "gauge", "Clients whose value is live.", [[{}, 0]]]])");
  State aggregate(h, kT0);
  State a(h, kT0, "a");
  State b(h, kT0, "b");
  State c(h, kT0, "c");
  State d(h, kT0, "d");
  // Posted out of client order; a's 5 is the numeric value set last, d's
  // string later still.
  ingest(h, &c, &aggregate, "c", Events().number(kT0 + 2, -3), kT0 + 2);
  ingest(h, &d, &aggregate, "d", Events().value(kT0 + 4, str("on")), kT0 + 4);
  ingest(h, &b, &aggregate, "b", Events().number(kT0 + 1, 44), kT0 + 4);
  ingest(h, &a, &aggregate, "a", Events().number(kT0 + 3, 5, "5.0"), kT0 + 4);
  CHECK(metrics_lines(aggregate, kT0 + 4) ==
        "_clients gauge {} 4\n"
        "_min gauge {} -3\n"
        "_max gauge {} 44\n"
        "_last gauge {} 5\n"
        " gauge {client=\"a\"} 5\n"
        " gauge {client=\"b\"} 44\n"
        " gauge {client=\"c\"} -3\n"
        "_info info {client=\"d\",value=\"on\"} 1\n");
  // A client's state is its own entry.
  CHECK(metrics_lines(a, kT0 + 4) ==
        "_clients gauge {} 1\n"
        "_min gauge {} 5\n"
        "_max gauge {} 5\n"
        "_last gauge {} 5\n"
        " gauge {client=\"a\"} 5\n");
  CHECK(metrics_lines(d, kT0 + 4) ==
        "_clients gauge {} 1\n"
        "_info info {client=\"d\",value=\"on\"} 1\n");
  // b's value (the greatest) expires 48 h after its event: gone from every
  // family; the JSON render agrees.
  CHECK(metrics_lines(aggregate, kT0 + 1 + 2 * kDay) ==
        "_clients gauge {} 3\n"
        "_min gauge {} -3\n"
        "_max gauge {} 5\n"
        "_last gauge {} 5\n"
        " gauge {client=\"a\"} 5\n"
        " gauge {client=\"c\"} -3\n"
        "_info info {client=\"d\",value=\"on\"} 1\n");
  CHECK(aggregate.render(kT0 + 1 + 2 * kDay) == R"({"-3": 1, "5": 1, "on": 1})");
  // Only the string left: no numeric family.
  CHECK(metrics_lines(aggregate, kT0 + 3 + 2 * kDay) ==
        "_clients gauge {} 1\n"
        "_info info {client=\"d\",value=\"on\"} 1\n");
  CHECK(metrics_lines(aggregate, kT0 + 4 + 2 * kDay) == "_clients gauge {} 0\n");
  // Merged in another order, the query-time reduction renders the same.
  State reduced(h, kT0 + 4);
  for (const State* s : {&d, &b, &c, &a}) reduced.merge(*s, kT0 + 4);
  CHECK(reduced.render(kT0 + 4, TABA_FORMAT_METRICS) == aggregate.render(kT0 + 4, TABA_FORMAT_METRICS));
}

TEST_CASE("Gauge: the metrics render's ties and label texts", "[plugins][gauge]") {
  const taba_handler& h = gauge();
  // Equal event times: _last is the value of the client whose ID sorts
  // last, whatever the order of arrival.
  for (const bool y_first : {true, false}) {
    State aggregate(h, kT0);
    State x(h, kT0, "x");
    State y(h, kT0, "y");
    if (y_first) ingest(h, &y, &aggregate, "y", Events().number(kT0, 2), kT0);
    ingest(h, &x, &aggregate, "x", Events().number(kT0, 1), kT0);
    if (!y_first) ingest(h, &y, &aggregate, "y", Events().number(kT0, 2), kT0);
    INFO("y first: " << y_first);
    CHECK(metrics_lines(aggregate, kT0).find("_last gauge {} 2\n") != std::string::npos);
  }
  // Labels: a string's content decoded; true, false and null as their
  // JSON text; numbers in full precision.
  State aggregate(h, kT0);
  auto post = [&](const std::string& client, const Events& ev) {
    State cs(h, kT0, client);
    ingest(h, &cs, &aggregate, client, ev, kT0);
  };
  post("e", Events().value(kT0, str(R"(a\"b\\c\n\u00fc\/\u0007)")));
  post("f", Events().value(kT0, raw(TABA_VALUE_BOOL, "true", 1)));
  post("g", Events().value(kT0, raw(TABA_VALUE_NULL, "null")));
  post("h", Events().number(kT0, 0.1, "1e-1"));
  post("i", Events().value(kT0, str("5")));
  CHECK(metrics_lines(aggregate, kT0) ==
        "_clients gauge {} 5\n"
        "_min gauge {} 0.1\n"
        "_max gauge {} 0.1\n"
        "_last gauge {} 0.1\n"
        " gauge {client=\"h\"} 0.1\n"
        "_info info {client=\"e\",value=\"a\"b\\c\n\xc3\xbc/\x07\"} 1\n"
        "_info info {client=\"f\",value=\"true\"} 1\n"
        "_info info {client=\"g\",value=\"null\"} 1\n"
        "_info info {client=\"i\",value=\"5\"} 1\n");
  // A number in exponent form is a number too.
  State big(h, kT0, "x");
  big.fold(Events().number(kT0, 1e21, "1e21"), kT0);
  CHECK(metrics_lines(big, kT0).find(" gauge {client=\"x\"} 1e+21\n") != std::string::npos);
  // A label value is cut to 256 bytes, at a UTF-8 character boundary: 254
  // bytes and a 2-byte character fit whole; 255 and one do not, and the
  // character is left out.
  const std::string fits = std::string(254, 'x') + "\xc3\xa9";
  const std::string cut = std::string(255, 'x') + "\xc3\xa9" + "tail";
  State labels(h, kT0);
  State j(h, kT0, "j");
  State k(h, kT0, "k");
  ingest(h, &j, &labels, "j", Events().value(kT0, str(fits)), kT0);
  ingest(h, &k, &labels, "k", Events().value(kT0, str(cut)), kT0);
  const std::string j_line = "_info info {client=\"j\",value=\"" + fits + "\"} 1\n";
  const std::string k_line = "_info info {client=\"k\",value=\"" + std::string(255, 'x') + "\"} 1\n";
  CHECK(metrics_lines(labels, kT0) == "_clients gauge {} 2\n" + j_line + k_line);
}
