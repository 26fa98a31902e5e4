// The keeper lease and what its holder does. See housekeeper.h.
#include "store/redis/housekeeper.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

// Takes or renews the keeper lease and says whether the periodic GC is
// due. KEYS: keeper, gclast. ARGV: this be's id, the lease (ms), the GC
// interval (s; 0: none due now). Returns {0, holder} when another be holds
// the lease; else {1, me}, or {2, me} when the GC is due (gclast is then
// set to now, Redis's clock). Without gclast (a new cluster) or with one in
// the future (a clock set back) the first GC is one interval from now.
constexpr const char* kLeaseScript = R"lua(
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return {0, h} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local every = tonumber(ARGV[3])
if every <= 0 then return {1, ARGV[1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local last = tonumber(redis.call('GET', KEYS[2]) or '')
if last and last <= now and now - last < every then return {1, ARGV[1]} end
redis.call('SET', KEYS[2], string.format('%.3f', now))
if not last or last > now then return {1, ARGV[1]} end
return {2, ARGV[1]}
)lua";

// Deletes consumer ARGV[2] of group ARGV[1] of stream KEYS[1] if it has
// nothing pending (checked here, atomically: a consumer that read entries
// since it was listed keeps them). Returns 1 when deleted, 0 when not.
constexpr const char* kDropConsumerScript = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// Drops the tombstones (KEYS[1], name -> stream id) older than the oldest
// entry of the stream KEYS[2], all of them when it is empty: no entry they
// could make the be skip is left. Returns how many were dropped.
constexpr const char* kTombSweepScript = R"lua(
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
local fm, fs
if first then
  fm, fs = string.match(first[1], '^(%d+)-(%d+)$')
  fm, fs = tonumber(fm), tonumber(fs)
end
local all = redis.call('HGETALL', KEYS[1])
local gone, n = {}, 0
for i = 1, #all, 2 do
  local m, s = string.match(all[i + 1], '^(%d+)-(%d+)$')
  m, s = tonumber(m), tonumber(s)
  if not first or not m or m < fm or (m == fm and s < fs) then
    gone[#gone + 1] = all[i]
    if #gone == 500 then
      n = n + redis.call('HDEL', KEYS[1], unpack(gone))
      gone = {}
    end
  end
end
if #gone > 0 then n = n + redis.call('HDEL', KEYS[1], unpack(gone)) end
return n
)lua";

// Deletes the lease KEYS[1] if ARGV[1] holds it.
constexpr const char* kReleaseScript = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

}  // namespace

Housekeeper::Housekeeper(RedisStore* store, std::string consumer) : store_(store), consumer_(std::move(consumer)) {}

Housekeeper::~Housekeeper() { *alive_ = false; }

// The first of the placement's shards by name: every process of the
// cluster agrees on it (while their placements agree on the shard list).
RedisStore::ShardCtx* Housekeeper::keeper_shard() const {
  const auto& names = store_->current_placement().shards;
  if (names.empty()) return nullptr;
  return store_->shard_named(*std::min_element(names.begin(), names.end()));
}

void Housekeeper::tick() {
  if (asking_) return;
  RedisStore::ShardCtx* shard = keeper_shard();
  if (!shard || !shard->shard->ready()) {
    holder_ = false;
    return;
  }
  asking_ = true;
  const redis::Keys& k = store_->keys();
  auto alive = alive_;
  std::string lease = std::to_string(kLeaseMs);
  std::string every = std::to_string(gc_running_ ? 0 : gc_interval_s_);
  shard->shard->command(
      {"EVAL", kLeaseScript, "2", k.keeper(), k.gc_last(), consumer_, lease, every},
      [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        asking_ = false;
        if (!s.ok() || !redis::reply_is_array(r) || r->elements != 2) {
          holder_ = false;
          return;
        }
        long long state = redis::reply_int(r->element[0]);
        std::string_view holder = redis::reply_str(r->element[1]);
        bool was = holder_;
        holder_ = state != 0;
        if (holder_ && !was) log::info("be: holding the keeper lease (periodic GC, stream consumers, tombstones)");
        if (!holder_ && was) log::info("be: the keeper lease passed to {}", holder);
        if (!holder_) return;
        if (state == 2) run_gc();
        double sweep_every = std::clamp(static_cast<double>(store_->config().idle_consumer_ms) / 2000.0, 1.0, 10.0);
        double now = wall_now();
        if (now - last_sweep_ >= sweep_every) {
          last_sweep_ = now;
          sweep();
        }
      });
}

void Housekeeper::release(redis::Gather* gather) {
  RedisStore::ShardCtx* shard = keeper_shard();
  if (!holder_ || !shard || !shard->shard->ready()) return;
  holder_ = false;
  shard->shard->command({"EVAL", kReleaseScript, "1", store_->keys().keeper(), consumer_}, gather->add(nullptr, true));
}

