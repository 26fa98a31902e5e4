// The Redis store's housekeeping, done by one be of the cluster at a time:
// the holder of the keeper lease (P keeper on the keeper shard, the first
// of the placement's shards by name). Every be asks once a second (the
// store's heartbeat); the holder renews the lease (PX 5 s), another be
// takes it once it has expired (the holder died, hangs or was stopped).
// The holder
//  - runs the periodic GC (store.gc_interval_s) once per interval for the
//    whole cluster: P gclast says when it last started, so a new holder
//    keeps the rhythm instead of running it again at once;
//  - deletes the stream consumers that have nothing pending and have been
//    idle longer than redis.idle_consumer_ms (a be killed or replaced). A
//    dead be's pending entries are first claimed by a live be (XAUTOCLAIM
//    after claim_idle_ms, applier.h); the delete is a script that checks
//    again that nothing is pending, so no entry loses its owner;
//  - drops the /delete tombstones (P tombs) older than every entry left in
//    the stream (redis_admin.cpp);
//  - creates P cnmax where it is missing, and recounts it after each GC
//    (it only rises otherwise; the fe's ingest.max_names_per_client
//    pre-check reads it, redis_submit.cpp).
// docs/operations.md ("Housekeeping in Redis mode") describes it for
// operators.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "redis/reply.h"
#include "store/redis/redis_store.h"

namespace taba::store {

class Housekeeper {
 public:
  // `consumer`: this be's consumer name (never deleted by its own sweep).
  Housekeeper(RedisStore* store, std::string consumer);
  ~Housekeeper();
  Housekeeper(const Housekeeper&) = delete;
  Housekeeper& operator=(const Housekeeper&) = delete;

  // store.gc_interval_s; 0 = no periodic GC (the rest goes on).
  void set_gc_interval(int64_t seconds) { gc_interval_s_ = seconds; }
  // Once a second.
  void tick();
  void metrics(std::vector<Metric>* out) const;
  // Closing: gives the lease up if this be holds it (best effort).
  void release(redis::Gather* gather);

  static constexpr int64_t kLeaseMs = 5000;

 private:
  RedisStore::ShardCtx* keeper_shard() const;
  void run_gc();
  void sweep();
  void sweep_shard(RedisStore::ShardCtx* shard);
  void recount_names_max(RedisStore::ShardCtx* shard);

  RedisStore* store_;
  std::string consumer_;
  int64_t gc_interval_s_ = 0;
  bool asking_ = false;   // a lease request is outstanding
  bool holder_ = false;   // this be held the lease at the last answer
  bool gc_running_ = false;
  double last_sweep_ = 0;
  uint64_t gc_runs_ = 0;
  uint64_t gc_failures_ = 0;
  uint64_t consumers_deleted_ = 0;
  uint64_t tombstones_dropped_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace taba::store
