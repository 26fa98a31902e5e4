// A re-shard move, driven step by step (mover.h): its lifecycle, lease and
// every phase but "states" (mover_states.cpp).
#include "store/redis/mover.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <unordered_map>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

constexpr double kBarrierTimeoutS = 10;
constexpr double kServerLiveS = 3;

// KEYS: owned, bindlog, types. ARGV: offset, the fence bytes ('0' x range).
// Fences the range and returns the names bound while it moved out, with
// their types (name, type, ...).
constexpr const char* kFenceScript = R"lua(
redis.call('SETRANGE', KEYS[1], tonumber(ARGV[1]), ARGV[2])
local names = redis.call('SMEMBERS', KEYS[2])
local out = {}
for _, n in ipairs(names) do
  local t = redis.call('HGET', KEYS[3], n)
  if t then
    out[#out + 1] = n
    out[#out + 1] = t
  end
end
return out
)lua";


// KEYS: lease. ARGV: driver, ms. Renews the lease when this driver holds it
// (or nobody does); 0 when another driver holds it.
constexpr const char* kLeaseScript = R"lua(
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
)lua";


}  // namespace
Mover::Mover(RedisStore* store, std::string driver) : store_(store), driver_(std::move(driver)) {}

Mover::~Mover() {
  *alive_ = false;
  timer_.reset();
}

void Mover::start() {
  timer_ = std::make_unique<UvTimer>(store_->loop(), [this] { step(); });
  const redis::Placement& p = store_->current_placement();
  if (!p.move) return schedule(0);
  // A resumed move goes on counting from what its last driver published.
  auto alive = alive_;
  store_->add_shard(p.move->to)->shard->command(
      {"HGETALL", store_->keys().move()}, [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        for (size_t i = 0; s.ok() && redis::reply_is_array(r) && i + 1 < r->elements; i += 2) {
          std::string_view key = redis::reply_str(r->element[i]);
          uint64_t v = std::strtoull(std::string(redis::reply_str(r->element[i + 1])).c_str(), nullptr, 10);
          if (key == "names_moved") names_moved_ = v;
          else if (key == "bytes_moved") bytes_moved_ = v;
          else if (key == "names_total") names_total_ = v;
        }
        schedule(0);
      });
}

void Mover::schedule(uint32_t ms) {
  if (finished_ || !timer_) return;
  timer_->start(ms);
}

void Mover::failed(const std::string& what, const Status& s) {
  error_ = fmt::format("{}: {}", what, s.message());
  ++errors_;
  if (failures_++ % 10 == 0) log::warn("reshard {}: {} (retrying)", move_.id, error_);
  schedule(static_cast<uint32_t>(std::min(2000, 100 << std::min(failures_, 4))));
}

void Mover::tick() {
  if (finished_ || !to_) return;
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  std::string ms = std::to_string(store_->config().reshard_lease_ms);
  to_->shard->command({"EVAL", kLeaseScript, "1", k.move_lease(), driver_, ms},
                      [this, alive](const Status& s, const redisReply* r) {
                        if (!*alive || !s.ok() || redis::reply_is_error(r)) return;
                        if (redis::reply_int(r) == 0 && !lease_lost_) {
                          lease_lost_ = true;
                          log::error("reshard {}: another driver holds the lease; this one stops", move_.id);
                        }
                      });
  to_->shard->command({"HGET", k.move(), "cancel"}, [this, alive](const Status& s, const redisReply* r) {
    if (!*alive || !s.ok()) return;
    if (redis::reply_str(r) == "1" && !cancel_) {
      cancel_ = true;
      log::info("reshard {}: cancel requested", move_.id);
    }
  });
  std::string left = std::to_string(names_total_ > names_moved_ ? names_total_ - names_moved_ : 0);
  to_->shard->command({"HSET", k.move(), "driver", driver_, "names_moved", std::to_string(names_moved_), "names_left",
                       left, "names_total", std::to_string(names_total_), "bytes_moved", std::to_string(bytes_moved_),
                       "error", error_},
                      [](const Status&, const redisReply*) {});
}

