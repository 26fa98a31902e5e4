// What real senders put on the wire, byte for byte, posted to an fe and
// through an agent, on the embedded store and on Redis + Sentinel:
//   - the original Taba Python client (run under Python 3): ", " separators,
//     float stamps with 7 decimals, cjson's "\/" escape, json's "\u00fc"
//     escapes, `true` for Counter(name, True), an object for Gauge(name,
//     {'a': 1});
//   - the original Java client (0.1.1): compact events, whole-second stamps,
//     Content-Type: application/json, non-ASCII strings as Latin-1 bytes,
//     a long and a BigDecimal's text as numbers, recordBuffer's bare string;
//   - a sender writing raw UTF-8 and numbers in other spellings.
// Equal values must arrive as one value whoever wrote them, the Latin-1
// bytes as the same UTF-8 text, the refused object cost only its own block,
// and JSON replies keep the numbers' precision.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#include "harness.h"
#include "redis_harness.h"

using namespace taba::test;

namespace {

// `p` prefixes every name, so that several runs share one store.
std::string python_body(const std::string& p, double now) {
  // Float stamps as Python's repr writes time.time().
  std::string ts = fmt::format("{:.7f}", now - 0.4);
  auto line = [&](const std::string& type, const std::string& payload_string) {
    return "[\"" + type + "\", " + ts + ", " + payload_string + "]\n";
  };
  return "1\n\npy01\n\n" +
         // json.dumps escapes non-ASCII: the payload "Z\u00fcrich".
         p + "city\n" + line("Gauge", R"("\"Z\\u00fcrich\"")") + "\n" +
         // python-cjson escapes '/': the payload "a\/b".
         p + "path\n" + line("Gauge", R"("\"a\\\/b\"")") + "\n" +
         // Counter(name, True), then Counter(name).
         p + "logins\n" + line("CounterGroup", R"("true")") + line("CounterGroup", R"("1")") + "\n" +
         p + "members\n" + line("Set", R"("\"a\"")") + "\n" +
         p + "ratio\n" + line("Gauge", R"("1.5")") + "\n" +
         // Gauge(name, {'a': 1}): an object, which Gauge refuses.
         p + "conf\n" + line("Gauge", R"("{\"a\": 1}")") + "\n" +
         // A timer recorded in seconds.
         p + "timer_s\n" + line("PercentileGroup", R"("0.0012")") + line("PercentileGroup", R"("0.0034")") + "\n\n";
}

std::string java_body(const std::string& p, double now) {
  std::string ts = fmt::format("{}", static_cast<long long>(now) - 1);
  auto line = [&](const std::string& type, const std::string& payload_string) {
    return "[\"" + type + "\"," + ts + "," + payload_string + "]\n";
  };
  return "1\n\njava01\n\n" +
         // new StringEntity(body): "Zürich" as Latin-1 bytes.
         p + "city\n" + line("Gauge", "\"\\\"Z\xfcrich\\\"\"") + "\n" +
         p + "logins\n" + line("CounterGroup", R"("1")") + "\n" +
         // A long and a BigDecimal's text.
         p + "big\n" + line("CounterGroup", R"("5000000000")") + line("CounterGroup", R"("12.345")") + "\n" +
         p + "ratio\n" + line("Gauge", R"("1.50")") + "\n" +
         // recordBuffer sends a bare string.
         p + "recent\n" + line("Buffer", R"("\"hello\"")") + "\n\n";
}

std::string utf8_body(const std::string& p, double now) {
  std::string ts = fmt::format("{}", now - 1);
  auto line = [&](const std::string& type, const std::string& payload_string) {
    return "[\"" + type + "\", " + ts + ", " + payload_string + "]\n";
  };
  return "1\n\nutf01\n\n" +
         p + "city\n" + line("Gauge", "\"\\\"Z\xc3\xbcrich\\\"\"") + "\n" +
         p + "path\n" + line("Gauge", R"("\"a/b\"")") + "\n" +
         // "a" written as an escape.
         p + "members\n" + line("Set", R"("\"\\u0061\"")") + "\n" +
         p + "ratio\n" + line("Gauge", R"("15e-1")") + "\n\n";
}

// Posts the three senders' bodies to `url` as each sends them; every one is
// answered 200, the Python one listing its refused block.
void post_all(const std::string& url, const std::string& p, double now) {
  auto py = post(url, "/post", python_body(p, now), {{"Content-Type", "application/x-www-form-urlencoded"}});
  REQUIRE(py.ok());
  INFO(py->body);
  CHECK(py->status == 200);
  CHECK(py->header("taba-refused-blocks") == "1");
  CHECK(py->body.find("Gauge payload \"{\\\"a\\\": 1}\" rejected") != std::string::npos);
  auto java = post(url, "/post", java_body(p, now),
                   {{"Content-Type", "application/json"}, {"User-Agent", "Apache-HttpClient/4.5.13 (Java/17)"}});
  REQUIRE(java.ok());
  CHECK(java->status == 200);
  CHECK(java->body.empty());
  auto utf8 = post(url, "/post", utf8_body(p, now));
  REQUIRE(utf8.ok());
  CHECK(utf8->status == 200);
  CHECK(utf8->body.empty());
}

std::string body_of(const std::string& url, const std::string& path, const std::string& accept = "text/plain") {
  auto r = get(url, path, accept);
  REQUIRE(r.ok());
  REQUIRE(r->status == 200);
  return r->body;
}

// Waits (15 s at most) until the events of all three senders show at the fe:
// through an agent, posts arrive after its flush interval, the three bodies
// possibly in different flushes, and on Redis a be applies them after the fe
// acknowledged them. `p`logins is in the first two bodies, `p`city in all three.
void wait_arrived(const std::string& url, const std::string& p) {
  const std::string logins = "\"1d\": {\"count\": 3, \"total\": 3";
  const std::string city = p + "city: {\"Z\xc3\xbcrich\": 3}\n";
  for (int i = 0; i < 300; ++i) {
    auto l = get(url, "/tabs?name=" + p + "logins");
    auto c = get(url, "/tabs?name=" + p + "city");
    if (l.ok() && l->body.find(logins) != std::string::npos && c.ok() && c->body == city) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("the events of " << p << " never all arrived: " << body_of(url, "/tabs?name=" + p + "logins")
                        << body_of(url, "/tabs?name=" + p + "city"));
}

// The aggregates all three senders make together, read at the fe.
void check_aggregates(const std::string& url, const std::string& p) {
  INFO("names prefixed " << p);
  // One value however it was written: escaped, Latin-1 or raw UTF-8.
  CHECK(body_of(url, "/tabs?name=" + p + "city") == p + "city: {\"Z\xc3\xbcrich\": 3}\n");
  CHECK(body_of(url, "/tabs?name=" + p + "path") == p + "path: {\"a/b\": 2}\n");
  CHECK(body_of(url, "/tabs?name=" + p + "ratio") == p + "ratio: {\"1.5\": 3}\n");
  CHECK(body_of(url, "/tabs?name=" + p + "members") == p + "members: {\"count\": 1}\n");
  CHECK(body_of(url, "/tabs?name=" + p + "city", "application/json") == "{\"" + p + "city\": {\"Z\xc3\xbcrich\": 3}}");
  // true counted as 1.
  CHECK(body_of(url, "/tabs?name=" + p + "logins").find("\"1d\": {\"count\": 3, \"total\": 3.00") != std::string::npos);
  // Full precision in JSON, Taba's two decimals in text.
  std::string big = body_of(url, "/tabs?name=" + p + "big", "application/json");
  CHECK(big.find("\"1d\": {\"count\": 2, \"total\": 5000000012.345") != std::string::npos);
  std::string timer_json = body_of(url, "/tabs?name=" + p + "timer_s", "application/json");
  INFO(timer_json);
  // p25 is the smallest value (a percentile never leaves [min, max]), the
  // highest within the sketch's 1 % of 0.0034.
  CHECK(timer_json.find("\"pct\": [0.0012") != std::string::npos);
  CHECK(timer_json.find(", 0.003") != std::string::npos);
  std::string timer_text = body_of(url, "/tabs?name=" + p + "timer_s");
  CHECK(timer_text.find("\"pct\": [0.00, 0.00") != std::string::npos);
  CHECK(body_of(url, "/tabs?name=" + p + "recent").find("\"hello\"") != std::string::npos);
  // The refused block bound nothing and left no name.
  CHECK(body_of(url, "/names?name=" + p + "conf").empty());
  // Valid UTF-8 everywhere: the projection shows each client's own value.
  CHECK(body_of(url, "/projection?name=" + p + "city&client=java01") ==
        "(" + p + "city, java01): {\"Z\xc3\xbcrich\": 1}\n");
}

std::string agent_config(const std::string& dir, int fe_port) {
  std::string path = dir + "/agent.toml";
  REQUIRE(write_text_file(path, fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                            "[agent]\nendpoints = [\"127.0.0.1:{}\"]\nflush_interval_ms = 100\n",
                                            fe_port))
              .ok());
  return path;
}

}  // namespace

TEST_CASE("real clients' bytes, to an fe and through an agent, on the embedded store", "[e2e][clients]") {
  TabadProcess fe;
  REQUIRE_OK(fe.start());
  double now = static_cast<double>(std::time(nullptr));
  post_all(fe.url(), "d.", now);
  check_aggregates(fe.url(), "d.");

  std::string dir = make_temp_dir("tabad-clients");
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir, fe.port())}));
  post_all(agent.url(), "a.", now);
  wait_arrived(fe.url(), "a.");
  check_aggregates(fe.url(), "a.");
  // The agent kept the refused block as a dead letter.
  auto metrics = get(agent.url(), "/metrics");
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("taba_agent_blocks_refused_total{kind=\"payload\"} 1\n") != std::string::npos);
  CHECK(metrics->body.find("taba_agent_dead_letters_total 1\n") != std::string::npos);

  // After a restart (snapshot and WAL replay) everything reads the same.
  REQUIRE(fe.signal(SIGTERM).ok());
  REQUIRE(fe.wait_exit(10000).ok());
  REQUIRE_OK(fe.start());
  check_aggregates(fe.url(), "d.");
  check_aggregates(fe.url(), "a.");
  remove_tree(dir);
}

