// The forms the agent forwards in (docs/operations.md, "Forwarding"), end to
// end with real agent and fe processes: v1 to an fe without /post_delta
// (an older tabad, played by a canned HTTP server that answers 404 there),
// a batch whose 200 is lost sent again under its id and counted once,
// blocks of a type the agent has no plugin for applied by an fe that has
// it, and a refused block kept as a dead letter that applies once posted
// again after the cause is fixed.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "../unit/canned_http_server.h"
#include "agent/spool.h"
#include "agent_support.h"
#include "core/file_io.h"
#include "core/record_log.h"
#include "example_plugin.h"
#include "harness.h"
#include "http/client.h"
#include "http/inflate.h"
#include "plugin/registry.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "protocol/delta_fold.h"
#include "protocol/payload.h"

using namespace taba;
using namespace taba::test;

namespace {

std::string inflate(const std::string& compressed) {
  http::Inflater inflater(http::Inflater::Format::kZlibOrGzip, {});
  std::string out;
  REQUIRE(inflater.feed(compressed, [&](std::string_view piece) {
                    out.append(piece);
                    return true;
                  }).ok());
  REQUIRE(inflater.finish().ok());
  return out;
}

// One (client, name) block of events of one type, payloads as JSON text.
struct Block {
  std::string client, name, type;
  std::vector<std::string> payloads;
};

// The delta batch a client-proxy would fold `blocks` into, every event
// stamped `t`.
std::string delta_batch(double t, const std::vector<Block>& blocks) {
  static plugin::Registry registry;
  static const bool loaded = registry.load_dir(TABA_TEST_PLUGIN_DIR);
  REQUIRE(loaded);
  protocol::BatchWriter w;
  w.reset(t);
  for (const Block& b : blocks) {
    w.begin_block(b.client, b.name, b.type);
    for (const std::string& p : b.payloads) {
      taba_event ev;
      REQUIRE(protocol::parse_payload(p, &ev).empty());
      w.add_event(t, ev.payload);
    }
  }
  protocol::DeltaFolder folder(&registry);
  REQUIRE(folder.fold_batch(w.finish(), true, nullptr).ok());
  auto delta = folder.finish(t);
  REQUIRE(delta.ok());
  return delta.value();
}

// A spool segment file holding one record, a delta batch of `blocks` (a
// client-proxy's post). Returns the batch id in its header.
std::string write_delta_segment(const std::string& spool_dir, const std::vector<Block>& blocks) {
  std::string batch = delta_batch(now_s(), blocks);
  uint32_t events = 0;
  for (const Block& b : blocks) events += static_cast<uint32_t>(b.payloads.size());
  std::string payload = agent::encode_spool_record("", events, batch);
  const std::string batch_id(32, 'd');
  std::string bytes = "TABASPL1" + batch_id;
  char header[recordlog::kHeaderBytes];
  recordlog::encode_header(payload, header);
  bytes.append(header, sizeof header);
  bytes += payload;
  std::filesystem::create_directories(spool_dir);
  REQUIRE(write_text_file(spool_dir + "/seg-00000000000000000001.batch", bytes).ok());
  return batch_id;
}

// POSTs a delta batch, in its envelope, to `path` of `p`.
Result<http::ClientResponse> post_delta(const TabadProcess& p, const std::string& batch,
                                        const std::vector<http::Header>& extra = {}) {
  std::vector<http::Header> headers{{"Content-Type", std::string(protocol::kDeltaContentType)}};
  headers.insert(headers.end(), extra.begin(), extra.end());
  return p.post("/post_delta", protocol::wrap_delta_body(batch), headers);
}


uint64_t status_number(const TabadProcess& agent, const char* pointer) {
  auto r = test::get(agent.url(), "/status?format=json", "", 3000);
  if (!r.ok()) return UINT64_MAX;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  uint64_t v = UINT64_MAX;
  if (parser.parse(r->body).get(doc) != simdjson::SUCCESS) return v;
  if (doc.at_pointer(pointer).get(v) != simdjson::SUCCESS) return UINT64_MAX;
  return v;
}

}  // namespace

