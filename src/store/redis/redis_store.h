// The Redis store (docs/operations.md, "A two-shard cluster with Redis Sentinel"): state in Redis masters found
// through Sentinel, split by vbucket over named shards (layout.h).
//
// fe (submit): bind the body's names (a Lua script per shard: first writer
// wins), pre-aggregate the body into one delta per (client, name), append
// one entry per shard to that shard's stream, WAIT for replicas when
// configured, then answer 200.
// be (Applier, one per shard): read the stream through the consumer group,
// merge deltas into client states and aggregates, record the batch id, XACK
// and XDEL, all in one MULTI/EXEC guarded by WATCH: exactly once.
// Every role: queries fetch only the keys they need; admin routes act on
// the shards; a heartbeat registers the server on every shard.
// One class over several files, one concept each: redis_store.cpp (open,
// close, metrics), redis_submit.cpp, redis_fetch.cpp, redis_admin.cpp,
// redis_heartbeat.cpp; the generic client it talks through is src/redis/.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/latency.h"
#include "core/uv_timer.h"
#include "redis/connection.h"
#include "redis/sentinels.h"
#include "redis/shard.h"
#include "store/redis/client_names.h"
#include "store/redis/layout.h"
#include "store/redis/placement.h"
#include "store/store.h"

namespace taba::store {

class Applier;
class Housekeeper;
class Mover;

struct RedisStoreStats {
  uint64_t entries_appended = 0;   // fe: stream entries written
  uint64_t submit_failures = 0;    // fe: bodies answered 503
  uint64_t binding_conflicts = 0;  // fe: bodies answered 400 for a type conflict
  uint64_t refused_max_names = 0;  // fe: bodies answered 422 by the max_names guard
  uint64_t refused_max_names_per_client = 0;  // fe: ... by the max_names_per_client guard
  uint64_t client_limit_checks = 0;  // fe: bodies whose clients' names were counted on the shards
  uint64_t entries_applied = 0;    // be
  uint64_t entries_duplicate = 0;  // be: batch id seen before, skipped
  uint64_t deltas_applied = 0;     // be
  uint64_t deltas_dropped = 0;     // be: type mismatch or unreadable state
  uint64_t deltas_deleted = 0;     // be: deltas queued before a /delete of their name, skipped
  uint64_t txn_conflicts = 0;      // be: WATCH aborted, retried
  uint64_t txn_failures = 0;       // be: connection or command failed, retried
  uint64_t entries_claimed = 0;    // be: taken over from an idle consumer
  uint64_t read_bytes = 0;         // be: entry bytes read into read sets
  uint64_t read_set_max_bytes = 0; // be: the largest read set (bytes of its entries)
  uint64_t read_sets_cut = 0;      // be: reads stopped at redis.max_read_bytes
  uint64_t fenced = 0;             // fe: appends/bindings refused by a shard that no longer owns a vbucket
  uint64_t entries_held = 0;       // be: read sets held back while their range drains on its old shard
  uint64_t dedup_lookups = 0;      // be: dedup markers read from a vbucket's previous owner
  uint64_t placement_changes = 0;  // placements adopted (a higher epoch)
  uint64_t placement_errors = 0;   // placements that could not be read or parsed
};

class RedisStore final : public Store {
 public:
  RedisStore(uv_loop_t* loop, const plugin::Registry* registry, const Config::Redis& config, bool run_be,
             std::string consumer_name);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  Status open() override;
  void close(std::function<void()> done) override;
  bool ready() const override;

  const plugin::Handler* bound_handler(std::string_view) const override { return nullptr; }
  void submit(std::string batch, BatchId batch_id, Bindings new_bindings,
              std::function<void(const Status&)> done) override;
  // max_names is split between the shards by their vbucket ranges (names
  // hash evenly onto vbuckets) and checked atomically where names are bound.
  // max_names_per_client is checked against the clients' applied names on
  // every shard (P cn:<client>), when P cnmax says a client of the body
  // could pass it (redis_submit.cpp).
  void set_name_limits(const NameLimits& limits) override;

  void fetch(const QueryNeed& need, ViewCallback ready) override;
  double pipeline_latency_s() const override { return cluster_latency_s_; }

  void delete_names(const Matcher& names, ReportCallback done) override;
  void gc(ReportCallback done) override;
  void check(bool repair, ReportCallback done) override;
  void flush(ReportCallback done) override;
  // The keeper be runs it (housekeeper.h); an fe or ctrl runs none.
  bool schedule_gc(int64_t interval_s) override;
  void status(std::function<void(const Status&, const ClusterStatus&)> done) override;
  void reshard(const ReshardRequest& request, PlacementCallback done) override;  // mover.cpp
  void placement(PlacementCallback done) override;                               // redis_placement.cpp

  LatencyWindow::Summary local_latency() const override;
  const LatencyWindow& local_latency_window() const override { return latencies_; }
  void metrics(std::vector<Metric>* out) const override;
  uint64_t local_deltas_applied() const override { return stats_.deltas_applied; }

  const RedisStoreStats& stats() const { return stats_; }

