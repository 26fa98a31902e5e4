// Redis mode's upkeep and limits, each test named after the hole it closes:
// dead stream consumers, the periodic GC run by every be, read sets not
// capped by bytes, /delete racing entries already queued, and
// ingest.max_names_per_client (the same refusal as the embedded store).
// Real redis-server / redis-sentinel and tabad processes, all on loopback.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "admin_scenario.h"
#include "harness.h"
#include "redis_harness.h"
#include "redis_support.h"

using namespace taba::test;

namespace {

double metric_of(const TabadProcess& p, const std::string& series) {
  auto r = p.get("/metrics");
  if (!r.ok() || r.value().status != 200) return -1;
  return metric(r.value().body, series);
}

void flush(const TabadProcess& query) {
  auto r = query.post("/flush", "");
  REQUIRE(r.ok());
  INFO(r.value().body);
  REQUIRE(r.value().status == 200);
}

// The 1-day count of one name's tab ("" when it has none).
std::string count_of(const TabadProcess& query, const std::string& name) {
  std::string body = reply_body(query.get("/tabs?name=" + name, "application/json"));
  size_t at = body.find("\"count\": ");
  if (at == std::string::npos) return "";
  size_t end = body.find_first_of(",}\n", at + 9);
  return body.substr(at + 9, end - at - 9);
}

// A body of one client with `names` TotalsCounter names "<prefix><i>", one
// event of value 1 each.
std::string names_body(const std::string& client, const std::string& prefix, int first, int names) {
  double now = now_s();
  ClientBlock cb{client, {}};
  for (int n = first; n < first + names; ++n) {
    cb.names.push_back({fmt::format("{}{}", prefix, n), {event_line("TotalsCounter", now, "1")}});
  }
  return v1_body({cb});
}

// The names of the stream's consumers on the shard's master (XINFO
// CONSUMERS), each with its pending count: "name pending" lines.
std::vector<std::pair<std::string, int>> consumers(const RedisDeployment& d) {
  auto out = d.cluster.cli(d.master(0), {"XINFO", "CONSUMERS", "taba:stream", "be"});
  std::vector<std::pair<std::string, int>> list;
  if (!out.ok()) return list;
  std::vector<std::string> lines;
  size_t start = 0;
  const std::string& text = out.value();
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  for (size_t i = 0; i + 3 < lines.size(); ++i) {
    if (lines[i] == "name" && lines[i + 2] == "pending") {
      list.emplace_back(lines[i + 1], std::stoi(lines[i + 3]));
    }
  }
  return list;
}

int pending_of(const std::vector<std::pair<std::string, int>>& list, const std::string& name) {
  for (const auto& [n, p] : list) {
    if (n == name) return p;
  }
  return -1;  // not a consumer
}

// The consumer name of a be (its server id, "<host>:<port>") among `list`,
// or "".
std::string consumer_of(const std::vector<std::pair<std::string, int>>& list, const TabadProcess& be) {
  std::string tail = ":" + std::to_string(be.port());
  for (const auto& [name, pending] : list) {
    if (name.size() > tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0) return name;
  }
  return "";
}

}  // namespace

