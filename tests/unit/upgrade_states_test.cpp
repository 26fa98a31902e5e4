// States the previous release wrote (tests/fixtures/upgrade/redis_keys.txt:
// its Redis keys, made by make_fixtures.sh with that release's binaries),
// read by this release's plugins: deserialize of state version 1
// canonicalizes the values of Gauge, ExpiryGauge and Buffer; Set keeps its
// hashes. Renders are taken at the fixture's event time, so the Gauge
// entries (48 h) are live whatever the date.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "../fixtures/upgrade/redis_keys.h"
#include "plugin_abi_harness.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

struct OldState {
  std::string type;
  uint32_t version = 0;
  std::string bytes;  // the handler's bytes
};

// (name, client) -> state; the client "" is the name's aggregate.
using OldStates = std::map<std::pair<std::string, std::string>, OldState>;

const OldStates& old_states() {
  static const OldStates states = [] {
    const auto elements = taba::test::read_redis_keys();
    std::map<std::string, std::string> types;
    for (const auto& e : elements) {
      if (e.command == "HSET" && e.key == "taba:types") types[e.field] = e.value;
    }
    OldStates out;
    auto add = [&](const std::string& name, const std::string& client, const std::string& blob) {
      REQUIRE(blob.size() >= 4);
      OldState s;
      s.type = types.at(name);
      for (int i = 3; i >= 0; --i) s.version = s.version * 256 + static_cast<unsigned char>(blob[i]);
      s.bytes = blob.substr(4);
      out[{name, client}] = s;
    };
    for (const auto& e : elements) {
      if (e.command == "HSET" && e.key.rfind("taba:s:", 0) == 0) add(e.key.substr(7), e.field, e.value);
      if (e.command == "SET" && e.key.rfind("taba:a:", 0) == 0) add(e.key.substr(7), "", e.value);
    }
    return out;
  }();
  return states;
}

const taba_handler& handler_for(const std::string& type) {
  static const std::map<std::string, std::string> files = {
      {"Gauge", "gauge.so"}, {"ExpiryGauge", "expiry_gauge.so"}, {"Set", "set.so"}, {"Buffer", "buffer.so"}};
  return handler(files.at(type), type);
}

const OldState& old_state(const std::string& name, const std::string& client = "") {
  const auto it = old_states().find({name, client});
  INFO("no state of (" << name << ", " << client << ") in the fixture");
  REQUIRE(it != old_states().end());
  return it->second;
}

// The state as this release reads it.
std::unique_ptr<State> upgraded(const std::string& name, const std::string& client = "") {
  const OldState& s = old_state(name, client);
  std::unique_ptr<State> out;
  std::string reason;
  INFO(name << ", " << client << ": " << reason);
  REQUIRE(deserialize(handler_for(s.type), s.bytes, s.version, &out, &reason) == TABA_OK);
  return out;
}

std::string render(const std::string& name, const std::string& client = "") {
  return upgraded(name, client)->render(taba::test::upgrade_event_time());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

V str(const std::string& json_text) {
  return {TABA_VALUE_STRING, json_text, 0};
}
V num(double v, const std::string& text) {
  return {TABA_VALUE_NUMBER, text, v};
}

constexpr double kFarExpiry = 4102444800;  // make_fixtures.sh's expiries

}  // namespace

TEST_CASE("upgrade: the previous release wrote split values at state version 1", "[upgrade]") {
  REQUIRE(old_states().size() == 30);
  for (const auto& [key, s] : old_states()) {
    INFO(key.first << ", " << key.second);
    CHECK(s.version == 1);
  }
  // The spellings are all there, as sent: what this release must join.
  const std::string& city = old_state("city").bytes;
  CHECK(contains(city, "\"Z\\u00fcrich\""));
  CHECK(contains(city, "\"Z\xc3\xbcrich\""));
  CHECK(contains(city, "\"Z\xfcrich\""));
  CHECK(contains(old_state("path").bytes, "\"a\\/b\""));
  CHECK(contains(old_state("path").bytes, "\"a/b\""));
  CHECK(contains(old_state("ratio").bytes, "1.50"));
  CHECK(contains(old_state("ratio").bytes, "15e-1"));
  CHECK(contains(old_state("log").bytes, "{\"k\": 1.50, "));
}

TEST_CASE("upgrade: every state of the previous release is readable and re-written canonical", "[upgrade]") {
  const double t = taba::test::upgrade_event_time();
  for (const auto& [key, s] : old_states()) {
    INFO(key.first << ", " << key.second << " (" << s.type << ")");
    const taba_handler& h = handler_for(s.type);
    std::unique_ptr<State> state = upgraded(key.first, key.second);
    // What this release writes reads back at its own version, unchanged.
    const std::string now_bytes = state->serialize();
    std::unique_ptr<State> again;
    REQUIRE(deserialize(h, now_bytes, h.state_version, &again) == TABA_OK);
    CHECK(again->render(t) == state->render(t));
    CHECK(again->serialize() == now_bytes);
  }
}