void Mover::metrics(std::vector<Metric>* out) const {
  out->push_back(Metric{"taba_reshard_names_moved", "gauge", "Names the move this process drives has moved so far.",
                        static_cast<double>(names_moved_), {{"move", move_.id}}});
  out->push_back(Metric{"taba_reshard_bytes_moved", "gauge",
                        "Stored-state bytes the move this process drives has copied so far.",
                        static_cast<double>(bytes_moved_), {{"move", move_.id}}});
  out->push_back(Metric{"taba_reshard_errors_total", "counter",
                        "Failed steps of the move this process drives (each retried).", static_cast<double>(errors_),
                        {{"move", move_.id}}});
}

redis::Placement Mover::next() const {
  redis::Placement p = store_->current_placement();
  p.epoch += 1;
  return p;
}

std::vector<std::string> Mover::all_shards(const redis::Placement& p) const {
  std::vector<std::string> out;
  for (const std::string& s : p.shards) {
    RedisStore::ShardCtx* ctx = store_->shard_named(s);
    // A shard that owns nothing and is down (one that was emptied) is skipped.
    if (ctx && !ctx->shard->ready() && !ctx->owns && s != move_.from && s != move_.to) continue;
    out.push_back(s);
  }
  return out;
}

void Mover::write(const redis::Placement& p, std::function<void()> then) {
  if (lease_lost_) {
    finished_ = true;
    return;
  }
  auto alive = alive_;
  store_->write_placement(p, all_shards(p), true, [this, alive, then = std::move(then)](const Status& s) {
    if (!*alive) return;
    if (!s.ok()) return failed("writing the placement", s);
    failures_ = 0;
    error_.clear();
    then();
  });
}

void Mover::step() {
  if (finished_ || lease_lost_) {
    finished_ = true;
    return;
  }
  const redis::Placement& p = store_->current_placement();
  if (!p.move || (!move_.id.empty() && p.move->id != move_.id && p.move->cancels != move_.id)) {
    // Ended elsewhere (another driver after this one lost its lease).
    finished_ = true;
    return;
  }
  move_ = *p.move;
  from_ = store_->add_shard(move_.from);
  to_ = store_->add_shard(move_.to);
  if (!from_txn_ || !to_txn_) {
    from_txn_ = from_->mover_connection();
    to_txn_ = to_->mover_connection();
  }
  if (move_.phase == "bindings") return bindings();
  if (move_.phase == "switching") return switching();
  if (move_.phase == "draining") return draining();
  if (move_.phase == "states") return states();
  if (move_.phase == "finishing") return finishing();
  log::error("reshard {}: unknown phase \"{}\"; stopping", move_.id, move_.phase);
  finished_ = true;
}

// --- bindings -------------------------------------------------------------

void Mover::bindings() {
  if (cancel_ && move_.cancels.empty()) return rollback();
  if (cursor_ == "0") names_total_ = 0;  // a scan (re)starts
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  from_->shard->command(
      {"HSCAN", k.types(), cursor_, "COUNT", kScanCount}, [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok() || !redis::reply_is_array(r) || r->elements != 2) {
          return failed("scanning the source's bindings", s.ok() ? Status::Unavailable(std::string(redis::reply_str(r))) : s);
        }
        std::string next_cursor(redis::reply_str(r->element[0]));
        const redisReply* items = r->element[1];
        std::vector<std::string> hset{"HSET", store_->keys().types()};
        std::vector<std::string> argv;
        for (size_t i = 0; i + 1 < items->elements; i += 2) {
          std::string_view name = redis::reply_str(items->element[i]);
          if (!move_.contains(store_->vbucket(name))) continue;
          ++names_total_;
          hset.emplace_back(name);
          hset.emplace_back(redis::reply_str(items->element[i + 1]));
        }
        auto advance = [this, alive, next_cursor] {
          if (!*alive) return;
          cursor_ = next_cursor;
          if (cursor_ != "0") return schedule(0);
          // Every binding copied: switch.
          redis::Placement p = next();
          p.move->phase = "switching";
          write(p, [this] {
            log::info("reshard {}: bindings copied ({} names); switching", move_.id, names_total_);
            schedule(0);
          });
        };
        if (hset.size() == 2) return advance();
        // HSET, not HSETNX: the source's binding is the truth (bindings
        // are fenced: the target takes none of the range before the switch).
        to_->shard->command(views(hset), [this, alive, advance](const Status& st, const redisReply* rr) {
          if (!*alive) return;
          if (!st.ok() || redis::reply_is_error(rr)) {
            return failed("copying bindings", st.ok() ? Status::Unavailable(std::string(redis::reply_str(rr))) : st);
          }
          advance();
        });
      });
}

