// Bearer tokens, /metrics (checked by promtool), self-instrumentation tabs
// and SIGHUP reloads, against real tabad processes.
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "admin_scenario.h"
#include "harness.h"

using namespace taba::test;

namespace {

constexpr const char* kIngest = "ingest-token-0123456789";
constexpr const char* kAdmin = "admin-token-0123456789";
constexpr const char* kQuery = "query-token-0123456789";

std::string write_config(const std::string& dir, const std::string& text) {
  std::string path = dir + "/taba.toml";
  std::ofstream(path) << text;
  return path;
}


std::vector<taba::http::Header> bearer(const char* token) { return {{"Authorization", std::string("Bearer ") + token}}; }

// GET with headers (the harness's get() takes only an Accept value).
taba::Result<taba::http::ClientResponse> get_with(const TabadProcess& p, std::string_view path,
                                                  std::vector<taba::http::Header> headers) {
  return taba::http::fetch("GET", p.url() + std::string(path), headers, "", 5000);
}

// Polls until `pred` holds (bounded), so timed behaviour is not a race.
template <typename F>
bool eventually(F pred, int timeout_ms = 8000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

}  // namespace

TEST_CASE("auth: each route class needs its token, 401 without, 403 with a wrong one", "[e2e][auth]") {
  std::string dir = make_temp_dir("auth");
  std::string config = write_config(dir, fmt::format("[auth]\ningest_token = \"{}\"\nadmin_token = \"{}\"\n"
                                                     "query_token = \"{}\"\n",
                                                     kIngest, kAdmin, kQuery));
  TabadProcess p;
  REQUIRE(p.start({"--config", config}).ok());
  double now = static_cast<double>(std::time(nullptr));
  std::string body = v1_body({{"c1", {{"n", {event_line("TotalsCounter", now, "1")}}}}});

  auto no_token = p.post("/post", body);
  CHECK(status_of(no_token) == 401);
  CHECK(no_token.value().header("www-authenticate") == "Bearer realm=\"tabad\"");
  CHECK(no_token.value().body == "ingest requires a bearer token (Authorization: Bearer TOKEN)\n");
  CHECK(status_of(p.post("/post", body, bearer(kQuery))) == 403);
  CHECK(status_of(p.post("/post", body, bearer(kIngest))) == 200);
  CHECK(status_of(p.post("/post", body, {{"Authorization", std::string("bearer ") + kIngest}})) == 200);

  CHECK(status_of(p.get("/tabs")) == 401);
  CHECK(status_of(get_with(p, "/tabs", bearer(kIngest))) == 403);
  CHECK(status_of(get_with(p, "/tabs", bearer(kQuery))) == 200);
  CHECK(status_of(get_with(p, "/tabs", bearer(kAdmin))) == 200);  // admin opens queries too
  CHECK(status_of(get_with(p, "/metrics", bearer(kQuery))) == 200);
  CHECK(status_of(p.get("/status")) == 401);

  CHECK(status_of(p.post("/gc", "")) == 401);
  auto wrong = p.post("/gc", "", bearer(kQuery));
  CHECK(status_of(wrong) == 403);
  CHECK(wrong.value().body == "the bearer token is not valid for admin routes\n");
  CHECK(status_of(p.post("/gc", "", bearer(kAdmin))) == 200);
  CHECK(status_of(p.post("/flush", "", {{"Authorization", "Basic abc"}})) == 401);

  CHECK(status_of(p.get("/healthz")) == 200);
  CHECK(status_of(p.get("/readyz")) == 200);

  // Tokens appear nowhere in the log or the printed configuration.
  std::string log = p.log_text();
  CHECK(log.find(kIngest) == std::string::npos);
  CHECK(log.find(kAdmin) == std::string::npos);
  auto dump = run_process({tabad_path(), "--config", config, "--check-config"});
  REQUIRE(dump.ok());
  CHECK(dump.value().out.find("admin_token = \"(set)\"") != std::string::npos);
  CHECK(dump.value().out.find(kAdmin) == std::string::npos);

  std::string short_token = write_config(dir, "[auth]\nadmin_token = \"short\"\n");
  auto bad = run_process({tabad_path(), "--config", short_token, "--check-config"});
  REQUIRE(bad.ok());
  CHECK(bad.value().exit_code == 2);
  CHECK(bad.value().err.find("auth.admin_token: use at least 16 characters") != std::string::npos);
  remove_tree(dir);
}

TEST_CASE("metrics: the exposition passes promtool and counts what happened", "[e2e][metrics]") {
  std::string dir = make_temp_dir("metrics");
  std::string config = write_config(dir, "[server]\nself_tabs_interval_s = 1\n");
  TabadProcess p;
  REQUIRE(p.start({"--config", config}).ok());
  double now = static_cast<double>(std::time(nullptr));
  reply_body(p.post("/post", v1_body({{"c1", {{"req_ms", {event_line("CounterGroup", now, "12.5"),
                                                          event_line("CounterGroup", now, "7.5")}},
                                              {"n", {event_line("TotalsCounter", now, "1")}}}}})));
  reply_body(p.post("/post", "not a v1 body"), 400);

  std::string text = reply_body(p.get("/metrics"));
  CHECK(text.find("taba_events_received_total 3\n") != std::string::npos);
  CHECK(text.find("taba_bodies_total{outcome=\"rejected\"} 1\n") != std::string::npos);
  CHECK(text.find("taba_pipeline_latency_seconds_count 1\n") != std::string::npos);
  CHECK(text.find("taba_store_names 2\n") != std::string::npos);
  CHECK(text.find("taba_plugins{result=\"loaded\"} ") != std::string::npos);
  auto check = run_process({"/usr/bin/promtool", "check", "metrics"}, text);
  REQUIRE(check.ok());
  INFO(check.value().out << check.value().err);
  CHECK(check.value().exit_code == 0);

  // The tabs are on their own route; ?tabs names it.
  CHECK(status_of(p.get("/metrics?tabs=1")) == 400);
  CHECK(reply_body(p.get("/metrics?tabs=1"), 400).find("/metrics/tabs") != std::string::npos);
  std::string tabs = reply_body(p.get("/metrics/tabs?name=req_ms"));
  CHECK(tabs.find("req_ms_total 20\n") != std::string::npos);
  CHECK(tabs.find("req_ms_events_total 2\n") != std::string::npos);
  CHECK(tabs.find("req_ms_events_in_window{window=\"1m\"} 2\n") != std::string::npos);
  CHECK(tabs.find("\nn_") == std::string::npos);
  CHECK(tabs.find("taba_") == std::string::npos);  // no process metrics here
  CHECK(status_of(p.get("/metrics?bogus=1")) == 400);

  // Self-instrumentation: the server's own tabs, under its own client ID.
  CHECK(eventually([&] {
    std::string names = reply_body(p.get("/names"));
    return names.find("taba_events_received\n") != std::string::npos &&
           names.find("taba_pipeline_latency_ms\n") != std::string::npos &&
           names.find("taba_ingest_latency_ms\n") != std::string::npos;
  }));
  std::string received = reply_body(p.get("/tabs?name=taba_events_received", "application/json"));
  CHECK(received.find("\"1m\": {\"count\": 1, \"total\": 3, ") != std::string::npos);
  remove_tree(dir);
}

TEST_CASE("SIGHUP reloads tokens, log level and new plugins, and names what needs a restart", "[e2e][reload]") {
  std::string dir = make_temp_dir("reload");
  std::string plugins = dir + "/plugins";
  std::filesystem::create_directories(plugins);
  std::filesystem::copy_file(std::string(TABA_TEST_PLUGIN_DIR) + "/totals_counter.so", plugins + "/totals_counter.so");
  std::string config = write_config(dir, "[server]\nlog_level = \"info\"\n");
  TabadProcess p;
  REQUIRE(p.start({"--config", config, "--plugins-dir", plugins}).ok());
  double now = static_cast<double>(std::time(nullptr));
  std::string gauge = v1_body({{"c1", {{"g", {event_line("Gauge", now, "\"up\"")}}}}});
  CHECK(status_of(p.post("/post", gauge)) == 400);

  std::filesystem::copy_file(std::string(TABA_TEST_PLUGIN_DIR) + "/gauge.so", plugins + "/gauge.so");
  write_config(dir, fmt::format("[server]\nlog_level = \"debug\"\n[http]\nmax_connections = 5\n"
                                "[auth]\nadmin_token = \"{}\"\n",
                                kAdmin));
  REQUIRE(p.signal(SIGHUP).ok());
  CHECK(eventually([&] { return p.log_text().find("SIGHUP: reloaded: ") != std::string::npos; }));
  std::string log = p.log_text();
  CHECK(log.find("1 new plugin file(s)") != std::string::npos);
  CHECK(log.find("log_level debug") != std::string::npos);
  CHECK(log.find("auth tokens") != std::string::npos);
  CHECK(log.find("changed but only applied by a restart: [http]") != std::string::npos);
  CHECK(status_of(p.post("/post", gauge)) == 200);
  CHECK(status_of(p.post("/gc", "")) == 401);
  CHECK(status_of(p.post("/gc", "", bearer(kAdmin))) == 200);
  CHECK(p.running());

  // A broken file changes nothing.
  write_config(dir, "[server]\nlog_level = \"loud\"\n");
  REQUIRE(p.signal(SIGHUP).ok());
  CHECK(eventually([&] { return p.log_text().find("SIGHUP: the configuration is not valid") != std::string::npos; }));
  CHECK(status_of(p.post("/gc", "")) == 401);
  remove_tree(dir);
}

namespace {

// A loopback TCP port held open (listening) for the life of the object, so a
// role configured on it cannot listen.
struct BusyPort {
  int fd = -1;
  int port = 0;
  BusyPort() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 1) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
  }
  ~BusyPort() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

// A later role failing to start (its port taken) used to leave the process
// hanging: the store's close ran the loop until no handle was left, while the
// fe's listener or an agent started before it kept it alive.
TEST_CASE("a process whose second role cannot start exits 1 instead of hanging", "[e2e][lifecycle]") {
  TempDir dir("taba-role-start");
  BusyPort busy;
  REQUIRE(busy.port > 0);
  const int fe_port = free_port();

  SECTION("fe,be then an agent") {
    std::string config = write_config(dir.path, fmt::format("[agent]\nlisten = \"127.0.0.1:{}\"\n"
                                                            "endpoints = [\"http://127.0.0.1:{}\"]\n",
                                                            busy.port, fe_port));
    auto r = run_process({tabad_path(), "--role", "fe,be,agent", "--listen", fmt::format("127.0.0.1:{}", fe_port),
                          "--config", config, "--data-dir", dir.path + "/data" },
                         {}, 20000);
    REQUIRE(r.ok());
    CHECK(r.value().exit_code == 1);
    CHECK(r.value().err.find("cannot start the agent") != std::string::npos);
    CHECK(r.value().err.find("store: closed") != std::string::npos);
  }
  SECTION("an agent then a client-proxy") {
    std::string config = write_config(
        dir.path, fmt::format("[agent]\nlisten = \"127.0.0.1:{}\"\nendpoints = [\"http://127.0.0.1:{}\"]\n"
                              "[client_proxy]\nlisten = \"127.0.0.1:{}\"\nstatsd_udp = \"\"\n",
                              free_port(), fe_port, busy.port));
    auto r = run_process({tabad_path(), "--role", "agent,client-proxy", "--config", config, "--data-dir",
                          dir.path + "/data" },
                         {}, 20000);
    REQUIRE(r.ok());
    CHECK(r.value().exit_code == 1);
    CHECK(r.value().err.find("cannot start the client-proxy") != std::string::npos);
  }
}