TEST_CASE("agent forwarding: an fe without /post_delta gets v1 on /post_zip (remembered), and a batch of deltas waits",
          "[e2e][agent]") {
  TempDir dir("agent-oldfe");

  test::CannedHttpServer old_fe([](const std::string& raw) {
    RawRequest r = parse_request(raw);
    if (r.path == "/post_zip") return test::CannedHttpServer::Reply{canned_response("200 OK", "text/plain", ""), false};
    return test::CannedHttpServer::Reply{
        canned_response("404 Not Found", "text/plain", "no such route: " + r.path + " (the web page is /ui)\n"), true};
  });
  // A batch of deltas from a client-proxy, spooled before the agent starts.
  std::string agent_dir = dir.path + "/agent";
  std::string delta_id = write_delta_segment(agent_dir + "/spool", {{"proxyhost", "old.delta", "TotalsCounter", {"1", "2"}}});
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, old_fe.port(), "forward_concurrency = 1\n")}, agent_dir));

  double t = now_s();
  auto zip_posts = [&] {
    std::vector<RawRequest> out;
    for (const std::string& raw : old_fe.requests()) {
      RawRequest r = parse_request(raw);
      if (r.path == "/post_zip") out.push_back(r);
    }
    return out;
  };
  REQUIRE(status_of(agent.post("/post", totals_body("c1", "old.a", 2, 3, t))) == 200);
  REQUIRE(eventually([&] { return zip_posts().size() == 1; }, 10000));
  REQUIRE(status_of(agent.post("/post", totals_body("c2", "old.b", 1, 5, t))) == 200);
  REQUIRE(eventually([&] { return zip_posts().size() == 2; }, 10000));

  std::vector<RawRequest> all;
  for (const std::string& raw : old_fe.requests()) all.push_back(parse_request(raw));
  std::vector<RawRequest> zips = zip_posts();
  // The v1 bodies, as the agent encodes them, each under its batch's id.
  CHECK(inflate(zips[0].body) == fmt::format("1\n\nc1\n\nold.a\n[\"TotalsCounter\",{0},\"3\"]\n[\"TotalsCounter\",{0},\"3\"]\n\n\n", t));
  CHECK(inflate(zips[1].body) == fmt::format("1\n\nc2\n\nold.b\n[\"TotalsCounter\",{},\"5\"]\n\n\n", t));
  CHECK(zips[0].header("taba-batch-id").size() == 32);
  CHECK(zips[0].header("taba-batch-id") != zips[1].header("taba-batch-id"));
  // /post_delta was tried once (the first batch the agent sent) and then
  // remembered: the v1 batches went straight to /post_zip.
  size_t delta_posts = 0;
  for (const RawRequest& r : all) {
    if (r.path != "/post_delta") continue;
    ++delta_posts;
    CHECK(r.header("content-type") == "application/x-taba-delta");
  }
  CHECK(delta_posts == 1);
  for (const RawRequest& r : zips) CHECK(r.header("taba-batch-id") != delta_id);

  // The batch of deltas cannot go as v1: it waits, and the agent says why.
  CHECK(status_number(agent, "/forwarded/waiting_for_delta") == 1);
  CHECK(status_number(agent, "/spool/batches") == 1);
  CHECK(status_number(agent, "/spool/events") == 2);
  CHECK(status_number(agent, "/forwarded/v1_posts") == 2);
  CHECK(status_number(agent, "/forwarded/events") == 3);
  std::string metrics = metrics_of(agent);
  CHECK(metric(metrics, "taba_agent_delta_batches_waiting") == 1);
  CHECK(metric(metrics, fmt::format("taba_agent_endpoint_takes_deltas{{endpoint=\"127.0.0.1:{}\"}}", old_fe.port())) ==
        0);
  CHECK(metric(metrics, "taba_agent_forward_posts_total{form=\"v1\"}") == 2);
  CHECK(body_text(agent.get("/status")).find("v1 only (no POST /post_delta") != std::string::npos);
  CHECK(agent.log_text().find("hold delta records") != std::string::npos);
  CHECK(agent.log_text().find("does not take POST /post_delta (HTTP 404") != std::string::npos);
}

