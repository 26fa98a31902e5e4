// The client-proxy's delta path (src/roles/statsd_buffer.h, take_deltas):
// the states it ships must be exactly those the fe folded from the v1 bodies
// the proxy posted before. The same datagrams go to the v1 reference
// (statsd_reference.h), whose bodies the real v1 decoder decodes and
// protocol::DeltaFolder folds as the fe would, and to the buffer's
// take_deltas; every block must match: name, type, events, state version
// and the serialized state, byte for byte.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "plugin/state.h"
#include "plugin_batches.h"
#include "protocol/delta_batch.h"
#include "protocol/delta_fold.h"
#include "roles/statsd_buffer.h"
#include "statsd_reference.h"

using taba::plugin::Registry;
using taba::protocol::DeltaBlock;
using taba::protocol::DeltaReader;
using taba::protocol::DeltaWriter;
using taba::roles::DeltaFlush;
using taba::roles::ProxyStats;
using taba::roles::StatsdBuffer;
using taba::test::built_plugins;
using taba::test::Reference;

namespace {

struct Block {
  std::string client, name, type;
  uint64_t events = 0;
  uint32_t version = 0;
  std::string state;
};

std::vector<Block> blocks_of(std::string_view batch) {
  DeltaReader reader(batch);
  REQUIRE(reader.open().ok());
  std::vector<Block> out;
  DeltaBlock b;
  taba::Status s;
  while (reader.next(&b, &s)) {
    out.push_back({std::string(b.client), std::string(b.name), std::string(b.type), b.events, b.state_version,
                   std::string(b.state)});
  }
  REQUIRE(s.ok());
  return out;
}

// What the fe made of a v1 body received at `now`: decoded by the v1
// decoder, folded per (client, name) by the DeltaFolder.
std::string fe_deltas(std::string_view body, double now) {
  taba::test::DecodedBody decoded = taba::test::decode_v1(body, now);
  taba::protocol::DeltaFolder folder(&built_plugins());
  REQUIRE(folder.fold_batch(decoded.batch, true, nullptr).ok());
  auto batch = folder.finish(now);
  REQUIRE(batch.ok());
  return batch.value();
}

// A state's renders (JSON and JSON_EXACT) at `now`.
std::string renders(const Block& b, double now) {
  const taba::plugin::Handler* h = taba::test::handler_of(b.type);
  auto state = h->deserialize(b.state, b.version);
  REQUIRE(state.ok());
  std::string json, exact;
  REQUIRE(h->render(state.value().get(), TABA_FORMAT_JSON, now, &json).ok());
  REQUIRE(h->render(state.value().get(), TABA_FORMAT_JSON_EXACT, now, &exact).ok());
  return json + "\n" + exact;
}

enum class Match { kBytes, kRenders };

// Feeds the same datagrams to the buffer and to the reference, `step`
// seconds apart, and after each group takes both at a time just after the
// last datagram: the proxy's delta batch against the fe's folding of the
// reference's v1 body. kRenders: compare the states' renders instead of
// their bytes (where sums may be added in another order).
void compare(const std::vector<std::vector<std::string>>& flushes, uint64_t max_events = 1'000'000,
             Match match = Match::kBytes) {
  StatsdBuffer buffer(max_events);
  Reference ref(max_events);
  ProxyStats got;
  size_t blocks = 0;
  taba::test::feed_both(flushes, &buffer, &ref, &got, [&](double flush_at) {
    DeltaWriter writer(flush_at);
    bool took = buffer.take_deltas(built_plugins(), DeltaFlush{"host-1", flush_at, 60}, &writer, &got);
    std::string body;
    bool ref_took = ref.take_body("host-1", &body);
    CHECK(took == ref_took);
    CHECK(buffer.events() == 0);
    std::vector<Block> mine = blocks_of(writer.finish());
    if (!ref_took) {
      CHECK(mine.empty());
      return;
    }
    std::vector<Block> theirs = blocks_of(fe_deltas(body, flush_at));
    REQUIRE(mine.size() == theirs.size());
    for (size_t i = 0; i < mine.size(); ++i) {
      INFO("block " << i + 1 << ": " << theirs[i].name);
      CHECK(mine[i].client == theirs[i].client);
      CHECK(mine[i].name == theirs[i].name);
      CHECK(mine[i].type == theirs[i].type);
      CHECK(mine[i].events == theirs[i].events);
      CHECK(mine[i].version == theirs[i].version);
      if (match == Match::kBytes) {
        CHECK(mine[i].state == theirs[i].state);
      } else {
        CHECK(renders(mine[i], flush_at + 1) == renders(theirs[i], flush_at + 1));
      }
    }
    blocks += mine.size();
  });
  CHECK(blocks > 0);
  CHECK(got.events_dropped_fold == 0);
}

}  // namespace

TEST_CASE("proxy deltas: every StatsD type folds to the fe's states from the v1 bodies", "[statsd][proxy-delta]") {
  auto flushes = taba::test::every_type_flushes();
  // Stamps of their own: a minute ago, far in the future (clamped to the
  // fold's time, as the fe's decoder clamps them), and long gone.
  flushes.push_back({"jobs.done:3|c|T1763829970\njobs.done:4|c|T12345678901234567\nlat:1|ms|T17|#region:us,env:prod\n"
                     "temp:7|g|T12345678901234567\nq:1|g|T17\n"});
  compare(flushes);
}

TEST_CASE("proxy deltas: numbers as sent or formatted fold as the fe read them", "[statsd][proxy-delta]") {
  // Without the largest double at a sample rate, which overflows (see the
  // overflow test below).
  std::vector<std::string> group = taba::test::number_text_lines(false);
  compare({group});
}

