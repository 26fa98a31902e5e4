// The agent role (docs/operations.md, "An agent on every host") end to end: real fe and agent processes on
// loopback, no mocks. Every test counts exactly what the fe ends up with.
//
// Events are TotalsCounter (all-time count and total) or read from a
// CounterGroup's all-time "pct" part wherever time passes between posting
// and querying, so that no window can drop them.
#include <catch2/catch.hpp>
#include <dirent.h>
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent_support.h"
#include "harness.h"
#include "http/client.h"

using namespace taba;
using namespace taba::test;

TEST_CASE("agent: plain, zlib and gzip posts arrive exactly, a refused block is a dead letter, a repeated batch id counts once",
          "[e2e][agent]") {
  TempDir dir("agent-basic");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port())}));
  double t = now_s();

  // Two clients in one plain body.
  std::string a = v1_body({{"c1",
                            {{"b.cnt", {event_line("CounterGroup", t, "12.5"), event_line("CounterGroup", t, "3")}},
                             {"b.tot", {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "2")}}}},
                           {"c2", {{"b.cnt", {event_line("CounterGroup", t, "4")}},
                                   {"b.tot", {event_line("TotalsCounter", t, "10")}}}}});
  auto ra = agent.post("/post", a);
  INFO(body_text(ra));
  CHECK(status_of(ra) == 200);
  // zlib without Content-Encoding, as the original agent sends.
  std::string b = v1_body({{"c3", {{"b.cnt", {event_line("CounterGroup", t, "0.5"), event_line("CounterGroup", t, "100")}},
                                   {"b.tot", {event_line("TotalsCounter", t, "5")}}}}});
  CHECK(status_of(agent.post("/post_zip", http::zlib_compress(b))) == 200);
  // gzip on /post.
  std::string c = v1_body({{"c4", {{"b.tot", {event_line("TotalsCounter", t, "7")}}}}});
  CHECK(status_of(agent.post("/post", http::gzip_compress(c), {{"Content-Encoding", "gzip"}})) == 200);

  // Line 6 is good, line 7 is not: nothing of their block may arrive, and
  // as the body has no other block it is refused (400) and kept as a dead
  // letter.
  std::string bad = v1_body({{"c5", {{"b.bad", {event_line("TotalsCounter", t, "1"), "[\"TotalsCounter\", 1, 5]"}}}}});
  auto rb = agent.post("/post", bad, {{"Taba-Batch-Id", "client/../bad-1"}});
  REQUIRE(rb.ok());
  CHECK(rb->status == 400);
  CHECK(rb->body.rfind("line 7: ", 0) == 0);
  CHECK(rb->body.find('\n') == rb->body.size() - 1);
  CHECK(rb->header("taba-refused-blocks") == "1");
  auto rz = agent.post("/post_zip", "this is not zlib");
  CHECK(status_of(rz) == 400);

  // The same Taba-Batch-Id twice (a client retrying after a lost 200), once
  // plain and once compressed: spooled once.
  std::string dup = v1_body({{"c6", {{"b.dup", {event_line("TotalsCounter", t, "2"), event_line("TotalsCounter", t, "3")}}}}});
  CHECK(status_of(agent.post("/post", dup, {{"Taba-Batch-Id", "itest-dup-0001"}})) == 200);
  CHECK(status_of(agent.post("/post_zip", http::zlib_compress(dup), {{"Taba-Batch-Id", "itest-dup-0001"}})) == 200);

  REQUIRE(wait_drained(agent, 15000));
  fe_flush(fe);
  // /status is JSON for the parameter format=json, not for any parameter
  // whose text contains it.
  auto text_status = test::get(agent.url(), "/status?xformat=json", "", 3000);
  REQUIRE(text_status.ok());
  CHECK(text_status->body.rfind('{', 0) == std::string::npos);
  auto json_status = test::get(agent.url(), "/status?a=1&format=json", "", 3000);
  REQUIRE(json_status.ok());
  CHECK(json_status->body.rfind('{', 0) == 0);

  auto cnt = tabs_json(fe, "name=b.cnt", "/pct/count", "/pct/total");
  REQUIRE(cnt.count("b.cnt") == 1);
  CHECK(cnt["b.cnt"].count == 5);
  CHECK(cnt["b.cnt"].total == Approx(120.0).margin(1e-9));
  // The 1m window of a fresh post holds them all too.
  auto cnt1m = tabs_json(fe, "name=b.cnt", "/1m/count", "/1m/total");
  CHECK(cnt1m["b.cnt"].count == 5);
  CHECK(cnt1m["b.cnt"].total == Approx(120.0).margin(1e-9));
  auto tot = tabs_json(fe, "name=b.tot,b.dup");
  CHECK(tot["b.tot"].count == 5);
  CHECK(tot["b.tot"].total == Approx(25.0).margin(1e-9));
  CHECK(tot["b.dup"].count == 2);
  CHECK(tot["b.dup"].total == Approx(5.0).margin(1e-9));
  CHECK(body_text(fe.get("/names")) == "b.cnt\nb.dup\nb.tot\n");
  CHECK(body_text(fe.get("/clients")) == "c1\nc2\nc3\nc4\nc6\n");

  AgentStatus s = agent_status(agent);
  INFO(s.raw);
  REQUIRE(s.ok);
  CHECK(s.accepted == 5);
  CHECK(s.rejected == 2);
  CHECK(s.duplicates == 1);
  CHECK(s.forwarded_events == 12);
  // The refused block, named after the post's batch id (its '/' and '.'
  // made safe for a file name), with its reason.
  CHECK(s.dead_batches == 1);
  CHECK(s.dead_events == 2);
  std::string dl_dir = agent.data_dir() + "/dead-letters";
  std::vector<std::string> letters = list_dir(dl_dir);
  INFO(fmt::format("{}", fmt::join(letters, " ")));
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].rfind("dl-refused-client____bad-1-", 0) == 0);
  std::string letter_v1 = ends_with(letters[0], ".v1") ? letters[0] : letters[1];
  std::string letter_reason = ends_with(letters[0], ".v1") ? letters[1] : letters[0];
  // The good first line as read back from the batch, the bad one as sent.
  CHECK(read_file(dl_dir + "/" + letter_v1) ==
        v1_body({{"c5", {{"b.bad", {fmt::format("[\"TotalsCounter\",{},\"1\"]", t), "[\"TotalsCounter\", 1, 5]"}}}}}));
  CHECK(read_file(dl_dir + "/" + letter_reason).find("line 7: ") != std::string::npos);
  CHECK(s.ep_state == "up");
  std::string metrics = body_text(agent.get("/metrics"));
  CHECK(metric(metrics, "taba_agent_duplicate_posts_total") == 1);
  CHECK(metric(metrics, "taba_agent_events_forwarded_total") == 12);
  CHECK(metrics.find("taba_agent_blocks_refused_total{kind=\"event\"} 1\n") != std::string::npos);
  CHECK(metric(metrics, "taba_agent_events_refused_total") == 2);
}