TEST_CASE("agent forwarding: a batch whose 200 is lost is sent again under its id and counted once", "[e2e][agent]") {
  TempDir dir("agent-lost200");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  // Between the agent and the fe: the answers to the first two posts the fe
  // applies are dropped (the connection closes instead), as a network cut
  // would. The HTTP client sends a post once more on its own when a
  // connection closes before any answer; the second loss reaches the
  // forwarder, which retries the batch later.
  std::atomic<int> dropped{0};
  std::mutex mu;
  std::vector<std::string> ids;  // Taba-Batch-Id of each post forwarded
  int fe_port = fe.port();
  test::CannedHttpServer cut([&](const std::string& raw) {
    RawRequest r = parse_request(raw);
    std::string response = exchange_raw(fe_port, raw);
    if (r.path == "/post_delta" || r.path == "/post_zip") {
      std::lock_guard<std::mutex> lock(mu);
      ids.push_back(r.path + " " + r.header("taba-batch-id"));
    }
    bool applied = response.rfind("HTTP/1.1 200", 0) == 0;
    if (applied && (r.path == "/post_delta" || r.path == "/post_zip") && dropped.fetch_add(1) < 2) {
      return test::CannedHttpServer::Reply{"", true};
    }
    return test::CannedHttpServer::Reply{response, false};
  });
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, cut.port(), "forward_concurrency = 1\n")}));
  double t = now_s();
  REQUIRE(status_of(agent.post("/post", totals_body("lc", "lost.once", 4, 2.5, t))) == 200);
  REQUIRE(wait_drained(agent, 15000));
  fe_flush(fe);
  auto got = tabs_json(fe, "name=lost.once");
  CHECK(got["lost.once"].count == 4);
  CHECK(got["lost.once"].total == Approx(10.0));
  CHECK(dropped.load() == 3);
  {
    std::lock_guard<std::mutex> lock(mu);
    INFO(fmt::format("{}", fmt::join(ids, " ")));
    // The batch went as deltas three times, under the same id each time.
    REQUIRE(ids.size() == 3);
    CHECK(ids[0].rfind("/post_delta ", 0) == 0);
    CHECK(ids[1] == ids[0]);
    CHECK(ids[2] == ids[0]);
  }
  AgentStatus s = agent_status(agent);
  CHECK(s.forwarded_events == 4);
  CHECK(metric(metrics_of(agent), "taba_agent_forward_retries_total") >= 1);
}

