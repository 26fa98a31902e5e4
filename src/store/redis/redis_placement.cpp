// How a process of the Redis store learns the placement (placement.h): it
// reads `P placement` from every shard it knows, adopts the highest epoch,
// connects to shards it did not know (a move's target) and routes by it.
// It re-reads every placement_refresh_ms, at once when a shard fences one of
// its writes, and before a query when its copy is older than two seconds.
// A shard with no placement yet (a new cluster, or one from before
// placements existed) is given this process's: the scripts set it only where
// none exists, so the first writer wins and the configuration never
// overrides what the cluster holds.
#include <fmt/format.h>

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/applier.h"
#include "store/redis/redis_store.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

// KEYS: placement, owned. ARGV: json, fence bytes. Sets both when no
// placement exists; returns 1 when it did.
constexpr const char* kInitScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
)lua";

// KEYS: placement, owned. ARGV: epoch, json, fence bytes ('' = leave them).
// Writes only over a lower epoch; returns 1 when it wrote.
constexpr const char* kWriteScript = R"lua(
local cur = redis.call('GET', KEYS[1])
if cur then
  local e = tonumber(string.match(cur, '"epoch":(%d+)'))
  if e and e >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
)lua";

}  // namespace

RedisStore::ShardCtx* RedisStore::shard_named(std::string_view name) const {
  for (const auto& s : shards_) {
    if (s->name == name) return s.get();
  }
  return nullptr;
}

bool RedisStore::may_hold_data(const ShardCtx* s) const {
  if (s->owns) return true;
  const auto& m = placement_.move;
  return m && m->split() && (m->from == s->name || m->to == s->name);
}

RedisStore::ShardCtx* RedisStore::add_shard(const std::string& name) {
  if (ShardCtx* known = shard_named(name)) return known;
  auto ctx = std::make_unique<ShardCtx>();
  ctx->name = name;
  redis::ConnectionOptions so = connection_options_;
  so.label = name;
  ctx->shard = std::make_unique<redis::Shard>(loop_, sentinels_.get(), name, so, static_cast<int>(config_.pool_size));
  ctx->shard->start();
  ctx->writer = ctx->shard->dedicated();
  if (run_be_) {
    ctx->applier = std::make_unique<Applier>(this, ctx.get(), consumer_);
    ctx->applier->start();
  }
  shards_.push_back(std::move(ctx));
  if (placement_loaded_) log::info("store: shard {} joined (from the cluster's placement)", name);
  return shards_.back().get();
}

void RedisStore::adopt(redis::Placement p) {
  for (const std::string& name : p.shards) add_shard(name);
  placement_ = std::move(p);
  vbucket_shard_.assign(placement_.vbuckets, 0);
  for (auto& s : shards_) s->owns = false;
  for (uint32_t v = 0; v < placement_.vbuckets; ++v) {
    ShardCtx* s = shard_named(placement_.owner_of(v));
    s->owns = true;
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (shards_[i].get() == s) vbucket_shard_[v] = static_cast<uint16_t>(i);
    }
  }
  set_name_limits(limits_);
}

double RedisStore::placement_age_s() const { return wall_now() - placement_read_at_; }

void RedisStore::init_placement(ShardCtx* s) {
  std::string json = placement_.to_json();
  std::string owned = placement_.owned_bytes(s->name);
  s->shard->command({"EVAL", kInitScript, "2", keys_.placement(), keys_.owned(), json, owned},
                    [name = s->name, epoch = placement_.epoch, alive = alive_](const Status& st, const redisReply* r) {
                      if (!*alive || !st.ok() || redis::reply_int(r) != 1) return;
                      log::info("store: shard {} had no placement; wrote epoch {}", name, epoch);
                    });
}

