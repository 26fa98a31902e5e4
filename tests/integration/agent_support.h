// What the agent's integration tests share (agent_*_test.cpp): configs for
// an fe and an agent, the agent's /status as numbers, waiting for its spool
// to drain, reading an fe's aggregates, and the raw requests a canned
// server in front of an fe sees and relays.
#pragma once

#include <catch2/catch.hpp>
#include <dirent.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness.h"

namespace taba::test {

// An fe (fe,be, embedded store) without its own taba_* tabs.
inline std::string fe_config(const std::string& dir) {
  std::string path = dir + "/fe.toml";
  REQUIRE(write_text_file(path, "[server]\nself_tabs_interval_s = 0\n").ok());
  return path;
}

// An agent forwarding to 127.0.0.1:fe_port; `extra` is appended to [agent].
// The harness gives it --listen and --data-dir.
inline std::string agent_config(const std::string& dir, int fe_port, const std::string& extra = {}) {
  std::string path = dir + "/agent.toml";
  REQUIRE(write_text_file(path, fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                       "[agent]\nendpoints = [\"127.0.0.1:{}\"]\nbackoff_max_ms = 1000\n{}",
                                       fe_port, extra))
              .ok());
  return path;
}

// The agent's GET /status?format=json, the parts the tests read.
struct AgentStatus {
  bool ok = false;
  std::string raw;
  uint64_t spool_events = 0, spool_batches = 0, spool_bytes = 0, refused_full = 0;
  uint64_t accepted = 0, rejected = 0, duplicates = 0, events_spooled = 0;
  uint64_t forwarded_batches = 0, forwarded_events = 0, in_flight = 0;
  uint64_t dead_batches = 0, dead_events = 0;
  std::string ep_state, ep_last_error;
  uint64_t ep_failures = 0, ep_consecutive = 0;
};

inline AgentStatus agent_status(const std::string& base_url) {
  AgentStatus s;
  auto r = test::get(base_url, "/status?format=json", "", 3000);
  if (!r.ok() || r->status != 200) return s;
  s.raw = r->body;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(s.raw).get(doc) != simdjson::SUCCESS) return s;
  bool good = true;
  auto u = [&](const char* ptr, uint64_t* out) {
    if (doc.at_pointer(ptr).get(*out) != simdjson::SUCCESS) good = false;
  };
  u("/spool/events", &s.spool_events);
  u("/spool/batches", &s.spool_batches);
  u("/spool/bytes", &s.spool_bytes);
  u("/spool/refused_full", &s.refused_full);
  u("/posts/accepted", &s.accepted);
  u("/posts/rejected", &s.rejected);
  u("/posts/duplicates", &s.duplicates);
  u("/posts/events_spooled", &s.events_spooled);
  u("/forwarded/batches", &s.forwarded_batches);
  u("/forwarded/events", &s.forwarded_events);
  u("/forwarded/in_flight", &s.in_flight);
  u("/dead_letters/batches", &s.dead_batches);
  u("/dead_letters/events", &s.dead_events);
  u("/endpoints/0/failures", &s.ep_failures);
  u("/endpoints/0/consecutive_failures", &s.ep_consecutive);
  std::string_view sv;
  if (doc.at_pointer("/endpoints/0/state").get(sv) == simdjson::SUCCESS) s.ep_state = sv; else good = false;
  if (doc.at_pointer("/endpoints/0/last_error").get(sv) == simdjson::SUCCESS) s.ep_last_error = sv; else good = false;
  s.ok = good;
  return s;
}
inline AgentStatus agent_status(const TabadProcess& agent) { return agent_status(agent.url()); }

// Waits until the agent's spool is empty and nothing is in flight.
inline bool wait_drained(const std::string& base_url, int timeout_ms) {
  return eventually(
      [&] {
        AgentStatus s = agent_status(base_url);
        return s.ok && s.spool_events == 0 && s.spool_batches == 0 && s.in_flight == 0;
      },
      timeout_ms);
}
inline bool wait_drained(const TabadProcess& agent, int timeout_ms) { return wait_drained(agent.url(), timeout_ms); }