TEST_CASE("agent forwarding: blocks of a type the agent has no plugin for are applied by an fe that has it",
          "[e2e][agent][plugin-example]") {
  TempDir dir("agent-leftover");
  TempDir plugins("taba-plugins");
  link_builtins(plugins.path);
  compile_max_gauge(plugins.path, 1);
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path), "--plugins-dir", plugins.path}));
  TabadProcess agent;  // the built-in plugins only
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port())}));
  double t = now_s();
  std::string body =
      v1_body({{"c1", {{"peak", {event_line("MaxGauge", t, "12.5"), event_line("MaxGauge", t, "[3, \"x\"]")}},
                       {"lo.tot", {event_line("TotalsCounter", t, "2")}}}},
               {"c2", {{"peak", {event_line("MaxGauge", t, "-4"), event_line("MaxGauge", t, "1000")}}}}});
  auto r = agent.post("/post", body);
  INFO(body_text(r));
  REQUIRE(status_of(r) == 200);
  // Without the plugin the agent still checks what needs none: a payload
  // that is not JSON is refused.
  auto bad = agent.post("/post", v1_body({{"c1", {{"peak", {event_line("MaxGauge", t, "{not json")}}}}}));
  CHECK(status_of(bad) == 400);
  CHECK(body_text(bad).rfind("line 6: payload", 0) == 0);
  REQUIRE(wait_drained(agent, 15000));
  fe_flush(fe);
  CHECK(body_text(fe.get("/tabs?name=peak")) == "peak: {\"count\": 4, \"min\": -4, \"max\": 1000}\n");
  CHECK(body_text(fe.get("/tabs?name=peak&client=c1")) == "peak: {\"count\": 2, \"min\": 3, \"max\": 12.5}\n");
  auto tot = tabs_json(fe, "name=lo.tot");
  CHECK(tot["lo.tot"].count == 1);
  std::string metrics = metrics_of(agent);
  CHECK(metric(metrics, "taba_agent_leftover_events_total") == 4);
  CHECK(metric(metrics, "taba_agent_events_forwarded_total") == 5);
  // lo.tot folded into the batch's deltas, the MaxGauge events as v1.
  CHECK(metric(metrics, "taba_agent_forward_posts_total{form=\"delta\"}") == 1);
  CHECK(metric(metrics, "taba_agent_forward_posts_total{form=\"v1\"}") == 1);
  // The one dead letter is the agent's own refusal of the post that was not JSON.
  AgentStatus s = agent_status(agent);
  CHECK(s.dead_batches == 1);
  CHECK(s.dead_events == 1);
}

TEST_CASE("agent forwarding: leftover blocks an fe without their plugin refuses are dead letters, the rest applies",
          "[e2e][agent]") {
  TempDir dir("agent-leftover-refused");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port(), "flush_interval_ms = 1000\n")}));
  double t = now_s();
  REQUIRE(status_of(agent.post("/post", v1_body({{"c1", {{"nope", {event_line("NoSuchPlugin", t, "1")}}}}}))) == 200);
  REQUIRE(status_of(agent.post("/post", totals_body("c2", "lr.good", 3, 1, t))) == 200);
  AgentStatus s = wait_dead_lettered(agent, 15000);
  fe_flush(fe);
  CHECK(tabs_json(fe, "name=lr.good")["lr.good"].count == 3);
  CHECK(s.dead_events == 1);
  CHECK(s.forwarded_events == 3);
  std::string dl_dir = agent.data_dir() + "/dead-letters";
  std::vector<std::string> v1;
  for (const std::string& f : list_dir(dl_dir)) {
    if (ends_with(f, ".v1")) v1.push_back(f);
  }
  REQUIRE(v1.size() == 1);
  CHECK(ends_with(v1[0], "-v1-refused.v1"));
  CHECK(read_file(dl_dir + "/" + v1[0]) == fmt::format("1\n\nc1\n\nnope\n[\"NoSuchPlugin\",{},\"1\"]\n\n\n", t));
  std::string reason = read_file(dl_dir + "/" + v1[0].substr(0, v1[0].size() - 3) + ".reason");
  CHECK(reason.find("unknown type \"NoSuchPlugin\"") != std::string::npos);
}

