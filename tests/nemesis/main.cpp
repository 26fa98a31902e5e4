// nemesis: random faults across a whole tabad cluster under load, and a
// check that every acknowledged event is stored exactly once.
//
//   nemesis --mode embedded|redis --seed N|random --duration SECONDS
//           [--max-concurrent K] [--tabad PATH] [--keep] [--roaming-retries]
//
// --roaming-retries: the two posters that post through agents retry a batch
// through the other agent too, as clients behind a load balancer without
// affinity would; outside the promise (docs/reliability.md), it shows what
// that costs (the run is expected to find duplicates).
// Starts the cluster (cluster.h) in a temporary directory, starts the load
// (load.h), lets the nemesis (nemesis.h) carry out the faults drawn from the
// seed for --duration seconds, heals everything, delivers what the senders
// still hold, and checks (checker.h). Prints the seed and the command that
// replays the run, the timeline of faults, the figures, and on failure the
// differences and the end of every log. Exit 0: lost = 0 and duplicated = 0;
// 1: a difference, or the cluster never recovered; 2: bad usage or set-up.
// docs/reliability.md tells how to read it.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "checker.h"
#include "cluster.h"
#include "harness.h"
#include "load.h"
#include "nemesis.h"

using namespace taba;
using namespace taba::nemesis;

namespace {

struct Options {
  StoreMode mode = StoreMode::kEmbedded;
  uint64_t seed = 1;
  bool seed_drawn = false;
  int duration_s = 30;
  int max_concurrent = 2;
  std::string tabad;
  bool keep = false;
  bool roaming_retries = false;
};

int usage(const char* why) {
  fmt::print(stderr,
             "nemesis: {}\nusage: nemesis --mode embedded|redis --seed N|random --duration SECONDS "
             "[--max-concurrent K] [--tabad PATH] [--keep] [--roaming-retries]\n",
             why);
  return 2;
}

bool parse(int argc, char** argv, Options* o, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) return {};
      return argv[++i];
    };
    if (a == "--mode") {
      std::string v = value();
      if (v == "embedded") {
        o->mode = StoreMode::kEmbedded;
      } else if (v == "redis") {
        o->mode = StoreMode::kRedis;
      } else {
        *error = "--mode: \"" + v + "\" is not embedded or redis";
        return false;
      }
    } else if (a == "--seed") {
      std::string v = value();
      if (v == "random") {
        o->seed = std::random_device{}() % 1'000'000'000;
        o->seed_drawn = true;
      } else {
        char* end = nullptr;
        o->seed = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0') {
          *error = "--seed: \"" + v + "\" is not a number or random";
          return false;
        }
      }
    } else if (a == "--duration") {
      o->duration_s = std::atoi(value().c_str());
      if (o->duration_s < 5 || o->duration_s > 24 * 3600) {
        *error = "--duration: seconds from 5 to 86400";
        return false;
      }
    } else if (a == "--max-concurrent") {
      o->max_concurrent = std::atoi(value().c_str());
      if (o->max_concurrent < 1 || o->max_concurrent > 8) {
        *error = "--max-concurrent: 1 to 8";
        return false;
      }
    } else if (a == "--tabad") {
      o->tabad = value();
    } else if (a == "--keep") {
      o->keep = true;
    } else if (a == "--roaming-retries") {
      o->roaming_retries = true;
    } else {
      *error = "unknown argument \"" + a + "\"";
      return false;
    }
  }
  return true;
}

bool agent_drained(const Node* agent) {
  auto r = test::get(agent->url(), "/status?format=json", "application/json", 2000);
  if (test::status_of(r) != 200) return false;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(r->body).get(doc) != simdjson::SUCCESS) return false;
  uint64_t events = 1, in_flight = 1;
  if (doc.at_pointer("/spool/events").get(events) != simdjson::SUCCESS) return false;
  if (doc.at_pointer("/forwarded/in_flight").get(in_flight) != simdjson::SUCCESS) return false;
  return events == 0 && in_flight == 0;
}

