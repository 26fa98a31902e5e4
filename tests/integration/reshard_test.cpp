// Online re-sharding of the Redis store with real redis-server and
// redis-sentinel processes and real fe / be / ctrl / agent tabad processes:
// vbuckets 0-340 (a third, all on shard1) move to shard3, a shard the
// configuration does not place anything on, while load runs.
//
// Every test computes the totals it expects from what was acknowledged
// (200) and checks them after POST /flush through /tabs and /projection: an
// acknowledged event is there once, whatever happened during the move
// (a batch posted again after its names moved, a driver, be or fe killed,
// a failover of either master, a stale fe, a cancel). Waits are bounded and
// poll; no assertion is about speed. A slow move (reshard_names_per_s) over
// a few hundred names of the range gives the tests time to act mid-move.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <csignal>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent_support.h"
#include "harness.h"
#include "redis_harness.h"
#include "redis_support.h"
#include "reshard_support.h"

using namespace taba;
using namespace taba::test;

namespace {

// The range every test moves: a third of the vbuckets, all on shard1.
constexpr uint32_t kFirst = 0;
constexpr uint32_t kLast = 340;
const char* const kRange = "0-340";
const char* const kPlacedBefore = "shard1 [0,511] shard2 [512,1023]";
const char* const kPlacedAfter = "shard1 [341,511] shard2 [512,1023] shard3 [0,340]";
// A slow move: the bulk names of the range, copied at this rate, take
// several seconds per copying phase.
const char* const kSlow = "reshard_names_per_s = 40";
constexpr size_t kBulkNames = 300;

// "<prefix>.*" as a URL-encoded RE2 pattern (prefixes end with '.').
std::string prefix_re(const std::string& prefix) {
  return prefix.substr(0, prefix.size() - 1) + "%5C..*";
}

// Continuous load over names of the moved range and of the rest: batch i
// comes from client "c<i % 3>" and holds 4 names x 2 TotalsCounter events;
// even batches only names of the range, odd ones two of each.
struct LoadPlan {
  std::string prefix;
  std::vector<std::string> moved, kept;

  explicit LoadPlan(std::string p)
      : prefix(std::move(p)),
        moved(pick_names(prefix, 12, kFirst, kLast, true)),
        kept(pick_names(prefix, 12, kFirst, kLast, false)) {}

  LoadBatch batch(int i) const {
    const size_t n = static_cast<size_t>(i);
    std::vector<std::string> names;
    if (i % 2 == 0) {
      for (size_t k = 0; k < 4; ++k) names.push_back(moved[(2 * n + k) % moved.size()]);
    } else {
      names = {moved[n % moved.size()], moved[(n + 5) % moved.size()], kept[n % kept.size()],
               kept[(n + 5) % kept.size()]};
    }
    const std::string client = fmt::format("c{}", i % 3);
    const double t = now_s();
    LoadBatch b;
    b.id = fmt::format("{}b{}", prefix, i);
    ClientBlock cb{client, {}};
    for (const std::string& name : names) {
      cb.names.push_back({name, {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "1")}});
      b.counts[name + "\t" + client] += 2;
      b.events += 2;
    }
    b.body = v1_body({cb});
    return b;
  }
};

// POSTs a body to fe until it is answered otherwise than 503 (a shard not
// reachable yet, e.g. the target of a move just learned: a client retries,
// with the batch id the 503 names if it sent none), 20 s at most; the last
// answer. Each 503 adds one to *retries.
Result<http::ClientResponse> post_answered(const TabadProcess& fe, const std::string& body,
                                           std::vector<http::Header> headers = {}, int* retries = nullptr) {
  Result<http::ClientResponse> r = fe.post("/post", body, headers);
  for (int attempt = 0; attempt < 200 && status_of(r) == 503; ++attempt) {
    if (retries != nullptr) ++*retries;
    bool has_id = false;
    for (const http::Header& h : headers) has_id = has_id || h.name == "Taba-Batch-Id";
    const std::string named(r->header("taba-batch-id"));
    if (!has_id && !named.empty()) headers.push_back({"Taba-Batch-Id", named});
    sleep_ms(100);
    r = fe.post("/post", body, headers);
  }
  return r;
}

