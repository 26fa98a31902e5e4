// The Redis + Sentinel test harness itself (tests/integration/redis_harness.h):
// real redis-server and redis-sentinel processes.
#include "redis_harness.h"

#include <signal.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

using namespace taba::test;

namespace {

int64_t elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since)
      .count();
}

// The first line of redis-cli ROLE output: "master" or "slave".
std::string role_of(const RedisCluster& cluster, int port) {
  auto r = cluster.cli(port, {"ROLE"});
  if (!r.ok()) return "error: " + r.status().message();
  return r->substr(0, r->find('\n'));
}

}  // namespace

TEST_CASE("RedisCluster: replication, failover, pause and resume on 2 shards and 3 sentinels", "[redis]") {
  std::string dir;
  std::vector<pid_t> pids;
  {
    RedisCluster cluster;
    auto t0 = std::chrono::steady_clock::now();
    taba::Status st = cluster.start({.shards = 2, .replicas_per_shard = 1, .sentinels = 3});
    INFO("start took " << elapsed_ms(t0) << " ms");
    INFO(st.message());
    REQUIRE(st.ok());
    dir = cluster.dir();
    REQUIRE(cluster.shards() == 2);
    CHECK(cluster.shard_name(0) == "shard1");
    CHECK(cluster.shard_name(1) == "shard2");
    REQUIRE(cluster.sentinel_addrs().size() == 3);
    for (const std::string& addr : cluster.sentinel_addrs()) CHECK(addr.rfind("127.0.0.1:", 0) == 0);

    std::vector<int> shard1 = cluster.node_ports(0);
    std::vector<int> shard2 = cluster.node_ports(1);
    REQUIRE(shard1.size() == 2);
    REQUIRE(shard2.size() == 2);
    for (int port : {shard1[0], shard1[1], shard2[0], shard2[1]}) {
      CHECK(cluster.pid_of(port) > 0);
      pids.push_back(cluster.pid_of(port));
    }
    for (int port : cluster.sentinel_ports()) pids.push_back(cluster.pid_of(port));
    CHECK(cluster.pid_of(1) == -1);

    auto m1 = cluster.master_port(0);
    auto m2 = cluster.master_port(1);
    REQUIRE(m1.ok());
    REQUIRE(m2.ok());
    CHECK(*m1 == shard1[0]);
    CHECK(*m2 == shard2[0]);
    CHECK(role_of(cluster, shard1[1]) == "slave");

    // A write on the master reaches its replica.
    auto set = cluster.cli(*m1, {"SET", "k1", "v1"});
    REQUIRE(set.ok());
    CHECK(*set == "OK");
    auto acked = cluster.cli(*m1, {"WAIT", "1", "1000"});
    REQUIRE(acked.ok());
    CHECK(*acked == "1");
    auto copy = cluster.cli(shard1[1], {"GET", "k1"});
    REQUIRE(copy.ok());
    CHECK(*copy == "v1");
    // An error reply is an error Status carrying it.
    auto bad = cluster.cli(*m1, {"INCR", "k1"});
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.status().message(), Catch::Contains("not an integer"));

    // Failover of shard1 only.
    auto t1 = std::chrono::steady_clock::now();
    auto promoted = cluster.failover(0);
    INFO("failover took " << elapsed_ms(t1) << " ms");
    INFO(promoted.status().message());
    REQUIRE(promoted.ok());
    CHECK(*promoted == shard1[1]);
    CHECK(role_of(cluster, *promoted) == "master");
    auto now1 = cluster.master_port(0);
    REQUIRE(now1.ok());
    CHECK(*now1 == *promoted);
    auto now2 = cluster.master_port(1);
    REQUIRE(now2.ok());
    CHECK(*now2 == shard2[0]);
    CHECK(role_of(cluster, shard2[0]) == "master");
    CHECK(role_of(cluster, shard2[1]) == "slave");
    auto kept = cluster.cli(*promoted, {"GET", "k1"});
    REQUIRE(kept.ok());
    CHECK(*kept == "v1");

    // Sentinel turns the old master into a replica of the new one.
    auto t2 = std::chrono::steady_clock::now();
    taba::Status synced = cluster.wait_synced(0);
    INFO("old master reconverted after " << elapsed_ms(t2) << " ms");
    INFO(synced.message());
    REQUIRE(synced.ok());
    CHECK(role_of(cluster, shard1[0]) == "slave");

    // A paused node does not answer; after resume it does. (A replica, so the
    // sentinels do not fail over meanwhile.)
    int paused = shard2[1];
    REQUIRE(cluster.pause(paused).ok());
    auto t3 = std::chrono::steady_clock::now();
    auto silent = cluster.cli(paused, {"PING"}, 1000);
    CHECK_FALSE(silent.ok());
    CHECK(elapsed_ms(t3) < 5000);
    REQUIRE(cluster.resume(paused).ok());
    auto pong = cluster.cli(paused, {"PING"}, 5000);
    REQUIRE(pong.ok());
    CHECK(*pong == "PONG");

    // kill9 takes a process away; restart brings it back on its port.
    int sentinel = cluster.sentinel_ports()[0];
    REQUIRE(cluster.kill9(sentinel).ok());
    CHECK(cluster.pid_of(sentinel) == -1);
    CHECK_FALSE(cluster.cli(sentinel, {"PING"}).ok());
    auto still = cluster.master_port(1);  // the next sentinel answers
    REQUIRE(still.ok());
    CHECK(*still == shard2[0]);
    REQUIRE(cluster.restart(sentinel).ok());
    CHECK(cluster.pid_of(sentinel) > 0);
    CHECK_FALSE(cluster.kill9(1).ok());

    std::string toml = cluster.toml(1024, {"min_replica_acks = 1"});
    auto addrs = cluster.sentinel_addrs();
    CHECK(toml == "[redis]\nsentinels = [\"" + addrs[0] + "\", \"" + addrs[1] + "\", \"" + addrs[2] +
                      "\"]\nvbuckets = 1024\nmin_replica_acks = 1\n"
                      "\n[[redis.shards]]\nname = \"shard1\"\nvbuckets = [0, 511]\n"
                      "\n[[redis.shards]]\nname = \"shard2\"\nvbuckets = [512, 1023]\n");
    CHECK(std::filesystem::is_directory(dir));
  }
  // The destructor killed and reaped everything and removed its directory.
  if (const char* keep = std::getenv("TABA_TEST_KEEP_DIRS"); keep == nullptr || *keep == '\0') {
    CHECK_FALSE(std::filesystem::exists(dir));
  }
  for (pid_t pid : pids) CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("RedisCluster reports what failed", "[redis]") {
  SECTION("a server that exits at once") {
    ::setenv("TABA_REDIS_SERVER", "/bin/false", 1);
    RedisCluster cluster;
    taba::Status st = cluster.start({.shards = 1, .replicas_per_shard = 0, .sentinels = 1});
    ::unsetenv("TABA_REDIS_SERVER");
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.message(), Catch::Contains("master of shard1"));
    CHECK_THAT(st.message(), Catch::Contains("exited before answering PING"));
  }
  SECTION("a failover without a replica, a dead port") {
    RedisCluster cluster;
    taba::Status st = cluster.start({.shards = 1, .replicas_per_shard = 0, .sentinels = 1});
    INFO(st.message());
    REQUIRE(st.ok());
    auto r = cluster.failover(0);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("NOGOODSLAVE"));
    CHECK_FALSE(cluster.master_port(1).ok());
    int port = cluster.node_ports(0)[0];
    REQUIRE(cluster.kill9(port).ok());
    auto refused = cluster.cli(port, {"PING"});
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.status().message(), Catch::Contains("Connection refused"));
  }
  std::string toml = RedisCluster().toml(10);
  CHECK(toml == "[redis]\nsentinels = []\nvbuckets = 10\n");
}
