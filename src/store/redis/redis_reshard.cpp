// The Redis store's re-sharding entry points: RedisStore::reshard (POST
// /reshard: start, resume or cancel a move, taking its lease) and
// describe_placement (GET /reshard, /status). The move itself is mover.h's.
#include <fmt/format.h>

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/mover.h"
#include "store/redis/redis_store.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

constexpr double kServerListedS = 15;  // a heartbeat this recent is a live server (as /servers lists them)

bool parse_range_owner(const redis::Placement& p, const VbucketRange& r, std::string* owner, std::string* why) {
  if (r.first > r.last || r.last >= p.vbuckets) {
    *why = fmt::format("vbuckets {}-{} are outside 0-{}", r.first, r.last, p.vbuckets - 1);
    return false;
  }
  *owner = p.owner_of(r.first);
  for (uint32_t v = r.first; v <= r.last; ++v) {
    if (p.owner_of(v) != *owner) {
      *why = fmt::format("vbuckets {}-{} span shards {} and {}; move one shard's part at a time", r.first, r.last,
                         *owner, p.owner_of(v));
      return false;
    }
  }
  return true;
}

}  // namespace


void RedisStore::reshard(const ReshardRequest& request, PlacementCallback done) {
  auto alive = alive_;
  refresh_placement([this, alive, request, done = std::move(done)](const Status& rs) {
    if (!*alive) return;
    if (!rs.ok()) return done(rs, PlacementStatus{});
    std::string self = self_info_ ? self_info_().id : consumer_;
    if (self.empty()) self = consumer_;
    const redis::Placement& p = placement_;
    if (mover_ && mover_->finished()) mover_.reset();
    auto take_over = [this, alive, self, done](ShardCtx* target, bool cancel) {
      // Take the lease (free, or ours), then drive.
      std::string ms = std::to_string(config_.reshard_lease_ms);
      target->shard->command(
          {"SET", keys_.move_lease(), self, "PX", ms, "NX"},
          [this, alive, self, done, target, cancel](const Status& s, const redisReply* r) {
            if (!*alive) return;
            if (!s.ok()) return done(s, PlacementStatus{});
            auto drive = [this, alive, self, done, target, cancel] {
              if (!*alive) return;
              auto go = [this, alive, self, done] {
                if (!*alive) return;
                if (!mover_ || mover_->finished()) {
                  mover_ = std::make_unique<Mover>(this, self);
                  mover_->start();
                }
                describe_placement(done);
              };
              if (!cancel) return go();
              target->shard->command({"HSET", keys_.move(), "cancel", "1"}, [go](const Status&, const redisReply*) { go(); });
            };
            if (redis::reply_is_nil(r)) {
              // Held: by this process (a second POST) or a live driver.
              target->shard->command({"GET", keys_.move_lease()}, [this, alive, self, done, drive, cancel,
                                                                   target](const Status& g, const redisReply* gr) {
                if (!*alive) return;
                if (!g.ok()) return done(g, PlacementStatus{});
                std::string holder(redis::reply_str(gr));
                if (holder == self) return drive();
                if (cancel) {
                  // The live driver reads the request within a second.
                  target->shard->command({"HSET", keys_.move(), "cancel", "1"},
                                         [this, alive, done](const Status& hs, const redisReply*) {
                                           if (!*alive) return;
                                           if (!hs.ok()) return done(hs, PlacementStatus{});
                                           describe_placement(done);
                                         });
                  return;
                }
                // (The route answers 409 for this message.)
                done(Status::Unavailable(fmt::format("a move is in progress, driven by {} (alive); to take it over, "
                                                     "wait until that driver has been silent for {} ms",
                                                     holder, config_.reshard_lease_ms)),
                     PlacementStatus{});
              });
              return;
            }
            drive();
          });
    };
    if (request.cancel) {
      if (!p.move) return done(Status::Invalid("no move is in progress"), PlacementStatus{});
      return take_over(add_shard(p.move->to), true);
    }
    if (request.to.empty()) return done(Status::Invalid("reshard needs to=SHARD"), PlacementStatus{});
    if (p.move) {
      const redis::Move& m = *p.move;
      if (m.to == request.to && m.first == request.range.first && m.last == request.range.last && m.cancels.empty()) {
        return take_over(add_shard(m.to), false);  // resume
      }
      return done(Status::Unavailable(fmt::format("a move is in progress ({}: vbuckets {}-{} from {} to {}, {}); "
                                                  "wait for it or cancel it first",
                                                  m.id, m.first, m.last, m.from, m.to, m.phase)),
                  PlacementStatus{});
    }
    std::string owner, why;
    if (!parse_range_owner(p, request.range, &owner, &why)) return done(Status::Invalid(why), PlacementStatus{});
    if (owner == request.to) {
      return done(Status::Invalid(fmt::format("vbuckets {}-{} are on {} already", request.range.first,
                                              request.range.last, request.to)),
                  PlacementStatus{});
    }
    begin_move(request, owner, 0, done);
  });
}

