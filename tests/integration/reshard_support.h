// What the re-sharding integration tests (reshard_test.cpp) need beyond
// redis_support.h: a three-shard deployment whose configuration places the
// vbuckets on shard1 and shard2 only (shard3 is the target a move fills),
// names picked by vbucket, the placement and the move as GET /reshard
// reports them, where a name's keys live on a shard, and query answers in a
// canonical form so that two answers compare by value.
#pragma once

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "harness.h"
#include "redis_harness.h"
#include "redis_support.h"

namespace taba::test {

inline constexpr uint32_t kReshardVbuckets = 1024;
inline constexpr const char* kKeyPrefix = "taba:";  // [redis] key_prefix's default

// The vbucket a name hashes to (FNV-1a 64 of its bytes mod vbuckets, as the
// store places it; docs/architecture.md "Redis key map").
inline uint32_t vbucket_of_name(std::string_view name) {
  return static_cast<uint32_t>(fnv1a64(name) % kReshardVbuckets);
}

// The first `count` names "<prefix><i>" (i = 0, 1, ...) whose vbucket is
// inside [first, last] (inside) or outside it (!inside).
inline std::vector<std::string> pick_names(const std::string& prefix, size_t count, uint32_t first, uint32_t last,
                                           bool inside) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < count; ++i) {
    std::string name = fmt::format("{}{}", prefix, i);
    uint32_t vb = vbucket_of_name(name);
    if ((vb >= first && vb <= last) == inside) out.push_back(std::move(name));
  }
  return out;
}

// Three shards: one master each and one sentinel (cheap), or one replica
// each and three sentinels (for failovers).
inline RedisCluster::Options three_shards(bool replicated) {
  RedisCluster::Options o;
  o.shards = 3;
  if (!replicated) {
    o.replicas_per_shard = 0;
    o.sentinels = 1;
    o.quorum = 1;
  }
  return o;
}

// Starts the cluster and writes the tabad configuration that places the
// vbuckets on shard1 (0-511) and shard2 (512-1023) only, without the
// servers' own taba_* tabs.
inline void start_three_shards(RedisDeployment* d, bool replicated, const std::vector<std::string>& extra_redis) {
  d->start(three_shards(replicated), extra_redis, "[server]\nself_tabs_interval_s = 0\n\n", /*placed_shards=*/2);
}

// Starts an agent forwarding to the fes, with short retry pauses.
inline void run_agent(const RedisDeployment& d, TabadProcess* agent, const std::vector<const TabadProcess*>& fes) {
  std::string endpoints;
  for (const TabadProcess* fe : fes) {
    endpoints += fmt::format("{}\"127.0.0.1:{}\"", endpoints.empty() ? "" : ", ", fe->port());
  }
  std::string path = d.dir.path + "/agent.toml";
  REQUIRE_OK(write_text_file(path, fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                               "[agent]\nendpoints = [{}]\nflush_interval_ms = 100\n"
                                               "backoff_initial_ms = 50\nbackoff_max_ms = 500\n"
                                               "forward_timeout_ms = 5000\n",
                                               endpoints)));
  REQUIRE_OK(agent->start({"--config", path}));
}

// ---------------------------------------------------------------------------
// GET /reshard?format=json

struct MoveView {
  std::string id, from, to, phase, driver, error;
  int64_t first = -1, last = -1;
  uint64_t names_moved = 0, names_left = 0, bytes_moved = 0;
  bool driver_alive = false;
};

struct PlacementView {
  bool ok = false;  // answered 200 with the JSON described in the tests' contract
  std::string raw;
  bool supported = false;
  uint64_t epoch = 0;
  uint64_t vbuckets = 0;
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> shards;  // shard -> ranges
  std::optional<MoveView> move;
  std::vector<MoveView> recent;

