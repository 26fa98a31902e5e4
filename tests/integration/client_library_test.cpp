// The C++ client library (include/taba/client.hpp) against real tabad
// processes (fe,be on the embedded store; the fe takes POST /post with
// Taba-Batch-Id just as the agent does): exact totals from many threads,
// refused events, an unreachable receiver, a lost 200, the pending bound.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <cmath>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "http/client.h"
#include "lossy_relay.h"
#include "taba/client.hpp"

using taba::test::LossyRelay;
using taba::test::TabadProcess;

namespace {

std::string tab(const std::string& base_url, const std::string& name) {
  auto r = taba::test::get(base_url, "/tabs?name=" + name);
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
  return r.value().body;
}
std::string tab(TabadProcess& p, const std::string& name) {
  return tab(p.url(), name);
}

// Everything the server acknowledged, applied.
void apply_all(const std::string& base_url) {
  auto r = taba::test::post(base_url, "/flush", "");
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
}
void apply_all(TabadProcess& p) {
  apply_all(p.url());
}

// A tabad on a port chosen beforehand (TabadProcess picks its own), killed
// at scope exit.
class TabadOnPort {
 public:
  TabadOnPort(int port, const std::string& dir) : url_("http://127.0.0.1:" + std::to_string(port)) {
    auto pid = taba::test::spawn_logged(
        {taba::test::tabad_path(), "--listen", "127.0.0.1:" + std::to_string(port), "--data-dir", dir},
        dir + "/tabad.log", true);
    REQUIRE(pid.ok());
    pid_ = pid.value();
  }
  ~TabadOnPort() {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  pid_t pid_ = -1;
};

taba::ClientOptions options_for(const std::string& endpoint, const std::string& client_id) {
  taba::ClientOptions o;
  o.endpoint = endpoint;
  o.client_id = client_id;
  o.flush_interval = std::chrono::milliseconds(50);
  o.timeout_ms = 2000;
  return o;
}

// The "1d" window of a CounterGroup render: `"1d": {"count": N, "total": T`.
std::string day_window(uint64_t count, const char* total) {
  return "\"1d\": {\"count\": " + std::to_string(count) + ", \"total\": " + total;
}

// Polls `done` every 20 ms for up to timeout_ms.
template <typename F>
bool eventually(F done, int timeout_ms = 10000) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (done()) return true;
    taba::test::sleep_ms(20);
  }
  return done();
}

}  // namespace

TEST_CASE("client library: 8 threads record every type, the totals are exact", "[client]") {
  TabadProcess p;
  auto started = p.start();
  REQUIRE(started.ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  taba::Client client(options_for(p.url(), "lib-threads"));
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&client, t] {
      for (int i = 0; i < kPerThread; ++i) {
        client.Counter("cl.count");
        client.Counter("cl.sum", t + 1);
        client.Percentile("cl.pct", 2.5);
        client.Gauge("cl.gauge", "busy");
      }
      client.Buffer("cl.buf", "thread " + std::to_string(t));
      client.Record("cl.totals", "TotalsCounter", "[2]");
    });
  }
  for (auto& w : workers) w.join();
  // Later than every "busy" by its timestamp (the clock ticks every few ms),
  // which is what decides the latest gauge value.
  taba::test::sleep_ms(20);
  client.Gauge("cl.gauge", "done \"quoted\"");
  client.Gauge("cl.expiring", 7, std::chrono::system_clock::now() + std::chrono::minutes(10));
  client.Stop();

  taba::ClientStatus s = client.Status();
  const uint64_t expected = kThreads * (kPerThread * 4 + 2) + 2;
  CHECK(s.recorded == expected);
  CHECK(s.sent == expected);
  CHECK(s.dropped_invalid == 0);
  CHECK(s.dropped_full == 0);
  CHECK(s.dropped_rejected == 0);
  CHECK(s.dropped_unsent == 0);
  CHECK(s.pending_events == 0);
  CHECK(s.retry_events == 0);
  CHECK(s.posts_failed == 0);
  CHECK(s.posts_ok >= 1);

  apply_all(p);
  CHECK_THAT(tab(p, "cl.count"), Catch::Contains(day_window(40000, "40000.00")));
  CHECK_THAT(tab(p, "cl.sum"), Catch::Contains(day_window(40000, "180000.00")));  // 5000 * (1 + ... + 8)
  CHECK_THAT(tab(p, "cl.pct"), Catch::Contains(day_window(40000, "100000.000000")));
  CHECK(tab(p, "cl.gauge") == "cl.gauge: {\"done \\\"quoted\\\"\": 1}\n");
  CHECK(tab(p, "cl.expiring") == "cl.expiring: {\"7\": 1}\n");
  CHECK(tab(p, "cl.totals") == "cl.totals: {\"count\": 8, \"total\": 16.00, \"average\": 2.00}\n");
  std::string buf = tab(p, "cl.buf");
  for (int t = 0; t < kThreads; ++t)
    CHECK_THAT(buf, Catch::Contains("[\"thread " + std::to_string(t) + "\", "));
  auto clients = p.get("/clients");
  REQUIRE(clients.ok());
  CHECK_THAT(clients.value().body, Catch::Contains("lib-threads"));
}