// Posts one TotalsCounter event of each of `names` from `client` through
// fe, in bodies of 100 names with batch ids "<tag>-<n>"; every body must be
// acknowledged. The cells ("name\tclient") it stored.
std::map<std::string, int64_t> bulk_load(const TabadProcess& fe, const std::vector<std::string>& names,
                                         const std::string& tag, const std::string& client = "bk",
                                         int* retries = nullptr) {
  std::map<std::string, int64_t> cells;
  const double t = now_s();
  for (size_t at = 0; at < names.size(); at += 100) {
    ClientBlock cb{client, {}};
    for (size_t k = at; k < std::min(names.size(), at + 100); ++k) {
      cb.names.push_back({names[k], {event_line("TotalsCounter", t, "1")}});
      cells[names[k] + "\t" + client] += 1;
    }
    auto r = post_answered(fe, v1_body({cb}), {{"Taba-Batch-Id", fmt::format("{}-{}", tag, at)}}, retries);
    INFO("through " << fe.url() << ": " << body_text(r));
    REQUIRE(status_of(r) == 200);
  }
  return cells;
}

// POSTs a batch again (same id) through the fes in turn until it is
// acknowledged (20 s at most); false if it never was.
bool repost(const std::vector<const TabadProcess*>& fes, const LoadBatch& b) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    auto r = fes[static_cast<size_t>(attempt) % fes.size()]->post("/post", b.body, {{"Taba-Batch-Id", b.id}});
    if (status_of(r) == 200) return true;
    sleep_ms(100);
  }
  return false;
}