void RedisStore::refresh_placement(std::function<void(const Status&)> done) {
  if (done) refresh_waiters_.push_back(std::move(done));
  if (refreshing_) return;
  refreshing_ = true;
  auto alive = alive_;
  struct Read {
    std::vector<std::pair<ShardCtx*, std::string>> found;  // shard, json ("" = none)
  };
  auto read = std::make_shared<Read>();
  double started = wall_now();
  auto gather = std::make_shared<redis::Gather>([this, alive, read, started](const Status& s) {
    if (!*alive) return;
    refreshing_ = false;
    const redis::Placement* best = nullptr;
    std::vector<redis::Placement> parsed;
    parsed.reserve(read->found.size());
    bool complete = s.ok();
    for (const auto& [shard, json] : read->found) {
      if (json.empty()) continue;
      Result<redis::Placement> p = redis::Placement::parse(json);
      if (!p.ok()) {
        ++stats_.placement_errors;
        log::error("store: shard {} holds an unreadable placement: {}", shard->name, p.status().message());
        continue;
      }
      if (p->vbuckets != placement_.vbuckets) {
        ++stats_.placement_errors;
        log::error("store: shard {} holds a placement over {} vbuckets, but redis.vbuckets is {}; ignored",
                   shard->name, p->vbuckets, placement_.vbuckets);
        continue;
      }
      parsed.push_back(std::move(*p));
    }
    for (const auto& p : parsed) {
      if (!best || p.epoch > best->epoch) best = &p;
    }
    if (best && (best->epoch > placement_.epoch || !placement_loaded_)) {
      if (best->epoch != placement_.epoch) {
        ++stats_.placement_changes;
        if (placement_loaded_) log::info("store: placement epoch {} -> {}", placement_.epoch, best->epoch);
      }
      adopt(*best);
    }
    // Shards without a placement get this process's (only where none exists).
    for (const auto& [shard, json] : read->found) {
      if (json.empty()) init_placement(shard);
    }
    if (complete) {
      placement_loaded_ = true;
      placement_read_at_ = started;
    }
    auto waiters = std::move(refresh_waiters_);
    refresh_waiters_.clear();
    for (auto& w : waiters) w(s);
  });
  for (auto& sp : shards_) {
    ShardCtx* s = sp.get();
    if (!s->shard->ready()) {
      // A shard that owns nothing (a history entry, a target not yet used)
      // does not hold the refresh up.
      if (s->owns) gather->fail(Status::Unavailable(fmt::format("shard {} has no reachable master", s->name)));
      continue;
    }
    s->shard->command({"GET", keys_.placement()}, gather->add(
                                                      [read, s](const redisReply* r) {
                                                        read->found.emplace_back(
                                                            s, redis::reply_is_nil(r) ? std::string()
                                                                                      : std::string(redis::reply_str(r)));
                                                      },
                                                      false, s->name));
  }
  gather->arm();
}

void RedisStore::write_placement(const redis::Placement& p, const std::vector<std::string>& shards, bool fence,
                                 std::function<void(const Status&)> done) {
  auto alive = alive_;
  std::string json = p.to_json();
  std::string epoch = std::to_string(p.epoch);
  std::vector<ShardCtx*> targets;
  for (const std::string& name : shards) targets.push_back(add_shard(name));
  auto waited = std::make_shared<redis::Gather>([this, alive, p, done = std::move(done)](const Status& s) {
    if (!*alive) return;
    if (s.ok() && p.epoch > placement_.epoch) {
      ++stats_.placement_changes;
      adopt(p);
    }
    done(s);
  });
  auto wait_cb = std::make_shared<std::vector<redis::Connection::Callback>>();
  for (size_t i = 0; i < targets.size(); ++i) wait_cb->push_back(waited->add(nullptr));
  auto written = std::make_shared<redis::Gather>([this, alive, targets, wait_cb, waited](const Status& s) {
    if (!*alive) return;
    for (size_t i = 0; i < targets.size(); ++i) {
      auto cb = (*wait_cb)[i];
      if (!s.ok()) {
        cb(s, nullptr);
        continue;
      }
      wait_replicas(targets[i], [cb](const Status& w) { cb(w, nullptr); });
    }
    waited->arm();
  });
  for (ShardCtx* s : targets) {
    std::string owned = fence ? p.owned_bytes(s->name) : std::string();
    s->writer->command({"EVAL", kWriteScript, "2", keys_.placement(), keys_.owned(), epoch, json, owned},
                       written->add(nullptr, false, s->name));
  }
  written->arm();
}

void RedisStore::wait_replicas(ShardCtx* s, std::function<void(const Status&)> done) {
  if (config_.min_replica_acks == 0) return done(Status::Ok());
  s->wait_queue.push_back(std::move(done));
  if (!s->wait_outstanding) issue_wait(s);
}

void RedisStore::placement(PlacementCallback done) {
  auto alive = alive_;
  refresh_placement([this, alive, done = std::move(done)](const Status& s) {
    if (!*alive) return;
    if (!s.ok() && !placement_loaded_) return done(s, PlacementStatus{});
    describe_placement(std::move(done));
  });
}

}  // namespace taba::store
