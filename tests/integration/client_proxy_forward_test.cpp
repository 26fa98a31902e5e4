// What the client-proxy posts to its agent (docs/statsd.md, "What the proxy
// sends"): a real client-proxy process forwards StatsD lines to a scripted
// HTTP server in the agent's place, which plays an agent that takes delta
// batches (POST /post_delta) or one of an older release that has no such
// route, and records what arrives.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <csignal>
#include <map>
#include <string>
#include <vector>

#include "../unit/canned_http_server.h"
#include "harness.h"
#include "protocol/delta_batch.h"

using namespace taba;
using namespace taba::test;

namespace {

struct Request {
  std::string path;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

Request parse_request(const std::string& raw) {
  Request r;
  size_t head_end = raw.find("\r\n\r\n");
  std::string head = raw.substr(0, head_end);
  r.body = raw.substr(head_end + 4);
  size_t sp = head.find(' ');
  r.path = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    pos = next;
  }
  return r;
}

std::vector<Request> requests_to(const CannedHttpServer& agent, const std::string& path) {
  std::vector<Request> out;
  for (const std::string& raw : agent.requests()) {
    Request r = parse_request(raw);
    if (r.path == path) out.push_back(std::move(r));
  }
  return out;
}

// The blocks of a /post_delta body as "name type events", in order.
std::vector<std::string> delta_blocks(const std::string& body) {
  auto batch = protocol::unwrap_delta_body(body);
  REQUIRE(batch.ok());
  protocol::DeltaReader reader(batch.value());
  REQUIRE(reader.open().ok());
  std::vector<std::string> out;
  protocol::DeltaBlock b;
  Status s;
  while (reader.next(&b, &s)) {
    CHECK(b.client == "statsd-host");
    out.push_back(fmt::format("{} {} {}", b.name, b.type, b.events));
  }
  REQUIRE(s.ok());
  return out;
}

std::string proxy_config(const std::string& dir, int udp_port, int agent_port, const std::string& extra = "") {
  std::string path = dir + "/proxy.toml";
  REQUIRE(write_text_file(path, fmt::format("[server]\nroles = [\"client-proxy\"]\nself_tabs_interval_s = 0\n"
                                            "[client_proxy]\nstatsd_udp = \"127.0.0.1:{}\"\nagent = \"127.0.0.1:{}\"\n"
                                            "client_id = \"statsd-host\"\nflush_interval_ms = 50\n{}",
                                            udp_port, agent_port, extra))
              .ok());
  return path;
}

const char* kLines = "hits:1|c\nhits:2|c|@0.5\nlat:5:7|ms\nusers:alice|s\ntemp:3|g\n";

}  // namespace

TEST_CASE("client-proxy: an agent that takes delta batches gets one per flush on POST /post_delta",
          "[e2e][client-proxy][statsd]") {
  TempDir dir("cproxy-delta");
  CannedHttpServer agent([](const std::string&) {
    return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", ""), false};
  });
  int udp_port = free_udp_port();
  TabadProcess proxy;
  REQUIRE_OK(proxy.start({"--config", proxy_config(dir.path, udp_port, agent.port())}));
  // The proxy asks first: an empty delta batch.
  REQUIRE(eventually([&] { return !requests_to(agent, "/post_delta").empty(); }, 10000));
  CHECK(delta_blocks(requests_to(agent, "/post_delta")[0].body).empty());
  CHECK(eventually([&] { return body_text(proxy.get("/status")).find("format     delta batches") != std::string::npos; },
                   5000));

  REQUIRE(send_udp(udp_port, kLines).ok());
  REQUIRE(eventually([&] { return requests_to(agent, "/post_delta").size() >= 2; }, 10000));
  std::vector<Request> posts = requests_to(agent, "/post_delta");
  Request batch = posts[1];
  CHECK(batch.headers["content-type"] == "application/x-taba-delta");
  CHECK(batch.headers["taba-batch-id"].size() == 32);
  CHECK(delta_blocks(batch.body) ==
        std::vector<std::string>{"hits CounterGroup 2", "lat PercentileGroup 2", "users Set 1", "temp Gauge 1"});
  CHECK(requests_to(agent, "/post").empty());
  CHECK(eventually(
      [&] { return metric(body_text(proxy.get("/metrics")), "taba_proxy_events_forwarded_total") == 6; }, 5000));
  CHECK(metric(body_text(proxy.get("/metrics")), "taba_proxy_bodies_forwarded_total") == 1);

  // SIGTERM: the proxy-only process says what it does, and has no store.
  REQUIRE_OK(proxy.signal(SIGTERM));
  auto code = proxy.wait_exit(10000);
  REQUIRE(code.ok());
  CHECK(code.value() == 0);
  std::string log = proxy.log_text();
  INFO(log);
  CHECK(log.find("received SIGTERM: handing the client-proxy's buffer to the agent\n") != std::string::npos);
  CHECK(log.find("store") == std::string::npos);
}

