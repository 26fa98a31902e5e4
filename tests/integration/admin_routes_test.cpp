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
  CHECK(reply_body(p.get("/servers?verbose=1"), 400) ==
        "unknown parameter(s): verbose (this route takes none)\n");
  CHECK(reply_body(p.post("/gc?x=1", ""), 400) == "unknown parameter(s): x (this route takes none)\n");
  reply_body(p.get("/readyz"));
}

TEST_CASE("embedded store: a retried Taba-Batch-Id is applied once, across kill -9 and snapshots", "[e2e][dedup]") {
  TabadProcess p;
  REQUIRE(p.start({"--fsync", "always"}).ok());
  double now = static_cast<double>(std::time(nullptr));
  std::string body = v1_body({{"c1", {{"n", {event_line("TotalsCounter", now, "1")}}}}});
  auto total = [](const TabadProcess& q) { return reply_body(q.get("/tabs?name=n")); };
  const std::string once = "n: {\"count\": 1, \"total\": 1.00, \"average\": 1.00}\n";
  const std::string twice = "n: {\"count\": 2, \"total\": 2.00, \"average\": 1.00}\n";

  reply_body(p.post("/post", body, {{"Taba-Batch-Id", "agent-7-1"}}));
  reply_body(p.post("/post", body, {{"Taba-Batch-Id", "agent-7-1"}}));
  CHECK(total(p) == once);
  reply_body(p.post("/post", body));  // no id: a new batch each time
  CHECK(total(p) == twice);

  p.kill9();  // the id comes back from the WAL
  TabadProcess again;
  REQUIRE(again.start({"--fsync", "always"}, p.data_dir()).ok());
  reply_body(again.post("/post", body, {{"Taba-Batch-Id", "agent-7-1"}}));
  CHECK(total(again) == twice);

  REQUIRE(again.signal(SIGTERM).ok());  // a snapshot, then the id comes back from it
  REQUIRE(again.wait_exit(10'000).ok());
  TabadProcess third;
  REQUIRE(third.start({"--fsync", "always"}, p.data_dir()).ok());
  reply_body(third.post("/post", body, {{"Taba-Batch-Id", "agent-7-1"}}));
  CHECK(total(third) == twice);
  reply_body(third.post("/post", body, {{"Taba-Batch-Id", "agent-7-2"}}));
  CHECK(total(third) == "n: {\"count\": 3, \"total\": 3.00, \"average\": 1.00}\n");
}