// Cancelled before the switch: the target drops the copied bindings, the
// source owns the range as before.
void Mover::rollback() {
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  to_->shard->command(
      {"HSCAN", k.types(), cursor_, "COUNT", kScanCount}, [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok() || !redis::reply_is_array(r) || r->elements != 2) {
          return failed("scanning the target's bindings", s.ok() ? Status::Unavailable("bad HSCAN reply") : s);
        }
        std::string next_cursor(redis::reply_str(r->element[0]));
        const redisReply* items = r->element[1];
        std::vector<std::string> hdel{"HDEL", store_->keys().types()};
        for (size_t i = 0; i + 1 < items->elements; i += 2) {
          std::string_view name = redis::reply_str(items->element[i]);
          if (move_.contains(store_->vbucket(name))) hdel.emplace_back(name);
        }
        auto advance = [this, alive, next_cursor] {
          if (!*alive) return;
          cursor_ = next_cursor;
          if (cursor_ != "0") return schedule(0);
          redis::Placement p = next();
          p.move.reset();
          p.recent.insert(p.recent.begin(), redis::Ended{move_.id, move_.from, move_.to, move_.first, move_.last,
                                                         "cancelled", move_.started, wall_now(), 0, 0});
          p.prune(wall_now(), static_cast<double>(store_->config().dedup_ttl_s));
          write(p, [this] { end("cancelled"); });
        };
        if (hdel.size() == 2) return advance();
        to_->shard->command(views(hdel), [this, alive, advance](const Status& st, const redisReply*) {
          if (!*alive) return;
          if (!st.ok()) return failed("dropping copied bindings", st);
          advance();
        });
      });
}

// --- switching ------------------------------------------------------------

void Mover::switching() {
  // Every live server connects to the target (named since "bindings")
  // before it takes writes: a post routed to it must not find it unknown.
  barrier(store_->current_placement().epoch, wall_now(), [this] { fence(); });
}

void Mover::fence() {
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  std::string offset = std::to_string(move_.first);
  std::string zeros(move_.last - move_.first + 1, '0');
  from_txn_->command(
      {"EVAL", kFenceScript, "3", k.owned(), k.bindlog(), k.types(), offset, zeros},
      [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok() || !redis::reply_is_array(r)) {
          return failed("fencing the source", s.ok() ? Status::Unavailable(std::string(redis::reply_str(r))) : s);
        }
        std::vector<std::string> hset{"HSET", store_->keys().types()};
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
          std::string_view name = redis::reply_str(r->element[i]);
          if (!move_.contains(store_->vbucket(name))) continue;
          hset.emplace_back(name);
          hset.emplace_back(redis::reply_str(r->element[i + 1]));
        }
        auto give = [this, alive] {
          if (!*alive) return;
          redis::Placement p = next();
          uint16_t to = p.shard_index(move_.to);
          for (uint32_t v = move_.first; v <= move_.last; ++v) p.owner[v] = to;
          p.move->phase = "draining";
          p.move->switched_at = wall_now();
          write(p, [this, alive] {
            if (!*alive) return;
            log::info("reshard {}: switched: {} takes vbuckets {}-{}", move_.id, move_.to, move_.first, move_.last);
            from_->shard->command({"DEL", store_->keys().bindlog()}, [](const Status&, const redisReply*) {});
            schedule(0);
          });
        };
        // The fence is durable before anything relies on it.
        store_->wait_replicas(from_, [this, alive, hset, give](const Status& w) {
          if (!*alive) return;
          if (!w.ok()) return failed("waiting for the source's replicas", w);
          if (hset.size() == 2) return give();
          to_->shard->command(views(hset), [this, alive, give](const Status& st, const redisReply* rr) {
            if (!*alive) return;
            if (!st.ok() || redis::reply_is_error(rr)) {
              return failed("copying late bindings", st.ok() ? Status::Unavailable(std::string(redis::reply_str(rr))) : st);
            }
            give();
          });
        });
      });
}

