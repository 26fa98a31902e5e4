// The server registry of the Redis store: every second each server writes
// its line (roles, listen address, rates, latencies) to every shard's servers
// hash, reads everyone's lines back for the cluster's pipeline latency, and
// notes each shard's stream length (the fe's back-pressure). status() reads
// the same registry, with each shard's stream, for the status route.
#include "store/redis/redis_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "core/clock.h"
#include "redis/reply.h"
#include "store/redis/housekeeper.h"
#include "store/redis/mover.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

constexpr double kServerExpiryS = 15;    // a server unseen this long is not listed
constexpr double kServerForgetS = 3600;  // ... and removed from the registry after this

// Heartbeat value: time \t roles \t listen \t events/s \t deltas/s \t p50 \t p99 \t samples
// \t placement epoch (absent from older servers)
std::string encode_server(const ServerInfo& s, double now) {
  std::string roles;
  for (size_t i = 0; i < s.roles.size(); ++i) roles += (i ? "," : "") + s.roles[i];
  return fmt::format("{:.3f}\t{}\t{}\t{:.1f}\t{:.1f}\t{:.6f}\t{:.6f}\t{}\t{}", now, roles, s.listen, s.events_per_s,
                     s.deltas_per_s, s.latency_p50_s, s.latency_p99_s, s.latency_samples, s.placement_epoch);
}

}  // namespace

bool decode_server(std::string_view id, std::string_view value, double now, ServerInfo* out, double* seen_at,
                   bool* has_epoch) {
  std::vector<std::string> f;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t tab = value.find('\t', pos);
    if (tab == std::string_view::npos) tab = value.size();
    f.emplace_back(value.substr(pos, tab - pos));
    pos = tab + 1;
  }
  if (f.size() < 8) return false;
  out->id = std::string(id);
  *seen_at = std::strtod(f[0].c_str(), nullptr);
  out->last_seen_age_s = std::max(0.0, now - *seen_at);
  out->roles.clear();
  size_t start = 0;
  while (start < f[1].size()) {
    size_t comma = f[1].find(',', start);
    if (comma == std::string::npos) comma = f[1].size();
    out->roles.push_back(f[1].substr(start, comma - start));
    start = comma + 1;
  }
  out->listen = f[2];
  out->events_per_s = std::strtod(f[3].c_str(), nullptr);
  out->deltas_per_s = std::strtod(f[4].c_str(), nullptr);
  out->latency_p50_s = std::strtod(f[5].c_str(), nullptr);
  out->latency_p99_s = std::strtod(f[6].c_str(), nullptr);
  out->latency_samples = std::strtoll(f[7].c_str(), nullptr, 10);
  out->placement_epoch = f.size() > 8 ? std::strtoull(f[8].c_str(), nullptr, 10) : 0;
  if (has_epoch) *has_epoch = f.size() > 8;
  return true;
}

void RedisStore::heartbeat() {
  if (closing_) return;
  double now = wall_now();
  if (!placement_loaded_ || placement_age_s() * 1000 >= static_cast<double>(config_.placement_refresh_ms)) {
    refresh_placement(nullptr);
  }
  if (mover_) mover_->tick();
  if (keeper_) keeper_->tick();
  ServerInfo self;
  if (self_info_) self = self_info_();
  if (self.id.empty()) self.id = consumer_;
  // The epoch reported is one this process can act on: it is connected to
  // every shard the placement has it read or write (a move's driver waits
  // for every live server to report an epoch; redis_placement.cpp).
  bool connected = true;
  for (const auto& s : shards_) {
    bool needed = may_hold_data(s.get()) || (placement_.move && placement_.move->to == s->name);
    if (needed && !s->shard->ready()) connected = false;
  }
  if (connected) ready_epoch_ = placement_.epoch;
  self.placement_epoch = ready_epoch_;
  std::string value = encode_server(self, now);
  auto alive = alive_;
  auto best = std::make_shared<std::map<std::string, std::pair<double, ServerInfo>>>();
  auto gather = std::make_shared<redis::Gather>([this, alive, best, now](const Status&) {
    if (!*alive) return;
    double latency = 0;
    for (const auto& [id, seen] : *best) {
      if (now - seen.first > kServerExpiryS) continue;
      if (seen.second.latency_samples > 0) latency = std::max(latency, seen.second.latency_p50_s);
    }
    cluster_latency_s_ = std::min(latency, 30.0);
  });
  for (auto& sp : shards_) {
    ShardCtx* s = sp.get();
    if (!s->shard->ready()) continue;
    s->shard->command({"HSET", keys_.servers(), self.id, value}, gather->add(nullptr, true));
    s->shard->command({"XLEN", keys_.stream()},
                      gather->add([s](const redisReply* r) { s->stream_length = redis::reply_int(r); }, true));
    // The bound of the fe's max_names_per_client pre-check (redis_submit.cpp).
    auto names_max = [s](const redisReply* r) {
      s->names_max = -1;
      if (!redis::reply_is_nil(r) && !redis::reply_is_error(r)) {
        s->names_max = std::strtoll(std::string(redis::reply_str(r)).c_str(), nullptr, 10);
      }
    };
    s->shard->command({"GET", keys_.names_max()}, gather->add(names_max, true));
    s->shard->command({"HGETALL", keys_.servers()}, gather->add(
                                                        [this, s, best, now](const redisReply* r) {
                                                          if (!redis::reply_is_array(r)) return;
                                                          for (size_t i = 0; i + 1 < r->elements; i += 2) {
                                                            ServerInfo info;
                                                            double seen = 0;
                                                            std::string_view id = redis::reply_str(r->element[i]);
                                                            if (!decode_server(id, redis::reply_str(r->element[i + 1]),
                                                                               now, &info, &seen)) {
                                                              continue;
                                                            }
                                                            if (now - seen > kServerForgetS) {
                                                              s->shard->command({"HDEL", keys_.servers(), id},
                                                                                [](const Status&, const redisReply*) {});
                                                              continue;
                                                            }
                                                            auto& slot = (*best)[info.id];
                                                            if (seen > slot.first) slot = {seen, info};
                                                          }
                                                        },
                                                        true));
  }
  gather->arm();
}

