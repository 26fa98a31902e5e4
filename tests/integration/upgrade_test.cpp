// Stores written by the previous release (tests/fixtures/upgrade, made with
// that release's binaries by make_fixtures.sh) served by this build: the
// values of Gauge, ExpiryGauge and Buffer states of state version 1 are
// canonicalized when read, new events of the same values join them, and
// what this build writes back reads again. Gauge renders are not checked
// here (its entries expire 48 h after the fixture's events, so they depend
// on the date); tests/unit/upgrade_states_test.cpp renders them at the
// fixture's time. Everything checked here expires in 2100.
#include <hiredis/hiredis.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../fixtures/upgrade/redis_keys.h"
#include "harness.h"
#include "redis_harness.h"

using namespace taba::test;

namespace {

constexpr double kFarExpiry = 4102444800;  // make_fixtures.sh's expiries

int64_t t0() {
  return static_cast<int64_t>(upgrade_event_time());
}

std::string tabs(const TabadProcess& p, const std::string& name) {
  auto r = p.get("/tabs?name=" + name);
  REQUIRE(r.ok());
  INFO(r.value().body);
  REQUIRE(r.value().status == 200);
  return r.value().body;
}

// What the fixture's states render as, read by this build.
void check_upgraded(const TabadProcess& p) {
  const std::string t = std::to_string(t0());
  CHECK(tabs(p, "region") == "region: {\"Z\xc3\xbcrich\": 2, \"a/b\": 2}\n");
  CHECK(tabs(p, "level") == "level: {\"1.5\": 3}\n");
  CHECK(tabs(p, "log") == "log: [[\"Z\xc3\xbcrich\", " + std::to_string(t0() + 2) +
                              "], [{\"k\":1.5,\"city\":\"Z\xc3\xbcrich\"}, " + std::to_string(t0() + 1) +
                              "], [\"a/b\", " + t + "], [\"a/b\", " + t + "]]\n");
  // A Set's states hold hashes, which cannot be canonicalized: the four
  // spellings stay four members.
  CHECK(tabs(p, "members") == "members: {\"count\": 4}\n");
  // The Gauge states were read too (their renders depend on the date).
  auto types = p.get("/types?name=city,path,ratio");
  REQUIRE(types.ok());
  CHECK(types.value().body == "city: Gauge\npath: Gauge\nratio: Gauge\n");
}

// A new client sends the values again, spelled in yet another way.
std::string new_events_body() {
  const double t3 = static_cast<double>(t0() + 3);
  const std::string expiry = std::to_string(static_cast<int64_t>(kFarExpiry));
  return v1_body({{"web5",
                   {{"region", {event_line("ExpiryGauge", t3, R"(["Z\u00fcrich", )" + expiry + "]")}},
                    {"level", {event_line("ExpiryGauge", t3, "[150e-2, " + expiry + "]")}},
                    {"members",
                     {event_line("Set", t3, R"("\u0061")"), event_line("Set", t3, "1.50"),
                      event_line("Set", t3, R"("b")")}},
                    {"log", {event_line("Buffer", t3, R"(["a\/b", )" + expiry + "]")}}}}});
}

// They join the upgraded values: one key each, counts summed.
void check_joined(const TabadProcess& p) {
  const std::string t = std::to_string(t0());
  CHECK(tabs(p, "region") == "region: {\"Z\xc3\xbcrich\": 3, \"a/b\": 2}\n");
  CHECK(tabs(p, "level") == "level: {\"1.5\": 4}\n");
  CHECK(tabs(p, "log") == "log: [[\"a/b\", " + std::to_string(t0() + 3) + "], [\"Z\xc3\xbcrich\", " +
                              std::to_string(t0() + 2) + "], [{\"k\":1.5,\"city\":\"Z\xc3\xbcrich\"}, " +
                              std::to_string(t0() + 1) + "], [\"a/b\", " + t + "], [\"a/b\", " + t + "]]\n");
  // "a" and 1.5 were held in canonical form: only "b" is new.
  CHECK(tabs(p, "members") == "members: {\"count\": 5}\n");
}

void post_new_events(const TabadProcess& p) {
  auto r = p.post("/post", new_events_body());
  REQUIRE(r.ok());
  INFO(r.value().body);
  REQUIRE(r.value().status == 200);
  auto f = p.post("/flush", "");
  REQUIRE(f.ok());
  REQUIRE(f.value().status == 200);
}

struct RedisContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct RedisReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyFree>;

RedisReplyPtr redis_command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  RedisReplyPtr reply(
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())));
  INFO(args[0] << " " << args[1] << ": " << (c->err != 0 ? c->errstr : ""));
  REQUIRE(reply != nullptr);
  INFO((reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len) : ""));
  REQUIRE(reply->type != REDIS_REPLY_ERROR);
  return reply;
}

