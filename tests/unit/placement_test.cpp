// The Redis store's placement (src/store/redis/placement.h): its JSON form,
// the fence bytes each shard gets in each phase of a move, the previous
// owners whose dedup markers count, and the per-vbucket dedup markers.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/config.h"
#include "store/redis/placement.h"

using namespace taba;
using namespace taba::redis;

namespace {

Placement two_shards() {
  Config::Redis c;
  c.vbuckets = 16;
  c.shards = {{"a", 0, 7}, {"b", 8, 15}};
  return Placement::initial(c);
}

Move move_of(std::string phase) {
  Move m;
  m.id = "m1";
  m.from = "a";
  m.to = "c";
  m.first = 2;
  m.last = 5;
  m.phase = std::move(phase);
  return m;
}

}  // namespace

TEST_CASE("placement: the configured ranges are epoch 1 and survive a JSON round trip", "[redis][placement]") {
  Placement p = two_shards();
  CHECK(p.epoch == 1);
  CHECK(p.owner_of(7) == "a");
  CHECK(p.owner_of(8) == "b");
  REQUIRE(p.ranges_of("a") == std::vector<std::pair<uint32_t, uint32_t>>{{0, 7}});
  p.move = move_of("states");
  p.move->drained_at = 12.5;
  p.history.push_back(Owned{9, 9, "d", 100.25});
  // Parsing registers a shard named only by the move or the history.
  Result<Placement> sparse = Placement::parse(p.to_json());
  REQUIRE(sparse.ok());
  CHECK(sparse->find_shard("c") >= 0);
  CHECK(sparse->find_shard("d") >= 0);
  p.shard_index("c");
  p.shard_index("d");
  p.recent.push_back(Ended{"m0", "b", "a", 1, 1, "done", 1, 2, 3, 4});
  Result<Placement> back = Placement::parse(p.to_json());
  REQUIRE(back.ok());
  CHECK(back->to_json() == p.to_json());
  CHECK(back->move->phase == "states");
  CHECK(back->move->drained_at == 12.5);
  CHECK(back->history.at(0).until == 100.25);
  CHECK(back->recent.at(0).names == 3);
}

TEST_CASE("placement: a malformed placement is refused with the reason", "[redis][placement]") {
  CHECK(!Placement::parse("").ok());
  CHECK(!Placement::parse("[]").ok());
  auto gap = Placement::parse(R"({"epoch":2,"vbuckets":4,"shards":[{"name":"a","ranges":[[0,2]]}],"move":null})");
  REQUIRE(!gap.ok());
  CHECK(gap.status().message().find("vbucket 3 has no shard") != std::string::npos);
  auto outside = Placement::parse(R"({"epoch":2,"vbuckets":4,"shards":[{"name":"a","ranges":[[0,4]]}]})");
  REQUIRE(!outside.ok());
  CHECK(outside.status().message().find("bad range of shard a") != std::string::npos);
}

TEST_CASE("placement: fence bytes follow the phases of a move", "[redis][placement]") {
  Placement p = two_shards();
  CHECK(p.owned_bytes("a") == "1111111100000000");
  CHECK(p.owned_bytes("c") == "0000000000000000");  // a shard new to the cluster owns nothing
  // Before the switch the source still takes writes, and logs new bindings.
  p.move = move_of("bindings");
  CHECK(p.owned_bytes("a") == "11mmmm1100000000");
  p.move->phase = "switching";
  CHECK(p.owned_bytes("a") == "11mmmm1100000000");
  CHECK(p.owned_bytes("c") == "0000000000000000");
  CHECK(!p.move->split());  // the target holds nothing of the range yet
  // The switch gives the range to the target.
  uint16_t c = p.shard_index("c");
  for (uint32_t v = 2; v <= 5; ++v) p.owner[v] = c;
  p.move->phase = "draining";
  CHECK(p.owned_bytes("a") == "1100001100000000");
  CHECK(p.owned_bytes("c") == "0011110000000000");
  CHECK(p.move->holds_back());
  CHECK(p.move->split());
  p.move->phase = "states";
  CHECK(!p.move->holds_back());
  CHECK(p.move->split());
}

TEST_CASE("placement: previous owners count until their markers expire", "[redis][placement]") {
  Placement p = two_shards();
  uint16_t c = p.shard_index("c");
  for (uint32_t v = 2; v <= 5; ++v) p.owner[v] = c;
  std::vector<std::string> owners;
  // While the move splits the range, its source is consulted.
  p.move = move_of("states");
  p.previous_owners(3, 1000, 3600, &owners);
  CHECK(owners == std::vector<std::string>{"a"});
  p.previous_owners(6, 1000, 3600, &owners);
  CHECK(owners.empty());
  // After it, the history keeps the source until drained_at + dedup_ttl_s.
  p.move.reset();
  p.history.push_back(Owned{2, 5, "a", 1000});
  p.previous_owners(2, 4600, 3600, &owners);
  CHECK(owners == std::vector<std::string>{"a"});
  p.previous_owners(2, 4601, 3600, &owners);
  CHECK(owners.empty());
  // A shard is never its own previous owner (a range moved back).
  p.history.push_back(Owned{2, 5, "c", 2000});
  p.previous_owners(2, 3000, 3600, &owners);
  CHECK(owners == std::vector<std::string>{"a"});
  p.prune(4601, 3600);
  REQUIRE(p.history.size() == 1);
  CHECK(p.history[0].shard == "c");
  // "a" still owns 0-1 and 6-7; once "c" owns nothing and its history has
  // expired, it leaves the placement and the owners are re-indexed.
  CHECK(p.find_shard("c") >= 0);
  for (uint32_t v = 2; v <= 5; ++v) p.owner[v] = static_cast<uint16_t>(p.find_shard("b"));
  p.prune(5601, 3600);
  CHECK(p.find_shard("c") < 0);
  CHECK(p.owner_of(2) == "b");
  CHECK(p.owner_of(0) == "a");
  CHECK(p.owner_of(15) == "b");
}

TEST_CASE("dedup markers: a bit per vbucket, and the old \"1\" means all", "[redis][placement]") {
  DedupBits bits(1024);
  CHECK(!bits.test(0));
  bits.set(0);
  bits.set(1023);
  CHECK(bits.test(0));
  CHECK(bits.test(1023));
  CHECK(!bits.test(512));
  DedupBits other(1024);
  other.merge_marker(bits.bytes());
  CHECK(other.test(1023));
  CHECK(!other.test(1));
  other.set(7);
  bits.merge_marker(other.bytes());
  CHECK(bits.test(7));
  DedupBits legacy(1024);
  legacy.merge_marker("1");
  CHECK(legacy.test(0));
  CHECK(legacy.test(777));
  // A tiny vbucket count still tells a bitmap from the old marker.
  DedupBits small(4);
  small.set(0);
  DedupBits read(4);
  read.merge_marker(small.bytes());
  CHECK(read.test(0));
  CHECK(!read.test(1));
  // Anything else read back (garbage) marks nothing.
  DedupBits junk(1024);
  junk.merge_marker("xyz");
  CHECK(!junk.test(0));
}
