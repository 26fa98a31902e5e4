#include "nemesis.h"

#include <algorithm>

#include <fmt/format.h>
#include <simdjson.h>

#include "harness.h"

namespace taba::nemesis {

namespace {

constexpr int64_t kRecoveryBoundMs = 30'000;

struct KindSpec {
  FaultKind kind;
  int weight;
  int64_t min_ms, max_ms;  // how long the fault lasts
};

// Pauses outlast every timeout of the cluster (client and agent requests
// 3 s, Redis commands 2 s, Sentinel's down-after 1 s).
constexpr KindSpec kSpecs[] = {
    {FaultKind::kKill, 3, 300, 4000},      {FaultKind::kPause, 2, 3500, 8000},
    {FaultKind::kClock, 1, 3000, 10000},   {FaultKind::kDiskFull, 1, 2000, 6000},
    {FaultKind::kCut, 1, 1000, 5000},      {FaultKind::kDelay, 1, 2000, 6000},
    {FaultKind::kHalfOpen, 1, 3000, 8000}, {FaultKind::kFailover, 1, 8000, 8000},
    {FaultKind::kKillMaster, 1, 4000, 8000},
};

bool is_redis_kind(FaultKind k) { return k == FaultKind::kFailover || k == FaultKind::kKillMaster; }
bool is_link_kind(FaultKind k) { return k == FaultKind::kCut || k == FaultKind::kDelay || k == FaultKind::kHalfOpen; }

Link* find_link(Cluster& c, const std::string& name) {
  for (Link* l : c.links()) {
    if (l->name() == name) return l;
  }
  return nullptr;
}

}  // namespace

const char* kind_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKill: return "kill";
    case FaultKind::kPause: return "pause";
    case FaultKind::kClock: return "clock";
    case FaultKind::kDiskFull: return "disk-full";
    case FaultKind::kCut: return "cut";
    case FaultKind::kDelay: return "delay";
    case FaultKind::kHalfOpen: return "half-open";
    case FaultKind::kFailover: return "failover";
    case FaultKind::kKillMaster: return "kill-master";
  }
  return "?";
}

std::vector<PlannedFault> plan_faults(uint64_t seed, Cluster& cluster, int64_t duration_ms, int max_concurrent) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::vector<std::string> processes, agents, links, shards;
  for (Node* n : cluster.nodes()) processes.push_back(n->name);
  for (Node* n : cluster.agents()) agents.push_back(n->name);
  for (Link* l : cluster.links()) links.push_back(l->name());
  if (cluster.mode() == StoreMode::kRedis) shards = {"shard1", "shard2"};

  std::vector<KindSpec> specs;
  int total_weight = 0;
  for (const KindSpec& s : kSpecs) {
    if (is_redis_kind(s.kind) && shards.empty()) continue;
    if (s.kind == FaultKind::kClock && !cluster.can_step_clocks()) continue;
    specs.push_back(s);
    total_weight += s.weight;
  }

  std::vector<PlannedFault> plan;
  auto active_at = [&](int64_t t) {
    std::vector<const PlannedFault*> out;
    for (const PlannedFault& f : plan) {
      if (f.start_ms <= t && t < f.start_ms + f.duration_ms) out.push_back(&f);
    }
    return out;
  };
  for (int64_t t = uniform(500, 1500); t < duration_ms; t += uniform(400, 2500)) {
    auto active = active_at(t);
    if (static_cast<int>(active.size()) >= max_concurrent) continue;
    int64_t pick = uniform(0, total_weight - 1);
    const KindSpec* spec = &specs.back();
    for (const KindSpec& s : specs) {
      if (pick < s.weight) {
        spec = &s;
        break;
      }
      pick -= s.weight;
    }
    const std::vector<std::string>& pool = is_redis_kind(spec->kind) ? shards
                                           : is_link_kind(spec->kind) ? links
                                           : spec->kind == FaultKind::kDiskFull ? agents
                                                                                : processes;
    std::string target = pool[static_cast<size_t>(uniform(0, static_cast<int64_t>(pool.size()) - 1))];
    bool clash = false;
    for (const PlannedFault* f : active) {
      if (f->target == target || (is_redis_kind(f->kind) && is_redis_kind(spec->kind))) clash = true;
    }
    if (clash) continue;
    PlannedFault f;
    f.start_ms = t;
    f.duration_ms = std::min(uniform(spec->min_ms, spec->max_ms), duration_ms - t);
    f.kind = spec->kind;
    f.target = target;
    if (f.kind == FaultKind::kClock) f.param = static_cast<int>(uniform(10, 120) * (uniform(0, 1) ? 1 : -1));
    if (f.kind == FaultKind::kDelay) f.param = static_cast<int>(uniform(200, 1500));
    plan.push_back(f);
  }
  return plan;
}

