#include "store/redis/applier.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/apply_attempt.h"

namespace taba::store {
namespace {

constexpr int kReadCount = 32;
constexpr uint32_t kBlockMs = 500;

// Reads up to ARGV[4] entries for consumer ARGV[2] of group ARGV[1] from
// the stream KEYS[1], one at a time, and stops before an entry that would
// take the bytes read past ARGV[5] (the first entry is always taken, so
// every round makes progress). ARGV[3]: ">" for new entries, or an id: this
// consumer's pending entries after it. Returns {entries, cut}; cut = 1 when
// an entry was left for the next round (a new one stays pending here).
constexpr const char* kReadScript = R"lua(
local out, bytes, from, cut = {}, 0, ARGV[3], 0
local most, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
while #out < most do
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], from)
  local e = r and r[1] and r[1][2][1]
  if not e then break end
  local size = #e[1]
  if e[2] then
    for i = 2, #e[2], 2 do size = size + #e[2][i] end
  end
  if #out > 0 and bytes + size > cap then
    cut = 1
    break
  end
  out[#out + 1] = e
  bytes = bytes + size
  if from ~= '>' then from = e[1] end
end
return {out, cut}
)lua";

// Parses [id, [field, value, ...]] into an Entry; false when malformed.
bool parse_entry(const redisReply* r, Applier::Entry* e) {
  if (!redis::reply_is_array(r) || r->elements != 2) return false;
  e->id = std::string(redis::reply_str(r->element[0]));
  const redisReply* fields = r->element[1];
  if (redis::reply_is_nil(fields)) {
    // A pending entry deleted from the stream (XDEL/XTRIM by someone else):
    // nothing to apply; it is acknowledged with the others.
    e->deleted = true;
    return !e->id.empty();
  }
  if (!redis::reply_is_array(fields)) return false;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view k = redis::reply_str(fields->element[i]);
    std::string_view v = redis::reply_str(fields->element[i + 1]);
    if (k == "id") e->batch_id = std::string(v);
    else if (k == "t") e->enqueue_time = std::strtod(std::string(v).c_str(), nullptr);
    else if (k == "d") e->deltas = std::string(v);
  }
  return !e->id.empty();
}

}  // namespace

Applier::Applier(RedisStore* store, RedisStore::ShardCtx* shard, std::string consumer)
    : store_(store), shard_(shard), consumer_(std::move(consumer)) {}

Applier::~Applier() {
  *alive_ = false;
  timer_.reset();
}

void Applier::start() {
  reader_ = shard_->shard->dedicated();
  txn_ = shard_->shard->dedicated();
  timer_ = std::make_unique<UvTimer>(store_->loop(), [this] { on_timer(); });
  retry_later(10);
}

void Applier::stop() {
  stopping_ = true;
  if (timer_) timer_->stop();
}

void Applier::on_timer() {
  if (stopping_) return;
  if (!batch_.empty()) {
    attempt();
  } else if (!group_ready_) {
    ensure_group();
  } else {
    next();
  }
}

void Applier::retry_later(uint32_t ms) {
  if (stopping_ || !timer_) return;
  timer_->start(ms);
}

void Applier::ensure_group() {
  std::string stream = store_->keys().stream();
  auto alive = alive_;
  txn_->command({"XGROUP", "CREATE", stream, redis::kGroup, "0", "MKSTREAM"},
                [this, alive](const Status& s, const redisReply* r) {
                  if (!*alive || stopping_) return;
                  if (!s.ok() || (redis::reply_is_error(r) &&
                                  redis::reply_str(r).substr(0, 9) != "BUSYGROUP")) {
                    if (failures_++ == 0) {
                      log::warn("be {}: cannot create the consumer group: {}", shard_->name,
                                s.ok() ? std::string(redis::reply_str(r)) : s.message());
                    }
                    retry_later(std::min(2000, 100 << std::min(failures_, 4)));
                    return;
                  }
                  failures_ = 0;
                  group_ready_ = true;
                  own_pending_done_ = false;
                  next();
                });
}

