// A state its handler cannot serialize fails the snapshot, and the WAL that
// holds its events is kept, so a restart still has them.
#include <catch2/catch.hpp>

#include <csignal>
#include <ctime>
#include <filesystem>

#include "harness.h"

using namespace taba::test;

TEST_CASE("a snapshot that cannot serialize a state keeps the WAL", "[e2e][durability]") {
  std::string plugins = make_temp_dir("taba-failser");
  for (const char* so : {"counter_group.so", "totals_counter.so"}) {
    std::filesystem::create_symlink(std::string(TABA_TEST_PLUGIN_DIR) + "/" + so, plugins + "/" + so);
  }
  std::filesystem::create_symlink(std::string(TABA_TEST_BAD_PLUGIN_DIR) + "/fail_serialize.so",
                                  plugins + "/fail_serialize.so");
  TabadProcess p;
  REQUIRE(p.start({"--plugins-dir", plugins}).ok());
  double t = static_cast<double>(std::time(nullptr));
  auto r = p.post("/post", v1_body({{"c1", {{"bad", {event_line("FailSerialize", t, "1")}},
                                            {"good", {event_line("TotalsCounter", t, "4")}}}}}));
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);

  REQUIRE(p.signal(SIGTERM).ok());
  auto code = p.wait_exit(10000);
  REQUIRE(code.ok());
  CHECK(code.value() == 0);
  CHECK(p.log_text().find("final snapshot failed: the FailSerialize handler could not serialize a state") !=
        std::string::npos);
  CHECK_FALSE(std::filesystem::exists(p.data_dir() + "/snapshot"));

  REQUIRE(p.start({"--plugins-dir", plugins}).ok());
  CHECK(p.get("/names").value().body == "bad\ngood\n");
  CHECK(p.get("/tabs?name=good").value().body == "good: {\"count\": 1, \"total\": 4.00, \"average\": 4.00}\n");
  remove_tree(plugins);
}