// Waits until the agent's spool is empty, nothing is in flight and at least
// one dead letter was written; its status then.
inline AgentStatus wait_dead_lettered(const TabadProcess& agent, int timeout_ms) {
  AgentStatus s;
  bool settled = eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.spool_events == 0 && s.in_flight == 0 && s.dead_batches >= 1;
      },
      timeout_ms);
  INFO(s.raw);
  REQUIRE(settled);
  return s;
}

// POST /flush on the fe: everything it acknowledged is applied.
inline void fe_flush(const TabadProcess& fe) {
  auto r = fe.post("/flush", "");
  REQUIRE(r.ok());
  REQUIRE(r->status == 200);
}

struct Agg {
  double count = -1;
  double total = -1;
};

// GET /tabs?<query> as JSON: per name, the numbers at two JSON pointers into
// its render ("/count" and "/total" for TotalsCounter, "/pct/count" and
// "/pct/total" for CounterGroup's all-time part).
inline std::map<std::string, Agg> tabs_json(const TabadProcess& fe, const std::string& query,
                                     const char* count_ptr = "/count", const char* total_ptr = "/total") {
  auto r = fe.get("/tabs?" + query, "application/json");
  REQUIRE(r.ok());
  INFO(r->body);
  REQUIRE(r->status == 200);
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  REQUIRE(parser.parse(r->body).get(obj) == simdjson::SUCCESS);
  std::map<std::string, Agg> out;
  for (auto field : obj) {
    Agg a;
    double v = 0;
    if (field.value.at_pointer(count_ptr).get(v) == simdjson::SUCCESS) a.count = v;
    if (field.value.at_pointer(total_ptr).get(v) == simdjson::SUCCESS) a.total = v;
    out.emplace(std::string(field.key), a);
  }
  return out;
}

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

inline bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A body of `events` TotalsCounter events of `value` under one name.
inline std::string totals_body(const std::string& client, const std::string& name, int events, double value,
                               double t) {
  NameBlock nb{name, {}};
  for (int k = 0; k < events; ++k) nb.event_lines.push_back(event_line("TotalsCounter", t, fmt::format("{}", value)));
  return v1_body({{client, {nb}}});
}

// One request a canned server received.
struct RawRequest {
  std::string method, path, body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased

  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

inline RawRequest parse_request(const std::string& raw) {
  RawRequest r;
  size_t head_end = raw.find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  std::string head = raw.substr(0, head_end);
  r.body = raw.substr(head_end + 4);
  size_t eol = head.find("\r\n");
  std::string first = head.substr(0, eol);
  size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
  r.method = first.substr(0, sp1);
  r.path = first.substr(sp1 + 1, sp2 - sp1 - 1);
  while (eol != std::string::npos) {
    size_t next = head.find("\r\n", eol + 2);
    std::string line = head.substr(eol + 2, next == std::string::npos ? std::string::npos : next - eol - 2);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = line.find_first_not_of(' ', colon + 1);
      r.headers.emplace_back(name, v == std::string::npos ? "" : line.substr(v));
    }
    eol = next;
  }
  return r;
}

// Sends raw request bytes to 127.0.0.1:port and returns the raw response
// (head and Content-Length body), or "" when the connection failed.
inline std::string exchange_raw(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char chunk[16384];
    for (;;) {
      size_t head_end = response.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        RawRequest head = parse_request(response.substr(0, head_end + 4));
        size_t length = static_cast<size_t>(std::strtoull(head.header("content-length").c_str(), nullptr, 10));
        if (response.size() >= head_end + 4 + length) break;
      }
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      response.append(chunk, static_cast<size_t>(n));
    }
  }
  if (fd >= 0) ::close(fd);
  return response;
}

// A process's GET /metrics text.
inline std::string metrics_of(const TabadProcess& p) { return body_text(p.get("/metrics")); }

}  // namespace taba::test
