// ingest.max_names_per_client in Redis mode, checked by the fe before it
// binds or appends anything of a body (redis_submit.cpp).
#include "store/redis/redis_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <memory>

#include "redis/reply.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

// Counts, for ingest.max_names_per_client, what each client of a body holds
// on this shard and how many of the body's names for it (those that live
// here) it does not hold yet. KEYS: P cn:<client>, one per client. ARGV:
// per client, the number of its names then the names. Returns per client
// {names held here, new names here}.
constexpr const char* kClientNamesScript = R"lua(
local out, a = {}, 1
for i = 1, #KEYS do
  local k = tonumber(ARGV[a])
  a = a + 1
  local fresh = 0
  for j = 1, k do
    if redis.call('SISMEMBER', KEYS[i], ARGV[a]) == 0 then fresh = fresh + 1 end
    a = a + 1
  end
  out[#out + 1] = redis.call('SCARD', KEYS[i])
  out[#out + 1] = fresh
end
return out
)lua";

}  // namespace

// ingest.max_names_per_client, as the embedded store words it: a body that
// would give a client more names than the limit is refused whole (422)
// before anything is bound or appended. The names a client holds are its
// P cn:<client> sets on every shard, which the be fills as it applies, so
// (as on the embedded store) bodies not yet applied do not count yet.
// Counting them costs a script per shard, so a body is counted only when
// P cnmax (per shard, an upper bound of any client's names there, read
// with the heartbeat) says some client of it could pass the limit.
void RedisStore::check_client_names(const redis::ClientNames& names, std::function<void(const Status&)> then) {
  const uint64_t limit = limits_.max_names_per_client;
  const auto& clients = names.list();
  if (limit == 0 || clients.empty()) return then(Status::Ok());
  uint64_t bound = 0;
  bool known = true;
  std::vector<ShardCtx*> shards;
  for (auto& sp : shards_) {
    if (!may_hold_data(sp.get())) continue;
    shards.push_back(sp.get());
    if (sp->names_max < 0) known = false;
    bound += static_cast<uint64_t>(std::max<int64_t>(0, sp->names_max));
  }
  // The clients that could pass the limit with this body.
  std::vector<size_t> checked;
  for (size_t c = 0; c < clients.size(); ++c) {
    if (!known || bound + clients[c].second.size() > limit) checked.push_back(c);
  }
  if (checked.empty()) return then(Status::Ok());
  ++stats_.client_limit_checks;
  struct Count {
    uint64_t held = 0;
    uint64_t fresh = 0;
  };
  auto counts = std::make_shared<std::vector<Count>>(checked.size());
  auto alive = alive_;
  std::vector<std::string> checked_clients;
  for (size_t c : checked) checked_clients.push_back(clients[c].first);
  auto gather = std::make_shared<redis::Gather>(
      [this, alive, counts, checked_clients, limit, then = std::move(then)](const Status& s) {
        if (!*alive) return;
        if (!s.ok()) return then(Status::Unavailable(s.message()));
        for (size_t i = 0; i < checked_clients.size(); ++i) {
          const Count& c = (*counts)[i];
          if (c.held + c.fresh <= limit) continue;
          ++stats_.refused_max_names_per_client;
          // "adds N new": the new name that passes the limit, as the
          // embedded store counts them (it stops at that name).
          uint64_t adds = c.held >= limit ? 1 : limit + 1 - c.held;
          return then(Status::Limit(fmt::format("client \"{}\" has {} names and this body adds {} new, more than "
                                                "ingest.max_names_per_client ({}); nothing from it was applied",
                                                checked_clients[i], c.held, adds, limit)));
        }
        then(Status::Ok());
      });
  for (ShardCtx* shard : shards) {
    std::vector<std::string> argv{"EVAL", kClientNamesScript, std::to_string(checked.size())};
    std::vector<std::string> args;
    for (size_t c : checked) {
      argv.push_back(keys_.client_names(clients[c].first));
      size_t at = args.size();
      args.emplace_back();
      uint64_t here = 0;
      for (const std::string& name : clients[c].second) {
        if (shards_[shard_of(name)].get() != shard) continue;
        args.push_back(name);
        ++here;
      }
      args[at] = std::to_string(here);
    }
    argv.insert(argv.end(), std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
    auto add_up = [counts](const redisReply* r) {
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i < counts->size() && 2 * i + 1 < r->elements; ++i) {
        (*counts)[i].held += static_cast<uint64_t>(redis::reply_int(r->element[2 * i]));
        (*counts)[i].fresh += static_cast<uint64_t>(redis::reply_int(r->element[2 * i + 1]));
      }
    };
    shard->shard->command(views(argv), gather->add(add_up, false, shard->name));
  }
  gather->arm();
}

}  // namespace taba::store