// The u32 state version in front of a stored state.
uint32_t stored_version(redisContext* c, const std::string& key) {
  RedisReplyPtr r = redis_command(c, {"GET", key});
  REQUIRE(r->type == REDIS_REPLY_STRING);
  REQUIRE(r->len >= 4);
  const auto* b = reinterpret_cast<const unsigned char*>(r->str);
  return b[0] | b[1] << 8 | b[2] << 16 | static_cast<uint32_t>(b[3]) << 24;
}

void wait_ready(const TabadProcess& p) {
  for (int i = 0; i < 150; ++i) {
    auto r = p.get("/readyz");
    if (r.ok() && r.value().status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("tabad never became ready:\n" << p.log_text());
}

}  // namespace

TEST_CASE("upgrade: an embedded store of the previous release is read with canonical values",
          "[upgrade][e2e]") {
  TempDir dir("tabad-upgrade");
  const std::string data = dir.path + "/data";
  std::filesystem::copy(upgrade_fixture_dir() + "/embedded", data);
  TabadProcess p;
  REQUIRE_OK(p.start({}, data));
  check_upgraded(p);
  post_new_events(p);
  check_joined(p);
  // The snapshot written at exit holds this build's state versions; it
  // reads back the same.
  REQUIRE_OK(p.signal(SIGTERM));
  auto exit = p.wait_exit(20'000);
  REQUIRE(exit.ok());
  REQUIRE(exit.value() == 0);
  REQUIRE_OK(p.start({}, data));
  check_joined(p);
  CHECK(p.log_text().find("unreadable") == std::string::npos);
}

TEST_CASE("upgrade: Redis states of the previous release are read, joined and rewritten canonical",
          "[upgrade][redis][e2e]") {
  RedisCluster cluster;
  RedisCluster::Options options;
  options.shards = 1;
  options.replicas_per_shard = 0;
  options.sentinels = 1;
  options.quorum = 1;
  REQUIRE_OK(cluster.start(options));
  auto master = cluster.master_port(0);
  REQUIRE(master.ok());
  std::unique_ptr<redisContext, RedisContextFree> redis(redisConnect("127.0.0.1", master.value()));
  REQUIRE(redis != nullptr);
  REQUIRE(redis->err == 0);
  // The keys as the previous release wrote them (one shard: all of them).
  for (const RedisElement& e : read_redis_keys()) {
    if (e.command == "HSET") {
      redis_command(redis.get(), {"HSET", e.key, e.field, e.value});
    } else {
      redis_command(redis.get(), {e.command, e.key, e.value});
    }
  }
  CHECK(stored_version(redis.get(), "taba:a:region") == 1);

  TempDir dir("tabad-upgrade-redis");
  const std::string config = dir.path + "/taba.toml";
  std::ofstream(config) << "[server]\nself_tabs_interval_s = 0\n\n" << cluster.toml(1024);
  TabadProcess p;
  REQUIRE_OK(p.start({"--config", config, "--role", "fe,be"}));
  wait_ready(p);
  check_upgraded(p);  // read and canonicalized at query time
  post_new_events(p);
  check_joined(p);
  // The be wrote the states it merged into back in this build's version.
  CHECK(stored_version(redis.get(), "taba:a:region") == 2);
  CHECK(stored_version(redis.get(), "taba:a:log") == 2);
  CHECK(stored_version(redis.get(), "taba:a:members") == 1);  // Set keeps version 1
}
