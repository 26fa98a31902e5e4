// Admin and operations routes on the embedded store, including that admin
// operations are logged: a kill -9 and WAL replay reach the same state.
#include <catch2/catch.hpp>

#include <csignal>

#include "admin_scenario.h"
#include "harness.h"

using namespace taba::test;

TEST_CASE("embedded store: delete, gc, check and flush, then kill -9 and replay", "[e2e][admin]") {
  TabadProcess p;
  REQUIRE(p.start({"--fsync", "always"}).ok());
  run_admin_scenario(p, p);

  std::string names_before = without_self(reply_body(p.get("/names")));
  std::string tabs_before = reply_body(p.get("/tabs?name=keep", "application/json"));
  p.kill9();
  TabadProcess again;
  REQUIRE(again.start({"--fsync", "always"}, p.data_dir()).ok());
  CHECK(without_self(reply_body(again.get("/names"))) == names_before);
  CHECK(without_self(reply_body(again.get("/clients"))) == "c1\nc2\n");
  CHECK(reply_body(again.get("/tabs?name=keep", "application/json")) == tabs_before);
}

TEST_CASE("embedded store: status, servers and latency describe the process", "[e2e][admin]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double now = static_cast<double>(std::time(nullptr));
  reply_body(p.post("/post", v1_body({{"c1", {{"n", {event_line("TotalsCounter", now, "1")}}}}})));

  std::string servers = reply_body(p.get("/servers", "application/json"));
  CHECK(servers.find(":" + std::to_string(p.port()) + "\": [\"fe\", \"be\"]") != std::string::npos);
  std::string status = reply_body(p.get("/status", "application/json"));
  CHECK(status.find("\"store\": \"embedded\"") != std::string::npos);
  CHECK(status.find("\"stream_length\": 0") != std::string::npos);
  std::string latency = reply_body(p.get("/latency", "application/json"));
  CHECK(latency.find("\"samples\": 1,") != std::string::npos);
  std::string text = reply_body(p.get("/status"));
  CHECK(text.find("store: embedded\n") != std::string::npos);
  reply_body(p.post("/status", ""), 405);
  reply_body(p.get("/readyz"));
}