TEST_CASE("dead consumers stay in the streams' groups - the keeper deletes idle ones once nothing is pending on them",
          "[redis][upkeep]") {
  RedisDeployment d;
  RedisCluster::Options o;
  o.shards = 1;
  // claim_idle_ms = 60 s: the first be does not claim the ghost's entry.
  d.start(o, {"claim_idle_ms = 60000", "idle_consumer_ms = 1000"});
  TabadProcess fe, be1, be2, ctrl;
  d.run(&fe, "fe");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  const int master = d.master(0);
  // A consumer that read an entry and died before applying it, and one that
  // died with nothing pending (XGROUP CREATE as a be would).
  REQUIRE_OK(d.cluster.cli(master, {"XGROUP", "CREATE", "taba:stream", "be", "0", "MKSTREAM"}).status());
  REQUIRE(reply_body(fe.post("/post", names_body("c1", "dc.n", 0, 30))).empty());
  REQUIRE_OK(d.cluster.cli(master, {"XREADGROUP", "GROUP", "be", "ghost", "COUNT", "1", "STREAMS", "taba:stream", ">"})
                 .status());
  REQUIRE_OK(d.cluster.cli(master, {"XGROUP", "CREATECONSUMER", "taba:stream", "be", "dead-empty"}).status());
  REQUIRE(pending_of(consumers(d), "ghost") == 1);

  d.run(&be1, "be");
  // The empty one goes once it has been idle 1 s; the ghost stays while its
  // entry is pending on it (nobody claims it yet).
  REQUIRE(eventually([&] { return pending_of(consumers(d), "dead-empty") == -1; }, 15'000, 200));
  CHECK(metric_of(be1, "taba_redis_consumers_deleted_total") >= 1);
  sleep_ms(2500);  // more sweeps, the ghost idle well past idle_consumer_ms
  CHECK(pending_of(consumers(d), "ghost") == 1);
  CHECK(count_of(ctrl, "dc.n0").empty());

  // A be that claims after 1 s takes the ghost's entry over; then the ghost
  // has nothing pending and goes too. Every event counts once.
  std::string fast = d.write_config("fast-claim.toml", {"claim_idle_ms = 1000", "idle_consumer_ms = 1000"});
  d.run(&be2, "be", fast);
  REQUIRE(eventually([&] { return pending_of(consumers(d), "ghost") == -1; }, 20'000, 200));
  flush(ctrl);
  for (int n = 0; n < 30; ++n) CHECK(count_of(ctrl, fmt::format("dc.n{}", n)) == "1");
  CHECK(metric_of(be1, "taba_redis_entries_claimed_total") + metric_of(be2, "taba_redis_entries_claimed_total") == 1);

  // A be killed (kill -9) and replaced: its consumer goes. (A live be's
  // consumer may be deleted too when the machine stalls it past 1 s with
  // nothing pending; its next read makes it again.)
  std::string killed;
  REQUIRE(eventually([&] { return !(killed = consumer_of(consumers(d), be2)).empty(); }, 10'000, 100));
  be2.kill9();
  TabadProcess be3;
  d.run(&be3, "be");
  REQUIRE(eventually([&] { return pending_of(consumers(d), killed) == -1; }, 20'000, 200));
  REQUIRE(reply_body(fe.post("/post", names_body("c1", "dc.n", 0, 30))).empty());
  flush(ctrl);
  CHECK(count_of(ctrl, "dc.n7") == "2");
  CHECK(eventually(
      [&] {
        auto listed = consumers(d);
        return listed.size() == 2 && !consumer_of(listed, be1).empty() && !consumer_of(listed, be3).empty();
      },
      10'000, 100));
}

TEST_CASE("every be runs the periodic GC - one be (the keeper) runs it once per interval, another takes over when it dies",
          "[redis][upkeep]") {
  RedisDeployment d;
  RedisCluster::Options o;
  o.shards = 2;
  d.start(o, {}, "[store]\ngc_interval_s = 2\n");
  TabadProcess fe, be1, be2;
  d.run(&fe, "fe");
  d.run(&be1, "be");
  d.run(&be2, "be");
  wait_ready(fe);
  wait_ready(be1);
  wait_ready(be2);
  auto keepers = [&] { return metric_of(be1, "taba_redis_keeper") + metric_of(be2, "taba_redis_keeper"); };
  REQUIRE(eventually([&] { return keepers() >= 1; }, 10'000, 100));
  CHECK(keepers() == 1);
  double start1 = metric_of(be1, "taba_redis_gc_runs_total");
  double start2 = metric_of(be2, "taba_redis_gc_runs_total");
  sleep_ms(10'000);
  double runs1 = metric_of(be1, "taba_redis_gc_runs_total") - start1;
  double runs2 = metric_of(be2, "taba_redis_gc_runs_total") - start2;
  INFO("GC runs in 10 s: be1 " << runs1 << ", be2 " << runs2);
  // Once per 2 s for the cluster: 5 in 10 s (give or take the edges), by one be.
  CHECK(runs1 + runs2 >= 4);
  CHECK(runs1 + runs2 <= 6);
  CHECK((runs1 == 0 || runs2 == 0));
  CHECK(metric_of(be1, "taba_redis_gc_failures_total") + metric_of(be2, "taba_redis_gc_failures_total") == 0);

  // kill -9 of the keeper: the other be takes the lease once it expires
  // (5 s) and runs the GC from then on.
  bool first_keeps = metric_of(be1, "taba_redis_keeper") == 1;
  TabadProcess& keeper = first_keeps ? be1 : be2;
  TabadProcess& other = first_keeps ? be2 : be1;
  double before = metric_of(other, "taba_redis_gc_runs_total");
  keeper.kill9();
  REQUIRE(eventually([&] { return metric_of(other, "taba_redis_keeper") == 1; }, 10'000, 100));
  REQUIRE(eventually([&] { return metric_of(other, "taba_redis_gc_runs_total") >= before + 2; }, 15'000, 100));
}

TEST_CASE("a be's read set is not capped by bytes - max_read_bytes bounds each round and every event counts once",
          "[redis][upkeep]") {
  RedisDeployment d;
  RedisCluster::Options o;
  o.shards = 1;
  d.start(o, {"max_read_bytes = 65536"});
  TabadProcess fe, be, ctrl;
  d.run(&fe, "fe");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  // 40 entries of 150 names (about 13 KB each: 4 fit in 64 KiB; a read of
  // 32 would be 400 KB), queued while no be runs.
  for (int i = 0; i < 40; ++i) {
    REQUIRE(reply_body(fe.post("/post", names_body(fmt::format("c{}", i % 3), "rc.n", 0, 150))).empty());
  }
  d.run(&be, "be");
  flush(ctrl);
  double max_bytes = metric_of(be, "taba_redis_read_set_max_bytes");
  INFO("largest read set " << max_bytes << " bytes, rounds cut " << metric_of(be, "taba_redis_read_sets_cut_total"));
  CHECK(max_bytes > 0);
  CHECK(max_bytes <= 65536);
  CHECK(metric_of(be, "taba_redis_read_sets_cut_total") > 0);
  CHECK(metric_of(be, "taba_redis_entries_applied_total") == 40);
  for (int n = 0; n < 150; n += 7) CHECK(count_of(ctrl, fmt::format("rc.n{}", n)) == "40");

  // An entry larger than the cap alone still makes progress (a round of
  // one entry), between others, with the be stopped meanwhile.
  REQUIRE(be.signal(SIGSTOP).ok());
  REQUIRE(reply_body(fe.post("/post", names_body("c0", "rc.n", 0, 150))).empty());
  REQUIRE(reply_body(fe.post("/post", names_body("big", "rc.big", 0, 1500))).empty());  // ~130 KB
  REQUIRE(reply_body(fe.post("/post", names_body("c1", "rc.n", 0, 150))).empty());
  REQUIRE(be.signal(SIGCONT).ok());
  flush(ctrl);
  CHECK(metric_of(be, "taba_redis_read_set_max_bytes") > 65536);
  CHECK(metric_of(be, "taba_redis_entries_applied_total") == 43);
  CHECK(count_of(ctrl, "rc.n0") == "42");
  CHECK(count_of(ctrl, "rc.big0") == "1");
  CHECK(count_of(ctrl, "rc.big1499") == "1");
}

TEST_CASE("/delete races deltas already queued for the name - they no longer re-create it, later posts count",
          "[redis][upkeep]") {
  RedisDeployment d;
  RedisCluster::Options o;
  o.shards = 2;
  d.start(o, {"claim_idle_ms = 1000", "idle_consumer_ms = 2000"});  // a sweep a second
  TabadProcess fe, be, ctrl;
  d.run(&fe, "fe");
  d.run(&be, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  wait_ready(ctrl);
  double now = now_s();
  auto body = [&](int events) {
    NameBlock victim{"del.victim", {}};
    NameBlock keeper{"del.kept", {}};
    for (int e = 0; e < events; ++e) {
      victim.event_lines.push_back(event_line("TotalsCounter", now, "1"));
      keeper.event_lines.push_back(event_line("TotalsCounter", now, "1"));
    }
    return v1_body({{"c1", {victim, keeper}}, {"c2", {victim}}});
  };
  REQUIRE(reply_body(fe.post("/post", body(1))).empty());
  flush(ctrl);
  REQUIRE(count_of(ctrl, "del.victim") == "2");

  // The be paused: these entries queue (or sit read but unapplied in it).
  REQUIRE(be.signal(SIGSTOP).ok());
  for (int i = 0; i < 5; ++i) REQUIRE(reply_body(fe.post("/post", body(2))).empty());
  std::string deleted = reply_body(ctrl.post("/delete?name=del.victim", ""));
  INFO(deleted);
  CHECK(deleted.find("names_deleted") != std::string::npos);
  REQUIRE(be.signal(SIGCONT).ok());
  flush(ctrl);
  CHECK(count_of(ctrl, "del.victim").empty());
  CHECK(reply_body(ctrl.get("/names")).find("del.victim") == std::string::npos);
  CHECK(count_of(ctrl, "del.kept") == "11");  // the other name of the same entries counts
  CHECK(metric_of(be, "taba_redis_deltas_deleted_total") == 10);

  // Posted after the delete: counts, and only that.
  REQUIRE(reply_body(fe.post("/post", body(3))).empty());
  flush(ctrl);
  CHECK(count_of(ctrl, "del.victim") == "6");
  CHECK(count_of(ctrl, "del.kept") == "14");
  // The keeper drops the tombstone once nothing queued is older than it.
  const int shard = [&] {
    for (int s = 0; s < 2; ++s) {
      auto t = d.cluster.cli(d.master(s), {"HLEN", "taba:tombs"});
      if (t.ok() && t.value() != "0") return s;
    }
    return -1;
  }();
  if (shard >= 0) {
    const int port = d.master(shard);
    CHECK(eventually(
        [&] {
          auto t = d.cluster.cli(port, {"HLEN", "taba:tombs"});
          return t.ok() && t.value() == "0";
        },
        15'000, 200));
  }
  CHECK(metric_of(be, "taba_redis_tombstones_dropped_total") >= 1);
}

namespace {

// The same scenario on either store: a client at max_names_per_client (3)
// is refused a body with a new name, exactly as the embedded store words
// it; its existing names and other clients go on. `settle` waits until
// what was posted is applied (and, in Redis mode, seen by the fe's check).
void client_limit_scenario(const TabadProcess& fe, const std::function<void()>& settle) {
  REQUIRE(reply_body(fe.post("/post", names_body("greedy", "pc.n", 0, 3))).empty());
  settle();
  auto refused = fe.post("/post", names_body("greedy", "pc.n", 3, 1));
  REQUIRE(refused.ok());
  CHECK(refused.value().status == 422);
  CHECK(refused.value().body ==
        "client \"greedy\" has 3 names and this body adds 1 new, more than ingest.max_names_per_client (3); nothing "
        "from it was applied\n");
  // Existing names of that client, and other clients, still go in.
  REQUIRE(reply_body(fe.post("/post", names_body("greedy", "pc.n", 0, 3))).empty());
  REQUIRE(reply_body(fe.post("/post", names_body("modest", "pc.n", 2, 3))).empty());
  settle();
  CHECK(reply_body(fe.get("/names?client=greedy")) == "pc.n0\npc.n1\npc.n2\n");
  CHECK(reply_body(fe.get("/names?client=modest")) == "pc.n2\npc.n3\npc.n4\n");
  CHECK(count_of(fe, "pc.n0") == "2");
  // One more for "modest" than it may have: refused too, same words.
  auto again = fe.post("/post", names_body("modest", "pc.n", 10, 2));
  REQUIRE(again.ok());
  CHECK(again.value().status == 422);
  CHECK(again.value().body.find("client \"modest\" has 3 names and this body adds 1 new") == 0);
  std::string metrics = reply_body(fe.get("/metrics"));
  CHECK(metric(metrics, "taba_store_limit_refusals_total{limit=\"max_names_per_client\"}") == 2);
  CHECK(metric(metrics, "taba_bodies_over_limit_total") == 2);
}

}  // namespace

TEST_CASE("max_names_per_client is not enforced in Redis mode - it refuses as the embedded store does",
          "[redis][upkeep][limits]") {
  SECTION("embedded") {
    TempDir dir("tabad-limit");
    std::string config = dir.path + "/taba.toml";
    std::ofstream(config) << "[ingest]\nmax_names_per_client = 3\n";
    TabadProcess one;
    REQUIRE_OK(one.start({"--config", config}));
    client_limit_scenario(one, [&] { flush(one); });
  }
  SECTION("redis") {
    RedisDeployment d;
    d.start({}, {}, "[ingest]\nmax_names_per_client = 3\n");
    TabadProcess fe, be;
    d.run(&fe, "fe");
    d.run(&be, "be");
    wait_ready(fe);
    client_limit_scenario(fe, [&] {
      flush(fe);
      // The fe's pre-check reads each shard's bound with its heartbeat
      // (once a second): wait until it covers what was just applied.
      REQUIRE(eventually([&] { return metric_of(fe, "taba_redis_client_names_bound") >= 3; }, 10'000, 100));
    });
  }
}
