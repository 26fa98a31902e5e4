// The placement of the Redis store: which shard owns each vbucket, the move
// in progress and the recent ownership history (docs/architecture.md,
// "Placement and moves").
//
// It lives in the cluster, as JSON in `P placement` on every shard, with an
// epoch that every change bumps; a process uses the highest epoch any shard
// holds. Beside it each shard holds `P owned`, one byte per vbucket, which
// the shard's own scripts check before they append or bind (the fence):
//   '1' owned, '0' not owned, 'm' owned while moving out (new bindings are
//   logged so the move can copy them when it switches).
// The configured [[redis.shards]] ranges are only the initial placement.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"

namespace taba::redis {

// The phases of a move, in order. Only the driver moves a move forward.
//   bindings   the target copies the source's bindings of the range; the
//              source still takes writes ('m': new bindings are logged)
//   switching  the source is fenced ('0'), the logged bindings are copied,
//              then the target takes writes
//   draining   the target takes writes but its be holds the range's entries
//              back until the source has applied every entry appended
//              before the switch
//   states     the driver merges the source's states of the range into the
//              target, name by name, and deletes them from the source
// A cancelled move before "switching" is rolled back; after it, the range
// is moved back by a reverse move (`cancelled` set), once drained.
struct Move {
  std::string id;
  std::string from;
  std::string to;
  uint32_t first = 0;
  uint32_t last = 0;
  std::string phase;
  double started = 0;
  double switched_at = 0;  // when the target began taking writes
  double drained_at = 0;   // when the source had applied everything from before
  bool cancel = false;     // cancel requested (applied at the next step)
  std::string cancels;     // a reverse move: the id of the move it undoes
  bool contains(uint32_t v) const { return v >= first && v <= last; }
  // Whether the target's be must hold back entries of the range.
  bool holds_back() const { return phase == "switching" || phase == "draining"; }
  // Whether both the source and the target may hold states of the range
  // (queries read both). Until "draining" the target takes none of its
  // writes; a reverse move starts with states on both sides.
  bool split() const { return phase == "draining" || phase == "states" || !cancels.empty(); }
};

// A shard that owned [first, last] until `until` (the time its last entry
// for the range was applied): its dedup markers of the range are consulted
// until they expire (until + dedup_ttl_s).
struct Owned {
  uint32_t first = 0;
  uint32_t last = 0;
  std::string shard;
  double until = 0;
};

// An ended move, for status.
struct Ended {
  std::string id;
  std::string from;
  std::string to;
  uint32_t first = 0;
  uint32_t last = 0;
  std::string outcome;  // "done" | "cancelled"
  double started = 0;
  double ended = 0;
  uint64_t names = 0;
  uint64_t bytes = 0;
};

struct Placement {
  uint64_t epoch = 0;
  uint32_t vbuckets = 0;
  std::vector<std::string> shards;  // names; owner[] indexes this
  std::vector<uint16_t> owner;      // per vbucket: the shard that takes its writes
  std::optional<Move> move;
  std::vector<Owned> history;
  std::vector<Ended> recent;  // newest first

  // From [[redis.shards]], epoch 1.
  static Placement initial(const Config::Redis& config);
  static Result<Placement> parse(std::string_view json);
  std::string to_json() const;

  // Index of `name` in shards, adding it when new.
  uint16_t shard_index(const std::string& name);
  int find_shard(std::string_view name) const;  // -1 when absent
  const std::string& owner_of(uint32_t vbucket) const { return shards[owner[vbucket]]; }
  // The shard's fence bytes (see the file comment).
  std::string owned_bytes(std::string_view shard) const;
  // The shard's ranges (sorted, merged).
  std::vector<std::pair<uint32_t, uint32_t>> ranges_of(std::string_view shard) const;
  // Shards other than the owner that held `vbucket` recently enough that
  // their dedup markers may still matter (history not expired at `now`,
  // plus the source of a split move).
  void previous_owners(uint32_t vbucket, double now, double dedup_ttl_s, std::vector<std::string>* out) const;
  // Drops history whose markers have expired and keeps `recent` short.
  void prune(double now, double dedup_ttl_s);
};

// A shard's dedup marker for one batch: 'b' then a bitmap, bit v set = the
// batch's deltas of vbucket v were applied there. The marker "1" (written
// before markers had bits) means every vbucket.
class DedupBits {
 public:
  explicit DedupBits(uint32_t vbuckets) : bits_(1 + (vbuckets + 7) / 8, '\0') { bits_[0] = 'b'; }
  void merge_marker(std::string_view marker);
  bool test(uint32_t v) const { return (static_cast<uint8_t>(bits_[1 + (v >> 3)]) >> (v & 7)) & 1; }
  void set(uint32_t v) {
    char& c = bits_[1 + (v >> 3)];
    c = static_cast<char>(static_cast<uint8_t>(c) | (1u << (v & 7)));
  }
  const std::string& bytes() const { return bits_; }

 private:
  std::string bits_;
};

}  // namespace taba::redis