void Applier::next() {
  if (stopping_) return;
  std::string stream = store_->keys().stream();
  std::string count = std::to_string(kReadCount);
  double now = wall_now();
  auto alive = alive_;
  uint32_t timeout = static_cast<uint32_t>(store_->config().command_timeout_ms);
  if (now - last_claim_ >= store_->config().claim_idle_ms / 2000.0) {
    last_claim_ = now;
    // Only the ids: the entries are then read as this consumer's pending
    // ones, within max_read_bytes per round.
    std::string idle = std::to_string(store_->config().claim_idle_ms);
    reader_->command({"XAUTOCLAIM", stream, redis::kGroup, consumer_, idle, claim_cursor_, "COUNT", count, "JUSTID"},
                     [this, alive](const Status& s, const redisReply* r) {
                       if (!*alive || stopping_) return;
                       if (!s.ok() || !redis::reply_is_array(r) || r->elements < 2) {
                         failures_++;
                         own_pending_done_ = false;  // it may have claimed entries before failing
                         retry_later(200);
                         return;
                       }
                       claim_cursor_ = std::string(redis::reply_str(r->element[0]));
                       if (claim_cursor_.empty()) claim_cursor_ = "0-0";
                       const redisReply* ids = r->element[1];
                       if (redis::reply_is_array(ids) && ids->elements > 0) {
                         store_->mutable_stats().entries_claimed += ids->elements;
                         log::info("be {}: claimed {} entries left pending by another consumer", shard_->name,
                                   ids->elements);
                         own_pending_done_ = false;
                       }
                       next();
                     });
    return;
  }
  if (own_pending_done_ && idle_) {
    // Nothing new at the last look: wait for one entry (a script cannot block).
    reader_->command(
        {"XREADGROUP", "GROUP", redis::kGroup, consumer_, "COUNT", "1", "BLOCK", std::to_string(kBlockMs), "STREAMS",
         stream, ">"},
        [this, alive](const Status& s, const redisReply* r) {
          if (!*alive || stopping_) return;
          if (!s.ok() || redis::reply_is_error(r)) return read_failed(s, r);
          // [[stream, [entries]]] or nil (BLOCK timed out).
          const redisReply* entries = nullptr;
          if (redis::reply_is_array(r) && r->elements > 0 && redis::reply_is_array(r->element[0]) &&
              r->element[0]->elements == 2) {
            entries = r->element[0]->element[1];
          }
          if (entries && redis::reply_is_array(entries) && entries->elements > 0) idle_ = false;
          read_reply(entries);
        },
        timeout + kBlockMs);
    return;
  }
  // This consumer's pending entries from the start (after a start, a
  // failure, a claim or a cut), else new ones; at most kReadCount entries
  // and max_read_bytes.
  bool own = !own_pending_done_;
  std::string cap = std::to_string(store_->config().max_read_bytes);
  reader_->command(
      {"EVAL", kReadScript, "1", stream, redis::kGroup, consumer_, own ? "0" : ">", count, cap},
      [this, alive, own](const Status& s, const redisReply* r) {
        if (!*alive || stopping_) return;
        if (!s.ok() || redis::reply_is_error(r)) return read_failed(s, r);
        const redisReply* entries = nullptr;
        bool cut = false;
        if (redis::reply_is_array(r) && r->elements == 2) {
          entries = r->element[0];
          cut = redis::reply_int(r->element[1]) == 1;
        }
        bool empty = !redis::reply_is_array(entries) || entries->elements == 0;
        if (own && empty) own_pending_done_ = true;
        if (!own) idle_ = empty;
        if (cut) {
          // The entry past the cap stays pending here: read it next round.
          ++store_->mutable_stats().read_sets_cut;
          own_pending_done_ = false;
        }
        read_reply(entries);
      },
      timeout);
}

void Applier::read_failed(const Status& s, const redisReply* r) {
  if (redis::reply_is_error(r) && redis::reply_str(r).find("NOGROUP") != std::string_view::npos) group_ready_ = false;
  if (failures_++ == 0) {
    log::warn("be {}: reading the stream failed: {}", shard_->name,
              s.ok() ? std::string(redis::reply_str(r)) : s.message());
  }
  own_pending_done_ = false;
  retry_later(std::min(2000, 50 << std::min(failures_, 5)));
}

void Applier::read_reply(const redisReply* entries) {
  batch_.clear();
  uint64_t bytes = 0;
  if (entries && redis::reply_is_array(entries)) {
    for (size_t i = 0; i < entries->elements; ++i) {
      Entry e;
      if (parse_entry(entries->element[i], &e)) {
        bytes += e.batch_id.size() + e.deltas.size();
        batch_.push_back(std::move(e));
      }
    }
  }
  if (batch_.empty()) {
    if (failures_ > 0) {
      log::info("be {}: reading the stream again", shard_->name);
      failures_ = 0;
    }
    next();
    return;
  }
  RedisStoreStats& stats = store_->mutable_stats();
  stats.read_bytes += bytes;
  stats.read_set_max_bytes = std::max(stats.read_set_max_bytes, bytes);
  attempt();
}