void Housekeeper::run_gc() {
  gc_running_ = true;
  ++gc_runs_;
  auto alive = alive_;
  store_->gc([this, alive](const Status& s, const Report& report) {
    if (!*alive) return;
    gc_running_ = false;
    if (!s.ok()) {
      ++gc_failures_;
      log::warn("gc: {}", s.message());
      return;
    }
    std::string counts;
    for (const auto& [key, value] : report.counts) counts += fmt::format(" {}={}", key, value);
    log::info("gc:{}", counts);
    // Pruned states and removed names lower the counts P cnmax bounds.
    for (auto& sp : store_->shards()) {
      if (sp->shard->ready()) recount_names_max(sp.get());
    }
  });
}

void Housekeeper::sweep() {
  for (auto& sp : store_->shards()) {
    RedisStore::ShardCtx* shard = sp.get();
    if (!shard->shard->ready()) continue;
    sweep_shard(shard);
  }
}

void Housekeeper::sweep_shard(RedisStore::ShardCtx* shard) {
  const redis::Keys& k = store_->keys();
  auto alive = alive_;
  std::string stream = k.stream();
  redis::Shard* conn = shard->shard.get();
  // Consumers idle past idle_consumer_ms with nothing pending.
  conn->command({"XINFO", "CONSUMERS", stream, redis::kGroup}, [this, alive, conn, stream](const Status& s,
                                                                                            const redisReply* r) {
    if (!*alive || !s.ok() || !redis::reply_is_array(r)) return;  // no stream or group yet: nothing to do
    auto limit = static_cast<long long>(store_->config().idle_consumer_ms);
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* c = r->element[i];
      if (!redis::reply_is_array(c)) continue;
      std::string name;
      long long pending = -1, idle = -1;
      for (size_t f = 0; f + 1 < c->elements; f += 2) {
        std::string_view key = redis::reply_str(c->element[f]);
        if (key == "name") name = std::string(redis::reply_str(c->element[f + 1]));
        else if (key == "pending") pending = redis::reply_int(c->element[f + 1]);
        else if (key == "idle") idle = redis::reply_int(c->element[f + 1]);
      }
      if (name.empty() || name == consumer_ || pending != 0 || idle <= limit) continue;
      conn->command({"EVAL", kDropConsumerScript, "1", stream, redis::kGroup, name},
                    [this, alive, name, idle](const Status& st, const redisReply* rr) {
                      if (!*alive || !st.ok() || redis::reply_int(rr) != 1) return;
                      ++consumers_deleted_;
                      log::info("be: deleted the stream consumer {} (idle {} s, nothing pending)", name, idle / 1000);
                    });
    }
  });
  conn->command({"EVAL", kTombSweepScript, "2", k.tombs(), stream}, [this, alive](const Status& s, const redisReply* r) {
    if (!*alive || !s.ok()) return;
    tombstones_dropped_ += static_cast<uint64_t>(std::max(0LL, redis::reply_int(r)));
  });
  conn->command({"EXISTS", k.names_max()}, [this, alive, shard](const Status& s, const redisReply* r) {
    if (!*alive || !s.ok() || redis::reply_int(r) != 0) return;
    recount_names_max(shard);
  });
}

void Housekeeper::recount_names_max(RedisStore::ShardCtx* shard) {
  const redis::Keys& k = store_->keys();
  shard->shard->command({"EVAL", redis::kRecountNamesMaxScript, "2", k.names_max(), k.clients(), k.client_names("")},
                        [](const Status&, const redisReply*) {});
}

void Housekeeper::metrics(std::vector<Metric>* out) const {
  auto add = [out](const char* name, const char* help, uint64_t v) {
    out->push_back(Metric{name, "counter", help, static_cast<double>(v), {}});
  };
  out->push_back(Metric{"taba_redis_keeper", "gauge",
                        "be: 1 while this be holds the keeper lease (periodic GC, stream consumers, tombstones).",
                        holder_ ? 1.0 : 0.0, {}});
  add("taba_redis_gc_runs_total", "be: periodic GCs this be ran as the keeper (one per store.gc_interval_s in the "
      "cluster).", gc_runs_);
  add("taba_redis_gc_failures_total", "be: periodic GCs that failed (a re-shard in progress, a shard unreachable).",
      gc_failures_);
  add("taba_redis_consumers_deleted_total",
      "be: stream consumers deleted as the keeper (idle past redis.idle_consumer_ms, nothing pending).",
      consumers_deleted_);
  add("taba_redis_tombstones_dropped_total",
      "be: /delete tombstones dropped as the keeper (no entry older than them left in the stream).",
      tombstones_dropped_);
}

}  // namespace taba::store
