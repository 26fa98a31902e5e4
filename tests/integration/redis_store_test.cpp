// tabad on Redis + Sentinel: real redis-server and redis-sentinel processes,
// real fe / be / ctrl tabad processes, all on loopback.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <csignal>
#include <chrono>
#include <fstream>
#include <thread>

#include "admin_scenario.h"
#include "harness.h"
#include "redis_harness.h"
#include "redis_support.h"

using namespace taba::test;
using Clock = std::chrono::steady_clock;

namespace {

// A body of `clients` x `names` TotalsCounter events of value 1.
std::string load_body(int clients, int names, int events_each, int salt) {
  double now = static_cast<double>(std::time(nullptr));
  std::vector<ClientBlock> blocks;
  for (int c = 0; c < clients; ++c) {
    ClientBlock cb;
    cb.client = fmt::format("c{}", (c + salt) % 7);
    for (int n = 0; n < names; ++n) {
      NameBlock nb;
      nb.name = fmt::format("load.n{}", n);
      for (int e = 0; e < events_each; ++e) nb.event_lines.push_back(event_line("TotalsCounter", now, "1"));
      cb.names.push_back(std::move(nb));
    }
    blocks.push_back(std::move(cb));
  }
  return v1_body(blocks);
}

// The i-th batch of a load tagged `tag`: 3 clients x 10 names x events_each
// TotalsCounter events of value 1.
LoadBatch load_batch(const std::string& tag, int events_each, int i) {
  return LoadBatch{fmt::format("{}-{}", tag, i), load_body(3, 10, events_each, i), 3 * 10 * events_each, {}};
}

// The total count of load.n* across names, read through `query`.
int64_t total_count(const TabadProcess& query) {
  auto r = query.get("/supertabs?name=load%5C.n.*&re=1", "application/json");
  REQUIRE(r.ok());
  INFO(r.value().body);
  REQUIRE(r.value().status == 200);
  const std::string& b = r.value().body;
  size_t at = b.find("\"count\": ");
  REQUIRE(at != std::string::npos);
  return std::stoll(b.substr(at + 9));
}

void flush(const TabadProcess& query) {
  auto r = query.post("/flush", "");
  REQUIRE(r.ok());
  INFO(r.value().body);
  REQUIRE(r.value().status == 200);
}

}  // namespace