// A new move: once its target is reachable through the Sentinels, take the
// lease on it and write the placement with the move in its first phase.
void RedisStore::begin_move(const ReshardRequest& request, const std::string& owner, int tries,
                            PlacementCallback done) {
  auto alive = alive_;
  ShardCtx* target = add_shard(request.to);
  if (!target->shard->ready()) {
    if (tries >= 50) {
      return done(Status::Unavailable(fmt::format(
                      "shard {} has no reachable master (do the Sentinels monitor a master of that name?)", request.to)),
                  PlacementStatus{});
    }
    UvTimer::after(loop_, 100, [this, alive, request, owner, tries, done] {
      if (*alive) begin_move(request, owner, tries + 1, done);
    });
    return;
  }
  if (tries >= 0) {
    // Every live server must know placements: an older fe appends without
    // the fence and would write the range to its old shard after the switch.
    ShardCtx* source = shard_named(owner);
    source->shard->command({"HGETALL", keys_.servers()}, [this, alive, request, owner, done](const Status& s,
                                                                                          const redisReply* r) {
      if (!*alive) return;
      if (!s.ok()) return done(s, PlacementStatus{});
      double now = wall_now();
      std::vector<std::string> old;
      for (size_t i = 0; redis::reply_is_array(r) && i + 1 < r->elements; i += 2) {
        ServerInfo info;
        double seen = 0;
        bool has_epoch = false;
        if (!decode_server(redis::reply_str(r->element[i]), redis::reply_str(r->element[i + 1]), now, &info, &seen,
                           &has_epoch)) {
          continue;
        }
        if (now - seen <= kServerListedS && !has_epoch) old.push_back(info.id);
      }
      if (!old.empty()) {
        return done(Status::Invalid(fmt::format("servers {} run a tabad without re-sharding (no placement epoch in "
                                                "their heartbeat); upgrade every fe, be and ctrl first",
                                                fmt::join(old, ", "))),
                    PlacementStatus{});
      }
      begin_move(request, owner, -1, done);
    });
    return;
  }
  redis::Placement np = placement_;
  np.epoch += 1;
  redis::Move m;
  m.id = fmt::format("m{}-{}", static_cast<uint64_t>(wall_now() * 1000), request.to);
  m.from = owner;
  m.to = request.to;
  m.first = request.range.first;
  m.last = request.range.last;
  m.phase = "bindings";
  m.started = wall_now();
  np.shard_index(m.to);
  np.move = m;
  std::string self = self_info_ ? self_info_().id : consumer_;
  if (self.empty()) self = consumer_;
  target->shard->command(
      {"SET", keys_.move_lease(), self, "PX", std::to_string(config_.reshard_lease_ms), "NX"},
      [this, alive, np, target, self, done](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok()) return done(s, PlacementStatus{});
        if (redis::reply_is_nil(r)) {
          return done(Status::Unavailable("a move is in progress (another driver holds the lease on the target)"),
                      PlacementStatus{});
        }
        target->shard->command({"DEL", keys_.move(), keys_.move_done()}, [](const Status&, const redisReply*) {});
        write_placement(np, np.shards, true, [this, alive, np, self, done](const Status& ws) {
          if (!*alive) return;
          if (!ws.ok()) return done(ws, PlacementStatus{});
          log::info("reshard {}: vbuckets {}-{} from {} to {}: started", np.move->id, np.move->first, np.move->last,
                    np.move->from, np.move->to);
          mover_ = std::make_unique<Mover>(this, self);
          mover_->start();
          describe_placement(done);
        });
      });
}