TEST_CASE("real clients' bytes, to an fe and through an agent, on Redis + Sentinel", "[e2e][clients][redis]") {
  RedisCluster cluster;
  RedisCluster::Options options;
  options.shards = 2;
  options.replicas_per_shard = 0;
  options.sentinels = 1;
  options.quorum = 1;
  REQUIRE_OK(cluster.start(options));
  std::string dir = make_temp_dir("tabad-clients-redis");
  std::string config = dir + "/taba.toml";
  std::ofstream(config) << "[server]\nself_tabs_interval_s = 0\n" << cluster.toml();
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", config, "--role", "fe,be"}));
  // Posts get 503 until the fe has found every shard's master.
  REQUIRE(eventually([&fe] { return status_of(fe.get("/readyz")) == 200; }, 15000));
  double now = static_cast<double>(std::time(nullptr));

  post_all(fe.url(), "d.", now);
  REQUIRE(post(fe.url(), "/flush", "").value().status == 200);
  check_aggregates(fe.url(), "d.");

  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir, fe.port())}));
  post_all(agent.url(), "a.", now);
  wait_arrived(fe.url(), "a.");
  // The fe took every body; its names live on both shards, applied by the
  // be each at its own pace: /flush returns once all of it is applied.
  REQUIRE(post(fe.url(), "/flush", "").value().status == 200);
  check_aggregates(fe.url(), "a.");
  remove_tree(dir);
}