TEST_CASE("agent: with the fe down for 30 s every accepted event is spooled, then forwarded exactly once",
          "[e2e][agent][slow]") {
  TempDir dir("agent-outage");
  int fe_port = free_port();
  REQUIRE(fe_port != 0);
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe_port)}));
  int64_t outage_start = now_ms();
  double t = now_s();

  // 200 bodies x 50 events: 2 clients x 5 names x 5 events each, values
  // varying per body.
  constexpr int kBodies = 200;
  std::map<std::string, Agg> expected;
  std::set<std::string> clients;
  int refused = 0;
  {
    auto conn = http::ClientConnection::connect("127.0.0.1", agent.port(), 5000);
    REQUIRE(conn.ok());
    for (int i = 0; i < kBodies; ++i) {
      double value = i % 7 + 1;
      std::vector<ClientBlock> cbs;
      for (int c : {i % 10, (i + 3) % 10}) {
        ClientBlock cb{fmt::format("o-c{}", c), {}};
        clients.insert(cb.client);
        for (int n = 0; n < 5; ++n) {
          NameBlock nb{fmt::format("o.n{}", n), {}};
          for (int e = 0; e < 5; ++e) nb.event_lines.push_back(event_line("TotalsCounter", t, fmt::format("{}", value)));
          Agg& x = expected[nb.name];
          x.count = (x.count < 0 ? 0 : x.count) + 5;
          x.total = (x.total < 0 ? 0 : x.total) + 5 * value;
          cb.names.push_back(std::move(nb));
        }
        cbs.push_back(std::move(cb));
      }
      auto r = conn->request("POST", "/post", {}, v1_body(cbs), 5000);
      if (!r.ok() || r->status != 200) ++refused;
    }
  }
  REQUIRE(refused == 0);

  // Spooled, and the endpoint backs off.
  AgentStatus s;
  bool backing_off = eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.ep_state == "backoff" && s.ep_consecutive > 0;
      },
      5000);
  INFO(s.raw);
  CHECK(backing_off);
  CHECK(s.spool_events == kBodies * 50);
  CHECK(s.spool_batches >= 1);
  CHECK(s.accepted == kBodies);
  CHECK(s.forwarded_events == 0);
  CHECK(s.ep_failures > 0);
  CHECK_FALSE(s.ep_last_error.empty());
  std::string text = body_text(agent.get("/status"));
  CHECK(text.find(fmt::format("events   {} in ", kBodies * 50)) != std::string::npos);
  CHECK(text.find("127.0.0.1:" + std::to_string(fe_port)) != std::string::npos);
  CHECK(metric(body_text(agent.get("/metrics")), fmt::format("taba_agent_endpoint_up{{endpoint=\"127.0.0.1:{}\"}}", fe_port)) ==
        0);

  // The fe comes up after 30 s on the port the agent was told.
  int64_t left = outage_start + 30'000 - now_ms();
  if (left > 0) sleep_ms(static_cast<int>(left));
  TabadProcess fe;
  REQUIRE_OK(fe.start_on_port(fe_port, {"--config", fe_config(dir.path)}));
  int64_t up_at = now_ms();
  REQUIRE(wait_drained(agent, 20000));
  INFO("drained " << now_ms() - up_at << " ms after the fe came up");
  fe_flush(fe);

  auto got = tabs_json(fe, "name=o.n.*&re=1");
  CHECK(got.size() == expected.size());
  for (const auto& [name, want] : expected) {
    INFO(name);
    REQUIRE(got.count(name) == 1);
    CHECK(got[name].count == want.count);
    CHECK(got[name].total == Approx(want.total).margin(1e-6));
  }
  std::string want_clients;
  for (const std::string& c : clients) want_clients += c + "\n";
  CHECK(body_text(fe.get("/clients")) == want_clients);
  s = agent_status(agent);
  CHECK(s.forwarded_events == kBodies * 50);
  CHECK(s.dead_batches == 0);
  CHECK(s.ep_state == "up");
}

