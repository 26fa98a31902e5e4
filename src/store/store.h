// The store interface the roles run on: the embedded store (one process,
// WAL + snapshots) and the Redis store (Sentinel-discovered shards, fe/be/
// ctrl as separate processes) both implement it, so ingest, queries and the
// admin routes are the same code in both modes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/latency.h"
#include "core/status.h"
#include "plugin/registry.h"
#include "plugin/state.h"
#include "core/matcher.h"
#include "store/client_states.h"

namespace taba::store {

// A handler state owned by the store; freed through its handler.
using State = plugin::State;

using ClientIndex = uint32_t;

// One tab: its type binding, the per-client states and their aggregate.
struct NameEntry {
  std::string name;
  const plugin::Handler* handler = nullptr;
  State aggregate;
  ClientStates<State> states;
};

// What queries read: names with their states, and the client table that
// ClientIndex values refer to.
class ReadView {
 public:
  virtual ~ReadView() = default;
  virtual const NameEntry* find_name(std::string_view name) const = 0;
  virtual std::vector<const NameEntry*> names() const = 0;  // sorted by name
  virtual const std::vector<std::string>& clients() const = 0;  // indexed by ClientIndex
  // False for a client whose every state was pruned or deleted.
  virtual bool client_has_states(ClientIndex client) const = 0;
};

// What a query needs from the store; the Redis store fetches only this.
struct QueryNeed {
  const Matcher* names = nullptr;    // required
  const Matcher* clients = nullptr;  // required
  bool aggregates = false;  // each matched name's aggregate
  bool states = false;      // the matched clients' states of each matched name
  bool client_list = false; // every known client (for /clients and client filters)
};

// An admin operation's outcome: counters and one line per finding.
struct Report {
  std::vector<std::pair<std::string, int64_t>> counts;
  std::vector<std::string> details;
  void count(std::string key, int64_t value) { counts.emplace_back(std::move(key), value); }
};

struct ShardStatus {
  std::string name;
  std::string master;  // host:port, "" when unknown
  bool up = false;
  int64_t stream_length = 0;  // entries not yet applied
  int64_t pending = 0;        // delivered to a be, not yet acknowledged
  double oldest_pending_age_s = 0;
  std::string error;  // why the figures are missing
};

struct ServerInfo {
  std::string id;
  std::vector<std::string> roles;
  std::string listen;
  double last_seen_age_s = 0;
  double events_per_s = 0;        // fe: events accepted per second (last interval)
  double deltas_per_s = 0;        // be: deltas applied per second (last interval)
  double latency_p50_s = 0;       // be: enqueue -> applied, last minute
  double latency_p99_s = 0;
  int64_t latency_samples = 0;
  uint64_t placement_epoch = 0;   // Redis: the placement epoch this server routes by
};

struct ClusterStatus {
  std::string store;  // "embedded" | "redis"
  std::vector<ShardStatus> shards;
  std::vector<ServerInfo> servers;
  double pipeline_latency_s = 0;  // what queries subtract from now
};

// One sample of the store's own metrics (GET /metrics); samples of one
// family are adjacent.
struct Metric {
  std::string name;
  const char* type = "counter";  // "counter" | "gauge"
  std::string help;
  double value = 0;
  std::vector<std::pair<std::string, std::string>> labels;
};

// A batch's Taba-Batch-Id; `from_client` is false when the fe made it up
// (then no retry can repeat it unless the client learns it from a 503).
struct BatchId {
  std::string value;
  bool from_client = false;
};

using Bindings = std::vector<std::pair<std::string, const plugin::Handler*>>;

// Cardinality guards (ingest.max_names, ingest.max_names_per_client); 0 = no
// limit. A body that would pass one is refused whole with Status::Limit.
struct NameLimits {
  uint64_t max_names = 0;             // distinct names in the store
  uint64_t max_names_per_client = 0;  // names one client has a state for
};
// Re-sharding (Redis store): where every vbucket lives and the move in
// progress. The configured [[redis.shards]] ranges are only the initial
// placement; after that it lives in the cluster (docs/architecture.md,
// "Placement and moves").
struct VbucketRange {
  uint32_t first = 0;
  uint32_t last = 0;  // inclusive
};

struct MoveStatus {
  std::string id;         // unique per move
  std::string from;       // source shard (Sentinel master name)
  std::string to;         // target shard
  VbucketRange range;
  std::string phase;      // "bindings", "switching", "draining", "states", "finishing", "done", "cancelled"
  double started = 0;     // unix seconds
  double elapsed_s = 0;   // since started (or until it ended)
  uint64_t names_moved = 0;  // names whose states reached the target
  uint64_t names_left = 0;   // names still on the source (known once "states" began)
  uint64_t bytes_moved = 0;  // stored-state bytes copied
  std::string driver;     // server id driving the move; "" = none
  bool driver_alive = false;  // the driver renewed its lease recently
  std::string error;      // the last error the driver hit (it retries); "" = none
};

struct PlacementStatus {
  bool supported = false;  // false: one store, nothing to place (embedded)
  uint64_t epoch = 0;      // bumped by every change of placement
  uint32_t vbuckets = 0;
  struct ShardRanges {
    std::string shard;
    std::vector<VbucketRange> ranges;  // sorted
  };
  std::vector<ShardRanges> shards;  // by name; a shard without ranges is listed while it may hold dedup history
  bool moving = false;
  MoveStatus move;                  // when moving
  std::vector<MoveStatus> recent;   // ended moves, newest first (a few)
};

// POST /reshard: start (or resume, when the same move's driver is gone) a
// move of `range` to `to`, or cancel the move in progress.
struct ReshardRequest {
  bool cancel = false;
  std::string to;
  VbucketRange range;
};
using PlacementCallback = std::function<void(const Status&, const PlacementStatus&)>;

using ViewCallback = std::function<void(const Status&, const ReadView*)>;
using ReportCallback = std::function<void(const Status&, const Report&)>;

class Store {
 public:
  virtual ~Store() = default;