  // --- used by Applier and the admin operations ---
  struct ShardCtx {
    std::string name;
    bool owns = false;     // owns at least one vbucket in the current placement
    uint64_t max_names = 0;  // this shard's share of NameLimits::max_names; 0 = no limit
    std::unique_ptr<redis::Shard> shard;
    redis::Connection* writer = nullptr;  // fe: XADD then WAIT on one connection
    // A move's driver: WATCH/MULTI/EXEC or deletes, then WAIT, on one
    // connection (made at the first move; every later move reuses it).
    redis::Connection* mover = nullptr;
    redis::Connection* mover_connection() {
      if (!mover) mover = shard->dedicated();
      return mover;
    }
    int64_t stream_length = 0;            // from the last heartbeat
    int64_t names_max = -1;               // P cnmax from the last heartbeat; -1 = unknown
    // XADDs answered and waiting for replica acknowledgement (one WAIT at a time).
    std::vector<std::function<void(const Status&)>> wait_queue;
    bool wait_outstanding = false;
    std::unique_ptr<Applier> applier;
  };
  size_t shard_of(std::string_view name) const;
  uint32_t vbucket(std::string_view name) const { return redis::vbucket_of(name, placement_.vbuckets); }

  // --- the placement (redis_placement.cpp) ---
  const redis::Placement& current_placement() const { return placement_; }
  ShardCtx* shard_named(std::string_view name) const;  // nullptr when unknown here
  // Whether queries must read the shard: it owns vbuckets or a move splits a range onto it.
  bool may_hold_data(const ShardCtx* shard) const;
  // Connects to a shard this process does not know yet (a move's target);
  // the be starts applying its stream.
  ShardCtx* add_shard(const std::string& name);
  // Re-reads the placement from every shard and adopts the highest epoch;
  // concurrent callers share one read. Initialises a shard that has none.
  void refresh_placement(std::function<void(const Status&)> done);
  double placement_age_s() const;
  // A query re-reads a placement older than this before routing its reads.
  static constexpr double kQueryFreshnessS = 2.0;
  // Writes `p` to the named shards (each: only when its stored epoch is
  // lower), setting its fence bytes where `fence` says so, then WAITs for
  // min_replica_acks replicas; then adopts it. (The mover's step.)
  void write_placement(const redis::Placement& p, const std::vector<std::string>& shards, bool fence,
                       std::function<void(const Status&)> done);
  // WAIT min_replica_acks on the shard's writer (OK at once when 0).
  void wait_replicas(ShardCtx* shard, std::function<void(const Status&)> done);
  std::vector<std::unique_ptr<ShardCtx>>& shards() { return shards_; }
  const redis::Keys& keys() const { return keys_; }
  const plugin::Registry* registry() const { return registry_; }
  const Config::Redis& config() const { return config_; }
  RedisStoreStats& mutable_stats() { return stats_; }
  LatencyWindow& latencies() { return latencies_; }
  uv_loop_t* loop() const { return loop_; }

 private:
  struct Submit;  // redis_submit.cpp
  struct Fetch;   // redis_fetch.cpp
  void heartbeat();  // redis_heartbeat.cpp; every second
  // A post's stream payloads per shard (sub->payloads, events, bytes):
  // from an event batch, one pre-aggregated delta per (client, name); from
  // a delta batch (POST /post_delta), its blocks as they are.
  Status shard_events(std::string_view batch, Submit* sub);  // redis_submit.cpp
  Status shard_deltas(std::string_view batch, Submit* sub);
  // ingest.max_names_per_client for a body's clients (redis_client_limit.cpp):
  // `then` gets OK, Limit (the refusal, counted) or Unavailable.
  void check_client_names(const redis::ClientNames& names, std::function<void(const Status&)> then);
  void bind_then_append(const std::shared_ptr<Submit>& sub);
  void append(const std::shared_ptr<Submit>& sub);
  void issue_wait(ShardCtx* shard);
  void resubmit(const std::shared_ptr<Submit>& sub);
  void describe_placement(PlacementCallback done);  // mover.cpp
  void fetch_now(const QueryNeed& need, ViewCallback ready);
  void begin_move(const ReshardRequest& request, const std::string& owner, int tries, PlacementCallback done);
  // The admin operations, once no move is in progress (redis_admin.cpp).
  Status no_move_in_progress() const;
  void delete_names_now(const Matcher& names, ReportCallback done);
  void gc_now(ReportCallback done);
  void check_now(bool repair, ReportCallback done);
  void adopt(redis::Placement p);
  void init_placement(ShardCtx* shard);
  // Lists every bound name (name -> type) matching `names` across shards
  // (redis_fetch.cpp; the admin operations use it too).
  void list_names(const Matcher& names,
                  std::function<void(const Status&, std::vector<std::pair<std::string, std::string>>)> done);

  uv_loop_t* loop_;
  const plugin::Registry* registry_;
  Config::Redis config_;
  bool run_be_;
  std::string consumer_;
  redis::Keys keys_;
  std::unique_ptr<redis::Sentinels> sentinels_;
  redis::ConnectionOptions connection_options_;
  std::vector<std::unique_ptr<ShardCtx>> shards_;
  std::vector<uint16_t> vbucket_shard_;  // vbucket -> index in shards_, from placement_
  redis::Placement placement_;
  bool placement_loaded_ = false;
  uint64_t ready_epoch_ = 0;  // the last epoch adopted with every shard it needs connected
  double placement_read_at_ = 0;
  std::vector<std::function<void(const Status&)>> refresh_waiters_;
  bool refreshing_ = false;
  std::unique_ptr<Mover> mover_;
  std::unique_ptr<Housekeeper> keeper_;  // a be's
  std::unique_ptr<UvTimer> tick_;
  RedisStoreStats stats_;
  NameLimits limits_;
  LatencyWindow latencies_;
  double cluster_latency_s_ = 0;
  uint64_t in_flight_bytes_ = 0;
  bool closing_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // callbacks check it
};

}  // namespace taba::store