// --- draining -------------------------------------------------------------

// Waits until every server heartbeating in the last kServerLiveS reports
// (as connected to every shard it names) a placement of epoch `want` or
// later, for kBarrierTimeoutS at most (a server paused past that re-reads
// the placement before its next query, and its writes are fenced).
void Mover::barrier(uint64_t want, double since, std::function<void()> then) {
  auto alive = alive_;
  from_->shard->command({"HGETALL", store_->keys().servers()}, [this, alive, want, since, then](const Status& s,
                                                                                             const redisReply* r) {
    if (!*alive || finished_) return;
    if (!s.ok() || !redis::reply_is_array(r)) return failed("reading the server registry", s);
    double now = wall_now();
    std::vector<std::string> behind;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      ServerInfo info;
      double seen = 0;
      if (!decode_server(redis::reply_str(r->element[i]), redis::reply_str(r->element[i + 1]), now, &info, &seen)) {
        continue;
      }
      if (now - seen <= kServerLiveS && info.placement_epoch < want) behind.push_back(info.id);
    }
    if (!behind.empty() && now - since < kBarrierTimeoutS) {
      UvTimer::after(store_->loop(), 100, [this, alive, want, since, then] {
        if (*alive && !finished_) barrier(want, since, then);
      });
      return;
    }
    if (!behind.empty()) {
      log::warn("reshard {}: servers {} still route by a placement older than epoch {} after {:.0f} s; going on "
                "(their writes are fenced, their queries re-read a placement {:.0f} s old)",
                move_.id, fmt::join(behind, ", "), want, kBarrierTimeoutS, RedisStore::kQueryFreshnessS);
    }
    then();
  });
}

void Mover::draining() {
  auto alive = alive_;
  // First every live server must route by a placement from after the
  // switch: queries of one that does not would read only the source.
  barrier(store_->current_placement().epoch, wall_now(), [this, alive] {
    // Then the source's stream must hold nothing from before the switch.
    from_->shard->command({"XINFO", "STREAM", store_->keys().stream()},
                          [this, alive](const Status& st, const redisReply* rr) {
                            if (!*alive) return;
                            std::string last = "0-0";
                            if (st.ok() && redis::reply_is_array(rr)) {
                              for (size_t i = 0; i + 1 < rr->elements; i += 2) {
                                if (redis::reply_str(rr->element[i]) == "last-generated-id") {
                                  last = std::string(redis::reply_str(rr->element[i + 1]));
                                }
                              }
                            } else if (!st.ok()) {
                              return failed("reading the source's stream", st);
                            }
                            drain_wait(last);
                          });
  });
}

