// The Redis store's data layout: which shard owns a name, the key of every
// piece of state, and the binary forms of stream entries and stored states.
// docs/architecture.md ("Redis key map") documents the same, for operators.
//
// vbucket(name) = FNV-1a 64-bit of the name's bytes, mod the vbucket count.
// Every key about a name lives on the shard that owns its vbucket, so the
// be applies an entry with one single-shard MULTI/EXEC.
//
// Keys (P = key_prefix, default "taba:"), on each shard:
//   P stream          the shard's ingest stream (consumer group "be")
//   P types           HASH name -> type (first writer wins, Lua script)
//   P s: name         HASH client -> stored state of that client
//   P a: name         STRING the name's aggregate over all clients
//   P clients         SET clients with a state of a name on this shard
//   P cn: client      SET names this client has a state of, on this shard
//   P dedup: batchid  a bitmap with a TTL: bit v = the batch's deltas of vbucket v
//                     were applied on this shard ("1", from older versions: all)
//   P servers         HASH server id -> heartbeat (written to every shard)
//   P placement       STRING the placement (placement.h), on every shard
//   P owned           STRING one fence byte per vbucket (placement.h)
//   P bindlog         SET names bound while their vbucket moves out
//   P movedone        SET names a move has merged into this shard (target)
//   P move            HASH the move's driver, cancel request and progress (target)
//   P movelease       STRING the driver's id, expiring after reshard_lease_ms (target)
//   P tombs           HASH name -> the stream id of the newest entry queued when the name
//                     was deleted: older entries skip the name (redis_admin.cpp)
//   P cnmax           STRING an upper bound of the names any one client holds on this
//                     shard (the fe's pre-check of ingest.max_names_per_client)
//   P keeper          STRING the be holding the housekeeping lease (housekeeper.h), PX;
//   P gclast          STRING when the periodic GC last started (both on the keeper shard)
//
// A stored state is u32 state_version (LE) followed by the handler's bytes.
// A stream entry has fields id (batch id), t (enqueue time, seconds), n
// (event count) and d (the deltas): u8 version 1 | u32 count | count x
// (u16 name_len, name | u8 type_len, type | u16 client_len, client |
//  u32 state_version | u32 len, state bytes).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "core/status.h"

namespace taba::redis {

inline uint32_t vbucket_of(std::string_view name, uint32_t vbuckets) {
  return static_cast<uint32_t>(fnv1a64(name) % vbuckets);
}

class Keys {
 public:
  explicit Keys(std::string prefix) : p_(std::move(prefix)) {}
  std::string stream() const { return p_ + "stream"; }
  std::string types() const { return p_ + "types"; }
  std::string states(std::string_view name) const { return cat("s:", name); }
  std::string aggregate(std::string_view name) const { return cat("a:", name); }
  std::string clients() const { return p_ + "clients"; }
  std::string client_names(std::string_view client) const { return cat("cn:", client); }
  std::string dedup(std::string_view batch_id) const { return cat("dedup:", batch_id); }
  std::string servers() const { return p_ + "servers"; }
  std::string placement() const { return p_ + "placement"; }
  std::string owned() const { return p_ + "owned"; }
  std::string bindlog() const { return p_ + "bindlog"; }
  std::string move_done() const { return p_ + "movedone"; }
  std::string move() const { return p_ + "move"; }
  std::string move_lease() const { return p_ + "movelease"; }
  std::string tombs() const { return p_ + "tombs"; }
  std::string names_max() const { return p_ + "cnmax"; }
  std::string keeper() const { return p_ + "keeper"; }
  std::string gc_last() const { return p_ + "gclast"; }
  const std::string& prefix() const { return p_; }

 private:
  std::string cat(std::string_view kind, std::string_view tail) const {
    std::string k;
    k.reserve(p_.size() + kind.size() + tail.size());
    k += p_;
    k += kind;
    k += tail;
    return k;
  }
  std::string p_;
};

constexpr const char* kGroup = "be";

// A stored state: version + bytes.
std::string encode_state(uint32_t version, std::string_view bytes);
bool decode_state(std::string_view blob, uint32_t* version, std::string_view* bytes);

struct Delta {
  std::string_view name;
  std::string_view type;
  std::string_view client;
  uint32_t state_version = 0;
  std::string_view state;
};

class DeltaWriter {
 public:
  DeltaWriter();
  void add(std::string_view name, std::string_view type, std::string_view client, uint32_t version,
           std::string_view state);
  uint32_t count() const { return count_; }
  std::string finish();

 private:
  std::string buf_;
  uint32_t count_ = 0;
};

// Parses an entry's deltas; every length is checked (views into `bytes`).
Status decode_deltas(std::string_view bytes, std::vector<Delta>* out);

// The commands that register clients' new states on a shard, for a
// MULTI (the be's apply, a move's chunk): SADD P cn:<client> names per
// client, SADD P clients, and a script raising P cnmax to the largest of
// these clients' name counts (when P cnmax exists: the housekeeper creates
// it from every client, so that it is a bound over all of them).
void register_clients(const Keys& keys, const std::map<std::string, std::vector<std::string>>& client_names,
                      std::vector<std::vector<std::string>>* cmds);

// Sets P cnmax to the largest number of names any client holds on the
// shard. KEYS: cnmax, clients. ARGV: the P cn: prefix. Returns it.
extern const char* const kRecountNamesMaxScript;

}  // namespace taba::redis
