#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/config.h"

using namespace taba;

namespace {
std::string write_temp(const std::string& text) {
  char path[] = "/tmp/taba-config-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}
Status load(const std::string& text, Config* c) {
  std::string path = write_temp(text);
  Status s = load_config_file(path, c);
  std::remove(path.c_str());
  return s;
}
}  // namespace

TEST_CASE("config files set known keys", "[config]") {
  Config c;
  REQUIRE(load("[server]\nlisten = \"127.0.0.1:9000\"\nroles = [\"fe\", \"be\"]\n[store]\nfsync = \"always\"\n"
               "snapshot_interval_s = 5\n",
               &c)
              .ok());
  CHECK(c.server.listen == "127.0.0.1:9000");
  CHECK(c.store.fsync == FsyncPolicy::kAlways);
  CHECK(c.store.snapshot_interval_s == 5);
  CHECK(validate_config(c).ok());
}

TEST_CASE("config errors name the key path and the reason", "[config]") {
  Config c;
  Status s = load("[server]\nlisten = 8300\n", &c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("server.listen: must be a string, not an integer") != std::string::npos);
  s = load("[server]\nlisen = \"x\"\n", &c);
  CHECK(s.message().find("server.lisen: unknown key") != std::string::npos);
  s = load("[stor]\n", &c);
  CHECK(s.message().find("[stor]: unknown section") != std::string::npos);
  s = load("[store]\nsnapshot_interval_s = 0\n", &c);
  CHECK(s.message().find("store.snapshot_interval_s: must be between 1 and") != std::string::npos);
  s = load("[server\n", &c);
  CHECK_FALSE(s.ok());

  // Roles and fsync policies are read into enums as the file loads.
  Config v;
  s = load("[store]\nfsync = \"sometimes\"\n", &v);
  CHECK(s.message().find("store.fsync: must be \"always\" or \"everysec\", not \"sometimes\"") != std::string::npos);
  s = load("[agent]\nfsync = \"never\"\n", &v);
  CHECK(s.message().find("agent.fsync: must be \"always\" or \"everysec\", not \"never\"") != std::string::npos);
  Config r;
  s = load("[server]\nroles = [\"fe\", \"bogus\"]\n", &r);
  CHECK(s.message().find("server.roles: unknown role 'bogus' (expected client-proxy, agent, fe, be or ctrl)") !=
        std::string::npos);
  std::vector<Role> roles;
  CHECK(parse_roles({"client-proxy", "agent", "fe", "be", "ctrl"}, &roles).ok());
  CHECK(role_names(roles) == std::vector<std::string>{"client-proxy", "agent", "fe", "be", "ctrl"});
  CHECK(parse_fsync_policy("store.fsync", "Always", &v.store.fsync).message() ==
        "store.fsync: must be \"always\" or \"everysec\", not \"Always\"");

  // So is the log level.
  Config l;
  CHECK(l.server.log_level == log::Level::kInfo);
  REQUIRE(load("[server]\nlog_level = \"warn\"\n", &l).ok());
  CHECK(l.server.log_level == log::Level::kWarn);
  s = load("[server]\nlog_level = \"loud\"\n", &l);
  CHECK(s.message() == "server.log_level: must be debug, info, warn or error, not \"loud\"");
  CHECK(parse_log_level("debug", &l.server.log_level).ok());
  CHECK(l.server.log_level == log::Level::kDebug);
  CHECK(dump_config(l).find("log_level = \"debug\"") != std::string::npos);
}

TEST_CASE("config: client_proxy.forward_format is delta (the default) or v1", "[config]") {
  Config c;
  CHECK(c.client_proxy.forward_format == ForwardFormat::kDelta);
  REQUIRE(load("[client_proxy]\nforward_format = \"v1\"\n", &c).ok());
  CHECK(c.client_proxy.forward_format == ForwardFormat::kV1);
  CHECK(dump_config(c).find("forward_format = \"v1\"") != std::string::npos);
  REQUIRE(load("[client_proxy]\nforward_format = \"delta\"\n", &c).ok());
  CHECK(c.client_proxy.forward_format == ForwardFormat::kDelta);
  Config bad;
  Status s = load("[client_proxy]\nforward_format = \"deltas\"\n", &bad);
  CHECK(s.message().find("client_proxy.forward_format: must be \"delta\" or \"v1\", not \"deltas\"") !=
        std::string::npos);
}

TEST_CASE("config maps extra type names to plugins", "[config]") {
  Config c;
  REQUIRE(load("[plugins]\ntypes = { \"LatencyMs\" = \"CounterGroup\", \"Gauge\" = \"TotalsCounter\" }\n", &c).ok());
  REQUIRE(c.plugins.types.size() == 2);
  CHECK(validate_config(c).ok());
  CHECK(dump_config(c).find("types = { \"Gauge\" = \"TotalsCounter\", \"LatencyMs\" = \"CounterGroup\" }") !=
        std::string::npos);
  Config bad;
  Status s = load("[plugins]\ntypes = { \"X\" = 3 }\n", &bad);
  CHECK(s.message().find("plugins.types.X: must be a string, not an integer") != std::string::npos);
  Config badname;
  REQUIRE(load("[plugins]\ntypes = { \"a b\" = \"Gauge\" }\n", &badname).ok());
  CHECK(validate_config(badname).message().find("plugins.types.a b: a type name is") != std::string::npos);
}

namespace {
// A config with a [redis] section and the given shard tables; the status of
// loading and validating it.
Status load_redis(const std::string& shards, Config* c, const std::string& extra = "") {
  TABA_RETURN_IF_ERROR(
      load("[redis]\nsentinels = [\"127.0.0.1:26379\"]\nvbuckets = 8\n" + extra + shards, c));
  return validate_config(*c);
}
}  // namespace

TEST_CASE("config [redis] shards must cover every vbucket once", "[config][redis]") {
  Config c;
  REQUIRE(load_redis("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 3]\n[[redis.shards]]\nname = \"b\"\n"
                     "vbuckets = [4, 7]\n",
                     &c)
              .ok());
  CHECK(c.redis.enabled);
  REQUIRE(c.redis.shards.size() == 2);
  CHECK(c.redis.shards[1].name == "b");
  CHECK(c.redis.shards[1].first_vbucket == 4);
  CHECK(c.redis.shards[1].last_vbucket == 7);
  CHECK(dump_config(c).find("[[redis.shards]]\nname = \"b\"\nvbuckets = [4, 7]\n") != std::string::npos);

  auto error_of = [](const std::string& shards, const std::string& extra = "") {
    Config cc;
    return load_redis(shards, &cc, extra).message();
  };
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 3]\n[[redis.shards]]\nname = \"b\"\n"
                 "vbuckets = [5, 7]\n") == "redis.shards: vbuckets 4..4 belong to no shard");
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 4]\n[[redis.shards]]\nname = \"b\"\n"
                 "vbuckets = [4, 7]\n") == "redis.shards: shard \"b\" overlaps another shard at vbucket 4");
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 6]\n") ==
        "redis.shards: vbuckets 7..7 belong to no shard");
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 8]\n") ==
        "redis.shards: shard \"a\" has vbuckets [0, 8], not a range within 0..7");
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 3]\n[[redis.shards]]\nname = \"a\"\n"
                 "vbuckets = [4, 7]\n") == "redis.shards: shard \"a\" is listed twice");
  CHECK(error_of("") == "redis.shards: at least one [[redis.shards]] is required");
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0]\n").find(
            "redis.shards[0].vbuckets: must be [first, last]") != std::string::npos);
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 7]\nport = 1\n").find(
            "redis.shards[0].port: unknown key") != std::string::npos);
  CHECK(error_of("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 7]\n", "min_replica_acks = -1\n")
            .find("redis.min_replica_acks: must be between 0 and 64") != std::string::npos);
}

TEST_CASE("config [redis] lets fe, be and ctrl run apart, and checks sentinels", "[config][redis]") {
  Config c;
  REQUIRE(load_redis("[[redis.shards]]\nname = \"a\"\nvbuckets = [0, 7]\n", &c).ok());
  c.server.roles = {Role::kBe};
  CHECK(validate_config(c).ok());
  c.server.roles = {Role::kCtrl};
  CHECK(validate_config(c).ok());
  c.server.roles = {Role::kCtrl, Role::kFe};
  CHECK(validate_config(c).message().find("ctrl is the query-and-admin-only role") != std::string::npos);
  c.server.roles = {Role::kFe};
  c.redis.sentinels = {"localhost"};
  CHECK(validate_config(c).message() == "redis.sentinels[0]: \"localhost\" is not HOST:PORT");
  c.redis.sentinels.clear();
  CHECK(validate_config(c).message().find("redis.sentinels: at least one sentinel") != std::string::npos);

  Config embedded;
  embedded.server.roles = {Role::kFe};
  CHECK(validate_config(embedded).message().find("the embedded store runs fe and be in one process") !=
        std::string::npos);
}