void Mover::drain_wait(std::string last_id) {
  auto alive = alive_;
  from_->shard->command(
      {"XRANGE", store_->keys().stream(), "-", last_id, "COUNT", "1"},
      [this, alive, last_id](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok()) return failed("waiting for the source's stream", s);
        if (redis::reply_is_array(r) && r->elements > 0) {
          UvTimer::after(store_->loop(), 100, [this, alive, last_id] {
            if (*alive && !finished_) drain_wait(last_id);
          });
          return;
        }
        redis::Placement p = next();
        p.move->phase = "states";
        p.move->drained_at = wall_now();
        // The placement write WAITs on the source after the applies it just
        // saw, so a failover cannot bring them back as pending.
        write(p, [this] {
          log::info("reshard {}: drained; moving states", move_.id);
          cursor_ = "0";
          found_in_pass_ = 0;
          schedule(0);
        });
      });
}

// --- cancel after the switch: a reverse move --------------------------------

void Mover::reverse() {
  redis::Placement p = next();
  redis::Move back;
  back.id = move_.id + "-undo";
  back.from = move_.to;
  back.to = move_.from;
  back.first = move_.first;
  back.last = move_.last;
  back.phase = "bindings";
  back.started = wall_now();
  back.cancels = move_.id;
  // The source owned the range until it drained; the reverse makes it the
  // owner again (its own markers count there anyway).
  p.history.push_back(redis::Owned{move_.first, move_.last, move_.from, move_.drained_at});
  p.move = back;
  auto alive = alive_;
  std::string old_target = move_.to;
  write(p, [this, alive, back] {
    if (!*alive) return;
    log::info("reshard {}: cancelled after the switch; moving vbuckets {}-{} back to {} as {}", move_.id, back.first,
              back.last, back.to, back.id);
    const redis::Keys& k = store_->keys();
    // The lease and the progress live on the move's target: now the old source.
    to_->shard->command({"DEL", k.move_done(), k.move(), k.move_lease()}, [](const Status&, const redisReply*) {});
    RedisStore::ShardCtx* new_to = store_->add_shard(back.to);
    new_to->shard->command({"SET", k.move_lease(), driver_, "PX", std::to_string(store_->config().reshard_lease_ms)},
                           [](const Status&, const redisReply*) {});
    new_to->shard->command({"DEL", k.move()}, [](const Status&, const redisReply*) {});
    cancel_ = false;
    names_moved_ = 0;
    bytes_moved_ = 0;
    names_total_ = 0;
    cursor_ = "0";
    found_in_pass_ = 0;
    pass_end_ = false;
    pending_.clear();
    pending_index_ = 0;
    move_ = back;
    from_txn_ = nullptr;
    to_txn_ = nullptr;
    schedule(0);
  });
}

// --- finishing ------------------------------------------------------------

void Mover::finishing() {
  redis::Placement p = next();
  double now = wall_now();
  p.history.push_back(redis::Owned{move_.first, move_.last, move_.from, move_.drained_at});
  std::string outcome = move_.cancels.empty() ? "done" : "cancelled";
  std::string id = move_.cancels.empty() ? move_.id : move_.cancels;
  // A reverse move is reported as the move it undid: its direction, "cancelled".
  bool undo = !move_.cancels.empty();
  p.recent.insert(p.recent.begin(),
                  redis::Ended{id, undo ? move_.to : move_.from, undo ? move_.from : move_.to, move_.first, move_.last,
                               outcome, move_.started, now, names_moved_, bytes_moved_});
  p.move.reset();
  p.prune(now, static_cast<double>(store_->config().dedup_ttl_s));
  write(p, [this, outcome] { end(outcome); });
}

void Mover::end(const std::string& outcome) {
  const redis::Keys& k = store_->keys();
  to_->shard->command({"DEL", k.move_done(), k.move(), k.move_lease()}, [](const Status&, const redisReply*) {});
  from_->shard->command({"DEL", k.bindlog()}, [](const Status&, const redisReply*) {});
  log::info("reshard {}: {} ({} names, {} bytes moved, {:.1f} s)", move_.id, outcome, names_moved_, bytes_moved_,
            wall_now() - move_.started);
  finished_ = true;
}

}  // namespace taba::store