TEST_CASE("agent: kill -9 under load loses no acknowledged post and counts none twice", "[e2e][agent]") {
  TempDir dir("agent-kill9");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  std::string config = agent_config(dir.path, fe.port());
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", config}));
  std::string agent_url = agent.url();

  // Each body has its own name, so every name must end up with 0 or all of
  // its events, and an acknowledged one with all of them.
  struct Sent {
    std::string name;
    int events = 0;
    int status = 0;  // -1: no answer
  };
  constexpr int kThreads = 2;
  constexpr int kMaxPerThread = 4000;
  std::vector<std::vector<Sent>> sent(kThreads);
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::vector<std::thread> load;
  double t = now_s();
  for (int k = 0; k < kThreads; ++k) {
    load.emplace_back([&, k] {
      for (int j = 0; j < kMaxPerThread && !stop.load(); ++j) {
        Sent s{fmt::format("k9_{}_{}", k, j), 1 + j % 5, 0};
        auto r = test::post(agent_url, "/post", totals_body(fmt::format("k9c{}", k), s.name, s.events, 1, t), {}, 5000);
        s.status = r.ok() ? r->status : -1;
        if (s.status == 200) ++acked;
        sent[static_cast<size_t>(k)].push_back(std::move(s));
        if (!r.ok()) break;  // the agent is gone
      }
    });
  }
  // Mid-stream: after some posts were acknowledged and forwarding is busy.
  bool loaded = eventually([&] { return acked.load() >= 400; }, 10000);
  agent.kill9();
  stop = true;
  for (std::thread& th : load) th.join();
  REQUIRE(loaded);
  auto code = agent.wait_exit(5000);
  REQUIRE(code.ok());
  CHECK(code.value() == 128 + SIGKILL);

  // Restarted on the same data directory, it forwards what it had spooled.
  REQUIRE_OK(agent.start({"--config", config}));
  REQUIRE(wait_drained(agent, 20000));
  fe_flush(fe);
  auto got = tabs_json(fe, "name=k9_.*&re=1");

  double acked_events = 0, unanswered_events = 0, total = 0;
  int n_acked = 0, n_unanswered = 0, n_other = 0;
  std::set<std::string> names;
  for (const auto& per_thread : sent) {
    for (const Sent& s : per_thread) {
      names.insert(s.name);
      auto it = got.find(s.name);
      INFO(s.name << " answered " << s.status);
      if (s.status == 200) {
        ++n_acked;
        acked_events += s.events;
        REQUIRE(it != got.end());
        CHECK(it->second.count == s.events);
      } else if (s.status == -1) {
        ++n_unanswered;
        unanswered_events += s.events;
        if (it != got.end()) CHECK(it->second.count == s.events);
      } else {
        ++n_other;  // refused: must not be there
        CHECK(it == got.end());
      }
    }
  }
  for (const auto& [name, agg] : got) {
    INFO(name);
    CHECK(names.count(name) == 1);
    CHECK(agg.count == agg.total);  // every event is 1
    total += agg.count;
  }
  INFO(n_acked << " acknowledged, " << n_unanswered << " unanswered, " << n_other << " refused");
  CHECK(n_acked >= 400);
  CHECK(total >= acked_events);
  CHECK(total <= acked_events + unanswered_events);
  AgentStatus s = agent_status(agent);
  CHECK(s.dead_batches == 0);
}

