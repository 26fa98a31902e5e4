#include "checker.h"

#include <algorithm>

#include <fmt/format.h>
#include <simdjson.h>

#include "harness.h"

namespace taba::nemesis {

namespace {

struct Stored {
  int64_t count = 0;
  int64_t total = 0;
};

// count and total of a TotalsCounter render, or of a CounterGroup's 1d window.
bool read_render(simdjson::dom::element render, Stored* out) {
  double count = 0, total = 0;
  if (render.at_pointer("/count").get(count) != simdjson::SUCCESS &&
      render.at_pointer("/1d/count").get(count) != simdjson::SUCCESS) {
    return false;
  }
  if (render.at_pointer("/total").get(total) != simdjson::SUCCESS &&
      render.at_pointer("/1d/total").get(total) != simdjson::SUCCESS) {
    return false;
  }
  out->count = static_cast<int64_t>(count);
  out->total = static_cast<int64_t>(total);
  return true;
}

bool is_statsd(const std::string& name) { return name.rfind("nem.statsd.", 0) == 0; }

// Compares one stored figure with what was promised; adds to lost and duplicated.
void compare(const std::string& what, const Stored& got, const Expected& e, CheckResult* r) {
  int64_t lost = std::max<int64_t>(0, e.count - got.count);
  int64_t dup = std::max<int64_t>(0, got.count - e.count - e.maybe_count);
  bool total_wrong = e.maybe_count == 0 && lost == 0 && dup == 0 && got.total != e.total;
  if (lost == 0 && dup == 0 && !total_wrong) return;
  r->lost += lost;
  r->duplicated += dup;
  if (total_wrong) ++r->duplicated;  // a wrong sum fails the run like a doubled event
  r->diffs.push_back(fmt::format("{}: stored {} events (total {}), acknowledged {} (total {}){}", what, got.count,
                                 got.total, e.count, e.total,
                                 e.maybe_count ? fmt::format(", {} more unanswered", e.maybe_count) : ""));
}

}  // namespace

CheckResult check_once(const std::string& projection_url, const std::string& tabs_url,
                       const std::map<std::pair<std::string, std::string>, Expected>& expected,
                       const std::map<std::string, int64_t>& statsd_sent) {
  CheckResult r;
  auto proj = test::get(projection_url, "/projection?re=1&name=nem%5C..*", "application/json", 20'000);
  auto tabs = test::get(tabs_url, "/tabs?re=1&name=nem%5C..*", "application/json", 20'000);
  if (test::status_of(proj) != 200 || test::status_of(tabs) != 200) {
    r.read_error = fmt::format("/projection: {} {}; /tabs: {} {}", test::status_of(proj),
                               test::body_text(proj).substr(0, 200), test::status_of(tabs),
                               test::body_text(tabs).substr(0, 200));
    return r;
  }
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  std::map<std::pair<std::string, std::string>, Stored> by_pair;
  std::map<std::string, Stored> by_name;
  if (parser.parse(proj->body).get(obj) != simdjson::SUCCESS) {
    r.read_error = "/projection: not JSON";
    return r;
  }
  for (auto name : obj) {
    simdjson::dom::object clients;
    if (name.value.get(clients) != simdjson::SUCCESS) continue;
    for (auto client : clients) {
      Stored s;
      if (read_render(client.value, &s)) by_pair[{std::string(name.key), std::string(client.key)}] = s;
    }
  }
  simdjson::dom::parser parser2;
  if (parser2.parse(tabs->body).get(obj) != simdjson::SUCCESS) {
    r.read_error = "/tabs: not JSON";
    return r;
  }
  for (auto name : obj) {
    Stored s;
    if (read_render(name.value, &s)) by_name[std::string(name.key)] = s;
  }
  r.read_ok = true;

  // Per (name, client), through /projection.
  std::map<std::string, Expected> per_name;
  for (const auto& [key, e] : expected) {
    ++r.pairs;
    r.expected_events += e.count;
    Expected& n = per_name[key.first];
    n.count += e.count;
    n.total += e.total;
    n.maybe_count += e.maybe_count;
    n.maybe_total += e.maybe_total;
    auto it = by_pair.find(key);
    compare(fmt::format("({}, {})", key.first, key.second), it == by_pair.end() ? Stored{} : it->second, e, &r);
  }
  for (const auto& [key, s] : by_pair) {
    if (is_statsd(key.first) || expected.count(key)) continue;
    compare(fmt::format("({}, {}) never posted", key.first, key.second), s, Expected{}, &r);
  }
  // Per name, all clients, through /tabs: the same promise, read from the
  // aggregate. Reported apart; counted only where /projection agreed.
  const int64_t lost_proj = r.lost, dup_proj = r.duplicated;
  r.lost = r.duplicated = 0;
  for (const auto& [name, e] : per_name) {
    auto it = by_name.find(name);
    compare("/tabs " + name, it == by_name.end() ? Stored{} : it->second, e, &r);
  }
  r.lost = std::max(r.lost, lost_proj);
  r.duplicated = std::max(r.duplicated, dup_proj);
  r.names = static_cast<int64_t>(per_name.size());

  for (const auto& [name, sent] : statsd_sent) {
    r.statsd_sent += sent;
    auto it = by_name.find(name);
    int64_t got = it == by_name.end() ? 0 : it->second.count;
    r.statsd_stored += got;
    if (got > sent) {
      r.statsd_excess += got - sent;
      r.diffs.push_back(fmt::format("statsd {}: {} stored, only {} sent", name, got, sent));
    }
  }
  return r;
}

CheckResult check_until(const std::string& projection_url, const std::string& tabs_url,
                        const std::map<std::pair<std::string, std::string>, Expected>& expected,
                        const std::map<std::string, int64_t>& statsd_sent, int timeout_ms) {
  const int64_t deadline = test::now_ms() + timeout_ms;
  for (;;) {
    CheckResult r = check_once(projection_url, tabs_url, expected, statsd_sent);
    if (r.pass() || test::now_ms() >= deadline) return r;
    test::sleep_ms(1000);
  }
}

}  // namespace taba::nemesis