void RedisStore::describe_placement(PlacementCallback done) {
  auto st = std::make_shared<PlacementStatus>();
  const redis::Placement& p = placement_;
  st->supported = true;
  st->epoch = p.epoch;
  st->vbuckets = p.vbuckets;
  for (const std::string& name : p.shards) {
    PlacementStatus::ShardRanges sr;
    sr.shard = name;
    for (const auto& [a, b] : p.ranges_of(name)) sr.ranges.push_back(VbucketRange{a, b});
    st->shards.push_back(std::move(sr));
  }
  std::sort(st->shards.begin(), st->shards.end(), [](const auto& a, const auto& b) { return a.shard < b.shard; });
  double now = wall_now();
  for (const redis::Ended& e : p.recent) {
    MoveStatus m;
    m.id = e.id;
    m.from = e.from;
    m.to = e.to;
    m.range = VbucketRange{e.first, e.last};
    m.phase = e.outcome;
    m.started = e.started;
    m.elapsed_s = e.ended - e.started;
    m.names_moved = e.names;
    m.bytes_moved = e.bytes;
    st->recent.push_back(std::move(m));
  }
  if (!p.move) return done(Status::Ok(), *st);
  const redis::Move& mv = *p.move;
  st->moving = true;
  MoveStatus& m = st->move;
  m.id = mv.cancels.empty() ? mv.id : mv.cancels;
  m.from = mv.from;
  m.to = mv.to;
  m.range = VbucketRange{mv.first, mv.last};
  m.phase = mv.cancels.empty() ? mv.phase : "cancelling: " + mv.phase;
  m.started = mv.started;
  m.elapsed_s = now - mv.started;
  ShardCtx* target = shard_named(mv.to);
  if (!target || !target->shard->ready()) {
    m.error = fmt::format("shard {} (the target) is not reachable", mv.to);
    return done(Status::Ok(), *st);
  }
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([alive, st, done](const Status& s) {
    if (!*alive) return;
    if (!s.ok() && st->move.error.empty()) st->move.error = s.message();
    done(Status::Ok(), *st);
  });
  target->shard->command({"HGETALL", keys_.move()}, gather->add([st](const redisReply* r) {
    if (!redis::reply_is_array(r)) return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      std::string_view key = redis::reply_str(r->element[i]);
      std::string value(redis::reply_str(r->element[i + 1]));
      if (key == "names_moved") st->move.names_moved = std::strtoull(value.c_str(), nullptr, 10);
      else if (key == "names_left") st->move.names_left = std::strtoull(value.c_str(), nullptr, 10);
      else if (key == "bytes_moved") st->move.bytes_moved = std::strtoull(value.c_str(), nullptr, 10);
      else if (key == "error") st->move.error = value;
    }
  }));
  target->shard->command({"GET", keys_.move_lease()}, gather->add([st](const redisReply* r) {
    st->move.driver = redis::reply_is_nil(r) ? std::string() : std::string(redis::reply_str(r));
    st->move.driver_alive = !redis::reply_is_nil(r);
  }));
  gather->arm();
}

}  // namespace taba::store
