// The dedup horizon end to end (docs/api.md 4.3, docs/operations.md
// "Exactly once, and for how long"): the fe states how long it remembers a
// batch id (Taba-Dedup-Window) in its replies to /post, /post_zip and
// /post_delta; the agent remembers it per endpoint, and a batch it sends
// again close to or past that window carries Taba-Batch-Age and is counted
// and logged on both sides. A real fe with store.dedup_ttl_s = 2 behind a
// relay that loses the fe's answers to one batch.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "../unit/canned_http_server.h"
#include "agent_support.h"
#include "harness.h"
#include "protocol/delta_batch.h"

using namespace taba;
using namespace taba::test;

namespace {

// An fe (fe,be, embedded store) that remembers batch ids for 2 s.
std::string short_window_fe_config(const std::string& dir) {
  std::string path = dir + "/fe-short.toml";
  REQUIRE(write_text_file(path, "[server]\nself_tabs_interval_s = 0\n[store]\ndedup_ttl_s = 2\n").ok());
  return path;
}

}  // namespace

TEST_CASE("fe: every reply to /post, /post_zip and /post_delta states the dedup window, and a bad Taba-Batch-Age "
          "is refused",
          "[e2e][agent]") {
  TempDir dir("fe-window");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", short_window_fe_config(dir.path)}));
  std::string body = totals_body("wc", "window.name", 1, 1.0, now_s());
  auto ok = fe.post("/post", body);
  REQUIRE(status_of(ok) == 200);
  CHECK(ok->header("taba-dedup-window") == "2");
  auto zipped = fe.post("/post_zip", http::zlib_compress(body));
  REQUIRE(status_of(zipped) == 200);
  CHECK(zipped->header("taba-dedup-window") == "2");
  auto bad = fe.post("/post", "2\n\n");
  REQUIRE(status_of(bad) == 400);
  CHECK(bad->header("taba-dedup-window") == "2");
  auto delta = fe.post("/post_delta", protocol::wrap_delta_body("not a delta batch"),
                       {{"Content-Type", std::string(protocol::kDeltaContentType)}});
  REQUIRE(status_of(delta) == 400);
  CHECK(delta->header("taba-dedup-window") == "2");
  auto age = fe.post("/post", body, {{"Taba-Batch-Age", "soon"}});
  REQUIRE(status_of(age) == 400);
  CHECK(body_text(age) == "Taba-Batch-Age must be a whole number of seconds\n");
  CHECK(metric(metrics_of(fe), "taba_batches_past_dedup_window_total") == 0);
}

TEST_CASE("agent: a batch re-sent after the fe's dedup window is marked, counted and logged on both sides",
          "[e2e][agent]") {
  TempDir dir("agent-window");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", short_window_fe_config(dir.path)}));
  int fe_port = fe.port();
  // The relay loses the fe's answers to the posts of late.name while `lose`
  // is set (the fe applied them): the agent sends that batch again and again.
  std::atomic<bool> lose{true};
  std::atomic<bool> other_applied{false};
  std::mutex mu;
  std::vector<RawRequest> late;  // the posts of late.name, in order
  test::CannedHttpServer relay([&](const std::string& raw) {
    std::string response = exchange_raw(fe_port, raw);
    if (raw.find("late.name") != std::string::npos) {
      {
        std::lock_guard<std::mutex> lock(mu);
        late.push_back(parse_request(raw));
      }
      if (lose) return test::CannedHttpServer::Reply{"", true};
    }
    if (raw.find("other.name") != std::string::npos && response.rfind("HTTP/1.1 200", 0) == 0) other_applied = true;
    return test::CannedHttpServer::Reply{response, false};
  });
  auto late_posts = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return late;
  };
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, relay.port(),
                                                   "forward_concurrency = 1\ncompress_deltas = false\n")}));
  double t = now_s();
  // A first batch: the agent learns the window.
  REQUIRE(status_of(agent.post("/post", totals_body("lc", "first.name", 1, 1.0, t))) == 200);
  REQUIRE(wait_drained(agent, 10000));
  AgentStatus s = agent_status(agent);
  CHECK(s.raw.find("\"dedup_window_s\":2") != std::string::npos);
  CHECK(metric(metrics_of(agent), "taba_agent_endpoint_dedup_window_seconds{endpoint=\"127.0.0.1:" +
                                      std::to_string(relay.port()) + "\"}") == 2);

  REQUIRE(status_of(agent.post("/post", totals_body("lc", "late.name", 3, 2.0, t))) == 200);
  REQUIRE(eventually([&] { return !late_posts().empty(); }, 5000));
  // Once the window has passed, another batch makes the fe forget the first
  // one's id (the embedded store forgets ids as newer ones come).
  sleep_ms(3000);
  REQUIRE(status_of(agent.post("/post", totals_body("lc", "other.name", 1, 1.0, t))) == 200);
  REQUIRE(eventually([&] { return other_applied.load(); }, 10000));
  REQUIRE(eventually(
      [&] {
        std::vector<RawRequest> seen = late_posts();
        return !seen.empty() && !seen.back().header("taba-batch-age").empty();
      },
      10000));
  lose = false;
  REQUIRE(wait_drained(agent, 15000));

  std::vector<RawRequest> seen = late_posts();
  REQUIRE(seen.size() >= 2);
  CHECK(seen.front().header("taba-batch-age").empty());  // its first send
  int marked = 0;
  for (const RawRequest& r : seen) {
    CHECK(r.header("taba-batch-id") == seen.front().header("taba-batch-id"));
    if (r.header("taba-batch-age").empty()) continue;
    ++marked;
    CHECK(std::stoi(r.header("taba-batch-age")) >= 1);  // the window less its margin (a second)
  }
  CHECK(marked >= 1);

  // Counted on both sides: once per batch by the agent, per marked post by the fe.
  std::string agent_metrics = metrics_of(agent);
  CHECK(metric(agent_metrics, "taba_agent_batches_past_dedup_window_total") == 1);
  CHECK(agent_status(agent).raw.find("\"past_dedup_window\":1") != std::string::npos);
  CHECK(agent.log_text().find("was sent again") != std::string::npos);
  CHECK(metric(metrics_of(fe), "taba_batches_past_dedup_window_total") == marked);
  CHECK(fe.log_text().find("(Taba-Batch-Age), near or past the dedup window (2 s)") != std::string::npos);

  // Still applied: past the window the fe had forgotten its id, so the
  // batch it had applied before counts twice. That is the case now visible.
  fe_flush(fe);
  auto got = tabs_json(fe, "name=first.name,late.name,other.name");
  CHECK(got["first.name"].count == 1);
  CHECK(got["other.name"].count == 1);
  CHECK(got["late.name"].count == 6);
}
