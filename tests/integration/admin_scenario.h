// The admin and operations routes exercised against a running deployment;
// shared by the embedded-store and Redis-store tests, which must behave alike.
#pragma once

#include <catch2/catch.hpp>

#include <ctime>
#include <string>

#include "harness.h"

namespace taba::test {

inline std::string reply_body(const Result<http::ClientResponse>& r, int want_status = 200) {
  REQUIRE(r.ok());
  INFO(r.value().body);
  CHECK(r.value().status == want_status);
  return r.value().body;
}

// Drops the lines of a /names or /clients reply that the servers' own
// self-instrumentation adds (taba_* names, "host:port" client IDs).
inline std::string without_self(const std::string& lines) {
  std::string out;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t end = lines.find('\n', pos);
    if (end == std::string::npos) end = lines.size();
    std::string line = lines.substr(pos, end - pos);
    if (line.rfind("taba_", 0) != 0 && line.find(':') == std::string::npos) out += line + "\n";
    pos = end + 1;
  }
  return out;
}

// `ingest` posts, `query` answers queries and admin routes (the same process
// for the embedded store; an fe and a ctrl for Redis).
inline void run_admin_scenario(const TabadProcess& ingest, const TabadProcess& query) {
  double now = static_cast<double>(std::time(nullptr));
  double old = now - 3 * 86400;
  auto body = v1_body({{"c1",
                        {{"keep", {event_line("CounterGroup", now, "1"), event_line("CounterGroup", now, "2")}},
                         {"old", {event_line("CounterGroup", old, "5")}},
                         {"drop.me", {event_line("TotalsCounter", now, "7")}}}},
                       {"c2",
                        {{"keep", {event_line("CounterGroup", now, "3")}},
                         {"old", {event_line("CounterGroup", old, "5")}},
                         {"drop.too", {event_line("TotalsCounter", now, "1")}}}}});
  reply_body(ingest.post("/post", body));
  std::string flushed = reply_body(query.post("/flush", ""));
  CHECK(flushed.find("waited_ms: ") != std::string::npos);
  CHECK(without_self(reply_body(query.get("/names"))) == "drop.me\ndrop.too\nkeep\nold\n");

  std::string check = reply_body(query.post("/check", ""));
  INFO("check: " << check);
  CHECK(check.find("problems: 0\n") != std::string::npos);
  CHECK(check.find("names_checked: ") != std::string::npos);

  std::string gc = reply_body(query.post("/gc", ""));
  INFO("gc: " << gc);
  CHECK(gc.find("states_pruned: 2\n") != std::string::npos);
  CHECK(gc.find("names_removed: 1\n") != std::string::npos);
  CHECK(without_self(reply_body(query.get("/names"))) == "drop.me\ndrop.too\nkeep\n");

  reply_body(query.get("/delete?name=drop.me"), 405);
  std::string no_name = reply_body(query.post("/delete", ""), 400);
  CHECK(no_name.find("needs name=") != std::string::npos);
  reply_body(query.post("/check?dry=maybe", ""), 400);
  std::string deleted = reply_body(query.post("/delete?name=drop%5C..*&re=1", ""));
  CHECK(deleted.find("names_deleted: 2\n") != std::string::npos);
  CHECK(deleted.find("states_deleted: 2\n") != std::string::npos);
  CHECK(without_self(reply_body(query.get("/names"))) == "keep\n");
  CHECK(without_self(reply_body(query.get("/clients"))) == "c1\nc2\n");
  CHECK(reply_body(query.get("/names?client=c2")) == "keep\n");
  std::string tabs = reply_body(query.get("/tabs?name=keep", "application/json"));
  CHECK(tabs.find("\"count\": 3") != std::string::npos);

  std::string again = reply_body(query.post("/check?dry=false", "", {}), 200);
  CHECK(again.find("problems: 0\n") != std::string::npos);
  std::string json = reply_body(query.post("/gc", "", {{"Accept", "application/json"}}));
  CHECK(json == "{\"states_pruned\": 0, \"names_removed\": 0, \"names_busy\": 0, \"details\": []}");
}

}  // namespace taba::test
