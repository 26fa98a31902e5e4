// POST /post_delta (routes/delta_ingest.h) against a fake store and a sink
// that keeps refused blocks as the agent does, driven as the HTTP server
// drives a route (ingest_driver.h): framing errors refuse a body whole, each
// kind of bad block is refused on its own with its reason, the reply lists
// refused blocks as /post lists lines ("block N"), the good blocks reach the
// sink as a delta batch stamped with the receive time.
#include "routes/delta_ingest.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "core/clock.h"
#include "fake_store.h"
#include "http/client.h"
#include "ingest_driver.h"
#include "plugin/state.h"
#include "plugin_batches.h"
#include "protocol/delta_batch.h"
#include "routes/metrics.h"

using namespace taba;
using taba::test::IngestDriver;
using taba::test::Post;
using taba::test::refused;

namespace {

const Post kDelta{"/post_delta", "POST", {{"content-type", "application/x-taba-delta"}}};

Post delta_with(std::vector<http::Header> extra) {
  Post p = kDelta;
  p.headers.insert(p.headers.end(), extra.begin(), extra.end());
  return p;
}

// The blocks of a delta batch as "client/name/type/events/version" strings.
std::vector<std::string> delta_blocks(std::string_view batch, double* time = nullptr) {
  protocol::DeltaReader reader(batch);
  REQUIRE(reader.open().ok());
  if (time) *time = reader.time();
  std::vector<std::string> out;
  protocol::DeltaBlock b;
  Status s;
  while (reader.next(&b, &s)) {
    out.push_back(std::string(b.client) + "/" + std::string(b.name) + "/" + std::string(b.type) + "/" +
                  std::to_string(b.events) + "/" + std::to_string(b.state_version));
  }
  REQUIRE(s.ok());
  return out;
}

// The state bytes of a real delta of `type` for one event with `payload`.
std::string state_of(std::string_view type, std::string_view payload, double t) {
  std::string batch = test::delta_batch(test::v1_body({{"x", "x", std::string(type), std::string(payload)}}, t), t);
  protocol::DeltaReader reader(batch);
  REQUIRE(reader.open().ok());
  protocol::DeltaBlock b;
  Status s;
  REQUIRE(reader.next(&b, &s));
  return std::string(b.state);
}

// A batch of hand-made blocks, with the given states.
struct Block {
  std::string client, name, type;
  uint64_t events;
  uint32_t version;
  std::string state;
};
std::string batch_of(const std::vector<Block>& blocks, double t) {
  protocol::DeltaWriter w(t);
  for (const Block& b : blocks) w.add(b.client, b.name, b.type, b.events, b.version, b.state);
  return w.finish();
}

// The agent's side of IngestSink: keeps every submitted batch and every
// refused delta batch handed to it.
class KeepingSink final : public routes::IngestSink {
 public:
  const plugin::Handler* bound_handler(std::string_view) const override { return nullptr; }
  void submit(std::string batch, store::BatchId id, store::Bindings, uint64_t events,
              std::function<void(const Status&)> done) override {
    submitted.push_back(std::move(batch));
    ids.push_back(id.value);
    submitted_events += events;
    done(Status::Ok());
  }
  bool keeps_refused() const override { return true; }
  bool accepts_deltas() const override { return accepts; }
  void refused_deltas(const std::string& delta_batch, const std::string& batch_id, uint64_t events,
                      const std::string& reasons) override {
    kept.push_back({delta_batch, batch_id, events, reasons});
  }
  struct Kept {
    std::string batch, batch_id;
    uint64_t events;
    std::string reasons;
  };
  bool accepts = true;
  std::vector<std::string> submitted;
  std::vector<std::string> ids;
  uint64_t submitted_events = 0;
  std::vector<Kept> kept;
};

}  // namespace

