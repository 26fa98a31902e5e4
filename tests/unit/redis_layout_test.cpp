#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "store/redis/layout.h"

using namespace taba;
using namespace taba::redis;

TEST_CASE("vbuckets come from FNV-1a 64 of the name", "[redis]") {
  // Published FNV-1a 64-bit test vectors.
  CHECK(fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ull);
  CHECK(vbucket_of("foobar", 1024) == 0x85944171f73967e8ull % 1024);
  // Spread: 10,000 names over 16 vbuckets land within 20 % of even.
  std::vector<int> counts(16, 0);
  for (int i = 0; i < 10000; ++i) ++counts[vbucket_of("svc.req_ms." + std::to_string(i), 16)];
  for (int n : counts) {
    CHECK(n > 500);
    CHECK(n < 750);
  }
}

TEST_CASE("keys carry the prefix and the name", "[redis]") {
  Keys k("taba:");
  CHECK(k.stream() == "taba:stream");
  CHECK(k.states("a.b") == "taba:s:a.b");
  CHECK(k.aggregate("a.b") == "taba:a:a.b");
  CHECK(k.client_names("web1") == "taba:cn:web1");
  CHECK(k.dedup("x-1") == "taba:dedup:x-1");
  CHECK(Keys("t2/").types() == "t2/types");
}

TEST_CASE("stream entry deltas round-trip and malformed ones are errors", "[redis]") {
  DeltaWriter w;
  w.add("req_ms", "CounterGroup", "web01", 2, std::string("\x01\x00\x02", 3));
  w.add("color", "Gauge", "", 1, "");
  std::string bytes = w.finish();
  std::vector<Delta> out;
  REQUIRE(decode_deltas(bytes, &out).ok());
  REQUIRE(out.size() == 2);
  CHECK(out[0].name == "req_ms");
  CHECK(out[0].type == "CounterGroup");
  CHECK(out[0].client == "web01");
  CHECK(out[0].state_version == 2);
  CHECK(out[0].state == std::string("\x01\x00\x02", 3));
  CHECK(out[1].client.empty());
  CHECK(out[1].state.empty());

  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK_FALSE(decode_deltas(bytes.substr(0, cut), &out).ok());
  }
  CHECK(decode_deltas(bytes + "x", &out).message() == "deltas: trailing bytes");
  std::string bad = bytes;
  bad[0] = 9;
  CHECK(decode_deltas(bad, &out).message() == "deltas: unknown version 9");

  uint32_t version = 0;
  std::string_view state;
  std::string blob = encode_state(7, "abc");
  CHECK(decode_state(blob, &version, &state));
  CHECK(version == 7);
  CHECK(state == "abc");
  CHECK_FALSE(decode_state("abc", &version, &state));
}