TEST_CASE("agent forwarding: a block the fe refuses is a dead letter that applies once the name is deleted",
          "[e2e][agent]") {
  TempDir dir("agent-repost");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  double t = now_s();
  // The fe binds rp.bound to Gauge; the agent cannot know it.
  REQUIRE(status_of(fe.post("/post", v1_body({{"direct", {{"rp.bound", {event_line("Gauge", t, "\"red\"")}}}}}))) ==
          200);
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port())}));
  std::string body = v1_body({{"rc", {{"rp.bound", {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "2"),
                                                   event_line("TotalsCounter", t, "3")}},
                                      {"rp.good", {event_line("TotalsCounter", t, "7")}}}}});
  REQUIRE(status_of(agent.post("/post", body)) == 200);
  AgentStatus s = wait_dead_lettered(agent, 15000);
  fe_flush(fe);
  CHECK(tabs_json(fe, "name=rp.good")["rp.good"].count == 1);
  CHECK(s.dead_events == 3);
  std::string dl_dir = agent.data_dir() + "/dead-letters";
  std::vector<std::string> files = list_dir(dl_dir);
  INFO(fmt::format("{}", fmt::join(files, " ")));
  REQUIRE(files.size() == 2);
  std::string letter = read_file(dl_dir + "/" + (ends_with(files[0], ".v1") ? files[0] : files[1]));
  std::string reason = read_file(dl_dir + "/" + (ends_with(files[0], ".reason") ? files[0] : files[1]));
  CHECK(reason.find("3 events in 1 name block(s) refused by") != std::string::npos);
  CHECK(reason.find("conflicts with type \"Gauge\" bound to name \"rp.bound\"") != std::string::npos);

  // Refused again while the name is bound; applied once it is deleted.
  CHECK(status_of(fe.post("/post", letter)) == 400);
  REQUIRE(status_of(fe.post("/delete?name=rp.bound", "")) == 200);
  REQUIRE(status_of(fe.post("/post", letter)) == 200);
  fe_flush(fe);
  auto got = tabs_json(fe, "name=rp.bound");
  CHECK(got["rp.bound"].count == 3);
  CHECK(got["rp.bound"].total == Approx(6.0));
  CHECK(body_text(fe.get("/types?name=rp.bound")) == "rp.bound: TotalsCounter\n");
}

TEST_CASE("agent forwarding: v1 and delta posts of one batch reach the fe as one delta batch and arrive exactly",
          "[e2e][agent][delta]") {
  TempDir dir("agent-deltas");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  TabadProcess agent;  // one batch for both posts
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port(), "flush_interval_ms = 1000\n")}));
  double t = now_s();
  std::string v1 = v1_body({{"c1", {{"f.cnt", {event_line("CounterGroup", t, "12.5"), event_line("CounterGroup", t, "3")}},
                                    {"f.tot", {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "2")}}}},
                            {"c2", {{"f.cnt", {event_line("CounterGroup", t, "4")}},
                                    {"f.tot", {event_line("TotalsCounter", t, "10")}}}}});
  REQUIRE(status_of(agent.post("/post", v1)) == 200);
  auto r = post_delta(agent, delta_batch(t, {{"proxyhost", "f.tot", "TotalsCounter", {"5", "6"}},
                                             {"proxyhost", "f.pd", "TotalsCounter", {"7"}}}));
  INFO(body_text(r));
  REQUIRE(status_of(r) == 200);
  REQUIRE(wait_drained(agent, 15000));
  fe_flush(fe);

  auto cnt = tabs_json(fe, "name=f.cnt", "/pct/count", "/pct/total");
  CHECK(cnt["f.cnt"].count == 3);
  CHECK(cnt["f.cnt"].total == Approx(19.5));
  auto cnt1m = tabs_json(fe, "name=f.cnt", "/1m/count", "/1m/total");
  CHECK(cnt1m["f.cnt"].count == 3);
  auto tot = tabs_json(fe, "name=f.tot,f.pd");
  CHECK(tot["f.tot"].count == 5);
  CHECK(tot["f.tot"].total == Approx(24.0));
  CHECK(tot["f.pd"].count == 1);
  CHECK(tot["f.pd"].total == Approx(7.0));
  CHECK(body_text(fe.get("/clients")) == "c1\nc2\nproxyhost\n");
  CHECK(body_text(fe.get("/tabs?name=f.tot&client=c2", "application/json")).find("\"count\": 1") != std::string::npos);

  // One delta batch: four folded states and the two blocks copied.
  std::string fe_metrics = metrics_of(fe);
  CHECK(metric(fe_metrics, "taba_delta_bodies_total") == 1);
  CHECK(metric(fe_metrics, "taba_delta_blocks_total") == 6);
  CHECK(metric(fe_metrics, "taba_delta_events_total") == 9);
  std::string metrics = metrics_of(agent);
  CHECK(metric(metrics, "taba_agent_forward_posts_total{form=\"delta\"}") == 1);
  CHECK(metric(metrics, "taba_agent_forward_posts_total{form=\"v1\"}") == 0);
  CHECK(metric(metrics, "taba_agent_delta_blocks_forwarded_total") == 6);
  CHECK(metric(metrics, "taba_agent_events_forwarded_total") == 9);
  CHECK(metric(metrics, fmt::format("taba_agent_endpoint_takes_deltas{{endpoint=\"127.0.0.1:{}\"}}", fe.port())) == 1);
}