TEST_CASE("post_delta: a good body reaches the store as sent, stamped with the receive time", "[delta_ingest]") {
  test::FakeStore store;
  store.bound["hits"] = test::handler_of("TotalsCounter");
  store.hold_submits = true;
  IngestDriver driver(&store);
  const double folded = wall_now() - 5;
  const std::string batch = test::delta_batch(test::v1_body({{"web01", "hits", "TotalsCounter", "1"},
                                                             {"web01", "hits", "TotalsCounter", "2"},
                                                             {"web01", "color", "Gauge", "\"red\""},
                                                             {"web02", "hits", "TotalsCounter", "3"}},
                                                            folded),
                                              folded);
  const std::string body = protocol::wrap_delta_body(batch);

  const double before = wall_now();
  auto exchange = driver.post(body, kDelta);
  CHECK_FALSE(exchange->replied());  // not before the store has it
  REQUIRE(store.submitted.size() == 1);
  const test::FakeStore::Submitted got = store.submitted[0];
  double stamped = 0;
  const uint32_t gauge_version = test::handler_of("Gauge")->state_version();
  const uint32_t totals_version = test::handler_of("TotalsCounter")->state_version();
  CHECK(delta_blocks(got.batch, &stamped) ==
        std::vector<std::string>{fmt::format("web01/hits/TotalsCounter/2/{}", totals_version),
                                 fmt::format("web01/color/Gauge/1/{}", gauge_version),
                                 fmt::format("web02/hits/TotalsCounter/1/{}", totals_version)});
  // The bytes as sent, but for the time: the receive time, not the sender's.
  CHECK(stamped >= before);
  CHECK(stamped <= wall_now());
  REQUIRE(got.batch.size() == batch.size());
  CHECK(got.batch.substr(9) == batch.substr(9));
  CHECK(got.new_bindings == store::Bindings{{"color", test::handler_of("Gauge")}});
  CHECK_FALSE(got.id.from_client);
  CHECK(got.id.value.size() == 32);

  store.release();
  REQUIRE(exchange->replies() == 1);
  CHECK(exchange->response().status == 200);
  CHECK(exchange->response().body.empty());
  CHECK(exchange->header("Taba-Refused-Blocks") == "(none)");
  const routes::IngestStats& stats = driver.ingest.stats();
  CHECK(stats.bodies_ok == 1);
  CHECK(stats.events_received == 4);
  CHECK(stats.delta_bodies == 1);
  CHECK(stats.delta_blocks == 3);
  CHECK(stats.delta_events == 4);
  CHECK(stats.bytes_received == body.size());

  // The client's batch id goes on as the client's (the store deduplicates).
  store.hold_submits = false;
  CHECK(driver.post(body, delta_with({{"taba-batch-id", "edge-7"}}))->response().status == 200);
  REQUIRE(store.submitted.size() == 2);
  CHECK(store.submitted[1].id.value == "edge-7");
  CHECK(store.submitted[1].id.from_client);

  // Compressed: the same batch.
  CHECK(driver.post(http::gzip_compress(body), delta_with({{"content-encoding", "gzip"}}))->response().status == 200);
  CHECK(driver.post(http::zlib_compress(body), delta_with({{"content-encoding", "deflate"}}))->response().status ==
        200);
  REQUIRE(store.submitted.size() == 4);
  CHECK(store.submitted[2].batch.substr(9) == batch.substr(9));
  CHECK(store.submitted[3].batch.substr(9) == batch.substr(9));

  // An empty batch has nothing to apply: 200, nothing submitted.
  CHECK(driver.post(protocol::wrap_delta_body(batch_of({}, folded)), kDelta)->response().status == 200);
  CHECK(store.submitted.size() == 4);
  CHECK(stats.delta_bodies == 4);
}

