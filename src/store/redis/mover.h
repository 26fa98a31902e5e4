// The driver of a re-shard move (placement.h has the phases): runs in the
// process that took the move's lease (POST /reshard), step by step, each
// step idempotent and re-read from Redis, so another process can resume a
// move whose driver died by running the same command again.
//
//   bindings   HSCAN the source's types; copy the range's bindings to the
//              target (HSETNX). Cancelled here: roll back.
//   switching  wait until every live server is connected to the target,
//              fence the source (its fence bytes of the range -> '0', in a
//              script that also returns the bindings logged since the
//              copy), copy those, then write the placement that gives the
//              range to the target (its fence bytes -> '1').
//   draining   wait until every live server routes by the new placement,
//              then until the source's stream holds no entry appended
//              before the switch (XRANGE - <last id at the switch>).
//   states     per chunk of names: read the source's states; on the target
//              WATCH, read, merge through the handlers, and in one
//              MULTI/EXEC write the merged states and mark the names in
//              `P movedone`; WAIT; then delete them from the source
//              (script); WAIT. Until a pass over the source finds none.
//              Cancelled from here on: a reverse move takes the range back.
//   finishing  write the placement without the move, with the source's
//              ownership in the history (its dedup markers still count).
// Every placement write WAITs for min_replica_acks replicas.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/uv_timer.h"
#include "store/redis/placement.h"
#include "store/redis/redis_store.h"

namespace taba::store {

class Mover {
 public:
  static constexpr const char* kScanCount = "500";  // HSCAN page size of the scans

  Mover(RedisStore* store, std::string driver);
  ~Mover();
  Mover(const Mover&) = delete;
  Mover& operator=(const Mover&) = delete;

  // Drives the placement's move (whose lease this process holds).
  void start();
  // Each second: renew the lease (a lost lease stops the mover), read a
  // cancel request, publish progress.
  void tick();
  bool finished() const { return finished_; }
  // The driver's progress (taba_reshard_*), while this process drives.
  void metrics(std::vector<Metric>* out) const;
  const std::string& move_id() const { return move_.id; }

 private:
  struct Chunk;
  void schedule(uint32_t ms);
  void step();
  void failed(const std::string& what, const Status& s);
  void bindings();
  void rollback();
  void switching();
  void fence();
  void barrier(uint64_t want, double since, std::function<void()> then);
  void draining();
  void drain_wait(std::string last_id);
  void states();
  void scan_states();
  size_t chunk_names() const;
  void page_done();
  void next_chunk();
  void move_chunk(std::shared_ptr<Chunk> chunk);
  void merge_chunk(std::shared_ptr<Chunk> chunk);
  void commit_chunk(std::shared_ptr<Chunk> chunk);
  void delete_chunk(std::shared_ptr<Chunk> chunk);
  void verify_fence();
  void switching_again();
  void reverse();
  void finishing();
  void end(const std::string& outcome);
  // The next placement: the current one with epoch + 1.
  redis::Placement next() const;
  void write(const redis::Placement& p, std::function<void()> then);
  std::vector<std::string> all_shards(const redis::Placement& p) const;

  RedisStore* store_;
  std::string driver_;
  redis::Move move_;
  RedisStore::ShardCtx* from_ = nullptr;
  RedisStore::ShardCtx* to_ = nullptr;
  redis::Connection* from_txn_ = nullptr;  // dedicated: deletes then WAIT
  redis::Connection* to_txn_ = nullptr;    // dedicated: WATCH/MULTI/EXEC then WAIT
  std::unique_ptr<UvTimer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string cursor_ = "0";
  std::vector<std::shared_ptr<Chunk>> pending_;  // the scan page's chunks, in order
  size_t pending_index_ = 0;
  bool pass_end_ = false;   // the current scan page is the last of its pass
  bool in_flight_ = false;  // a chunk started and not yet deleted from the source
  bool settling_ = false;   // cancelled: deleting from the source what the target has merged
  uint64_t found_in_pass_ = 0;
  uint64_t names_moved_ = 0;
  uint64_t bytes_moved_ = 0;
  uint64_t names_total_ = 0;
  double chunk_started_ = 0;
  int failures_ = 0;
  uint64_t errors_ = 0;
  bool cancel_ = false;
  bool lease_lost_ = false;
  bool finished_ = false;
  std::string error_;
};

}  // namespace taba::store
