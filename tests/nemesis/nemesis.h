// The nemesis: a seeded plan of faults over a cluster (cluster.h), carried
// out against the clock, with a timeline of what was done and how long the
// cluster took to recover from each fault.
//
// The plan is drawn entirely from the seed before the run starts, so the
// same seed gives the same faults on the same targets in the same order
// (the timing of a replay differs only by how long the actions themselves
// take). At most `max_concurrent` faults are active at once, never two on the
// same target; Redis faults are one shard at a time.
//
// Kinds:
//   kill       kill -9 of a tabad process, restarted when the fault ends
//   pause      SIGSTOP of a tabad process for longer than the timeouts, SIGCONT
//   clock      the wall clock of a tabad process stepped by ±10..120 s, back
//              to real when the fault ends (libfaketime)
//   disk-full  an agent's files cannot grow (RLIMIT_FSIZE), lifted at the end
//   cut, delay, half-open
//              a link between roles (link.h)
//   failover   Sentinel failover of a shard (Redis mode)
//   kill-master
//              kill -9 of a shard's master; when the fault ends (and Sentinel
//              has promoted the replica) the old master is restarted and
//              becomes a replica. A shard of a master and one replica survives
//              one node fault at a time, and a restarted node (empty) counts
//              as faulty until it has resynced: both Redis faults end only
//              once the shard is in sync again (the first 30-minute run,
//              which did not wait, lost what only the newest master held).
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cluster.h"
#include "load.h"

namespace taba::nemesis {

enum class FaultKind { kKill, kPause, kClock, kDiskFull, kCut, kDelay, kHalfOpen, kFailover, kKillMaster };
const char* kind_name(FaultKind kind);

struct PlannedFault {
  int64_t start_ms = 0;  // from the start of the run
  int64_t duration_ms = 0;
  FaultKind kind = FaultKind::kKill;
  std::string target;  // a node, a link, or "shard1"/"shard2"
  int param = 0;       // clock: the step in s; delay: ms
};

// The faults of one run, drawn from `seed`.
std::vector<PlannedFault> plan_faults(uint64_t seed, Cluster& cluster, int64_t duration_ms, int max_concurrent);

// A line of the timeline.
struct Event {
  int64_t at_ms = 0;
  std::string text;
};

// How a fault went: recovery_ms is from the heal to the affected path
// working again (-1: not within the bound).
struct FaultOutcome {
  PlannedFault fault;
  int64_t applied_ms = -1;
  int64_t healed_ms = -1;
  int64_t recovery_ms = -1;
  int64_t stored_at_heal = -1;
  int redis_port = 0;  // kill-master: the master killed
  bool skipped = false;  // not carried out (see Nemesis::run)
};

class Nemesis {
 public:
  Nemesis(Cluster* cluster, const PathClock* paths, std::vector<PlannedFault> plan);

  // Carries the plan out (blocking) for duration_ms of the plan's clock,
  // which stops while an action blocks (a failover, a resync): the run then
  // lasts longer than duration_ms. Then heals everything still active and
  // waits (bounded) for the processes to be healthy.
  void run(int64_t duration_ms);

  const std::vector<Event>& timeline() const { return timeline_; }
  const std::vector<FaultOutcome>& outcomes() const { return outcomes_; }
  // Problems of the nemesis itself (a restart that failed...), not of tabad's
  // promise; they fail the run too, with their own reason.
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  void apply(FaultOutcome& f);
  void heal(FaultOutcome& f);
  bool recovered(FaultOutcome& f);
  int64_t stored_events();
  void check_unexpected_exits(const std::vector<FaultOutcome*>& active);
  void note(std::string text);
  int64_t now() const;

  Cluster* cluster_;
  const PathClock* paths_;
  std::vector<FaultOutcome> outcomes_;
  std::vector<Event> timeline_;
  std::vector<std::string> problems_;
  int64_t t0_ = 0;
  int64_t stored_cache_ = -1;
  int64_t stored_cache_at_ = -1;
};

}  // namespace taba::nemesis