std::string ms_text(int64_t ms) { return ms < 0 ? "-" : fmt::format("{:.1f} s", static_cast<double>(ms) / 1000); }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string error;
  if (!parse(argc, argv, &o, &error)) return usage(error.c_str());
  if (o.tabad.empty()) o.tabad = test::tabad_path();
  const char* mode_text = o.mode == StoreMode::kRedis ? "redis" : "embedded";
  const std::string replay =
      fmt::format("nemesis --mode {} --seed {} --duration {} --max-concurrent {}{}", mode_text, o.seed, o.duration_s,
                  o.max_concurrent, o.roaming_retries ? " --roaming-retries" : "");
  fmt::print("nemesis: {} store, seed {}{}, {} s of faults (replay: {})\n", mode_text, o.seed,
             o.seed_drawn ? " (drawn for this run)" : "", o.duration_s, replay);
  std::fflush(stdout);

  std::string dir = test::make_temp_dir("taba-nemesis");
  int code = 0;
  {
    Cluster cluster(o.mode, o.tabad, dir);
    Status s = cluster.start();
    if (!s.ok()) {
      fmt::print("nemesis: the cluster did not start: {}\n", s.message());
      return 2;
    }
    if (!cluster.can_step_clocks()) {
      fmt::print("nemesis: no clock steps in this run: libfaketime is not installed (Debian: libfaketime), or this is "
                 "a sanitized build (libfaketime hangs AddressSanitizer's start-up)\n");
    }
    std::vector<PlannedFault> plan = plan_faults(o.seed, cluster, o.duration_s * 1000LL, o.max_concurrent);

    Ledger ledger;
    PathClock paths;
    LoadOptions lo;
    lo.run_id = fmt::format("{}-{}", o.seed, test::now_ms());
    for (int i = 0; i < 2; ++i) lo.agent_urls.push_back(fmt::format("http://127.0.0.1:{}", cluster.client_link(i)->port()));
    for (Node* fe : cluster.fes()) lo.fe_urls.push_back(fe->url());
    lo.statsd_port = cluster.statsd_port();
    lo.roaming_retries = o.roaming_retries;
    Load load(lo, &ledger, &paths);
    load.start();

    Nemesis nemesis(&cluster, &paths, plan);
    nemesis.run(o.duration_s * 1000LL);
    const int64_t healed_at = test::now_ms();
    load.finish(90'000);
    const int64_t delivered_ms = test::now_ms() - healed_at;
    for (Node* agent : cluster.agents()) {
      if (!test::eventually([&] { return agent_drained(agent); }, 60'000, 200)) {
        fmt::print("nemesis: {} still holds events 60 s after the load ended\n", agent->name);
      }
    }
    Node* projection_node = cluster.fes().front();
    Node* tabs_node = cluster.query_node();
    auto expected = ledger.snapshot();
    auto statsd = load.statsd_sent_by_name();
    CheckResult r = check_until(projection_node->url(), tabs_node->url(), expected, statsd, 60'000);
    // Once right, read again after a quiet spell: a late re-send would show.
    if (r.pass()) {
      test::sleep_ms(3000);
      r = check_once(projection_node->url(), tabs_node->url(), expected, statsd);
    }
    const int64_t converged_ms = test::now_ms() - healed_at;

    fmt::print("\ntimeline (ms from the start of the faults):\n");
    for (const Event& e : nemesis.timeline()) fmt::print("  {:>7}  {}\n", e.at_ms, e.text);

    std::map<std::string, std::vector<int64_t>> recoveries;
    std::map<std::string, int> injected;
    for (const FaultOutcome& f : nemesis.outcomes()) {
      if (f.skipped) continue;
      ++injected[kind_name(f.fault.kind)];
      recoveries[kind_name(f.fault.kind)].push_back(f.recovery_ms);
    }
    fmt::print("\nfaults by kind (recovery: from the heal until the affected path works again):\n");
    fmt::print("  {:<12} {:>5} {:>10} {:>10} {:>12}\n", "kind", "count", "median", "max", "unrecovered");
    for (auto& [kind, times] : recoveries) {
      std::vector<int64_t> ok;
      for (int64_t t : times) {
        if (t >= 0) ok.push_back(t);
      }
      std::sort(ok.begin(), ok.end());
      fmt::print("  {:<12} {:>5} {:>10} {:>10} {:>12}\n", kind, injected[kind],
                 ms_text(ok.empty() ? -1 : ok[ok.size() / 2]), ms_text(ok.empty() ? -1 : ok.back()),
                 times.size() - ok.size());
    }
    fmt::print("\nload: {} events acknowledged ({} pairs of name and client over {} names); {} failed posts "
               "retried; {} batches never answered\n",
               load.acknowledged_events(), r.pairs, r.names, load.post_failures(), load.batches_unanswered());
    fmt::print("statsd: {} lines sent, {} stored, {} lost ({:.2f} %: UDP and the client-proxy's memory, "
               "best effort), {} beyond what was sent\n",
               r.statsd_sent, r.statsd_stored, r.statsd_sent - r.statsd_stored,
               r.statsd_sent ? 100.0 * static_cast<double>(r.statsd_sent - r.statsd_stored) / r.statsd_sent : 0.0,
               r.statsd_excess);
    fmt::print("after the heal: senders delivered in {}, the store was right {} after the heal\n",
               ms_text(delivered_ms), r.pass() ? ms_text(converged_ms) : "never");
    fmt::print("check: lost {}, duplicated {}\n", r.lost, r.duplicated);

    bool fail = !r.pass();
    if (!r.read_ok) fmt::print("check: the store could not be read: {}\n", r.read_error);
    for (const std::string& d : r.diffs) fmt::print("  {}\n", d);
    if (!load.library_problems().empty()) {
      fail = true;
      fmt::print("client library did not deliver everything: {}\n", load.library_problems());
    }
    for (const std::string& p : nemesis.problems()) {
      fail = true;
      fmt::print("nemesis problem: {}\n", p);
    }
    if (fail) {
      for (Node* n : cluster.nodes()) fmt::print("\n--- end of {}'s log ---\n{}\n", n->name, cluster.log_tail(n));
      fmt::print("\nRESULT: FAIL (seed {}; replay: {})\n", o.seed, replay);
      code = 1;
    } else {
      fmt::print("\nRESULT: PASS (seed {})\n", o.seed);
    }
    std::fflush(stdout);
  }
  if (o.keep || code != 0) {
    fmt::print("files kept in {}\n", dir);
  } else {
    test::remove_tree(dir);
  }
  return code;
}
