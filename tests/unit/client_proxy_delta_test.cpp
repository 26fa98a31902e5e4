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
  ProxyStats got, want;
  double now = 1763830000.1234;
  size_t blocks = 0;
  for (const auto& group : flushes) {
    for (const std::string& d : group) {
      buffer.add_datagram(d, now, &got);
      ref.add_datagram(d, now, &want);
      now += 0.0007;
    }
    const double flush_at = now + 0.05;
    DeltaWriter writer(flush_at);
    bool took = buffer.take_deltas(built_plugins(), DeltaFlush{"host-1", flush_at, 60}, &writer, &got);
    std::string body;
    bool ref_took = ref.take_body("host-1", &body);
    CHECK(took == ref_took);
    CHECK(buffer.events() == 0);
    std::vector<Block> mine = blocks_of(writer.finish());
    if (!ref_took) {
      CHECK(mine.empty());
      continue;
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
  }
  CHECK(blocks > 0);
  CHECK(got.datagrams == want.datagrams);
  CHECK(got.lines == want.lines);
  CHECK(got.bad_lines == want.bad_lines);
  CHECK(got.type_conflicts == want.type_conflicts);
  CHECK(got.events_buffered == want.events_buffered);
  CHECK(got.events_dropped_full == want.events_dropped_full);
  CHECK(got.events_dropped_fold == 0);
}

}  // namespace

TEST_CASE("proxy deltas: every StatsD type folds to the fe's states from the v1 bodies", "[statsd][proxy-delta]") {
  compare({
      {"hits:1|c|@0.5\nhits:3|c\nlat:10|ms|#region:us,env:prod\ngarbage\nresp:100|h\ntemp:42|g\nusers:alice|s\n",
       "hits:2|c|@0.25\r\nlat:12:15.5:3|ms|#env:prod,region:us\n\nresp:300|d\ntemp:+3|g\nusers:bob|s\nusers:alice|s\n"
       "hits:1|x\n:1|c\nhits:nan|c",
       "temp:-5|g\nhits:5|ms\n_e{5,4}:title|text\nmulti:1:2:3|c|@0.5\n",
       "hits:4|c\nunix.only:7|c|#b,a\nq:5:+1:-2|g\n"},
      {"hits:1|c\n", "q:+1|g\nq:-0.5|g\ntemp:0|g\ntemp:-0|g\n"},
      {},
      // Stamps of their own: a minute ago, far in the future (clamped to the
      // fold's time, as the fe's decoder clamps them), and long gone.
      {"jobs.done:3|c|T1763829970\njobs.done:4|c|T12345678901234567\nlat:1|ms|T17|#region:us,env:prod\n"
       "temp:7|g|T12345678901234567\nq:1|g|T17\n"},
  });
}

TEST_CASE("proxy deltas: numbers as sent or formatted fold as the fe read them", "[statsd][proxy-delta]") {
  std::vector<std::string> group;
  const char* values[] = {"0",      "-0",        "+0",         "7",         "+4",          "-4",
                          "007",    "1.",        ".5",         "-.5",       "0.5",         "0.50",
                          "1e3",    "1E3",       "1.5e-7",     "0.0001",    "0.00001",     "0.00012",
                          "-0.001", "12.5",      "100",        "1000.125",  "0.1",         "0.3",
                          "123456789012345", "1234567890123456", "12345678901234567890", "1e15", "1e16",
                          "999999999999999", "0.123456789012345", "0.1234567890123456", "3.14159265358979323846",
                          "1e-300", "4.9e-324",  "1.7976931348623157e308", "00.5", "0.0", "10.10"};
  int i = 0;
  for (const char* v : values) {
    for (const char* type : {"c", "c|@0.5", "c|@0.1", "ms", "h", "d", "g"}) {
      // The largest double at a sample rate overflows: see the overflow test.
      if (std::string_view(v) == "1.7976931348623157e308" && std::string_view(type).find('@') != std::string_view::npos) {
        continue;
      }
      group.push_back(fmt::format("n{}.{}:{}|{}\n", i, type[0], v, type));
    }
    group.push_back(fmt::format("g{}:5|g\ng{}:+{}|g\ng{}:-{}|g\n", i, i, v[0] == '+' || v[0] == '-' ? v + 1 : v, i,
                                v[0] == '+' || v[0] == '-' ? v + 1 : v));
    ++i;
  }
  compare({group});
}

TEST_CASE("proxy deltas: set members, escaped or not UTF-8, are the members the fe saw", "[statsd][proxy-delta]") {
  compare({{"u:alice|s\nu:a\"b|s\nu:back\\slash|s\nu:tab\there|s\nu:ctl\x01x|s\nu:a:b:c|s\nu:caf\xc3\xa9|s\n"
            "u:  spaced |s\nu:{\"json\":1}|s\nu:\\u0061|s\nu:a|s\n",
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
  compare({{"a:1|c\nb:2|g\nc:3|ms\nd:4:5:6|c\nb:+1|g\ne:x|s\nb:+2|g\n"}, {"b:+1|g\na:1|c\nf:1|c\n"}}, 3);
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