TEST_CASE("agent: a full spool answers 503 with Retry-After and everything it acknowledged arrives once",
          "[e2e][agent]") {
  TempDir dir("agent-cap");
  int fe_port = free_port();
  REQUIRE(fe_port != 0);
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe_port, "spool_max_bytes = 1048576\n")}));
  double t = now_s();

  // ~4.5 KB bodies, each its own name, until the spool refuses one.
  constexpr int kEvents = 100;
  std::vector<int> status;
  int first_full = -1;
  std::string retry_after, full_reason;
  auto conn = http::ClientConnection::connect("127.0.0.1", agent.port(), 5000);
  REQUIRE(conn.ok());
  for (int i = 0; i < 2000; ++i) {
    auto r = conn->request("POST", "/post", {}, totals_body("capc", fmt::format("cap_{}", i), kEvents, 1, t), 5000);
    REQUIRE(r.ok());
    status.push_back(r->status);
    if (r->status != 200) {
      REQUIRE(r->status == 503);
      if (first_full < 0) {
        first_full = i;
        retry_after = std::string(r->header("retry-after"));
        full_reason = r->body;
      }
      if (i >= first_full + 5) break;
    }
  }
  INFO("first 503 at post " << first_full << ": " << full_reason);
  REQUIRE(first_full > 100);  // ~1 MiB of ~4.5 KB posts
  CHECK(retry_after == "1");
  CHECK(full_reason.find("spool is full") != std::string::npos);
  // Nothing leaves the spool while the fe is down: every later post is refused too.
  for (size_t i = static_cast<size_t>(first_full); i < status.size(); ++i) CHECK(status[i] == 503);
  CHECK(status_of(agent.get("/readyz")) == 503);
  CHECK(metric(body_text(agent.get("/metrics")), "taba_agent_spool_full_total") == 6);
  AgentStatus s = agent_status(agent);
  CHECK(s.refused_full == 6);
  CHECK(s.spool_bytes <= 1048576);
  CHECK(s.spool_events == static_cast<uint64_t>(first_full) * kEvents);

  TabadProcess fe;
  REQUIRE_OK(fe.start_on_port(fe_port, {"--config", fe_config(dir.path)}));
  REQUIRE(wait_drained(agent, 30000));
  fe_flush(fe);
  auto got = tabs_json(fe, "name=cap_.*&re=1");
  CHECK(got.size() == static_cast<size_t>(first_full));
  for (size_t i = 0; i < status.size(); ++i) {
    std::string name = fmt::format("cap_{}", i);
    INFO(name << " answered " << status[i]);
    if (status[i] == 200) {
      REQUIRE(got.count(name) == 1);
      CHECK(got[name].count == kEvents);
    } else {
      CHECK(got.count(name) == 0);
    }
  }
  // Room again.
  CHECK(status_of(agent.post("/post", totals_body("capc", "cap_after", 1, 1, t))) == 200);
  CHECK(status_of(agent.get("/readyz")) == 200);
}