TEST_CASE("post_delta: a body whose framing is bad is refused whole with one line saying why", "[delta_ingest]") {
  test::FakeStore store;
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string batch =
      test::delta_batch(test::v1_body({{"web01", "hits", "TotalsCounter", "1"}, {"web02", "hits", "TotalsCounter", "2"}},
                                      t),
                        t);
  auto status_and_body = [&](const std::string& body, const Post& how = kDelta) {
    auto ex = driver.post(body, how);
    REQUIRE(ex->replies() == 1);
    CHECK(ex->header("Taba-Refused-Blocks") == "(none)");
    return std::to_string(ex->response().status) + " " + ex->response().body;
  };

  // A v1 body sent here: refused once its first 4 bytes are in.
  const std::string v1 = test::v1_body({{"web01", "hits", "TotalsCounter", "1"}}, t);
  CHECK(status_and_body(v1) ==
        "400 delta body: does not start with \"TDLT\" (not an application/x-taba-delta body)\n");
  CHECK(status_and_body("TD") ==
        "400 delta body: does not start with \"TDLT\" (not an application/x-taba-delta body)\n");

  std::string flipped = protocol::wrap_delta_body(batch);
  flipped[flipped.size() - 1] ^= 0x40;
  const std::string checksum = status_and_body(flipped);
  CHECK(checksum.rfind("400 delta body: checksum ", 0) == 0);
  CHECK(checksum.find(fmt::format("does not match its {} bytes", batch.size())) != std::string::npos);

  // Checksums that hold over bytes that do not read.
  CHECK(status_and_body(protocol::wrap_delta_body(batch.substr(0, batch.size() - 3))) ==
        "400 delta batch: block 2 of 2 is truncated\n");
  CHECK(status_and_body(protocol::wrap_delta_body(batch + "xy")) ==
        "400 delta batch: 2 bytes after its last block (2)\n");
  CHECK(status_and_body(protocol::wrap_delta_body(batch.substr(0, 5))) ==
        "400 delta batch: 5 bytes, shorter than its 13-byte header\n");
  std::string v3 = batch;
  v3[0] = 3;
  CHECK(status_and_body(protocol::wrap_delta_body(v3)) ==
        "400 delta batch: version 3 (this build reads version 2)\n");
  // A v1 batch in a delta envelope is a wrong version too.
  CHECK(status_and_body(protocol::wrap_delta_body(test::decode_v1(v1, t).batch)) ==
        "400 delta batch: version 1 (this build reads version 2)\n");
  // Compression problems are the same as for /post.
  CHECK(status_and_body(protocol::wrap_delta_body(batch), delta_with({{"content-encoding", "gzip"}}))
            .rfind("400 compressed body is corrupt", 0) == 0);

  CHECK(store.submitted.empty());
  CHECK(driver.ingest.stats().bodies_rejected == 9);
  CHECK(driver.ingest.stats().bodies_ok == 0);
}

TEST_CASE("post_delta: each bad block is refused with its reason, numbered, and the rest is applied",
          "[delta_ingest]") {
  test::FakeStore store;
  store.bound["color"] = test::handler_of("TotalsCounter");
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string totals = state_of("TotalsCounter", "4", t);
  const std::string gauge = state_of("Gauge", "\"red\"", t);
  const uint32_t totals_version = test::handler_of("TotalsCounter")->state_version();
  const uint32_t gv = test::handler_of("Gauge")->state_version();
  const std::string body = protocol::wrap_delta_body(batch_of(
      {
          {"web01", "hits", "TotalsCounter", 1, totals_version, totals},      // 1 good
          {"web 01", "hits", "TotalsCounter", 2, totals_version, totals},     // 2 client
          {"web01", "bad/name\x01", "TotalsCounter", 3, totals_version, totals},  // 3 name
          {"web01", "x", "Nope", 4, 1, totals},                               // 4 unknown type
          {"web01", "color", "Gauge", 5, gv, gauge},                          // 5 bound to TotalsCounter
          {"web01", "fresh", "Gauge", 6, gv, gauge},                          // 6 good: binds fresh to Gauge
          {"web02", "fresh", "TotalsCounter", 7, totals_version, totals},     // 7 conflicts with block 6
          {"web01", "newer", "TotalsCounter", 8, totals_version + 1, totals}, // 8 version too new
          {"web01", "zero", "TotalsCounter", 9, 0, totals},                   // 9 version 0
          {"web01", "junk", "TotalsCounter", 10, totals_version, "\xff\xff\xff"},  // 10 does not deserialize
          {"web02", "hits", "TotalsCounter", 11, totals_version, totals},     // 11 good
      },
      t));
  const std::vector<std::string> reasons = {
      "block 2: invalid client ID \"web 01\": contains ' ' (0x20) at byte 3",
      "block 3: invalid name \"bad/name\\x01\": contains byte 0x01 at byte 8",
      "block 4: unknown type \"Nope\" (no loaded plugin serves it)",
      "block 5: type \"Gauge\" conflicts with type \"TotalsCounter\" bound to name \"color\"",
      "block 7: type \"TotalsCounter\" conflicts with type \"Gauge\" bound to name \"fresh\"",
      fmt::format("block 8: TotalsCounter state version {} is not one the loaded plugin reads (1 to {})",
                  totals_version + 1, totals_version),
      fmt::format("block 9: TotalsCounter state version 0 is not one the loaded plugin reads (1 to {})",
                  totals_version),
  };

  auto text = driver.post(body, kDelta);
  REQUIRE(text->replies() == 1);
  CHECK(text->response().status == 200);
  CHECK(text->header("Taba-Refused-Blocks") == "8");
  std::string expected;
  for (const std::string& r : reasons) expected += r + "\n";
  const std::string& reply = text->response().body;
  REQUIRE(reply.size() > expected.size());
  CHECK(reply.substr(0, expected.size()) == expected);
  // The plugin's own reason ends the last line.
  CHECK(reply.substr(expected.size()) ==
        fmt::format("block 10: TotalsCounter state (3 bytes, version {}) does not deserialize: corrupt TotalsCounter "
                    "state: expected a varint count and a varint fixed-point total\n",
                    totals_version));

  // The good blocks, rewritten into one batch; only block 6 binds a name.
  REQUIRE(store.submitted.size() == 1);
  CHECK(delta_blocks(store.submitted[0].batch) == std::vector<std::string>{
                                                      fmt::format("web01/hits/TotalsCounter/1/{}", totals_version),
                                                      fmt::format("web01/fresh/Gauge/6/{}", gv),
                                                      fmt::format("web02/hits/TotalsCounter/11/{}", totals_version)});
  CHECK(store.submitted[0].new_bindings ==
        store::Bindings{{"fresh", test::handler_of("Gauge")}, {"hits", test::handler_of("TotalsCounter")}});

  const routes::IngestStats& stats = driver.ingest.stats();
  CHECK(stats.bodies_partial == 1);
  CHECK(stats.events_received == 18);
  CHECK(stats.delta_blocks == 3);
  CHECK(stats.events_refused == 2 + 3 + 4 + 5 + 7 + 8 + 9 + 10);
  CHECK(refused(stats, "client") == 1);
  CHECK(refused(stats, "name") == 1);
  CHECK(refused(stats, "type") == 3);
  CHECK(refused(stats, "state") == 3);

  // JSON: the same list, numbered by "block".
  auto json = driver.post(body, delta_with({{"accept", "application/json"}}));
  CHECK(json->response().status == 200);
  CHECK(json->response().content_type == "application/json");
  const std::string& j = json->response().body;
  CHECK(j.rfind(R"j({"events": 18, "refused": [{"block": 2, "client": "web 01", "name": "hits", "events": 2, )j"
                R"j("reason": "invalid client ID \"web 01\": contains ' ' (0x20) at byte 3"}, {"block": 3, )j"
                R"j("client": "web01", "name": "bad/name\\x01", "events": 3, "reason": "invalid name )j"
                R"j(\"bad/name\\x01\": contains byte 0x01 at byte 8"}, {"block": 4, "client": "web01", "name": "x", )j"
                R"j("events": 4, "reason": "unknown type \"Nope\" (no loaded plugin serves it)"}, )j",
                0) == 0);
  CHECK(j.find(R"({"block": 10, "client": "web01", "name": "junk", "events": 10, "reason": "TotalsCounter state )") !=
        std::string::npos);
  CHECK(j.ends_with("\"}]}\n"));
  CHECK(json->header("Taba-Refused-Blocks") == "8");
}

