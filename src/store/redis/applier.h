// The be's work on one shard: read the ingest stream through the consumer
// group and apply each entry exactly once (see redis_store.h).
//
// Loop: claim entries idle on other consumers (XAUTOCLAIM JUSTID, every
// claim_idle_ms / 2), re-read this consumer's own pending entries after a
// (re)start, failure, claim or cut, else read new ones. Reads go through a
// script that takes entries one at a time up to 32 entries and
// redis.max_read_bytes (at least one entry: a round always progresses);
// when it finds nothing new, one XREADGROUP COUNT 1 BLOCK waits for the
// next entry. A read set of entries is applied in one transaction:
//   WATCH dedup keys, the names' state and aggregate keys
//   read: which batch ids were applied, the bindings, the states involved
//   merge in memory (the handlers), then
//   MULTI: write states + aggregates, bind, register clients, mark batch ids
//   (SET EX), XACK + XDEL the entries; EXEC
// (one ApplyAttempt, apply_attempt.h). A WATCH abort (another be or an
// admin change touched a key) retries at once; a lost connection retries
// with backoff. Nothing is acknowledged that was not applied in the same
// EXEC, so a be killed at any point leaves its entries pending for itself
// (after a restart) or for another be.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/uv_timer.h"
#include "store/redis/redis_store.h"

namespace taba::store {

class ApplyAttempt;

class Applier {
 public:
  Applier(RedisStore* store, RedisStore::ShardCtx* shard, std::string consumer);
  ~Applier();
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  void start();
  void stop();

  struct Entry {
    std::string id;
    std::string batch_id;
    double enqueue_time = 0;
    std::string deltas;
    bool deleted = false;  // pending, but gone from the stream
  };

 private:
  void ensure_group();
  void next();
  void read_reply(const redisReply* entries);
  void read_failed(const Status& s, const redisReply* r);
  // One transaction over batch_ (apply_attempt.h): its read and merge, then
  // its commit.
  void attempt();
  // The placement this shard holds (or this process's, when newer), then
  // the attempt: entries of a range still draining on its old shard are
  // held back; a range's previous owners are consulted for dedup.
  void attempt_with(const redis::Placement& placement);
  void commit(const std::shared_ptr<ApplyAttempt>& a);
  void transaction_failed(std::string_view what, const Status& s);
  void retry_later(uint32_t ms);
  void on_timer();

  RedisStore* store_;
  RedisStore::ShardCtx* shard_;
  std::string consumer_;
  redis::Connection* reader_ = nullptr;
  redis::Connection* txn_ = nullptr;
  std::unique_ptr<UvTimer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<Entry> batch_;
  bool group_ready_ = false;
  bool own_pending_done_ = false;
  bool idle_ = false;  // the last read of new entries found none: block for the next
  bool stopping_ = false;
  double last_claim_ = 0;
  int failures_ = 0;
  std::string claim_cursor_ = "0-0";
  std::string placement_json_;  // the last placement read from the shard, and its parse
  redis::Placement placement_;
  bool holding_ = false;        // logged once per hold
};

}  // namespace taba::store