TEST_CASE("agent: a block the fe refuses goes to the dead letters alone, the rest of its batch arrives",
          "[e2e][agent]") {
  TempDir dir("agent-dead");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  double t = now_s();
  // The fe binds dl_bound to CounterGroup.
  REQUIRE(status_of(fe.post("/post", v1_body({{"direct", {{"dl_bound", {event_line("CounterGroup", t, "5")}}}}}))) ==
          200);

  // One sealed batch for all four posts (sealed 2 s after the first).
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port(), "flush_interval_ms = 2000\n")}));
  std::string good1 = totals_body("dla", "dl_good1", 4, 1, t);
  // The agent cannot know the fe's binding: it accepts this.
  std::string bad = v1_body({{"dlb", {{"dl_bound", {event_line("Gauge", t, "\"red\"")}}}}});
  std::string good2 = totals_body("dlc", "dl_good2", 3, 2, t);
  std::string good3 = v1_body({{"dld", {{"dl_good3", {event_line("TotalsCounter", t, "10"), event_line("TotalsCounter", t, "20")}},
                                        {"dl_good1", {event_line("TotalsCounter", t, "1")}}}}});
  for (const std::string* b : {&good1, &bad, &good2, &good3}) CHECK(status_of(agent.post("/post", *b)) == 200);

  AgentStatus s;
  bool settled = eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.spool_events == 0 && s.spool_batches == 0 && s.in_flight == 0 && s.dead_batches >= 1;
      },
      15000);
  INFO(s.raw);
  REQUIRE(settled);
  fe_flush(fe);

  // The good posts arrived, exactly.
  auto got = tabs_json(fe, "name=dl_good.*&re=1");
  CHECK(got["dl_good1"].count == 5);
  CHECK(got["dl_good1"].total == Approx(5.0));
  CHECK(got["dl_good2"].count == 3);
  CHECK(got["dl_good2"].total == Approx(6.0));
  CHECK(got["dl_good3"].count == 2);
  CHECK(got["dl_good3"].total == Approx(30.0));
  auto bound = tabs_json(fe, "name=dl_bound", "/pct/count", "/pct/total");
  CHECK(bound["dl_bound"].count == 1);
  CHECK(body_text(fe.get("/types?name=dl_bound")) == "dl_bound: CounterGroup\n");
  CHECK(body_text(fe.get("/clients")) == "direct\ndla\ndlc\ndld\n");

  // Only the refused post is in the dead letters, with its reason.
  CHECK(s.dead_batches == 1);
  CHECK(s.dead_events == 1);
  CHECK(s.forwarded_events == 10);
  std::string dl_dir = agent.data_dir() + "/dead-letters";
  std::vector<std::string> files = list_dir(dl_dir);
  INFO(fmt::format("{}", fmt::join(files, " ")));
  std::vector<std::string> v1, reasons;
  for (const std::string& f : files) {
    if (f.rfind("dl-", 0) == 0 && ends_with(f, ".v1")) v1.push_back(f);
    if (f.rfind("dl-", 0) == 0 && ends_with(f, ".reason")) reasons.push_back(f);
  }
  REQUIRE(v1.size() == 1);
  REQUIRE(reasons.size() == 1);
  CHECK(files.size() == 2);
  CHECK(reasons[0] == v1[0].substr(0, v1[0].size() - 3) + ".reason");
  std::string letter = read_file(dl_dir + "/" + v1[0]);
  INFO(letter);
  CHECK(letter.find("dl_bound") != std::string::npos);
  CHECK(letter.find("\"Gauge\"") != std::string::npos);
  CHECK(letter.find("dlb") != std::string::npos);
  CHECK(letter.find("dl_good") == std::string::npos);
  std::string reason = read_file(dl_dir + "/" + reasons[0]);
  INFO(reason);
  CHECK(reason.find("1 events in 1 name block(s) refused by") != std::string::npos);
  CHECK(reason.find("conflicts with type \"CounterGroup\" bound to name \"dl_bound\"") != std::string::npos);
  std::string metrics = body_text(agent.get("/metrics"));
  CHECK(metric(metrics, "taba_agent_dead_letters_total") == 1);
  CHECK(metric(metrics, "taba_agent_dead_letter_events_total") == 1);

  // The four posts were one batch, applied by the fe but for the refused
  // block: never split and re-sent.
  CHECK(agent.log_text().find("post(s) refused") == std::string::npos);

  // Not retried: a while later nothing has changed.
  sleep_ms(1500);
  s = agent_status(agent);
  CHECK(s.dead_batches == 1);
  CHECK(list_dir(dl_dir).size() == 2);
}