void RedisStore::status(std::function<void(const Status&, const ClusterStatus&)> done) {
  auto cs = std::make_shared<ClusterStatus>();
  cs->store = "redis";
  cs->pipeline_latency_s = cluster_latency_s_;
  cs->shards.resize(shards_.size());
  double now = wall_now();
  auto best = std::make_shared<std::map<std::string, std::pair<double, ServerInfo>>>();
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([alive, cs, best, now, done = std::move(done)](const Status&) {
    if (!*alive) return;
    for (auto& [id, seen] : *best) {
      if (now - seen.first <= kServerExpiryS) cs->servers.push_back(seen.second);
    }
    done(Status::Ok(), *cs);
  });
  for (size_t i = 0; i < shards_.size(); ++i) {
    ShardCtx* s = shards_[i].get();
    ShardStatus* out = &cs->shards[i];
    out->name = s->name;
    redis::Address master = s->shard->master();
    out->master = master.port ? master.str() : "";
    out->up = s->shard->ready();
    if (!out->up) {
      out->error = "no reachable master";
      continue;
    }
    // Per-shard failures are reported in the shard's row, not as a failure.
    auto note = [out](const char* what) {
      return [out, what](const Status& st, const redisReply* r) {
        if (!st.ok()) out->error = std::string(what) + ": " + st.message();
        (void)r;
      };
    };
    auto cb_len = gather->add([out](const redisReply* r) { out->stream_length = redis::reply_int(r); }, true);
    s->shard->command({"XLEN", keys_.stream()}, [cb_len, note](const Status& st, const redisReply* r) {
      note("XLEN")(st, r);
      cb_len(Status::Ok(), st.ok() ? r : nullptr);
    });
    auto cb_pending = gather->add(
        [out](const redisReply* r) {
          if (redis::reply_is_array(r) && r->elements >= 1) out->pending = redis::reply_int(r->element[0]);
        },
        true);
    s->shard->command({"XPENDING", keys_.stream(), redis::kGroup}, [cb_pending, note](const Status& st, const redisReply* r) {
      note("XPENDING")(st, r);
      cb_pending(Status::Ok(), st.ok() ? r : nullptr);
    });
    auto cb_oldest = gather->add(
        [out, now](const redisReply* r) {
          if (!redis::reply_is_array(r) || r->elements == 0 || !redis::reply_is_array(r->element[0])) return;
          auto id = parse_stream_id(redis::reply_str(r->element[0]->element[0]));
          out->oldest_pending_age_s = std::max(0.0, now - static_cast<double>(id.first) / 1000.0);
        },
        true);
    s->shard->command({"XRANGE", keys_.stream(), "-", "+", "COUNT", "1"},
                      [cb_oldest, note](const Status& st, const redisReply* r) {
                        note("XRANGE")(st, r);
                        cb_oldest(Status::Ok(), st.ok() ? r : nullptr);
                      });
    auto cb_servers = gather->add(
        [best, now](const redisReply* r) {
          if (!redis::reply_is_array(r)) return;
          for (size_t k = 0; k + 1 < r->elements; k += 2) {
            ServerInfo info;
            double seen = 0;
            if (!decode_server(redis::reply_str(r->element[k]), redis::reply_str(r->element[k + 1]), now, &info, &seen)) {
              continue;
            }
            auto& slot = (*best)[info.id];
            if (seen > slot.first) slot = {seen, info};
          }
        },
        true);
    s->shard->command({"HGETALL", keys_.servers()}, [cb_servers](const Status& st, const redisReply* r) {
      cb_servers(Status::Ok(), st.ok() ? r : nullptr);
    });
  }
  gather->arm();
}

}  // namespace taba::store