TEST_CASE("client library: invalid events are counted with the reason, and a refused block alone is lost",
          "[client]") {
  TabadProcess p;
  auto started = p.start();
  REQUIRE(started.ok());
  auto o = options_for(p.url(), "lib-invalid");
  o.flush_interval = std::chrono::hours(1);  // one body, sent by Flush()
  taba::Client client(o);

  client.Counter("bad name");
  taba::ClientStatus s = client.Status();
  CHECK(s.dropped_invalid == 1);
  CHECK(s.last_invalid == "name \"bad name\": contains ' ' (0x20) at byte 3");
  client.Counter("x", std::nan(""));
  CHECK(client.Status().last_invalid == "name \"x\": Counter value is not a finite number");
  client.Percentile("x", INFINITY);
  client.Record("y", "CounterGroup", "{bad");
  CHECK(client.Status().last_invalid ==
        "name \"y\": payload \"{bad\" is not JSON: expected a string key at byte 1");
  client.Record("z", "Bad Type", "1");
  CHECK(client.Status().last_invalid == "name \"z\": type \"Bad Type\" contains ' ' (0x20) at byte 3");
  client.Gauge("g", std::string_view("\xff"));
  CHECK(client.Status().last_invalid == "name \"g\": Gauge value: invalid UTF-8 at byte 0");
  client.Counter(std::string(257, 'n'));
  CHECK_THAT(client.Status().last_invalid, Catch::Contains("is 257 bytes long (at most 256 allowed)"));

  // The server refuses a type it has no plugin for: it applies the body's
  // other blocks and answers 200 naming the refused block's line; the
  // client counts that block's events as refused.
  client.Counter("ok.before", 2);
  client.Record("srv.unknown", "NoSuchType", "1");
  client.Record("srv.unknown", "NoSuchType", "2");
  client.Counter("ok.after", 3);
  CHECK(client.Flush());
  s = client.Status();
  CHECK(s.dropped_invalid == 7);
  CHECK(s.recorded == 4);
  CHECK(s.dropped_rejected == 2);
  CHECK(s.sent == 2);
  CHECK(s.posts_failed == 0);
  CHECK(s.posts_ok == 1);
  CHECK_THAT(s.last_error, Catch::Contains("HTTP 200 from " + p.url() + "/post, 1 block(s) refused: line 9: "));
  CHECK_THAT(s.last_error, Catch::Contains("NoSuchType"));

  // A body whose every block is refused (400) is dropped whole.
  client.Record("srv.unknown", "NoSuchType", "3");
  CHECK(client.Flush());
  s = client.Status();
  CHECK(s.dropped_rejected == 3);
  CHECK(s.posts_failed == 1);
  CHECK_THAT(s.last_error, Catch::Contains("HTTP 400 from " + p.url() + "/post: line 6: "));
  client.Stop();

  apply_all(p);
  CHECK_THAT(tab(p, "ok.before"), Catch::Contains(day_window(1, "2.00")));
  CHECK_THAT(tab(p, "ok.after"), Catch::Contains(day_window(1, "3.00")));
  CHECK(tab(p, "srv.unknown").empty());
}

