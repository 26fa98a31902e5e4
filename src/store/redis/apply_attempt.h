// One transaction of the be's apply loop (applier.h) over a read set of
// stream entries, in three steps, each issued by the applier:
//   read    WATCH the dedup keys, the types and tombs hashes and the names'
//           state and aggregate keys; GET dedup keys, HMGET types, HMGET
//           tombs, HMGET states, GET aggregates (pipelined, into one
//           Gather); GET the batches' dedup keys on the previous owners of
//           their vbuckets (a move)
//   merge   in memory, through the handlers; a delta whose (batch id,
//           vbucket) was applied here, on a previous owner, or earlier in
//           the read set is skipped, and so is one of a name deleted after
//           its entry was queued (its tombstone, redis_admin.cpp)
//   commit  MULTI; HSET states; SET aggregates; HSETNX binding; SADD
//           clients, cn:<client>; SET dedup EX ttl; XACK; XDEL; EXEC
// The applier decides what follows each step: a failed read or EXEC backs
// off, a nil EXEC (a WATCHed key changed) retries at once with a new
// attempt, a committed one moves on to the next read set.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/redis/applier.h"
#include "store/redis/layout.h"
#include "store/redis/placement.h"
#include "redis/reply.h"

namespace taba::store {

class ApplyAttempt : public std::enable_shared_from_this<ApplyAttempt> {
 public:
  // Decodes the entries' deltas (an unreadable entry is logged, counted
  // and applies nothing) and lists the names and clients they touch.
  // `batch` must stay unchanged until the attempt is over.
  // `placement` (this shard's view) names the previous owners to consult.
  ApplyAttempt(RedisStore* store, std::string shard_name, const std::vector<Applier::Entry>& batch,
               const redis::Placement& placement);

  // Read: queues WATCH and the reads on `txn`, each reply filling this
  // attempt. Hold the attempt in a shared_ptr (the replies keep it alive).
  void read(redis::Connection* txn, redis::Gather* gather);

  // Merge, once every read is in. First chooses the entries to apply; when
  // one of them has a delta of a type no loaded plugin serves, returns that
  // delta and merges nothing. Else merges and returns nullptr.
  const redis::Delta* merge();

  // Commit: queues MULTI, the writes of what merge changed and EXEC.
  void commit(redis::Connection* txn, redis::Gather* gather);
  // Whether EXEC ran the transaction (false: a WATCHed key changed).
  bool committed() const { return committed_; }
  // Counts a committed attempt in the store's stats and latencies.
  void count_committed();

 private:
  // A state read from Redis (or created here) and whether it changed.
  struct Slot {
    State state;
    bool dirty = false;
  };
  // A name of the read set, and what was read about it.
  struct NameWork {
    std::string name;
    const plugin::Handler* handler = nullptr;  // from the deltas' type
    std::string bound;                         // the binding read from Redis ("" = none)
    std::string tomb;                          // its /delete tombstone: a stream id ("" = none)
    std::vector<std::string> clients;          // in read order
    std::unordered_map<std::string, size_t> client_index;
    std::vector<std::string> client_blobs;     // read replies
    std::vector<bool> client_present;
    std::string aggregate_blob;
    bool aggregate_present = false;
  };
  // A name's states as merged.
  struct NameState {
    std::vector<Slot> clients;
    Slot aggregate;
    bool bind = false;
    bool skip = false;
  };

  void skip_deleted(size_t entry);

  RedisStore* store_;
  std::string shard_name_;
  const std::vector<Applier::Entry>& batch_;
  std::vector<std::vector<redis::Delta>> deltas_;  // per entry
  std::vector<std::vector<uint32_t>> vbuckets_;    // per entry, per delta
  std::vector<std::string> dedup_keys_;            // per entry ("" = none)
  std::vector<std::string> markers_;               // per entry: its dedup marker here ("" = none)
  std::vector<std::vector<std::string>> elsewhere_;  // per entry: previous owners to consult
  std::vector<std::vector<std::string>> foreign_;  // per entry: their markers
  std::vector<std::vector<bool>> apply_delta_;     // per entry, per delta
  std::vector<std::pair<std::string, std::string>> marks_;  // dedup key -> new marker
  std::vector<NameWork> names_;
  std::unordered_map<std::string, size_t> name_index_;
  std::vector<bool> apply_;                        // per entry: some delta of it applied
  uint32_t vbuckets_total_ = 0;
  std::vector<NameState> states_;                  // per name
  uint64_t deltas_applied_ = 0;
  uint64_t dropped_ = 0;
  uint64_t deleted_ = 0;  // deltas skipped: their name was deleted after they were queued
  bool committed_ = false;
};

}  // namespace taba::store