// Checks that the placement every process routes by reaches `epoch`
// (taba_redis_placement_epoch; placement_refresh_ms is 1 s by default).
void check_epoch_metric(const std::vector<const TabadProcess*>& procs, uint64_t epoch) {
  for (const TabadProcess* p : procs) {
    double seen = -1;
    bool reached = eventually(
        [&] {
          seen = metric(body_text(p->get("/metrics")), "taba_redis_placement_epoch");
          return seen == static_cast<double>(epoch);
        },
        10'000, 100);
    INFO("taba_redis_placement_epoch of " << p->url() << ": " << seen << ", want " << epoch);
    CHECK(reached);
  }
}

// Where the keys of `names` (all in the moved range) live: states,
// aggregates and type bindings all on shard index `on`, none on `off`.
void check_keys_on(const RedisDeployment& d, const std::vector<std::string>& names, int on, int off) {
  const int yes = d.master(on), no = d.master(off);
  const auto n = static_cast<int64_t>(names.size());
  INFO("keys of " << n << " names of the range: all on shard" << on + 1 << ", none on shard" << off + 1);
  CHECK(keys_present(d.cluster, yes, "s", names) == n);
  CHECK(keys_present(d.cluster, yes, "a", names) == n);
  CHECK(members_present(d.cluster, yes, "types", names) == n);
  CHECK(keys_present(d.cluster, no, "s", names) == 0);
  CHECK(keys_present(d.cluster, no, "a", names) == 0);
  CHECK(members_present(d.cluster, no, "types", names) == 0);
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A deployment under load while a slow move runs, for the fault tests:
// fe1, fe2, be1, be2 and a ctrl; kBulkNames names of the range bound first
// (so that the move lasts), then a Loader posting through both fes.
struct MoveUnderLoad {
  RedisDeployment d;
  TabadProcess fe1, fe2, be1, be2, ctrl;
  LoadPlan plan{"fl."};
  std::vector<std::string> bulk = pick_names("fb.", kBulkNames, kFirst, kLast, true);
  std::map<std::string, int64_t> bulk_cells;
  Loader load;

  void start(bool replicated, const std::vector<std::string>& extra_redis) {
    start_three_shards(&d, replicated, extra_redis);
    d.run(&fe1, "fe");
    d.run(&fe2, "fe");
    d.run(&be1, "be");
    d.run(&be2, "be");
    d.run(&ctrl, "ctrl");
    wait_ready(fe1);
    wait_ready(fe2);
    wait_ready(ctrl);
    CHECK(placement_ok(ctrl).ranges() == kPlacedBefore);
    bulk_cells = bulk_load(fe1, bulk, "fb");
    load.start({&fe1, &fe2}, [this](int i) { return plan.batch(i); }, 10);
    REQUIRE(eventually([&] { return load.acked_events > 0; }, 15'000));
  }

  // Lets the load run a little past the move's end, stops it, and checks
  // the totals through `q` and where the keys of the range live.
  void finish(const TabadProcess& q, const std::string& placed, int owner_of_range) {
    const int64_t at_end = load.bodies;
    CHECK(eventually([&] { return load.bodies >= at_end + 10; }, 20'000));
    load.finish();
    INFO("batches " << load.bodies << ", non-200 replies " << load.non_200);
    CHECK(load.unacked_bodies == 0);
    fe_flush(q);
    check_totals(q, prefix_re(plan.prefix), expected_cells(load.acked()), "load");
    check_totals(q, prefix_re("fb."), bulk_cells, "bulk names of the range");
    CHECK(placement_ok(q).ranges() == placed);
    check_keys_on(d, concat(bulk, plan.moved), owner_of_range, owner_of_range == 2 ? 0 : 2);
  }
};

// A Sentinel failover of shard index `shard` while the move copies
// states. With one replica and min_replica_acks = 1, what was acknowledged
// (a post, a copied state) is on the promoted replica; the new master has no
// replica until Sentinel turns the old one into one (~10 s), so writes get
// 503 meanwhile and are retried.
void failover_mid_move(int shard) {
  MoveUnderLoad f;
  f.start(true, {kSlow, "min_replica_acks = 1", "command_timeout_ms = 1000", "replica_ack_timeout_ms = 500",
                 "claim_idle_ms = 1000"});
  const std::string id = start_move(f.ctrl, "shard3", kFirst, kLast);
  REQUIRE(wait_phase(f.ctrl, id, {"states"}, 30'000));
  auto promoted = f.d.cluster.failover(shard);
  INFO(promoted.status().message());
  REQUIRE(promoted.ok());
  const MoveView end = wait_move_end(f.ctrl, id, 60'000);
  CHECK(end.phase == "done");
  f.finish(f.ctrl, kPlacedAfter, 2);
}

}  // namespace

TEST_CASE("reshard: a third of the vbuckets moves to a new shard under load (taba-cli --wait), and batches posted again after the move count once",
          "[redis][reshard]") {
  RedisDeployment d;
  start_three_shards(&d, false, {});
  TabadProcess fe1, fe2, be1, be2, agent;
  d.run(&fe1, "fe");
  d.run(&fe2, "fe");
  d.run(&be1, "be");
  d.run(&be2, "be");
  wait_ready(fe1);
  wait_ready(fe2);
  run_agent(d, &agent, {&fe1, &fe2});
  PlacementView before = placement_ok(fe1);
  CHECK(before.supported);
  CHECK(before.vbuckets == kReshardVbuckets);
  CHECK(before.ranges() == kPlacedBefore);
  CHECK(!before.move);

  LoadPlan direct("ld."), via_agent("ag.");
  Loader load, agent_load;
  load.start({&fe1, &fe2}, [&](int i) { return direct.batch(i); }, 10);
  agent_load.start({&agent}, [&](int i) { return via_agent.batch(i); }, 10);
  REQUIRE(eventually([&] { return load.acked().size() >= 20 && agent_load.acked().size() >= 10; }, 30'000));
  const std::vector<LoadBatch> before_move = load.acked();

  auto cli = run_process({TABA_CLI_PATH, "--server", be1.url(), "reshard", "--to", "shard3", "--vbuckets", kRange,
                          "--wait"},
                         {}, 90'000);
  REQUIRE(cli.ok());
  INFO("taba-cli reshard --wait: exit " << cli->exit_code << "\nstdout: " << cli->out << "\nstderr: " << cli->err);
  CHECK(cli->exit_code == 0);
  auto status = run_process({TABA_CLI_PATH, "--server", fe2.url(), "reshard", "--status"});
  REQUIRE(status.ok());
  INFO("taba-cli reshard --status: " << status->out << status->err);
  CHECK(status->exit_code == 0);
  CHECK(status->out.find("shard3") != std::string::npos);

  // The load goes on a little on the new placement, then stops.
  const int64_t at_done = load.bodies;
  CHECK(eventually([&] { return load.bodies >= at_done + 10; }, 20'000));
  load.finish();
  agent_load.finish();
  INFO("direct batches " << load.bodies << " (non-200 replies " << load.non_200 << "), through the agent "
                         << agent_load.bodies);
  CHECK(load.unacked_bodies == 0);
  CHECK(agent_load.unacked_bodies == 0);

  // Every batch acknowledged before the move holds names that moved since:
  // posted again with its id, it is acknowledged and counts nothing.
  for (const LoadBatch& b : before_move) {
    INFO("batch " << b.id << " posted again");
    CHECK(repost({&fe2, &fe1}, b));
  }

  REQUIRE(wait_drained(agent, 30'000));
  fe_flush(fe1);
  // The batches posted again were recognised from the markers their first
  // post left on shard1, the vbuckets' previous owner.
  double lookups = 0, duplicates = 0;
  for (const TabadProcess* be : {&be1, &be2}) {
    const std::string m = body_text(be->get("/metrics"));
    lookups += metric(m, "taba_redis_dedup_lookups_total");
    duplicates += metric(m, "taba_redis_entries_duplicate_total");
  }
  CHECK(lookups > 0);
  CHECK(duplicates >= static_cast<double>(before_move.size()));
  check_totals(fe1, prefix_re(direct.prefix), expected_cells(load.acked()), "posted to the fes");
  check_totals(fe2, prefix_re(via_agent.prefix), expected_cells(agent_load.acked()), "posted through the agent");

  PlacementView after = placement_ok(fe2);
  CHECK(after.ranges() == kPlacedAfter);
  CHECK(after.epoch > before.epoch);
  CHECK(!after.move);
  REQUIRE(!after.recent.empty());
  const MoveView& m = after.recent.front();
  CHECK(m.phase == "done");
  CHECK(m.from == "shard1");
  CHECK(m.to == "shard3");
  CHECK(m.first == kFirst);
  CHECK(m.last == kLast);
  CHECK(m.names_moved >= direct.moved.size() + via_agent.moved.size());
  CHECK(m.names_left == 0);
  CHECK(m.error.empty());

  // The moved names' keys live on shard3 only; the others stayed.
  check_keys_on(d, concat(direct.moved, via_agent.moved), 2, 0);
  std::vector<std::string> stayed_on_1, on_2;
  for (const std::string& n : concat(direct.kept, via_agent.kept)) (vbucket_of_name(n) <= 511 ? stayed_on_1 : on_2).push_back(n);
  CHECK(keys_present(d.cluster, d.master(0), "s", stayed_on_1) == static_cast<int64_t>(stayed_on_1.size()));
  CHECK(keys_present(d.cluster, d.master(1), "s", on_2) == static_cast<int64_t>(on_2.size()));
  CHECK(keys_present(d.cluster, d.master(2), "s", concat(stayed_on_1, on_2)) == 0);
  check_epoch_metric({&fe1, &fe2, &be1, &be2}, after.epoch);
}

TEST_CASE("reshard: every query answers exactly as before while a move runs", "[redis][reshard]") {
  RedisDeployment d;
  start_three_shards(&d, false, {kSlow});
  TabadProcess fe, be, ctrl;
  d.run(&fe, "fe");
  d.run(&be, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  wait_ready(ctrl);

  // A fixed data set of three types, most of it in the moving range, from
  // two clients; no writes after it.
  std::vector<std::string> totals = pick_names("qt.", 200, kFirst, kLast, true);
  std::vector<std::string> gauges = pick_names("qg.", 60, kFirst, kLast, true);
  std::vector<std::string> sets = pick_names("qs.", 40, kFirst, kLast, true);
  totals = concat(totals, pick_names("qt.x", 20, kFirst, kLast, false));
  gauges = concat(gauges, pick_names("qg.x", 20, kFirst, kLast, false));
  const double t = now_s();
  for (int c = 0; c < 2; ++c) {
    ClientBlock cb{fmt::format("q{}", c), {}};
    for (size_t i = 0; i < totals.size(); ++i) {
      cb.names.push_back({totals[i], {event_line("TotalsCounter", t, fmt::format("{}", i + c)),
                                      event_line("TotalsCounter", t, "0.25")}});
    }
    for (size_t i = 0; i < gauges.size(); ++i) {
      cb.names.push_back({gauges[i], {event_line("Gauge", t, fmt::format("\"v{}\"", (i + c) % 3))}});
    }
    for (size_t i = 0; i < sets.size(); ++i) {
      cb.names.push_back({sets[i], {event_line("Set", t, fmt::format("\"m{}\"", i % 4)),
                                    event_line("Set", t, fmt::format("\"m{}\"", c))}});
    }
    auto r = fe.post("/post", v1_body({cb}), {{"Taba-Batch-Id", fmt::format("q-{}", c)}});
    INFO(body_text(r));
    REQUIRE(status_of(r) == 200);
  }
  fe_flush(ctrl);
  const std::vector<std::string> paths = {
      "/tabs",
      "/tabs?client=q1",
      "/projection",
      "/supertabs?name=qt%5C..*&re=1",
      "/supertabs?name=qs%5C..*&re=1",
      "/names",
      "/names?client=q0",
      "/clients",
      "/types",
  };
  const std::map<std::string, std::string> want = answers_of(ctrl, paths);
  CHECK(answers_of(fe, paths) == want);
  // The baseline is the data set (not an error, not empty).
  CHECK(want.at("/names") == canonical_json(
                                 [&] {
                                   std::vector<std::string> all = concat(concat(totals, gauges), sets);
                                   std::sort(all.begin(), all.end());
                                   std::string json = "[";
                                   for (size_t i = 0; i < all.size(); ++i) json += (i ? "," : "") + json_string(all[i]);
                                   return json + "]";
                                 }()));
  CHECK(want.at("/clients") == canonical_json(R"(["q0","q1"])"));

  const std::string id = start_move(be, "shard3", kFirst, kLast);
  int polls = 0, polls_in_states = 0, mismatches = 0;
  std::string mismatch_report;  // the first few
  std::set<std::string> phases;
  for (;;) {
    PlacementView v = placement_of(ctrl);
    if (v.ok && (!v.move || v.move->id != id)) break;
    const std::string phase = v.ok ? v.move->phase : "?";
    const TabadProcess& q = polls % 2 == 0 ? ctrl : fe;
    std::map<std::string, std::string> got = answers_of(q, paths);
    PlacementView v2 = placement_of(ctrl);
    const std::string phase2 = v2.ok && v2.move && v2.move->id == id ? v2.move->phase : "ended";
    for (const std::string& path : paths) {
      if (got[path] == want.at(path)) continue;
      if (mismatches++ < 3) {
        mismatch_report += fmt::format("{} from {} in phase {}..{}: {}", path, q.url(), phase, phase2,
                                       json_diff(got[path], want.at(path)));
      }
    }
    ++polls;
    phases.insert(phase);
    if (phase == "states" && phase2 == "states") ++polls_in_states;
  }
  const MoveView end = wait_move_end(ctrl, id);
  std::string seen;
  for (const std::string& p : phases) seen += p + " ";
  INFO("polls " << polls << " (" << polls_in_states << " within phase states); phases seen: " << seen);
  INFO(mismatch_report);
  CHECK(mismatches == 0);
  CHECK(end.phase == "done");
  CHECK(polls >= 20);
  CHECK(polls_in_states >= 1);
  CHECK(answers_of(ctrl, paths) == want);
  CHECK(answers_of(fe, paths) == want);
  CHECK(placement_ok(fe).ranges() == kPlacedAfter);
}

TEST_CASE("reshard: type bindings hold during and after a move, and live on the new shard", "[redis][reshard]") {
  RedisDeployment d;
  start_three_shards(&d, false, {kSlow});
  // fe binds the names; fe2 never saw them, so it asks the store about each.
  TabadProcess fe, fe2, be, ctrl;
  d.run(&fe, "fe");
  d.run(&fe2, "fe");
  d.run(&be, "be");
  d.run(&ctrl, "ctrl");
  wait_ready(fe);
  wait_ready(fe2);
  wait_ready(ctrl);
  const std::vector<std::string> names = pick_names("ty.", kBulkNames, kFirst, kLast, true);
  std::map<std::string, int64_t> cells = bulk_load(fe, names, "ty");
  fe_flush(ctrl);
  const std::string types_before = canonical_json(body_text(ctrl.get("/types?name=ty%5C..*&re=1", "application/json")));

  // During the move: a conflicting type for a bound name is refused, naming
  // the binding; a new name of the range binds.
  const std::vector<std::string> fresh = pick_names("tn.", 200, kFirst, kLast, true);
  const std::string id = start_move(ctrl, "shard3", kFirst, kLast);
  size_t conflicts = 0, bound = 0;
  int retries = 0;  // 503s answered during the move (retried)
  std::set<std::string> phases;
  for (;;) {
    PlacementView v = placement_of(ctrl);
    if (v.ok && (!v.move || v.move->id != id)) break;
    if (v.ok) phases.insert(v.move->phase);
    const std::string& name = names[conflicts % names.size()];
    const double t = now_s();
    auto r = post_answered(fe2, v1_body({{"c2", {{name, {event_line("Gauge", t, "\"x\"")}}}}}), {}, &retries);
    INFO("conflicting post of " << name << " in phase " << (v.ok ? v.move->phase : "?") << ": " << status_of(r) << " "
                                << body_text(r));
    CHECK(status_of(r) == 400);
    CHECK(body_text(r).find(fmt::format("conflicts with type \"TotalsCounter\" bound to name \"{}\"", name)) !=
          std::string::npos);
    ++conflicts;
    if (bound < fresh.size()) {
      const std::string& n = fresh[bound];
      auto b = post_answered(fe2, v1_body({{"c3", {{n, {event_line("Gauge", t, "\"y\"")}}}}}),
                             {{"Taba-Batch-Id", "tn-" + n}}, &retries);
      INFO("new name " << n << ": " << body_text(b));
      CHECK(status_of(b) == 200);
      ++bound;
    }
    sleep_ms(50);
  }
  const MoveView end = wait_move_end(ctrl, id);
  CHECK(end.phase == "done");
  std::string seen;
  for (const std::string& p : phases) seen += p + " ";
  INFO("conflicting posts " << conflicts << ", new names " << bound << "; phases seen: " << seen);
  if (retries > 0) WARN(retries << " posts during the move were answered 503 and retried");
  CHECK(conflicts >= 5);
  CHECK(phases.count("states") == 1);

  // After: the same bindings, on shard3 only; still enforced.
  fe_flush(ctrl);
  CHECK(canonical_json(body_text(ctrl.get("/types?name=ty%5C..*&re=1", "application/json"))) == types_before);
  CHECK(canonical_json(body_text(fe.get("/types?name=ty%5C..*&re=1", "application/json"))) == types_before);
  const int s1 = d.master(0), s3 = d.master(2);
  CHECK(members_present(d.cluster, s3, "types", names) == static_cast<int64_t>(names.size()));
  CHECK(members_present(d.cluster, s1, "types", names) == 0);
  CHECK(bound_type(d.cluster, s3, names.front()) == "TotalsCounter");
  CHECK(bound_type(d.cluster, s3, names.back()) == "TotalsCounter");
  const std::vector<std::string> fresh_bound(fresh.begin(), fresh.begin() + static_cast<long>(bound));
  CHECK(members_present(d.cluster, s3, "types", fresh_bound) == static_cast<int64_t>(bound));
  CHECK(members_present(d.cluster, s1, "types", fresh_bound) == 0);
  if (bound > 0) CHECK(bound_type(d.cluster, s3, fresh_bound.front()) == "Gauge");
  for (const TabadProcess* p : {&fe, &fe2}) {
    auto again = p->post("/post", v1_body({{"c2", {{names[7], {event_line("Gauge", now_s(), "\"x\"")}}}}}));
    CHECK(status_of(again) == 400);
  }
  check_totals(ctrl, "ty%5C..*", cells, "the bound names (the refused bodies stored nothing)");
}

TEST_CASE("reshard: kill -9 of the driver mid-move, and the same move posted to another process resumes it",
          "[redis][reshard][fault]") {
  MoveUnderLoad f;
  f.start(false, {kSlow, "reshard_lease_ms = 2000", "claim_idle_ms = 1000"});
  const std::string id = start_move(f.be1, "shard3", kFirst, kLast);
  std::string phase;
  REQUIRE(wait_phase(f.ctrl, id, {"states"}, 30'000, &phase));
  // Driven by a live driver: the same move elsewhere is refused.
  auto busy = post_reshard(f.fe1, "shard3", kFirst, kLast);
  INFO(body_text(busy));
  CHECK(status_of(busy) == 409);
  f.be1.kill9();
  REQUIRE(f.be1.wait_exit(5000).ok());
  // Its lease runs out, then the same POST takes the move over.
  std::set<int> refusals;
  int resumed = 0;
  for (int i = 0; i < 300 && resumed != 202; ++i) {
    auto r = post_reshard(f.fe2, "shard3", kFirst, kLast);
    resumed = status_of(r);
    if (resumed != 202) {
      refusals.insert(resumed);
      sleep_ms(100);
    }
  }
  REQUIRE(resumed == 202);
  CHECK(refusals.size() <= 1);
  CHECK(refusals.count(409) == refusals.size());
  const MoveView end = wait_move_end(f.ctrl, id);
  CHECK(end.phase == "done");
  f.finish(f.ctrl, kPlacedAfter, 2);
}

TEST_CASE("reshard: kill -9 of a be mid-move, restarted: the move ends and nothing is lost or doubled",
          "[redis][reshard][fault]") {
  MoveUnderLoad f;
  f.start(false, {kSlow, "claim_idle_ms = 1000"});
  const std::string id = start_move(f.ctrl, "shard3", kFirst, kLast);
  REQUIRE(wait_phase(f.ctrl, id, {"switching", "draining", "states"}, 30'000));
  f.be2.kill9();
  REQUIRE(f.be2.wait_exit(5000).ok());
  sleep_ms(1000);
  f.d.run(&f.be2, "be");  // a new port: a new consumer; the old one's entries are claimed
  const MoveView end = wait_move_end(f.ctrl, id);
  CHECK(end.phase == "done");
  f.finish(f.ctrl, kPlacedAfter, 2);
}

TEST_CASE("reshard: kill -9 of an fe mid-move, clients retry through the other fe", "[redis][reshard][fault]") {
  MoveUnderLoad f;
  f.start(false, {kSlow});
  const std::string id = start_move(f.ctrl, "shard3", kFirst, kLast);
  REQUIRE(wait_phase(f.ctrl, id, {"states"}, 30'000));
  f.fe1.kill9();
  REQUIRE(f.fe1.wait_exit(5000).ok());
  const MoveView end = wait_move_end(f.ctrl, id);
  CHECK(end.phase == "done");
  const int fe1_port = f.fe1.port();
  REQUIRE_OK(f.fe1.start_on_port(fe1_port, {"--config", f.d.config, "--role", "fe"}));
  wait_ready(f.fe1);
  f.finish(f.fe1, kPlacedAfter, 2);
}

TEST_CASE("reshard: a failover of the source master mid-move (min_replica_acks = 1)", "[redis][reshard][fault]") {
  failover_mid_move(0);
}

TEST_CASE("reshard: a failover of the target master mid-move (min_replica_acks = 1)", "[redis][reshard][fault]") {
  failover_mid_move(2);
}

TEST_CASE("reshard: an fe that has not re-read the placement is fenced by the old owner and re-routes",
          "[redis][reshard]") {
  RedisDeployment d;
  start_three_shards(&d, false, {});
  const std::string stale_config = d.write_config("stale.toml", {"placement_refresh_ms = 3600000"});
  TabadProcess fe, stale_binder, stale_appender, be, ctrl;
  d.run(&fe, "fe");
  d.run(&stale_binder, "fe", stale_config);
  d.run(&stale_appender, "fe", stale_config);
  d.run(&be, "be");
  d.run(&ctrl, "ctrl");
  for (const TabadProcess* p : {&fe, &stale_binder, &stale_appender, &ctrl}) wait_ready(*p);

  // Names of the range, bound and counted through both stale fes before the move.
  LoadPlan plan("fn.");
  std::vector<LoadBatch> acked;
  int retries = 0;  // posts answered 503 (retried)
  auto post_batch = [&](const TabadProcess& via, int i) {
    LoadBatch b = plan.batch(i);
    auto r = post_answered(via, b.body, {{"Taba-Batch-Id", b.id}}, &retries);
    INFO("batch " << b.id << " through " << via.url() << ": " << body_text(r));
    REQUIRE(status_of(r) == 200);
    acked.push_back(std::move(b));
  };
  for (int i = 0; i < 6; ++i) post_batch(i % 2 ? stale_binder : stale_appender, i);

  const std::string id = start_move(ctrl, "shard3", kFirst, kLast);
  const MoveView end = wait_move_end(ctrl, id);
  REQUIRE(end.phase == "done");
  const PlacementView after = placement_ok(ctrl);
  CHECK(after.ranges() == kPlacedAfter);

  // Names of the range bound after the move through the up-to-date fe
  // (on shard3 only). The stale fe's first post after the move: a
  // conflicting type for one of them. The old owner knows no binding of it
  // and must not take one: refused (400), as by any fe.
  const double t = now_s();
  const std::vector<std::string> late = pick_names("fx.", 5, kFirst, kLast, true);
  const std::map<std::string, int64_t> late_cells = bulk_load(fe, late, "fx", "c8");
  auto conflict =
      post_answered(stale_binder, v1_body({{"c9", {{late[0], {event_line("Gauge", t, "\"x\"")}}}}}), {}, &retries);
  INFO(body_text(conflict));
  CHECK(status_of(conflict) == 400);
  CHECK(body_text(conflict).find(fmt::format("bound to name \"{}\"", late[0])) != std::string::npos);
  // The other stale fe appends to names of the range (and binds new ones).
  const std::vector<std::string> fresh = pick_names("fn.new", 5, kFirst, kLast, true);
  for (int i = 6; i < 16; ++i) post_batch(stale_appender, i);
  const std::map<std::string, int64_t> fresh_cells = bulk_load(stale_appender, fresh, "fn-new", "c9", &retries);
  // The batches of before, posted again through the stale fes, count once.
  for (size_t i = 0; i < 6; ++i) {
    auto r = post_answered(i % 2 ? stale_appender : stale_binder, acked[i].body, {{"Taba-Batch-Id", acked[i].id}},
                           &retries);
    INFO("batch " << acked[i].id << " posted again: " << body_text(r));
    CHECK(status_of(r) == 200);
  }
  for (const TabadProcess* p : {&stale_binder, &stale_appender}) {
    std::string metrics = body_text(p->get("/metrics"));
    INFO(p->url() << " /metrics: taba_redis_fenced_total " << metric(metrics, "taba_redis_fenced_total"));
    CHECK(metric(metrics, "taba_redis_fenced_total") > 0);
  }

  fe_flush(ctrl);
  std::map<std::string, int64_t> cells = expected_cells(acked);
  cells.insert(fresh_cells.begin(), fresh_cells.end());
  check_totals(ctrl, prefix_re(plan.prefix), cells, "posted through stale fes");
  check_totals(ctrl, "fx%5C..*", late_cells, "bound after the move, refused a conflicting type through a stale fe");
  // The old owner holds nothing of the moved names.
  const std::vector<std::string> moved = concat(concat(plan.moved, fresh), late);
  check_keys_on(d, moved, 2, 0);
  for (const char* client : {"c0", "c1", "c2", "c8", "c9"}) {
    INFO("client " << client);
    CHECK(members_present(d.cluster, d.master(0), "cn:" + std::string(client), moved, /*is_set=*/true) == 0);
  }
  CHECK(bound_type(d.cluster, d.master(2), late[0]) == "TotalsCounter");
  if (retries > 0) WARN(retries << " posts through the stale fes were answered 503 and retried");
}

TEST_CASE("reshard: a move cancelled before and after the switch leaves the placement as it was", "[redis][reshard]") {
  MoveUnderLoad f;
  f.start(false, {kSlow});
  const PlacementView start = placement_ok(f.ctrl);

  // Before the switch: rolled back. The copy of the bindings takes
  // milliseconds, so the target is made to refuse it (its types key is not a
  // hash) to hold the move in phase "bindings"; once the driver has read the
  // cancel request, the target is mended and the rollback goes through.
  const int target = f.d.master(2);
  const std::string types_key = std::string(kKeyPrefix) + "types";
  REQUIRE(f.d.cluster.cli(target, {"SET", types_key, "not-a-hash"}).ok());
  const std::string first = start_move(f.ctrl, "shard3", kFirst, kLast);
  PlacementView stuck;
  bool held = eventually(
      [&] {
        stuck = placement_of(f.ctrl);
        return stuck.ok && stuck.move && stuck.move->id == first && stuck.move->phase == "bindings" &&
               !stuck.move->error.empty();
      },
      15'000, 100);
  INFO(stuck.raw);
  REQUIRE(held);
  CHECK(stuck.move->error.find("copying bindings") != std::string::npos);
  cancel_move(f.ctrl);
  const std::string read_cancel = fmt::format("reshard {}: cancel requested", first);
  REQUIRE(eventually([&] { return f.ctrl.log_text().find(read_cancel) != std::string::npos; }, 10'000, 100));
  REQUIRE(f.d.cluster.cli(target, {"DEL", types_key}).ok());
  const MoveView rolled_back = wait_move_end(f.ctrl, first);
  CHECK(rolled_back.phase == "cancelled");
  CHECK(placement_ok(f.fe1).ranges() == kPlacedBefore);

  // After the switch, while states are copied: moved back.
  const std::string second = start_move(f.ctrl, "shard3", kFirst, kLast);
  CHECK(second != first);
  REQUIRE(wait_phase(f.ctrl, second, {"states"}, 30'000));
  cancel_move(f.ctrl);
  const MoveView end = wait_move_end(f.ctrl, second, 60'000);
  CHECK(end.phase == "cancelled");
  const PlacementView back = placement_ok(f.fe2);
  CHECK(back.ranges() == start.ranges());
  CHECK(!back.move);
  f.finish(f.ctrl, kPlacedBefore, 0);
}
