#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

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
  CHECK(c.store.fsync == "always");
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

  Config v;
  v.store.fsync = "sometimes";
  CHECK(validate_config(v).message().find("store.fsync") != std::string::npos);
  Config r;
  r.server.roles = {"fe", "bogus"};
  CHECK(validate_config(r).message().find("unknown role 'bogus'") != std::string::npos);
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