TEST_CASE("proxy deltas: set members, escaped or not UTF-8, are the members the fe saw", "[statsd][proxy-delta]") {
  compare({{std::string(taba::test::kSetMemberLines) + "u:\\u0061|s\nu:a|s\n",
            // Not UTF-8: the fe's decoder reads these bytes as Latin-1.
            "u:caf\xe9|s\nu:caf\xc3\xa9|s\nv:\xff\xfe|s\nv:\xc3|s\nv:\"\xe9\"|s\n"}});
}

TEST_CASE("proxy deltas: many names and spellings across flushes", "[statsd][proxy-delta]") {
  compare(taba::test::random_names_flushes());
  compare(taba::test::random_names_flushes(1234));
}

TEST_CASE("proxy deltas: line splitting on random bytes and lengths", "[statsd][proxy-delta]") {
  compare(taba::test::random_bytes_flushes());
}

TEST_CASE("proxy deltas: a full buffer drops values and keeps gauges right", "[statsd][proxy-delta]") {
  compare(taba::test::full_buffer_flushes(), 3);
}

TEST_CASE("proxy deltas: a name with more events than one fold takes", "[statsd][proxy-delta]") {
  // Past 4096 events a name's later events fold as a later block would
  // (fold_many, or a delta merged in): the same tabs, sums possibly added
  // in another order, so the renders are compared.
  std::vector<std::string> group;
  for (int d = 0; d < 600; ++d) {
    std::string datagram;
    for (int l = 0; l < 20; ++l) {
      int k = d * 20 + l;
      datagram += fmt::format("hot.c:{}|c\nhot.ms:{}.{}|ms\nhot.g:+{}|g\nhot.s:m{}|s\n", k % 97, k % 500, k % 7, k % 3,
                              k % 1500);
    }
    group.push_back(datagram);
  }
  compare({group, group}, 1'000'000, Match::kRenders);
}

TEST_CASE("proxy deltas: a value that overflowed is left out and counted, the name's others fold",
          "[statsd][proxy-delta]") {
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("big:1e308|c|@0.1\nbig:2|c\nok:1|c\n", 1763830000.5, &stats);
  CHECK(stats.lines == 3);
  DeltaWriter writer(1763830001);
  REQUIRE(buffer.take_deltas(built_plugins(), DeltaFlush{"h", 1763830001, 60}, &writer, &stats));
  CHECK(stats.events_dropped_fold == 1);
  std::vector<Block> blocks = blocks_of(writer.finish());
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0].name == "big");
  CHECK(blocks[0].events == 1);
  CHECK(renders(blocks[0], 1763830001).find("\"total\": 2.00") != std::string::npos);
  CHECK(blocks[1].name == "ok");
  // The v1 body carried it as "inf", and the fe refused the name's whole block.
  std::string body;
  Reference ref(100);
  ProxyStats ref_stats;
  ref.add_datagram("big:1e308|c|@0.1\nbig:2|c\n", 1763830000.5, &ref_stats);
  REQUIRE(ref.take_body("h", &body));
  CHECK(body.find("\"inf\"") != std::string::npos);
}

TEST_CASE("proxy deltas: events of a type no plugin serves, or whose state cannot be serialized, are counted",
          "[statsd][proxy-delta]") {
  Registry registry;
  REQUIRE(registry.load_file(std::string(TABA_TEST_PLUGIN_DIR) + "/counter_group.so"));
  REQUIRE(registry.load_file(std::string(TABA_TEST_BAD_PLUGIN_DIR) + "/fail_serialize.so"));
  REQUIRE(registry.add_alias("Gauge", "FailSerialize").ok());
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("c:1|c\nc:2|c\nu:a|s\nu:b|s\ng:1|g\nl:1:2:3|ms\n", 1763830000.5, &stats);
  DeltaWriter writer(1763830001);
  REQUIRE(buffer.take_deltas(registry, DeltaFlush{"h", 1763830001, 60}, &writer, &stats));
  CHECK(stats.events_dropped_fold == 6);  // 2 sets, 3 timers (no plugin), 1 gauge (serialize failed)
  std::vector<Block> blocks = blocks_of(writer.finish());
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].name == "c");
  CHECK(blocks[0].events == 2);
  CHECK(buffer.events() == 0);
  // Nothing held: the next take has nothing.
  DeltaWriter again(1763830002);
  CHECK_FALSE(buffer.take_deltas(registry, DeltaFlush{"h", 1763830002, 60}, &again, &stats));
  CHECK(again.block_count() == 0);
}

TEST_CASE("proxy deltas: the states belong to the proxy's client, one block per name", "[statsd][proxy-delta]") {
  StatsdBuffer buffer(100);
  ProxyStats stats;
  buffer.add_datagram("temp:42|g\nhits:1|c\ntemp:-2|g\nhits:3|c|@0.5\n", 1763830000.1239, &stats);
  DeltaWriter writer(1763830000.2);
  REQUIRE(buffer.take_deltas(built_plugins(), DeltaFlush{"vm", 1763830000.2, 60}, &writer, &stats));
  CHECK(writer.block_count() == 2);
  CHECK(writer.event_count() == 4);
  std::vector<Block> blocks = blocks_of(writer.finish());
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0].client == "vm");
  CHECK(blocks[0].name == "temp");
  CHECK(blocks[0].type == "Gauge");
  CHECK(renders(blocks[0], 1763830001) == "{\"40\": 1}\n{\"40\": 1}");
  CHECK(blocks[1].name == "hits");
  CHECK(blocks[1].type == "CounterGroup");
  CHECK(blocks[1].events == 2);
  CHECK(renders(blocks[1], 1763830001).find("\"1m\": {\"count\": 2, \"total\": 7.00") != std::string::npos);
}