TEST_CASE("agent: in a refused post only the name block the fe names is a dead letter, the rest arrives",
          "[e2e][agent]") {
  TempDir dir("agent-block");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  double t = now_s();
  // The fe binds blk_bound to TotalsCounter.
  REQUIRE(status_of(fe.post("/post", v1_body({{"direct", {{"blk_bound", {event_line("TotalsCounter", t, "5")}}}}}))) ==
          200);
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port())}));
  // One post, as a client-proxy flush makes them: many names of one client,
  // one of them (the middle block) bound to another type at the fe.
  std::string post = v1_body({{"proxyhost",
                               {{"blk_a", {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "2")}},
                                {"blk_bound", {event_line("CounterGroup", t, "7")}},
                                {"blk_c", {event_line("TotalsCounter", t, "4")}}}}});
  REQUIRE(status_of(agent.post("/post", post)) == 200);
  AgentStatus s;
  bool settled = eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.spool_events == 0 && s.in_flight == 0 && s.dead_batches >= 1;
      },
      15000);
  INFO(s.raw);
  REQUIRE(settled);
  fe_flush(fe);
  auto got = tabs_json(fe, "name=blk_.*&re=1");
  CHECK(got["blk_a"].count == 2);
  CHECK(got["blk_a"].total == Approx(3.0));
  CHECK(got["blk_c"].count == 1);
  CHECK(got["blk_c"].total == Approx(4.0));
  CHECK(got["blk_bound"].count == 1);  // only the fe's own event
  CHECK(s.dead_batches == 1);
  CHECK(s.dead_events == 1);
  std::string dl_dir = agent.data_dir() + "/dead-letters";
  std::vector<std::string> v1;
  for (const std::string& f : list_dir(dl_dir)) {
    if (ends_with(f, ".v1")) v1.push_back(f);
  }
  REQUIRE(v1.size() == 1);
  std::string letter = read_file(dl_dir + "/" + v1[0]);
  INFO(letter);
  CHECK(letter.find("blk_bound") != std::string::npos);
  CHECK(letter.find("blk_a") == std::string::npos);
  CHECK(letter.find("blk_c") == std::string::npos);
}

TEST_CASE("agent: a client's retry after the batch was forwarded and the agent restarted is spooled once",
          "[e2e][agent]") {
  TempDir dir("agent-ids");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  double t = now_s();
  std::string body = totals_body("idc", "ids_once", 5, 2, t);
  TabadProcess agent;
  std::string config = agent_config(dir.path, fe.port());
  REQUIRE_OK(agent.start({"--config", config}));
  REQUIRE(status_of(agent.post("/post", body, {{"Taba-Batch-Id", "client-retry-1"}})) == 200);
  AgentStatus s;
  REQUIRE(eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.forwarded_events == 5 && s.spool_events == 0;
      },
      10000));
  // The record is gone from the spool: only the id journal remembers it.
  agent.kill9();
  REQUIRE(agent.wait_exit(5000).ok());
  REQUIRE_OK(agent.start({"--config", config}));
  REQUIRE(status_of(agent.post("/post", body, {{"Taba-Batch-Id", "client-retry-1"}})) == 200);
  // A new id is new data.
  REQUIRE(status_of(agent.post("/post", body, {{"Taba-Batch-Id", "client-retry-2"}})) == 200);
  REQUIRE(eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.forwarded_events == 5 && s.spool_events == 0;
      },
      10000));
  CHECK(s.duplicates == 1);
  fe_flush(fe);
  auto got = tabs_json(fe, "name=ids_once");
  CHECK(got["ids_once"].count == 10);
  CHECK(got["ids_once"].total == Approx(20.0));
}