TEST_CASE("client library: receiver down at first, then up: everything arrives exactly once", "[client]") {
  const int port = taba::test::free_port();
  REQUIRE(port != 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto o = options_for(url, "lib-late");
  o.timeout_ms = 500;
  taba::Client client(o);
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&client] {
      for (int i = 0; i < 250; ++i) client.Counter("late.count", 1.5);
    });
  }
  for (auto& w : workers) w.join();
  REQUIRE(eventually([&] { return client.Status().posts_failed >= 2; }));
  taba::ClientStatus s = client.Status();
  CHECK(s.sent == 0);
  CHECK(s.retry_events + s.pending_events == 1000);
  CHECK(s.retry_bytes > 0);
  CHECK_THAT(s.last_error, Catch::Contains("connection refused"));

  taba::test::TempDir dir("client-late");
  TabadOnPort server(port, dir.path);
  REQUIRE(eventually([&] {
    auto r = taba::test::get(url, "/healthz", "text/plain", 1000);
    return r.ok() && r.value().status == 200;
  }));
  for (int i = 0; i < 500; ++i) client.Counter("late.count", 1.5);
  CHECK(client.Flush(std::chrono::seconds(10)));
  client.Stop();
  s = client.Status();
  CHECK(s.recorded == 1500);
  CHECK(s.sent == 1500);
  CHECK(s.retry_events == 0);
  CHECK(s.dropped_unsent == 0);

  apply_all(url);
  CHECK_THAT(tab(url, "late.count"), Catch::Contains(day_window(1500, "2250.00")));
}

TEST_CASE("client library: a lost 200 is retried with the same batch id and counted once", "[client]") {
  TabadProcess p;
  auto started = p.start();
  REQUIRE(started.ok());
  // The HTTP layer sends a request once more itself when the connection
  // closes before any response byte; the second loss reaches the client,
  // which retries the body later.
  LossyRelay relay(p.url(), 2);
  auto o = options_for(relay.url(), "lib-lost-reply");
  o.flush_interval = std::chrono::hours(1);
  taba::Client client(o);
  for (int i = 0; i < 100; ++i) client.Counter("lost.count");
  CHECK(client.Flush(std::chrono::seconds(10)));
  client.Stop();

  taba::ClientStatus s = client.Status();
  CHECK(s.sent == 100);
  CHECK(s.posts_failed == 1);  // the lost replies
  CHECK(s.posts_ok == 1);
  CHECK_THAT(s.last_error, Catch::Contains("connection closed by"));
  CHECK(relay.relayed() == 3);           // the server saw the body three times...
  CHECK(relay.batch_ids().size() == 1);  // ...under one id
  REQUIRE(relay.batch_ids().begin()->size() == 32);
  apply_all(p);
  CHECK_THAT(tab(p, "lost.count"), Catch::Contains(day_window(100, "100.00")));  // ...and applied it once
}

TEST_CASE("client library: events past max_pending_events are counted exactly", "[client]") {
  TabadProcess p;
  auto started = p.start();
  REQUIRE(started.ok());
  auto o = options_for(p.url(), "lib-bounded");
  o.flush_interval = std::chrono::hours(1);
  o.max_pending_events = 1000;
  taba::Client client(o);
  for (int i = 0; i < 1500; ++i) client.Counter("bounded.count");
  taba::ClientStatus s = client.Status();
  CHECK(s.recorded == 1000);
  CHECK(s.dropped_full == 500);
  CHECK(s.pending_events == 1000);
  CHECK(client.Flush());
  for (int i = 0; i < 10; ++i) client.Counter("bounded.count");  // room again
  client.Stop();
  client.Counter("bounded.count");  // after Stop: not sent, counted
  s = client.Status();
  CHECK(s.recorded == 1010);
  CHECK(s.dropped_full == 500);
  CHECK(s.sent == 1010);
  CHECK(s.dropped_unsent == 1);
  apply_all(p);
  CHECK_THAT(tab(p, "bounded.count"), Catch::Contains(day_window(1010, "1010.00")));
}

TEST_CASE("client library: invalid options make an inert client", "[client]") {
  auto o = options_for("ftp://nowhere", "lib-inert");
  taba::Client client(o);
  client.Counter("a");
  taba::ClientStatus s = client.Status();
  CHECK(s.dropped_invalid == 1);
  CHECK(s.recorded == 0);
  CHECK_THAT(s.last_invalid, Catch::Contains("endpoint: URL scheme 'ftp' is not supported"));
  CHECK_FALSE(client.Flush());

  taba::Client bad_id(options_for("http://127.0.0.1:1", "has space"));
  CHECK(bad_id.Status().last_invalid == "client ID \"has space\" contains ' ' (0x20) at byte 3");
}