TEST_CASE("post_delta: a body whose every block is refused answers 400 with the list and submits nothing",
          "[delta_ingest]") {
  test::FakeStore store;
  store.bound["color"] = test::handler_of("TotalsCounter");
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string gauge = state_of("Gauge", "\"red\"", t);
  const uint32_t gv = test::handler_of("Gauge")->state_version();
  auto all = driver.post(
      protocol::wrap_delta_body(batch_of({{"web01", "color", "Gauge", 2, gv, gauge}, {"web01", "x", "Nope", 1, 1, ""}}, t)),
      kDelta);
  CHECK(all->response().status == 400);
  CHECK(all->response().body ==
        "block 1: type \"Gauge\" conflicts with type \"TotalsCounter\" bound to name \"color\"\n"
        "block 2: unknown type \"Nope\" (no loaded plugin serves it)\n");
  CHECK(all->header("Taba-Refused-Blocks") == "2");
  CHECK(store.submitted.empty());
  CHECK(driver.ingest.stats().bodies_rejected == 1);
  CHECK(driver.ingest.stats().delta_bodies == 0);
}

TEST_CASE("post_delta: the store's refusals answer as for /post, a 503 naming the batch id it made",
          "[delta_ingest]") {
  test::FakeStore store;
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string body =
      protocol::wrap_delta_body(test::delta_batch(test::v1_body({{"web01", "hits", "TotalsCounter", "1"}}, t), t));
  store.submit_status = Status::Unavailable("the WAL queue is full");
  auto unavailable = driver.post(body, kDelta);
  CHECK(unavailable->response().status == 503);
  CHECK(unavailable->header("Retry-After") == "1");
  REQUIRE(store.submitted.size() == 1);
  CHECK(unavailable->header("Taba-Batch-Id") == store.submitted[0].id.value);
  store.submit_status = Status::Limit("the store holds 2 names and this body adds 1 new");
  CHECK(driver.post(body, kDelta)->response().status == 422);
  CHECK(driver.ingest.stats().delta_bodies == 0);
  CHECK(driver.ingest.stats().events_received == 0);
}