TEST_CASE("redis: 2 shards, 2 fe, 2 be, 1 ctrl give exact totals, and admin routes work", "[redis][e2e]") {
  RedisDeployment d;
  d.start({}, {});
  TabadProcess fe1, fe2, be1, be2, ctrl;
  d.run(&fe1, "fe");
  d.run(&fe2, "fe");
  d.run(&be1, "be");
  d.run(&be2, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe1);
  wait_ready(fe2);
  wait_ready(ctrl);

  SECTION("admin routes behave as on the embedded store") { run_admin_scenario(fe1, ctrl); }

  SECTION("totals, duplicate batch ids, roles and status") {
    int64_t events = 0;
    for (int i = 0; i < 40; ++i) {
      const TabadProcess& fe = i % 2 ? fe2 : fe1;
      auto r = fe.post("/post", load_body(3, 10, 2, i));
      REQUIRE(r.ok());
      REQUIRE(r.value().status == 200);
      events += 3 * 10 * 2;
    }
    // The same batch twice (a retry after a lost 200), through both fes.
    std::string dup = load_body(3, 10, 1, 99);
    REQUIRE(fe1.post("/post", dup, {{"Taba-Batch-Id", "retry-1"}}).value().status == 200);
    REQUIRE(fe2.post("/post", dup, {{"Taba-Batch-Id", "retry-1"}}).value().status == 200);
    events += 30;
    flush(ctrl);
    CHECK(total_count(ctrl) == events);
    CHECK(total_count(fe2) == events);
    // /metrics/tabs reads every shard, a slice at a time: the counters add up.
    {
      const std::string prom = reply_body(ctrl.get("/metrics/tabs?name=load%5C.n.*&re=1"));
      int64_t sum = 0;
      int lines = 0;
      for (size_t at = prom.find("_events_total{tab=\"load.n"); at != std::string::npos;
           at = prom.find("_events_total{tab=\"load.n", at + 1)) {
        sum += std::stoll(prom.substr(prom.find("} ", at) + 2));
        ++lines;
      }
      INFO(prom.substr(0, 2000));
      CHECK(lines == 10);
      CHECK(sum == events);
    }
    std::string one = reply_body(ctrl.get("/tabs?name=load.n3&client=c1,c2", "application/json"));
    CHECK(one.find("\"count\": ") != std::string::npos);

    // Posts go to an fe only.
    reply_body(ctrl.post("/post", dup), 404);
    reply_body(be1.post("/post", dup), 404);

    // Every server registered with its roles.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    std::string servers;
    while (Clock::now() < deadline) {
      servers = reply_body(ctrl.get("/servers"));
      if (std::count(servers.begin(), servers.end(), '\n') == 5) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    CHECK(std::count(servers.begin(), servers.end(), '\n') == 5);
    CHECK(servers.find(fmt::format(":{}: fe\n", fe1.port())) != std::string::npos);
    CHECK(servers.find(fmt::format(":{}: be\n", be2.port())) != std::string::npos);
    CHECK(servers.find(fmt::format(":{}: ctrl\n", ctrl.port())) != std::string::npos);
    std::string status = reply_body(ctrl.get("/status", "application/json"));
    CHECK(status.find("\"store\": \"redis\"") != std::string::npos);
    CHECK(status.find("\"name\": \"shard1\"") != std::string::npos);
    CHECK(status.find("\"name\": \"shard2\"") != std::string::npos);
    CHECK(status.find("\"up\": false") == std::string::npos);
    // The bes' pipeline latency reaches /latency with their heartbeats
    // (once a second), so it may lag the applies a little.
    std::string latency;
    bool some_samples = false;
    for (int i = 0; i < 50 && !some_samples; ++i) {
      if (i > 0) sleep_ms(200);
      latency = reply_body(ctrl.get("/latency", "application/json"));
      size_t at = latency.find("\"samples\": ");
      char digit = at != std::string::npos && at + 11 < latency.size() ? latency[at + 11] : '0';
      some_samples = digit >= '1' && digit <= '9';
    }
    INFO(latency);
    CHECK(some_samples);

    // A type conflict is a 400 naming the binding, across processes.
    double now = static_cast<double>(std::time(nullptr));
    auto conflict = fe2.post("/post", v1_body({{"c1",
                                                {{"orphan.x", {event_line("TotalsCounter", now, "1")}},
                                                 {"load.n1", {event_line("Gauge", now, "\"x\"")}}}}}));
    REQUIRE(conflict.ok());
    CHECK(conflict.value().status == 400);
    CHECK(conflict.value().body.find("bound to name \"load.n1\"") != std::string::npos);
    // The rejected body's new binding of orphan.x was undone before the 400.
    CHECK(reply_body(ctrl.get("/tabs?name=orphan.x")).empty());
    CHECK(reply_body(ctrl.get("/names")).find("orphan.x") == std::string::npos);
    CHECK(reply_body(ctrl.get("/tabs?name=load.n1&client=")).empty());
    CHECK(reply_body(ctrl.get("/names?client=")).empty());

    // SIGTERM: exit 0, and the server leaves the registry.
    REQUIRE(be2.signal(SIGTERM).ok());
    auto code = be2.wait_exit(10'000);
    REQUIRE(code.ok());
    CHECK(code.value() == 0);
    servers = reply_body(ctrl.get("/servers"));
    CHECK(servers.find(fmt::format(":{}: be\n", be2.port())) == std::string::npos);
  }
}

TEST_CASE("redis: kill -9 of a be under load loses and doubles nothing", "[redis][e2e]") {
  RedisDeployment d;
  d.start({}, {"claim_idle_ms = 1000"});
  TabadProcess fe, be1, be2, ctrl;
  d.run(&fe, "fe");
  d.run(&be1, "be");
  d.run(&be2, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  Loader load;
  load.start({&fe}, [](int i) { return load_batch("k9", 5, i); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  be1.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  d.run(&be1, "be");  // a new port: a new consumer; the old one's entries are claimed
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  be2.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  load.finish();
  CHECK(load.unacked_bodies == 0);
  flush(ctrl);
  INFO("bodies " << load.bodies << ", retries " << load.non_200);
  CHECK(load.acked_events > 0);
  CHECK(total_count(ctrl) == load.acked_events);
}

TEST_CASE("redis: a Sentinel failover under load loses no acknowledged event", "[redis][e2e]") {
  RedisDeployment d;
  // One replica and min_replica_acks = 1: an acknowledged entry is on the
  // replica that gets promoted. (With more replicas than acks, Redis's
  // asynchronous replication can lose an entry acknowledged by a replica
  // that is not promoted; docs/operations.md says so.) The new master has no
  // replica until Sentinel turns the old master into one (~10 s), so the fe
  // answers 503 meanwhile and the loader retries with the same batch id.
  d.start({}, {"min_replica_acks = 1", "command_timeout_ms = 1000", "replica_ack_timeout_ms = 500"});
  TabadProcess fe1, fe2, be, ctrl;
  d.run(&fe1, "fe");
  d.run(&fe2, "fe");
  d.run(&be, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe1);
  wait_ready(fe2);
  Loader load;
  load.start({&fe1, &fe2}, [](int i) { return load_batch("fo", 2, i); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto before = d.cluster.master_port(0);
  REQUIRE(before.ok());
  auto after = d.cluster.failover(0);
  INFO((after.ok() ? "" : after.status().message()));
  REQUIRE(after.ok());
  CHECK(after.value() != before.value());
  // The pipeline resumes by itself: acknowledged bodies keep coming.
  int64_t at_failover = load.bodies;
  auto t0 = Clock::now();
  while (load.bodies < at_failover + 20 && Clock::now() - t0 < std::chrono::seconds(25)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO("resumed after " << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() << " ms");
  CHECK(load.bodies >= at_failover + 20);
  load.finish();
  CHECK(load.unacked_bodies == 0);
  flush(ctrl);
  INFO("bodies " << load.bodies << ", non-200 replies " << load.non_200);
  CHECK(total_count(ctrl) == load.acked_events);
  std::string status = reply_body(ctrl.get("/status", "application/json"));
  CHECK(status.find(fmt::format("\"master\": \"127.0.0.1:{}\"", after.value())) != std::string::npos);
}

TEST_CASE("redis: a paused master gives timeouts and 503s, never a hang, and recovers", "[redis][e2e]") {
  RedisDeployment d;
  RedisCluster::Options o;
  o.down_after_ms = 60'000;  // no failover: the same master must come back
  d.start(o, {"command_timeout_ms = 500", "connect_timeout_ms = 500"});
  TabadProcess fe, be, ctrl;
  d.run(&fe, "fe");
  d.run(&be, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  std::string body = load_body(3, 10, 1, 1);
  REQUIRE(fe.post("/post", body, {{"Taba-Batch-Id", "before"}}).value().status == 200);
  auto master = d.cluster.master_port(0);
  REQUIRE(master.ok());
  REQUIRE(d.cluster.pause(master.value()).ok());

  auto t0 = Clock::now();
  auto r = fe.post("/post", body, {{"Taba-Batch-Id", "during"}});
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  REQUIRE(r.ok());
  CHECK(r.value().status == 503);
  CHECK(elapsed < 5000);
  t0 = Clock::now();
  auto q = ctrl.get("/tabs");  // reads every shard
  elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  REQUIRE(q.ok());
  CHECK(q.value().status == 503);
  CHECK(elapsed < 5000);
  CHECK(q.value().body.find("timed out") != std::string::npos);
  // A body without a batch id is given one; the 503 names it for the retry.
  auto anonymous = fe.post("/post", body);
  REQUIRE(anonymous.ok());
  CHECK(anonymous.value().status == 503);
  CHECK(anonymous.value().header("taba-batch-id").size() == 32);
  // The heartbeat and the failed query mark the shard down.
  int ready_status = 0;
  for (int i = 0; i < 50 && ready_status != 503; ++i) {
    auto ready = ctrl.get("/readyz");
    REQUIRE(ready.ok());
    ready_status = ready.value().status;
    if (ready_status != 503) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(ready_status == 503);

  REQUIRE(d.cluster.resume(master.value()).ok());
  wait_ready(fe);
  auto deadline = Clock::now() + std::chrono::seconds(15);
  int status = 0;
  while (Clock::now() < deadline) {
    auto again = fe.post("/post", body, {{"Taba-Batch-Id", "during"}});
    status = again.ok() ? again.value().status : 0;
    if (status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(status == 200);
  wait_ready(ctrl);  // its connections come back on their own backoff
  flush(ctrl);
  CHECK(total_count(ctrl) == 60);  // "before" and "during", each once
}

TEST_CASE("redis: a be without a type's plugin leaves its entries for a be that has it", "[redis][e2e]") {
  RedisDeployment d;
  RedisCluster::Options o;
  o.shards = 1;
  d.start(o, {"claim_idle_ms = 1000"});
  std::string empty_plugins = make_temp_dir("no-plugins");
  TabadProcess fe, lame_be, be, ctrl;
  d.run(&fe, "fe");
  REQUIRE(lame_be.start({"--config", d.config, "--role", "be", "--plugins-dir", empty_plugins}).ok());
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  REQUIRE(fe.post("/post", load_body(3, 10, 2, 0), {{"Taba-Batch-Id", "p-1"}}).value().status == 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(total_count(ctrl) == 0);  // bound by the fe, not applied
  CHECK(lame_be.log_text().find("no loaded plugin serves type \"TotalsCounter\"") != std::string::npos);

  d.run(&be, "be");  // claims the entry once it has been idle claim_idle_ms
  flush(ctrl);
  CHECK(total_count(ctrl) == 60);
  remove_tree(empty_plugins);
}

TEST_CASE("redis: the max_names guard refuses a body with 422 per shard share and keeps none of its bindings",
          "[redis][e2e][limits]") {
  RedisDeployment d;
  d.start({}, {});  // 2 shards: each gets half of max_names
  std::ofstream(d.config, std::ios::app) << "\n[ingest]\nmax_names = 40\n";
  TabadProcess fe, be;
  d.run(&fe, "fe");
  d.run(&be, "be");
  wait_ready(fe);
  double now = static_cast<double>(std::time(nullptr));
  auto body_of_names = [&](int first, int count) {
    ClientBlock cb{"c1", {}};
    for (int n = first; n < first + count; ++n) {
      cb.names.push_back({fmt::format("lim.n{}", n), {event_line("TotalsCounter", now, "1")}});
    }
    return v1_body({cb});
  };
  // Ten names at a time until the guard refuses a body.
  int accepted = 0;
  std::string refusal;
  for (int first = 0; first < 200 && refusal.empty(); first += 10) {
    auto r = fe.post("/post", body_of_names(first, 10));
    REQUIRE(r.ok());
    if (r.value().status == 200) {
      accepted += 10;
      continue;
    }
    CHECK(r.value().status == 422);
    refusal = r.value().body;
    // The refused body's names: bound on neither shard.
    flush(fe);
    std::string names = reply_body(fe.get("/names"));
    for (int n = first; n < first + 10; ++n) {
      INFO("refused name lim.n" << n);
      CHECK(names.find(fmt::format("lim.n{}\n", n)) == std::string::npos);
    }
  }
  INFO(refusal);
  CHECK(refusal.find("of ingest.max_names (40); nothing from it was applied") != std::string::npos);
  // Names hash onto the shards unevenly, but no shard passes its share (20).
  CHECK(accepted >= 20);
  CHECK(accepted <= 40);
  // Names already bound keep taking events.
  REQUIRE(fe.post("/post", body_of_names(0, 10)).value().status == 200);
  flush(fe);
  auto m = fe.get("/metrics");
  REQUIRE(m.ok());
  CHECK(m.value().body.find("taba_store_limit_refusals_total{limit=\"max_names\"} 1\n") != std::string::npos);
  std::string lim0 = reply_body(fe.get("/tabs?name=lim.n0", "application/json"));
  CHECK(lim0.find("\"count\": 2") != std::string::npos);
}