  virtual Status open() = 0;
  // Finishes what is in flight and stops; `done` runs on the loop thread.
  virtual void close(std::function<void()> done) = 0;
  // True when the store can accept and answer (Redis: every shard reachable).
  virtual bool ready() const = 0;
  // Why ready() is false, for /readyz.
  virtual std::string unready_reason() const { return ready() ? std::string() : "the store is not reachable"; }

  // --- ingest (fe) ---
  // The handler bound to `name` as far as this process knows synchronously,
  // or nullptr (the binding is then settled by submit).
  virtual const plugin::Handler* bound_handler(std::string_view name) const = 0;
  // Makes a validated batch durable and (eventually) applied. `new_bindings`
  // are names the body uses that bound_handler did not know, with the type
  // the body gives them. done: OK = durable (200); Invalid = type conflict
  // (400); Limit = a NameLimits guard refused it (422); Unavailable/IoError
  // = nothing accepted (503).
  virtual void submit(std::string batch, BatchId batch_id, Bindings new_bindings,
                      std::function<void(const Status&)> done) = 0;
  // Limits for bodies submitted from now on (also on SIGHUP).
  virtual void set_name_limits(const NameLimits& limits) = 0;

  // --- queries ---
  virtual void fetch(const QueryNeed& need, ViewCallback ready) = 0;
  // Queries render windows as of now minus this.
  virtual double pipeline_latency_s() const = 0;

  // --- admin ---
  virtual void delete_names(const Matcher& names, ReportCallback done) = 0;
  virtual void gc(ReportCallback done) = 0;
  virtual void check(bool repair, ReportCallback done) = 0;
  virtual void flush(ReportCallback done) = 0;
  // The periodic GC of a be, every `interval_s` (store.gc_interval_s; 0 =
  // none; called again on SIGHUP). True: the store schedules it itself (the
  // Redis store: one be of the cluster runs it per interval); false: the
  // caller runs gc() on its own timer (one process: the embedded store).
  virtual bool schedule_gc(int64_t interval_s) {
    (void)interval_s;
    return false;
  }
  virtual void status(std::function<void(const Status&, const ClusterStatus&)> done) = 0;
  // Re-sharding; the embedded store answers Invalid ("one store, nothing to
  // move") and a placement with supported = false. reshard's `done` runs
  // once the move is started, resumed or cancelled (not when it ends);
  // the status it passes is the placement right after.
  virtual void reshard(const ReshardRequest& request, PlacementCallback done) {
    (void)request;
    done(Status::Invalid("re-sharding needs the Redis store; the embedded store is one store with nothing to move"),
         PlacementStatus{});
  }
  virtual void placement(PlacementCallback done) { done(Status::Ok(), PlacementStatus{}); }

  // --- what this process did as a be (for the heartbeat and /latency) ---
  virtual LatencyWindow::Summary local_latency() const = 0;
  virtual const LatencyWindow& local_latency_window() const = 0;
  virtual void metrics(std::vector<Metric>* out) const = 0;
  virtual uint64_t local_deltas_applied() const = 0;
  // Who this process is (the daemon provides it; the Redis store publishes
  // it in the server registry).
  void set_self_info(std::function<ServerInfo()> f) { self_info_ = std::move(f); }

 protected:
  std::function<ServerInfo()> self_info_;
};

}  // namespace taba::store