TEST_CASE("post_delta: a sink that keeps refused blocks gets them as a delta batch, one without deltas answers 404",
          "[delta_ingest]") {
  KeepingSink sink;
  IngestDriver driver(&sink);
  const double t = wall_now();
  const std::string totals = state_of("TotalsCounter", "4", t);
  const uint32_t v = test::handler_of("TotalsCounter")->state_version();
  const uint32_t gv = test::handler_of("Gauge")->state_version();
  const std::string batch = batch_of({{"web01", "hits", "TotalsCounter", 3, v, totals},
                                      {"web01", "hits", "Gauge", 2, gv, state_of("Gauge", "1", t)},
                                      {"web01", "junk", "TotalsCounter", 5, v, "\x01"}},
                                     t);
  auto ex = driver.post(protocol::wrap_delta_body(batch), delta_with({{"taba-batch-id", "p-1"}}));
  CHECK(ex->response().status == 200);
  REQUIRE(sink.submitted.size() == 1);
  CHECK(delta_blocks(sink.submitted[0]) == std::vector<std::string>{fmt::format("web01/hits/TotalsCounter/3/{}", v)});
  CHECK(sink.submitted_events == 3);
  REQUIRE(sink.kept.size() == 1);
  CHECK(sink.kept[0].batch_id == "p-1");
  CHECK(sink.kept[0].events == 7);
  CHECK(delta_blocks(sink.kept[0].batch) ==
        std::vector<std::string>{fmt::format("web01/hits/Gauge/2/{}", gv), fmt::format("web01/junk/TotalsCounter/5/{}", v)});
  CHECK(sink.kept[0].reasons.rfind("block 2: type \"Gauge\" conflicts with type \"TotalsCounter\" bound to name "
                                   "\"hits\"\nblock 3: TotalsCounter state (1 bytes, version ",
                                   0) == 0);

  // Every block refused: kept too, nothing submitted.
  auto all = driver.post(protocol::wrap_delta_body(batch_of({{"web01", "x", "Nope", 4, 1, ""}}, t)), kDelta);
  CHECK(all->response().status == 400);
  REQUIRE(sink.kept.size() == 2);
  CHECK(delta_blocks(sink.kept[1].batch) == std::vector<std::string>{"web01/x/Nope/4/1"});
  CHECK(sink.submitted.size() == 1);

  // The client-proxy's sink takes no deltas.
  sink.accepts = false;
  auto refused404 = driver.post(protocol::wrap_delta_body(batch), kDelta);
  CHECK(refused404->response().status == 404);
  CHECK(refused404->response().body == "/post_delta: this process takes no delta bodies; post v1 to /post\n");
  CHECK(routes::Ingest::handles("/post_delta"));
}

TEST_CASE("post_delta: /metrics shows delta bodies, blocks and events, and state refusals", "[delta_ingest]") {
  test::FakeStore store;
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string body = protocol::wrap_delta_body(test::delta_batch(
      test::v1_body({{"web01", "hits", "TotalsCounter", "1"}, {"web02", "hits", "TotalsCounter", "2"}}, t), t));
  REQUIRE(driver.post(body, kDelta)->response().status == 200);
  REQUIRE(driver.post(protocol::wrap_delta_body(batch_of({{"web01", "junk", "TotalsCounter", 5, 1, "\x01"}}, t)),
                      kDelta)
              ->response()
              .status == 400);
  routes::MetricsWriter w;
  driver.ingest.write_refusal_metrics(&w, "taba");
  const std::string text = w.take();
  CHECK(text.find("taba_delta_bodies_total 1\n") != std::string::npos);
  CHECK(text.find("taba_delta_blocks_total 2\n") != std::string::npos);
  CHECK(text.find("taba_delta_events_total 2\n") != std::string::npos);
  CHECK(text.find("taba_blocks_refused_total{kind=\"state\"} 1\n") != std::string::npos);
  CHECK(text.find("taba_events_refused_total 5\n") != std::string::npos);
}