  // "shard1 [341,511] shard2 [512,1023] shard3 [0,340]": the shards that own
  // something, for comparing placements.
  std::string ranges() const {
    std::string out;
    for (const auto& [shard, list] : shards) {
      if (list.empty()) continue;
      out += out.empty() ? shard : " " + shard;
      for (const auto& [a, b] : list) out += fmt::format(" [{},{}]", a, b);
    }
    return out;
  }
  // The ended move with that id, if recent lists it.
  std::optional<MoveView> ended(const std::string& id) const {
    for (const MoveView& m : recent) {
      if (m.id == id) return m;
    }
    return std::nullopt;
  }
};

inline bool parse_move(simdjson::dom::element e, MoveView* m) {
  std::string_view s;
  int64_t i = 0;
  uint64_t u = 0;
  bool b = false;
  bool good = true;
  auto str = [&](const char* key, std::string* out) {
    if (e[key].get(s) == simdjson::SUCCESS) *out = s; else good = false;
  };
  auto num = [&](const char* key, uint64_t* out) {
    if (e[key].get(u) == simdjson::SUCCESS) *out = u; else good = false;
  };
  str("id", &m->id);
  str("from", &m->from);
  str("to", &m->to);
  str("phase", &m->phase);
  str("driver", &m->driver);
  str("error", &m->error);
  if (e["first"].get(i) == simdjson::SUCCESS) m->first = i; else good = false;
  if (e["last"].get(i) == simdjson::SUCCESS) m->last = i; else good = false;
  num("names_moved", &m->names_moved);
  num("names_left", &m->names_left);
  num("bytes_moved", &m->bytes_moved);
  if (e["driver_alive"].get(b) == simdjson::SUCCESS) m->driver_alive = b; else good = false;
  return good;
}

inline PlacementView parse_placement(const std::string& json) {
  PlacementView v;
  v.raw = json;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc) != simdjson::SUCCESS) return v;
  bool good = doc["supported"].get(v.supported) == simdjson::SUCCESS &&
              doc["epoch"].get(v.epoch) == simdjson::SUCCESS && doc["vbuckets"].get(v.vbuckets) == simdjson::SUCCESS;
  simdjson::dom::array shards;
  if (doc["shards"].get(shards) == simdjson::SUCCESS) {
    for (simdjson::dom::element s : shards) {
      std::string_view name;
      simdjson::dom::array ranges;
      if (s["shard"].get(name) != simdjson::SUCCESS || s["ranges"].get(ranges) != simdjson::SUCCESS) {
        good = false;
        continue;
      }
      auto& list = v.shards[std::string(name)];
      for (simdjson::dom::element r : ranges) {
        int64_t a = 0, b = 0;
        if (r.at(0).get(a) != simdjson::SUCCESS || r.at(1).get(b) != simdjson::SUCCESS) good = false;
        list.emplace_back(a, b);
      }
    }
  } else {
    good = false;
  }
  simdjson::dom::element move;
  if (doc["move"].get(move) == simdjson::SUCCESS) {
    if (!move.is_null()) {
      MoveView m;
      if (!parse_move(move, &m)) good = false;
      v.move = m;
    }
  } else {
    good = false;
  }
  simdjson::dom::array recent;
  if (doc["recent"].get(recent) == simdjson::SUCCESS) {
    for (simdjson::dom::element r : recent) {
      MoveView m;
      if (!parse_move(r, &m)) good = false;
      v.recent.push_back(std::move(m));
    }
  } else {
    good = false;
  }
  v.ok = good;
  return v;
}

// GET /reshard?format=json from p; ok = false when it did not answer 200 with
// the expected JSON (raw then says what it answered).
inline PlacementView placement_of(const TabadProcess& p) {
  auto r = test::get(p.url(), "/reshard?format=json", "application/json", 5000);
  if (status_of(r) != 200) {
    PlacementView v;
    v.raw = fmt::format("status {}: {}", status_of(r), body_text(r));
    return v;
  }
  return parse_placement(r->body);
}

// Like placement_of, but it must succeed.
inline PlacementView placement_ok(const TabadProcess& p) {
  PlacementView v = placement_of(p);
  INFO("GET /reshard?format=json: " << v.raw);
  REQUIRE(v.ok);
  return v;
}