TEST_CASE("agent forwarding: a client-proxy's delta block the fe refuses is a .delta dead letter that /post_delta takes "
          "once the name is deleted",
          "[e2e][agent][delta]") {
  TempDir dir("agent-delta-dead");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  double t = now_s();
  REQUIRE(status_of(fe.post("/post", v1_body({{"direct", {{"dd.bound", {event_line("Gauge", t, "\"red\"")}}}}}))) ==
          200);
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port())}));
  REQUIRE(status_of(post_delta(agent, delta_batch(t, {{"proxyhost", "dd.bound", "TotalsCounter", {"1", "2", "3"}},
                                                      {"proxyhost", "dd.good", "TotalsCounter", {"4"}}}))) == 200);
  AgentStatus s = wait_dead_lettered(agent, 15000);
  fe_flush(fe);
  CHECK(tabs_json(fe, "name=dd.good")["dd.good"].count == 1);
  CHECK(s.dead_events == 3);
  CHECK(s.forwarded_events == 1);
  std::string dl_dir = agent.data_dir() + "/dead-letters";
  std::vector<std::string> files = list_dir(dl_dir);
  INFO(fmt::format("{}", fmt::join(files, " ")));
  REQUIRE(files.size() == 2);
  REQUIRE(ends_with(files[0], "-refused-delta.delta"));
  REQUIRE(files[1] == files[0].substr(0, files[0].size() - 6) + ".reason");
  std::string letter = read_file(dl_dir + "/" + files[0]);
  std::string reason = read_file(dl_dir + "/" + files[1]);
  CHECK(reason.find("3 events in 1 name block(s) refused by") != std::string::npos);
  CHECK(reason.find("block 1: client \"proxyhost\" name \"dd.bound\" type TotalsCounter, 3 events: type "
                    "\"TotalsCounter\" conflicts with type \"Gauge\" bound to name \"dd.bound\"") != std::string::npos);
  // The refused block alone, in the envelope /post_delta takes.
  auto batch = protocol::unwrap_delta_body(letter);
  REQUIRE(batch.ok());
  protocol::DeltaReader reader(batch.value());
  REQUIRE(reader.open().ok());
  CHECK(reader.block_count() == 1);

  // Refused again while the name is bound; applied once it is deleted.
  auto again = fe.post("/post_delta", letter, {{"Content-Type", std::string(protocol::kDeltaContentType)}});
  CHECK(status_of(again) == 400);
  REQUIRE(status_of(fe.post("/delete?name=dd.bound", "")) == 200);
  auto replay = fe.post("/post_delta", letter, {{"Content-Type", std::string(protocol::kDeltaContentType)}});
  INFO(body_text(replay));
  REQUIRE(status_of(replay) == 200);
  fe_flush(fe);
  auto got = tabs_json(fe, "name=dd.bound");
  CHECK(got["dd.bound"].count == 3);
  CHECK(got["dd.bound"].total == Approx(6.0));
}