Nemesis::Nemesis(Cluster* cluster, const PathClock* paths, std::vector<PlannedFault> plan)
    : cluster_(cluster), paths_(paths) {
  for (PlannedFault& f : plan) outcomes_.push_back({f});
}

int64_t Nemesis::now() const { return test::now_ms() - t0_; }

void Nemesis::note(std::string text) { timeline_.push_back({now(), std::move(text)}); }

void Nemesis::apply(FaultOutcome& o) {
  const PlannedFault& f = o.fault;
  o.applied_ms = now();
  std::string detail;
  Node* n = cluster_->node(f.target);
  switch (f.kind) {
    case FaultKind::kKill: cluster_->kill9(n); break;
    case FaultKind::kPause: cluster_->pause(n); break;
    case FaultKind::kClock:
      cluster_->step_clock(n, f.param);
      detail = fmt::format(" {:+d} s", f.param);
      break;
    case FaultKind::kDiskFull: cluster_->limit_file_size(n, 1); break;
    case FaultKind::kCut: find_link(*cluster_, f.target)->set_mode(Link::Mode::kCut); break;
    case FaultKind::kDelay:
      find_link(*cluster_, f.target)->set_mode(Link::Mode::kDelay, f.param);
      detail = fmt::format(" {} ms", f.param);
      break;
    case FaultKind::kHalfOpen: find_link(*cluster_, f.target)->set_mode(Link::Mode::kHalfOpen); break;
    case FaultKind::kFailover: {
      int shard = f.target == "shard1" ? 0 : 1;
      auto port = cluster_->redis()->failover(shard);
      detail = port.ok() ? fmt::format(": new master {}", port.value()) : ": " + port.status().message();
      break;
    }
    case FaultKind::kKillMaster: {
      int shard = f.target == "shard1" ? 0 : 1;
      auto port = cluster_->redis()->master_port(shard);
      if (port.ok()) {
        o.redis_port = port.value();
        Status killed = cluster_->redis()->kill9(o.redis_port);
        detail = fmt::format(": port {}{}", o.redis_port, killed.ok() ? "" : " (" + killed.message() + ")");
      } else {
        detail = ": no master known: " + port.status().message();
      }
      break;
    }
  }
  note(fmt::format("start {} {}{} (for {} ms)", kind_name(f.kind), f.target, detail, f.duration_ms));
}