// POST /reshard?to=<to>&vbuckets=<first>-<last>.
inline Result<http::ClientResponse> post_reshard(const TabadProcess& p, const std::string& to, uint32_t first,
                                                 uint32_t last) {
  return test::post(p.url(), fmt::format("/reshard?to={}&vbuckets={}-{}", to, first, last), "",
                    {{"Accept", "application/json"}}, 10000);
}

// Starts a move through p (its driver): requires 202; returns the move's id.
inline std::string start_move(const TabadProcess& p, const std::string& to, uint32_t first, uint32_t last) {
  auto r = post_reshard(p, to, first, last);
  INFO("POST /reshard: " << status_of(r) << " " << body_text(r));
  REQUIRE(status_of(r) == 202);
  PlacementView v = parse_placement(r->body);
  if (v.ok && v.move) return v.move->id;
  v = placement_ok(p);  // the reply is not the placement: read it
  INFO(v.raw);
  REQUIRE(v.move.has_value());
  return v.move->id;
}

// POST /reshard?cancel=1: requires 202.
inline void cancel_move(const TabadProcess& p) {
  auto r = test::post(p.url(), "/reshard?cancel=1", "", {{"Accept", "application/json"}}, 10000);
  INFO("POST /reshard?cancel=1: " << status_of(r) << " " << body_text(r));
  REQUIRE(status_of(r) == 202);
}

// Polls p's placement until the move `id` has ended ("move" null or another,
// and recent[0] is it); its final state. Fails after timeout_ms.
inline MoveView wait_move_end(const TabadProcess& p, const std::string& id, int timeout_ms = 45'000) {
  PlacementView v;
  std::optional<MoveView> end;
  bool ended = eventually(
      [&] {
        v = placement_of(p);
        if (!v.ok || (v.move && v.move->id == id) || v.recent.empty() || v.recent.front().id != id) return false;
        end = v.recent.front();
        return true;
      },
      timeout_ms, 100);
  INFO("move " << id << " did not end within " << timeout_ms << " ms; last placement: " << v.raw);
  REQUIRE(ended);
  return *end;
}

// Polls p's placement until the move `id` is in one of `phases` (true), or
// has ended or timeout_ms passed (false). *seen: the last phase read.
inline bool wait_phase(const TabadProcess& p, const std::string& id, const std::set<std::string>& phases,
                       int timeout_ms, std::string* seen = nullptr) {
  std::string phase;
  bool ended = false;
  bool in = eventually(
      [&] {
        PlacementView v = placement_of(p);
        if (!v.ok) return false;
        if (!v.move || v.move->id != id) {
          ended = v.ended(id).has_value();
          phase = ended ? "ended" : phase;
          return ended;
        }
        phase = v.move->phase;
        return phases.count(phase) > 0;
      },
      timeout_ms, 20);
  if (seen != nullptr) *seen = phase;
  return in && !ended;
}

// ---------------------------------------------------------------------------
// Where keys live

// How many of `names` have the key "taba:<kind>:<name>" (kind "s" states,
// "a" aggregate) on the redis-server at port.
inline int64_t keys_present(const RedisCluster& cluster, int port, const std::string& kind,
                            const std::vector<std::string>& names) {
  std::vector<std::string> args = {"EXISTS"};
  for (const std::string& n : names) args.push_back(fmt::format("{}{}:{}", kKeyPrefix, kind, n));
  auto r = cluster.cli(port, args);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::stoll(r.value());
}

// How many of `names` are fields of the hash "taba:<hash>" (e.g. "types"),
// or members of the set (is_set) at port.
inline int64_t members_present(const RedisCluster& cluster, int port, const std::string& key,
                               const std::vector<std::string>& names, bool is_set = false) {
  std::vector<std::string> args = {
      "EVAL",
      fmt::format("local n = 0 for _, f in ipairs(ARGV) do n = n + redis.call('{}', KEYS[1], f) end return n",
                  is_set ? "SISMEMBER" : "HEXISTS"),
      "1", kKeyPrefix + key};
  args.insert(args.end(), names.begin(), names.end());
  auto r = cluster.cli(port, args);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return std::stoll(r.value());
}