TEST_CASE("agent: a post with many names the fe refuses still delivers its good name", "[e2e][agent]") {
  TempDir dir("agent-many");
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  double t = now_s();
  std::vector<NameBlock> bound, blocks;
  for (int i = 0; i < 40; ++i) {
    std::string name = fmt::format("many_{:02}", i);
    bound.push_back({name, {event_line("TotalsCounter", t, "1")}});
    blocks.push_back({name, {event_line("CounterGroup", t, "1")}});
  }
  blocks.push_back({"many_good", {event_line("TotalsCounter", t, "7")}});
  REQUIRE(status_of(fe.post("/post", v1_body({{"direct", bound}}))) == 200);
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port())}));
  REQUIRE(status_of(agent.post("/post", v1_body({{"proxyhost", blocks}}))) == 200);
  AgentStatus s;
  bool settled = eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.spool_events == 0 && s.in_flight == 0 && s.dead_batches >= 1;
      },
      30000);
  INFO(s.raw);
  REQUIRE(settled);
  fe_flush(fe);
  auto got = tabs_json(fe, "name=many_good");
  CHECK(got["many_good"].count == 1);
  CHECK(got["many_good"].total == Approx(7.0));
  // One dead letter holding the 40 refused blocks.
  CHECK(s.dead_batches == 1);
  CHECK(s.dead_events == 40);
}

TEST_CASE("agent: SIGTERM with the fe down exits 0 within the grace, keeps the spool, and a restart delivers it",
          "[e2e][agent]") {
  TempDir dir("agent-term");
  int fe_port = free_port();
  REQUIRE(fe_port != 0);
  std::string config = agent_config(dir.path, fe_port, "shutdown_grace_ms = 1000\n");
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", config}));
  double t = now_s();
  double want_total = 0;
  for (int i = 0; i < 20; ++i) {
    std::vector<std::string> a, b;
    for (int e = 0; e < 5; ++e) {
      a.push_back(event_line("TotalsCounter", t, fmt::format("{}", i + 1)));
      b.push_back(event_line("TotalsCounter", t, fmt::format("{}", 2 * (i + 1))));
    }
    want_total += 5 * (i + 1);
    std::string body = v1_body({{fmt::format("st{}", i % 3), {{"st_a", a}, {"st_b", b}}}});
    CHECK(status_of(agent.post(i % 2 ? "/post" : "/post_zip", i % 2 ? body : http::zlib_compress(body))) == 200);
  }
  AgentStatus before = agent_status(agent);
  CHECK(before.spool_events == 200);

  int64_t t0 = now_ms();
  REQUIRE(agent.signal(SIGTERM).ok());
  auto code = agent.wait_exit(1000 + 5000);
  REQUIRE(code.ok());
  CHECK(code.value() == 0);
  INFO("exited " << now_ms() - t0 << " ms after SIGTERM");
  CHECK(now_ms() - t0 < 6000);
  CHECK(agent.log_text().find("stay spooled") != std::string::npos);
  std::vector<std::string> spool = list_dir(agent.data_dir() + "/spool");
  INFO(fmt::format("{}", fmt::join(spool, " ")));
  int sealed = 0;
  for (const std::string& f : spool) {
    if (f.rfind("seg-", 0) == 0 && ends_with(f, ".batch")) ++sealed;
    CHECK_FALSE(ends_with(f, ".open"));
  }
  CHECK(sealed >= 1);

  TabadProcess fe;
  REQUIRE_OK(fe.start_on_port(fe_port, {"--config", fe_config(dir.path)}));
  REQUIRE_OK(agent.start({"--config", config}));
  REQUIRE(wait_drained(agent, 15000));
  fe_flush(fe);
  auto got = tabs_json(fe, "name=st_a,st_b");
  CHECK(got["st_a"].count == 100);
  CHECK(got["st_a"].total == Approx(want_total));
  CHECK(got["st_b"].count == 100);
  CHECK(got["st_b"].total == Approx(2 * want_total));
  CHECK(body_text(fe.get("/clients")) == "st0\nst1\nst2\n");
  AgentStatus after = agent_status(agent);
  CHECK(after.forwarded_events == 200);
  CHECK(list_dir(agent.data_dir() + "/spool").size() <= 1);  // at most an empty .open segment
}