void Nemesis::heal(FaultOutcome& o) {
  const PlannedFault& f = o.fault;
  Node* n = cluster_->node(f.target);
  std::string detail;
  switch (f.kind) {
    case FaultKind::kKill: {
      Status s = cluster_->restart(n);
      if (!s.ok()) problems_.push_back(fmt::format("restart of {} failed: {}", n->name, s.message()));
      break;
    }
    case FaultKind::kPause: cluster_->resume(n); break;
    case FaultKind::kClock: cluster_->step_clock(n, 0); break;
    case FaultKind::kDiskFull: cluster_->limit_file_size(n, 0); break;
    case FaultKind::kCut:
    case FaultKind::kDelay:
    case FaultKind::kHalfOpen: find_link(*cluster_, f.target)->set_mode(Link::Mode::kPass); break;
    case FaultKind::kFailover: {
      int shard = f.target == "shard1" ? 0 : 1;
      Status s = cluster_->redis()->wait_synced(shard, 40'000);
      if (!s.ok()) problems_.push_back(fmt::format("{} not in sync after its failover: {}", f.target, s.message()));
      break;
    }
    case FaultKind::kKillMaster: {
      if (o.redis_port == 0) break;
      int shard = f.target == "shard1" ? 0 : 1;
      // Restarted before Sentinel promoted the replica, the old master would
      // come back empty and be followed: wait for the promotion first.
      bool promoted = test::eventually(
          [&] {
            auto p = cluster_->redis()->master_port(shard);
            return p.ok() && p.value() != o.redis_port;
          },
          30'000, 100);
      if (!promoted) problems_.push_back(fmt::format("{}: no replica promoted within 30 s", f.target));
      Status s = cluster_->redis()->restart(o.redis_port);
      // "still running": the node is up already (the harness saw it alive);
      // whether the shard is whole is what wait_synced() checks next.
      if (!s.ok() && s.message().find("still running") == std::string::npos) {
        problems_.push_back(fmt::format("restart of redis {} failed: {}", o.redis_port, s.message()));
      } else if (!s.ok()) {
        note(fmt::format("{}: redis {} was running at the heal", f.target, o.redis_port));
      }
      // A shard of one master and one replica survives one node fault at a
      // time: until the restarted node has resynced (it came back empty),
      // the shard is still faulty, and killing its master then loses what
      // only the master held. So the fault ends once the shard is in sync.
      s = cluster_->redis()->wait_synced(shard, 40'000);
      if (!s.ok()) problems_.push_back(fmt::format("{} never in sync again: {}", f.target, s.message()));
      detail = fmt::format(": port {} back as a replica, in sync", o.redis_port);
      break;
    }
  }
  o.healed_ms = now();
  o.stored_at_heal = stored_events();
  note(fmt::format("end {} {}{}", kind_name(f.kind), f.target, detail));
}

int64_t Nemesis::stored_events() {
  if (stored_cache_at_ >= 0 && now() - stored_cache_at_ < 200) return stored_cache_;
  stored_cache_at_ = now();
  stored_cache_ = -1;
  Node* q = cluster_->query_node();
  if (q->paused || q->pid <= 0) return -1;
  auto r = test::get(q->url(), "/tabs?re=1&name=nem%5C..*", "application/json", 1000);
  if (test::status_of(r) != 200) return -1;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(r->body).get(obj) != simdjson::SUCCESS) return -1;
  int64_t sum = 0;
  for (auto field : obj) {
    double v = 0;
    if (field.value.at_pointer("/count").get(v) == simdjson::SUCCESS ||
        field.value.at_pointer("/1d/count").get(v) == simdjson::SUCCESS) {
      sum += static_cast<int64_t>(v);
    }
  }
  stored_cache_ = sum;
  return sum;
}

bool Nemesis::recovered(FaultOutcome& o) {
  const PlannedFault& f = o.fault;
  const int64_t healed_abs = o.healed_ms + t0_;
  auto stored_grew = [&] {
    int64_t s = stored_events();
    if (s < 0) return false;
    // The store could not be read at the heal (its query node was down too):
    // the first reading after it is the baseline.
    if (o.stored_at_heal < 0) o.stored_at_heal = s;
    return s > o.stored_at_heal;
  };
  auto agent_index = [](const std::string& name) { return name.find('1') != std::string::npos ? 1 : 0; };
  if (f.kind == FaultKind::kClock) return true;
  if (is_link_kind(f.kind)) {
    if (f.target.rfind("client", 0) == 0) return paths_->agent_ack_ms[agent_index(f.target)].load() > healed_abs;
    return stored_grew();
  }
  if (is_redis_kind(f.kind)) {
    for (Node* fe : cluster_->fes()) {
      if (test::status_of(test::get(fe->url(), "/readyz", "", 500)) != 200) return false;
    }
    return stored_grew();
  }
  Node* n = cluster_->node(f.target);
  if (test::status_of(test::get(n->url(), "/healthz", "", 500)) != 200) return false;
  if (n->is_agent()) return paths_->agent_ack_ms[agent_index(n->name)].load() > healed_abs;
  if (n->name == "proxy") return true;
  return stored_grew();
}

void Nemesis::check_unexpected_exits(const std::vector<FaultOutcome*>& active) {
  for (Node* n : cluster_->nodes()) {
    bool killed = false;
    for (const FaultOutcome* o : active) {
      if (o->fault.kind == FaultKind::kKill && o->fault.target == n->name) killed = true;
    }
    if (killed || cluster_->alive(n)) continue;
    problems_.push_back(fmt::format("{} exited on its own; the end of its log:\n{}", n->name, cluster_->log_tail(n)));
    note(fmt::format("{} exited on its own: restarted", n->name));
    Status s = cluster_->restart(n);
    if (!s.ok()) problems_.push_back(fmt::format("restart of {} failed: {}", n->name, s.message()));
  }
}

void Nemesis::run(int64_t duration_ms) {
  t0_ = test::now_ms();
  note("nemesis starts");
  std::vector<FaultOutcome*> active, watching;
  size_t next = 0;
  // Some actions block (a Sentinel failover, waiting for a shard to
  // resync). The plan's clock stops meanwhile: every later start and end
  // moves by the time the action took, so the faults keep the overlaps and
  // the concurrency the plan drew instead of piling up after a long action.
  int64_t drift = 0;
  auto plan_now = [&] { return now() - drift; };
  auto timed = [&](auto&& action) {
    int64_t t = now();
    action();
    int64_t took = now() - t;
    if (took > 100) drift += took;
  };
  auto step = [&] {
    for (auto it = watching.begin(); it != watching.end();) {
      FaultOutcome* o = *it;
      if (recovered(*o)) {
        o->recovery_ms = now() - o->healed_ms;
        it = watching.erase(it);
      } else if (now() - o->healed_ms > kRecoveryBoundMs) {
        note(fmt::format("{} {}: not recovered within {} ms", kind_name(o->fault.kind), o->fault.target,
                         kRecoveryBoundMs));
        it = watching.erase(it);
      } else {
        ++it;
      }
    }
  };
  while (plan_now() < duration_ms) {
    for (auto it = active.begin(); it != active.end();) {
      FaultOutcome* o = *it;
      if (o->fault.start_ms + o->fault.duration_ms <= plan_now()) {
        timed([&] { heal(*o); });
        watching.push_back(o);
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    while (next < outcomes_.size() && outcomes_[next].fault.start_ms <= plan_now()) {
      FaultOutcome& o = outcomes_[next++];
      // The plan never overlaps two Redis faults, but a heal that waited for
      // a shard to resync can make a planned fault start late: skip it then.
      bool redis_busy = false;
      for (const FaultOutcome* a : active) redis_busy |= is_redis_kind(a->fault.kind);
      if (is_redis_kind(o.fault.kind) && redis_busy) {
        o.skipped = true;
        note(fmt::format("skip {} {}: another Redis fault is still active", kind_name(o.fault.kind), o.fault.target));
        continue;
      }
      timed([&] { apply(o); });
      active.push_back(&o);
    }
    check_unexpected_exits(active);
    step();
    test::sleep_ms(50);
  }
  for (FaultOutcome* o : active) {
    heal(*o);
    watching.push_back(o);
  }
  note("nemesis ends: every fault healed");
  // Faults planned past the end that never started are dropped from the report.
  outcomes_.resize(next);
  while (!watching.empty()) {
    step();
    test::sleep_ms(50);
  }
  check_unexpected_exits({});
  if (cluster_->redis() != nullptr) {
    for (int s = 0; s < cluster_->redis()->shards(); ++s) {
      Status st = cluster_->redis()->wait_synced(s, 40'000);
      if (!st.ok()) problems_.push_back(fmt::format("shard{} never in sync again: {}", s + 1, st.message()));
    }
  }
}

}  // namespace taba::nemesis