// The type bound to `name` in "taba:types" at port ("" if none).
inline std::string bound_type(const RedisCluster& cluster, int port, const std::string& name) {
  auto r = cluster.cli(port, {"HGET", std::string(kKeyPrefix) + "types", name});
  INFO(r.status().message());
  REQUIRE(r.ok());
  return r.value();
}

// ---------------------------------------------------------------------------
// Comparing answers

inline void canonical_into(simdjson::dom::element e, std::string* out) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      std::vector<std::pair<std::string_view, simdjson::dom::element>> fields;
      simdjson::dom::object obj;
      if (e.get(obj) != simdjson::SUCCESS) return;
      for (auto field : obj) fields.emplace_back(field.key, field.value);
      std::sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      *out += '{';
      for (size_t i = 0; i < fields.size(); ++i) {
        *out += (i ? "," : "") + json_string(fields[i].first) + ":";
        canonical_into(fields[i].second, out);
      }
      *out += '}';
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      *out += '[';
      bool first = true;
      simdjson::dom::array arr;
      if (e.get(arr) != simdjson::SUCCESS) return;
      for (simdjson::dom::element x : arr) {
        if (!first) *out += ',';
        first = false;
        canonical_into(x, out);
      }
      *out += ']';
      return;
    }
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (e.get(s) != simdjson::SUCCESS) return;
      *out += json_string(s);
      return;
    }
    case simdjson::dom::element_type::BOOL: {
      bool b = false;
      if (e.get(b) != simdjson::SUCCESS) return;
      *out += b ? "true" : "false";
      return;
    }
    case simdjson::dom::element_type::NULL_VALUE:
      *out += "null";
      return;
    default: {  // numbers: compared as values, whatever their spelling
      double d = 0;
      if (e.get(d) != simdjson::SUCCESS) return;
      *out += fmt::format("{}", d);
      return;
    }
  }
}

// A JSON text in a canonical form (members sorted by key, numbers by value);
// "unparsable: <text>" if it is not JSON.
inline std::string canonical_json(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json).get(doc) != simdjson::SUCCESS) return "unparsable: " + json;
  std::string out;
  canonical_into(doc, &out);
  return out;
}

// Where two JSON answers differ, for failure messages: for two objects, the
// members that differ (at most 5, each side canonical and cut to 200
// characters); else both texts cut.
inline std::string json_diff(const std::string& got, const std::string& want) {
  simdjson::dom::parser pg, pw;
  simdjson::dom::object g, w;
  auto cut = [](const std::string& t) { return t.size() > 200 ? t.substr(0, 200) + "..." : t; };
  if (pg.parse(got).get(g) != simdjson::SUCCESS || pw.parse(want).get(w) != simdjson::SUCCESS) {
    return fmt::format("got  {}\nwant {}\n", cut(got), cut(want));
  }
  std::map<std::string, std::string> gm, wm;
  for (auto f : g) canonical_into(f.value, &gm[std::string(f.key)]);
  for (auto f : w) canonical_into(f.value, &wm[std::string(f.key)]);
  std::set<std::string> keys;
  for (const auto& [k, v] : gm) keys.insert(k);
  for (const auto& [k, v] : wm) keys.insert(k);
  std::string out;
  int n = 0;
  for (const std::string& k : keys) {
    auto a = gm.find(k);
    auto b = wm.find(k);
    std::string av = a == gm.end() ? "(absent)" : a->second;
    std::string bv = b == wm.end() ? "(absent)" : b->second;
    if (av == bv) continue;
    if (n++ < 5) out += fmt::format("  {}: got {} want {}\n", k, cut(av), cut(bv));
  }
  return fmt::format("{} members differ\n{}", n, out);
}