TEST_CASE("client-proxy: an agent without POST /post_delta gets v1 bodies, nothing lost",
          "[e2e][client-proxy][statsd]") {
  TempDir dir("cproxy-v1agent");
  // An agent of a release before delta batches: its router has no
  // /post_delta (405, as such an agent answers a POST to a route it lacks).
  CannedHttpServer agent([](const std::string& raw) {
    if (raw.rfind("POST /post_delta ", 0) == 0) {
      return CannedHttpServer::Reply{canned_response("405 Method Not Allowed", "text/plain", "/post_delta accepts only GET\n"),
                                     false};
    }
    return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", ""), false};
  });
  int udp_port = free_udp_port();
  TabadProcess proxy;
  REQUIRE_OK(proxy.start({"--config", proxy_config(dir.path, udp_port, agent.port())}));
  REQUIRE(eventually([&] { return !requests_to(agent, "/post_delta").empty(); }, 10000));
  REQUIRE(eventually(
      [&] { return body_text(proxy.get("/status")).find("the agent takes no delta batches") != std::string::npos; },
      5000));
  REQUIRE(send_udp(udp_port, kLines).ok());
  REQUIRE(eventually([&] { return !requests_to(agent, "/post").empty(); }, 10000));
  Request post = requests_to(agent, "/post")[0];
  INFO(post.body);
  CHECK(post.body.rfind("1\n\nstatsd-host\n\nhits\n[\"CounterGroup\",", 0) == 0);
  CHECK(post.body.find(",\"4\"]\n") != std::string::npos);  // 2 at a rate of 0.5
  CHECK(post.body.find("users\n[\"Set\",") != std::string::npos);
  CHECK(eventually(
      [&] { return metric(body_text(proxy.get("/metrics")), "taba_proxy_events_forwarded_total") == 6; }, 5000));
  // Only the question went to /post_delta.
  CHECK(requests_to(agent, "/post_delta").size() == 1);
  CHECK(proxy.log_text().find("takes no delta batches") != std::string::npos);
}

TEST_CASE("client-proxy: forward_format = \"v1\" posts v1 bodies and never asks for /post_delta",
          "[e2e][client-proxy][statsd]") {
  TempDir dir("cproxy-v1");
  CannedHttpServer agent([](const std::string&) {
    return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", ""), false};
  });
  int udp_port = free_udp_port();
  TabadProcess proxy;
  REQUIRE_OK(proxy.start({"--config", proxy_config(dir.path, udp_port, agent.port(), "forward_format = \"v1\"\n")}));
  REQUIRE(send_udp(udp_port, kLines).ok());
  REQUIRE(eventually([&] { return !requests_to(agent, "/post").empty(); }, 10000));
  CHECK(requests_to(agent, "/post")[0].body.rfind("1\n\nstatsd-host\n\nhits\n", 0) == 0);
  CHECK(requests_to(agent, "/post_delta").empty());
  CHECK(body_text(proxy.get("/status")).find("format     v1 bodies (POST /post)\n") != std::string::npos);
}