TEST_CASE("upgrade: Gauge values of version 1 become canonical", "[upgrade]") {
  const double t = taba::test::upgrade_event_time();
  CHECK(render("city") == "{\"Bern\": 1, \"Z\xc3\xbcrich\": 3}");
  CHECK(render("path") == R"({"a/b": 2})");
  CHECK(render("ratio") == R"({"1.5": 3})");
  CHECK(render("city", "web1") == "{\"Z\xc3\xbcrich\": 1}");
  CHECK(render("city", "web3") == "{\"Z\xc3\xbcrich\": 1}");
  CHECK(render("ratio", "web3") == R"({"1.5": 1})");
  // A version 1 state is not canonical: read as version 2 it is damaged.
  const taba_handler& h = handler_for("Gauge");
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, old_state("city").bytes, 2, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK(contains(reason, "canonical"));
  // A new event of the value joins the upgraded key; the entries are still
  // per client (web1's newer value replaces its upgraded one).
  std::unique_ptr<State> aggregate = upgraded("city");
  State web5(h, t, "web5");
  ingest(h, &web5, aggregate.get(), "web5", Events().value(t + 1, str(R"("Z\u00fcrich")")), t + 1);
  CHECK(aggregate->render(t + 1) == "{\"Bern\": 1, \"Z\xc3\xbcrich\": 4}");
  std::unique_ptr<State> web1 = upgraded("city", "web1");
  ingest(h, web1.get(), aggregate.get(), "web1", Events().value(t + 2, str(R"("Bern")")), t + 2);
  CHECK(aggregate->render(t + 2) == "{\"Bern\": 2, \"Z\xc3\xbcrich\": 3}");
  CHECK(web1->render(t + 2) == R"({"Bern": 1})");
}

TEST_CASE("upgrade: ExpiryGauge values of version 1 become canonical", "[upgrade]") {
  const double t = taba::test::upgrade_event_time();
  CHECK(render("region") == "{\"Z\xc3\xbcrich\": 2, \"a/b\": 2}");
  CHECK(render("level") == R"({"1.5": 3})");
  CHECK(render("region", "web1") == R"({"a/b": 1})");
  const taba_handler& h = handler_for("ExpiryGauge");
  std::unique_ptr<State> ignored;
  CHECK(deserialize(h, old_state("level").bytes, 2, &ignored) == TABA_ERR_CORRUPT);
  std::unique_ptr<State> aggregate = upgraded("level");
  State web4(h, t, "web4");
  ingest(h, &web4, aggregate.get(), "web4",
         Events().pair(t + 1, num(1.5, "150e-2"), num(kFarExpiry, "4102444800")), t + 1);
  CHECK(aggregate->render(t + 1) == R"({"1.5": 4})");
}

TEST_CASE("upgrade: Buffer values of version 1 become canonical", "[upgrade]") {
  const std::string t0 = std::to_string(static_cast<int64_t>(taba::test::upgrade_event_time()));
  const std::string t1 = std::to_string(static_cast<int64_t>(taba::test::upgrade_event_time()) + 1);
  const std::string t2 = std::to_string(static_cast<int64_t>(taba::test::upgrade_event_time()) + 2);
  CHECK(render("log") == "[[\"Z\xc3\xbcrich\", " + t2 + "], [{\"k\":1.5,\"city\":\"Z\xc3\xbcrich\"}, " + t1 +
                             "], [\"a/b\", " + t0 + "], [\"a/b\", " + t0 + "]]");
  CHECK(render("log", "web1") == "[[\"a/b\", " + t0 + "]]");
  std::unique_ptr<State> ignored;
  CHECK(deserialize(handler_for("Buffer"), old_state("log").bytes, 2, &ignored) == TABA_ERR_CORRUPT);
}

TEST_CASE("upgrade: a Set of version 1 keeps the members it counted", "[upgrade]") {
  // Its states hold hashes of the members as sent, which cannot be
  // canonicalized: "a", "\u0061", 1.5 and 1.50 stay four members.
  const double t = taba::test::upgrade_event_time();
  CHECK(render("members") == R"({"count": 4})");
  CHECK(render("members", "web2") == R"({"count": 2})");
  // Members it holds in canonical form are the same members as before: the
  // other spellings of "a" and 1.5 add nothing; a new member adds one.
  const taba_handler& h = handler_for("Set");
  std::unique_ptr<State> aggregate = upgraded("members");
  State web4(h, t, "web4");
  ingest(h, &web4, aggregate.get(), "web4",
         Events().value(t, str(R"("\u0061")")).value(t, num(1.5, "15e-1")).value(t, num(1.5, "1.5")), t);
  CHECK(aggregate->render(t) == R"({"count": 4})");
  ingest(h, &web4, aggregate.get(), "web4", Events().value(t, str(R"("b")")), t);
  CHECK(aggregate->render(t) == R"({"count": 5})");
}