// GET each path (JSON) from p: path -> canonical answer, or "status N: body"
// when it did not answer 200.
inline std::map<std::string, std::string> answers_of(const TabadProcess& p, const std::vector<std::string>& paths) {
  std::map<std::string, std::string> out;
  for (const std::string& path : paths) {
    auto r = test::get(p.url(), path, "application/json", 10000);
    out[path] = status_of(r) == 200 ? canonical_json(r->body) : fmt::format("status {}: {}", status_of(r), body_text(r));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Exact totals

// The acknowledged batches' events per "name\tclient" (LoadBatch::counts).
inline std::map<std::string, int64_t> expected_cells(const std::vector<LoadBatch>& acked) {
  std::map<std::string, int64_t> out;
  for (const LoadBatch& b : acked) {
    for (const auto& [cell, n] : b.counts) out[cell] += n;
  }
  return out;
}

// What differs between two count maps, one line per key (at most 20):
// "key: got G, want W" (-1 = absent); "" when equal.
inline std::string count_diff(const std::map<std::string, int64_t>& got, const std::map<std::string, int64_t>& want) {
  std::set<std::string> keys;
  for (const auto& [k, v] : got) keys.insert(k);
  for (const auto& [k, v] : want) keys.insert(k);
  std::string out;
  int shown = 0, differing = 0;
  for (const std::string& k : keys) {
    auto g = got.find(k);
    auto w = want.find(k);
    int64_t gv = g == got.end() ? -1 : g->second;
    int64_t wv = w == want.end() ? -1 : w->second;
    if (gv == wv) continue;
    ++differing;
    if (shown++ < 20) out += fmt::format("{}: got {}, want {}\n", k, gv, wv);
  }
  if (differing > 20) out += fmt::format("... {} keys differ in all\n", differing);
  return out;
}

// Checks, through q, that the TotalsCounter names matching `regex` hold
// exactly `cells` ("name\tclient" -> events): /tabs per name, /projection
// per (name, client). `what` names the check in failure messages.
inline void check_totals(const TabadProcess& q, const std::string& regex, const std::map<std::string, int64_t>& cells,
                         const std::string& what) {
  INFO(what);
  std::map<std::string, int64_t> want_names;
  for (const auto& [cell, n] : cells) want_names[cell.substr(0, cell.find('\t'))] += n;

  simdjson::dom::parser parser;
  auto tabs = test::get(q.url(), "/tabs?re=1&name=" + regex, "application/json", 20000);
  INFO("/tabs: " << status_of(tabs) << " " << body_text(tabs).substr(0, 300));
  REQUIRE(status_of(tabs) == 200);
  simdjson::dom::object obj;
  REQUIRE(parser.parse(tabs->body).get(obj) == simdjson::SUCCESS);
  std::map<std::string, int64_t> got_names;
  for (auto field : obj) {
    int64_t c = -1;
    if (field.value["count"].get(c) != simdjson::SUCCESS) c = -1;
    got_names[std::string(field.key)] = c;
  }
  INFO("per name (of " << want_names.size() << "):\n" << count_diff(got_names, want_names));
  CHECK(count_diff(got_names, want_names).empty());

  auto proj = test::get(q.url(), "/projection?re=1&name=" + regex, "application/json", 20000);
  INFO("/projection: " << status_of(proj) << " " << body_text(proj).substr(0, 300));
  REQUIRE(status_of(proj) == 200);
  REQUIRE(parser.parse(proj->body).get(obj) == simdjson::SUCCESS);
  std::map<std::string, int64_t> got_cells;
  for (auto name : obj) {
    simdjson::dom::object clients;
    if (name.value.get(clients) != simdjson::SUCCESS) continue;
    for (auto client : clients) {
      int64_t c = -1;
      if (client.value["count"].get(c) != simdjson::SUCCESS) c = -1;
      got_cells[std::string(name.key) + "\t" + std::string(client.key)] = c;
    }
  }
  INFO("per (name, client) (of " << cells.size() << "):\n" << count_diff(got_cells, cells));
  CHECK(count_diff(got_cells, cells).empty());
}

}  // namespace taba::test
