// The client-proxy role (docs/statsd.md) end to end: StatsD over
// UDP and a unix datagram socket, and Taba posts over HTTP, through a real
// client-proxy, agent and fe on loopback.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "harness.h"
#include "http/client.h"

using namespace taba;
using namespace taba::test;

namespace {

// fe <- agent <- client-proxy, each its own process.
struct Chain {
  explicit Chain(const std::string& dir) : dir_(dir) {}

  void start() {
    std::string fe_toml = dir_ + "/fe.toml";
    REQUIRE(write_text_file(fe_toml, "[server]\nself_tabs_interval_s = 0\n").ok());
    REQUIRE_OK(fe.start({"--config", fe_toml}));
    std::string agent_toml = dir_ + "/agent.toml";
    REQUIRE(write_text_file(agent_toml, fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                               "[agent]\nendpoints = [\"127.0.0.1:{}\"]\nbackoff_max_ms = 1000\n"
                                               "flush_interval_ms = 50\n",
                                               fe.port()))
                .ok());
    REQUIRE_OK(agent.start({"--config", agent_toml}));
    udp_port = free_udp_port();
    REQUIRE(udp_port != 0);
    unix_path = dir_ + "/statsd.sock";
    std::string proxy_toml = dir_ + "/proxy.toml";
    REQUIRE(write_text_file(proxy_toml, fmt::format("[server]\nroles = [\"client-proxy\"]\nself_tabs_interval_s = 0\n"
                                               "[client_proxy]\nstatsd_udp = \"127.0.0.1:{}\"\nstatsd_unix = \"{}\"\n"
                                               "agent = \"127.0.0.1:{}\"\nclient_id = \"statsd-host\"\n"
                                               "flush_interval_ms = 100\n",
                                               udp_port, unix_path, agent.port()))
                .ok());
    REQUIRE_OK(proxy.start({"--config", proxy_toml}));
  }

  std::string dir_;
  TabadProcess fe, agent, proxy;
  int udp_port = 0;
  std::string unix_path;
};

// GET /tabs (every name) as JSON from the fe after a /flush: name -> render text.
std::map<std::string, std::string> all_tabs(const TabadProcess& fe) {
  std::map<std::string, std::string> out;
  auto f = fe.post("/flush", "");
  if (status_of(f) != 200) return out;
  auto r = fe.get("/tabs", "application/json");
  if (status_of(r) != 200) return out;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(r->body).get(obj) != simdjson::SUCCESS) return out;
  for (auto field : obj) out.emplace(std::string(field.key), simdjson::minify(field.value));
  return out;
}

// A number at a JSON pointer in a render, or -1.
double at(const std::string& render, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  double v = -1;
  if (parser.parse(render).get(doc) != simdjson::SUCCESS) return -1;
  if (doc.at_pointer(pointer).get(v) != simdjson::SUCCESS) return -1;
  return v;
}

}  // namespace

