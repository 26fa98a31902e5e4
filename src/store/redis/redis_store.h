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
#include "store/redis/layout.h"
#include "store/store.h"

namespace taba::store {

class Applier;

struct RedisStoreStats {
  uint64_t entries_appended = 0;   // fe: stream entries written
  uint64_t submit_failures = 0;    // fe: bodies answered 503
  uint64_t binding_conflicts = 0;  // fe: bodies answered 400 for a type conflict
  uint64_t refused_max_names = 0;  // fe: bodies answered 422 by the max_names guard
  uint64_t entries_applied = 0;    // be
  uint64_t entries_duplicate = 0;  // be: batch id seen before, skipped
  uint64_t deltas_applied = 0;     // be
  uint64_t deltas_dropped = 0;     // be: type mismatch or unreadable state
  uint64_t txn_conflicts = 0;      // be: WATCH aborted, retried
  uint64_t txn_failures = 0;       // be: connection or command failed, retried
  uint64_t entries_claimed = 0;    // be: taken over from an idle consumer
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
  // max_names_per_client is not enforced in Redis mode: the fe does not see
  // which (client, name) states exist.
  void set_name_limits(const NameLimits& limits) override;

  void fetch(const QueryNeed& need, ViewCallback ready) override;
  double pipeline_latency_s() const override { return cluster_latency_s_; }

  void delete_names(const Matcher& names, ReportCallback done) override;
  void gc(ReportCallback done) override;
  void check(bool repair, ReportCallback done) override;
  void flush(ReportCallback done) override;
  void status(std::function<void(const Status&, const ClusterStatus&)> done) override;

  LatencyWindow::Summary local_latency() const override;
  const LatencyWindow& local_latency_window() const override { return latencies_; }
  void metrics(std::vector<Metric>* out) const override;
  uint64_t local_deltas_applied() const override { return stats_.deltas_applied; }

  const RedisStoreStats& stats() const { return stats_; }

  // --- used by Applier and the admin operations ---
  struct ShardCtx {
    std::string name;
    uint32_t first_vbucket = 0;
    uint32_t last_vbucket = 0;
    uint64_t max_names = 0;  // this shard's share of NameLimits::max_names; 0 = no limit
    std::unique_ptr<redis::Shard> shard;
    redis::Connection* writer = nullptr;  // fe: XADD then WAIT on one connection
    int64_t stream_length = 0;            // from the last heartbeat
    // XADDs answered and waiting for replica acknowledgement (one WAIT at a time).
    std::vector<std::function<void(const Status&)>> wait_queue;
    bool wait_outstanding = false;
    std::unique_ptr<Applier> applier;
  };
  size_t shard_of(std::string_view name) const;
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
  void bind_then_append(const std::shared_ptr<Submit>& sub);
  void append(const std::shared_ptr<Submit>& sub);
  void issue_wait(ShardCtx* shard);
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
  std::vector<std::unique_ptr<ShardCtx>> shards_;
  std::vector<uint16_t> vbucket_shard_;
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