// A failed read or EXEC: counted, logged once per run of failures, and
// retried with backoff.
void Applier::transaction_failed(std::string_view what, const Status& s) {
  ++store_->mutable_stats().txn_failures;
  if (failures_++ == 0) log::warn("be {}: {} failed: {}", shard_->name, what, s.message());
  retry_later(std::min(2000, 50 << std::min(failures_, 5)));
}

// One transaction over batch_ (see the header): read, merge, commit, each
// step an ApplyAttempt's; what follows a step is decided here.
void Applier::attempt() {
  if (stopping_) return;
  auto alive = alive_;
  txn_->command({"GET", store_->keys().placement()}, [this, alive](const Status& s, const redisReply* r) {
    if (!*alive || stopping_) return;
    if (!s.ok() || redis::reply_is_error(r)) {
      transaction_failed("reading the placement", s.ok() ? Status::Unavailable(std::string(redis::reply_str(r))) : s);
      return;
    }
    if (!redis::reply_is_nil(r) && redis::reply_str(r) != placement_json_) {
      Result<redis::Placement> p = redis::Placement::parse(redis::reply_str(r));
      if (p.ok()) {
        placement_json_ = std::string(redis::reply_str(r));
        placement_ = std::move(*p);
      } else {
        log::error("be {}: the shard's placement is unreadable: {}", shard_->name, p.status().message());
      }
    }
    const redis::Placement& mine = store_->current_placement();
    attempt_with(placement_json_.empty() || mine.epoch > placement_.epoch ? mine : placement_);
  });
}

void Applier::attempt_with(const redis::Placement& placement) {
  if (placement.move && placement.move->to == shard_->name && placement.move->holds_back()) {
    for (const Entry& e : batch_) {
      if (e.deleted) continue;
      std::vector<redis::Delta> deltas;
      if (!redis::decode_deltas(e.deltas, &deltas).ok()) continue;
      for (const redis::Delta& d : deltas) {
        if (!placement.move->contains(redis::vbucket_of(d.name, placement.vbuckets))) continue;
        // Applying it now could count a batch twice: its first attempt may
        // still wait in the old shard's stream.
        ++store_->mutable_stats().entries_held;
        if (!holding_) {
          log::info("be {}: holding entries of vbuckets {}-{} until shard {} has applied what it took before "
                    "the switch",
                    shard_->name, placement.move->first, placement.move->last, placement.move->from);
          holding_ = true;
        }
        retry_later(100);
        return;
      }
    }
  }
  holding_ = false;
  auto a = std::make_shared<ApplyAttempt>(store_, shard_->name, batch_, placement);
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, a](const Status& s) {
    if (!*alive || stopping_) return;
    if (!s.ok()) {
      transaction_failed("transaction reads", s);
      return;
    }
    // A type this be cannot merge (its plugin is missing here) leaves the
    // whole read set pending for a be that has it; nothing is acknowledged.
    if (const redis::Delta* d = a->merge()) {
      ++store_->mutable_stats().txn_failures;
      if (failures_++ % 12 == 0) {
        log::error("be {}: no loaded plugin serves type \"{}\" (name \"{}\"); its entries stay pending for a be "
                   "that has it",
                   shard_->name, d->type, d->name);
      }
      txn_->command({"UNWATCH"}, [](const Status&, const redisReply*) {});
      retry_later(5000);
      return;
    }
    commit(a);
  });
  a->read(txn_, gather.get());
  gather->arm();
}

void Applier::commit(const std::shared_ptr<ApplyAttempt>& a) {
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, a](const Status& s) {
    if (!*alive || stopping_) return;
    if (!s.ok()) {
      transaction_failed("transaction", s);
      return;
    }
    if (!a->committed()) {
      ++store_->mutable_stats().txn_conflicts;
      retry_later(1 + static_cast<uint32_t>(std::rand() % 10));
      return;
    }
    failures_ = 0;
    a->count_committed();
    batch_.clear();
    next();
  });
  a->commit(txn_, gather.get());
  gather->arm();
}

}  // namespace taba::store