TEST_CASE("client-proxy: StatsD over UDP and a unix socket arrives at the fe as exact Taba aggregates",
          "[e2e][client-proxy][statsd]") {
  TempDir dir("cproxy-statsd");
  Chain chain(dir.path);
  chain.start();

  // Every datagram some milliseconds apart: gauge events are then stamped in
  // the order they were sent, whatever batches they travel in.
  std::vector<std::string> udp = {
      // counters with sample rates, a timer with tags, a histogram, gauges, sets, junk
      "hits:1|c|@0.5\nhits:3|c\nlat:10|ms|#region:us,env:prod\ngarbage\nresp:100|h\ntemp:42|g\nusers:alice|s\n",
      // the same tags in another order (the same name), multi-value lines, deltas, bad lines
      "hits:2|c|@0.25\r\nlat:12:15.5:3|ms|#env:prod,region:us\n\nresp:300|d\ntemp:+3|g\nusers:bob|s\nusers:alice|s\n"
      "hits:1|x\n:1|c\nhits:nan|c",
      // a type conflict, a DogStatsD event, a multi-value counter at a sample rate
      "temp:-5|g\nhits:5|ms\n_e{5,4}:title|text\nmulti:1:2:3|c|@0.5\n",
  };
  for (const std::string& d : udp) {
    REQUIRE(send_udp(chain.udp_port, d).ok());
    sleep_ms(5);
  }
  REQUIRE(send_unix_datagram(chain.unix_path, "hits:4|c\nunix.only:7|c|#b,a\nq:5:+1:-2|g\n").ok());

  const std::vector<std::string> names = {"hits", "lat;env=prod;region=us", "multi", "q", "resp",
                                          "temp", "unix.only;a;b",          "users"};
  std::map<std::string, std::string> tabs;
  bool arrived = eventually(
      [&] {
        tabs = all_tabs(chain.fe);
        return tabs.size() == names.size() && tabs.count("hits") && at(tabs["hits"], "/pct/count") == 4 &&
               tabs.count("q") && tabs["q"] == "{\"4\":1}" && tabs.count("temp") && tabs["temp"] == "{\"40\":1}" &&
               tabs.count("lat;env=prod;region=us") && at(tabs["lat;env=prod;region=us"], "/1d/count") == 4;
      },
      15000);
  std::string all;
  for (const auto& [n, r] : tabs) all += n + ": " + r + "\n";
  INFO(all);
  CHECK(arrived);
  std::vector<std::string> got_names;
  for (const auto& kv : tabs) got_names.push_back(kv.first);
  CHECK(got_names == names);

  // c: v / rate per event; count is the number of values.
  CHECK(at(tabs["hits"], "/pct/count") == 4);
  CHECK(at(tabs["hits"], "/pct/total") == Approx(2 + 3 + 8 + 4));
  CHECK(at(tabs["hits"], "/1m/total") == Approx(17));
  CHECK(at(tabs["multi"], "/pct/count") == 3);
  CHECK(at(tabs["multi"], "/pct/total") == Approx(12));
  CHECK(at(tabs["unix.only;a;b"], "/pct/count") == 1);
  CHECK(at(tabs["unix.only;a;b"], "/pct/total") == Approx(7));
  // ms, h, d: PercentileGroup, each value once.
  CHECK(at(tabs["lat;env=prod;region=us"], "/1d/count") == 4);
  CHECK(at(tabs["lat;env=prod;region=us"], "/1d/total") == Approx(40.5));
  CHECK(at(tabs["lat;env=prod;region=us"], "/1m/count") == 4);
  CHECK(at(tabs["resp"], "/1d/count") == 2);
  CHECK(at(tabs["resp"], "/1d/total") == Approx(400));
  // g: 42, +3, -5 -> 40; 5, +1, -2 -> 4 (one client: the proxy).
  CHECK(tabs["temp"] == "{\"40\":1}");
  CHECK(tabs["q"] == "{\"4\":1}");
  // s: distinct members.
  CHECK(tabs["users"] == "{\"count\":2}");

  CHECK(body_text(chain.fe.get("/clients")) == "statsd-host\n");
  CHECK(body_text(chain.fe.get("/types?name=hits,lat;env=prod;region=us,resp,temp,users")) ==
        "hits: CounterGroup\nlat;env=prod;region=us: PercentileGroup\nresp: PercentileGroup\ntemp: Gauge\n"
        "users: Set\n");

  std::string m = body_text(chain.proxy.get("/metrics"));
  INFO(m);
  CHECK(metric(m, "taba_proxy_datagrams_total") == 4);
  CHECK(metric(m, "taba_proxy_lines_total") == 23);
  // garbage, hits:1|x, :1|c, hits:nan|c, hits:5|ms (conflict), _e{...}
  CHECK(metric(m, "taba_proxy_bad_lines_total") == 6);
  CHECK(metric(m, "taba_proxy_type_conflicts_total") == 1);
  CHECK(metric(m, "taba_proxy_events_forwarded_total") == 23);
  CHECK(metric(m, "taba_proxy_events_dropped_total{reason=\"buffer_full\"}") == 0);
  CHECK(metric(m, "taba_proxy_bodies_rejected_total") == 0);
  // Every role's /metrics says which build it is.
  CHECK(m.find("taba_build_info{version=\"") != std::string::npos);
  CHECK(chain.proxy.running());
}

TEST_CASE("client-proxy: a Taba post to the proxy arrives at the fe through the agent", "[e2e][client-proxy]") {
  TempDir dir("cproxy-post");
  Chain chain(dir.path);
  chain.start();
  double t = static_cast<double>(std::time(nullptr));
  std::string body = v1_body({{"app-7",
                               {{"px.post", {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "2"),
                                             event_line("TotalsCounter", t, "3")}}}},
                              {"app-8", {{"px.post", {event_line("TotalsCounter", t, "10")}}}}});
  auto r = chain.proxy.post("/post", body);
  INFO(body_text(r));
  CHECK(status_of(r) == 200);
  // Validated like at the fe: a malformed block is refused (here the
  // body's only one, so the body is refused), and counted.
  auto bad = chain.proxy.post("/post", v1_body({{"app-9", {{"px.bad", {"[\"TotalsCounter\", 1, 5]"}}}}}));
  CHECK(status_of(bad) == 400);
  CHECK(body_text(bad).rfind("line 6: ", 0) == 0);
  CHECK(metric(body_text(chain.proxy.get("/metrics")), "taba_proxy_blocks_refused_total{kind=\"event\"}") == 1);

  std::map<std::string, std::string> tabs;
  bool arrived = eventually(
      [&] {
        tabs = all_tabs(chain.fe);
        return tabs.count("px.post") && at(tabs["px.post"], "/count") == 4;
      },
      15000);
  CHECK(arrived);
  CHECK(tabs.size() == 1);
  CHECK(at(tabs["px.post"], "/count") == 4);
  CHECK(at(tabs["px.post"], "/total") == Approx(16));
  CHECK(body_text(chain.fe.get("/clients")) == "app-7\napp-8\n");
  // The counters move when the forwarders see their 200, which can come
  // after the fe already shows the events.
  CHECK(eventually(
      [&] { return metric(body_text(chain.proxy.get("/metrics")), "taba_proxy_bodies_forwarded_total") == 1; }, 5000));
  CHECK(eventually(
      [&] { return metric(body_text(chain.agent.get("/metrics")), "taba_agent_events_forwarded_total") == 4; }, 5000));
  CHECK(metric(body_text(chain.proxy.get("/metrics")), "taba_proxy_bodies_forwarded_total") == 1);
  CHECK(metric(body_text(chain.agent.get("/metrics")), "taba_agent_events_forwarded_total") == 4);
}
