#include "store/redis/redis_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <unordered_map>

#include "core/clock.h"
#include "core/log.h"
#include "protocol/batch.h"
#include "redis/reply.h"
#include "store/redis/applier.h"

namespace taba::store {
namespace {

constexpr uint64_t kMaxInFlightBytes = 256ull << 20;
constexpr double kServerExpiryS = 15;     // a server unseen this long is not listed
constexpr double kServerForgetS = 3600;   // ... and removed from the registry after this
constexpr int kFlushTimeoutMs = 30'000;

// Binds names to types, first writer wins; returns each name's binding.
// ARGV: this shard's share of ingest.max_names (0 = no limit), then (name,
// type) pairs. Replies each name's binding, then a string with '1' for each
// name this call bound and '0' for the others. When the new names would pass
// the share, nothing is bound and the reply is {'!', names held, new names}.
constexpr const char* kBindScript = R"lua(
local cap = tonumber(ARGV[1])
local out, fresh = {}, {}
for i = 2, #ARGV, 2 do
  local t = redis.call('HGET', KEYS[1], ARGV[i])
  if not t then
    fresh[#fresh + 1] = i
    t = ARGV[i + 1]
  end
  out[#out + 1] = t
end
if #fresh > 0 and cap > 0 then
  local held = redis.call('HLEN', KEYS[1])
  if held + #fresh > cap then return {'!', tostring(held), tostring(#fresh)} end
end
local flags = {}
for i = 2, #ARGV, 2 do flags[#flags + 1] = '0' end
for _, i in ipairs(fresh) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  flags[i / 2] = '1'
end
out[#out + 1] = table.concat(flags)
return out
)lua";

// Undoes the bindings a refused body made: a name is unbound unless it has
// states (another body bound to it since may have states in the stream not
// yet applied: the be binds such a name again when it applies them).
// KEYS: types. ARGV: (name, states key) pairs.
constexpr const char* kUnbindScript = R"lua(
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[i + 1]) == 0 then n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return n
)lua";

// Deletes a name with its states and registry entries; returns {bound, states}.
// KEYS: states, aggregate, types, clients. ARGV: name, client-names key prefix.
constexpr const char* kDeleteScript = R"lua(
local clients = redis.call('HKEYS', KEYS[1])
for _, c in ipairs(clients) do
  local cn = ARGV[2] .. c
  redis.call('SREM', cn, ARGV[1])
  if redis.call('SCARD', cn) == 0 then redis.call('SREM', KEYS[4], c) end
end
redis.call('DEL', KEYS[1], KEYS[2])
local had = redis.call('HDEL', KEYS[3], ARGV[1])
return {had, #clients}
)lua";

// Removes pruned clients' states of a name, then the name itself when no
// state is left, or sets its rebuilt aggregate. Only if the aggregate is the
// one GC read (every apply rewrites it, so an unchanged aggregate means no
// apply happened since) and the pruned blobs are unchanged: a concurrent apply
// is never lost. KEYS: states, aggregate, types, clients.
// ARGV: name, cn prefix, new aggregate ("" = remove the name), aggregate read,
// n, then n (client, blob) pairs to delete. Returns the number pruned, or -1
// on a race (the next GC looks again).
constexpr const char* kPruneScript = R"lua(
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return -1 end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local c, blob = ARGV[6 + 2 * i], ARGV[7 + 2 * i]
  if redis.call('HGET', KEYS[1], c) ~= blob then return -1 end
end
if ARGV[3] == '' and redis.call('HLEN', KEYS[1]) ~= n then return -1 end
for i = 0, n - 1 do
  local c = ARGV[6 + 2 * i]
  redis.call('HDEL', KEYS[1], c)
  local cn = ARGV[2] .. c
  redis.call('SREM', cn, ARGV[1])
  if redis.call('SCARD', cn) == 0 then redis.call('SREM', KEYS[4], c) end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HDEL', KEYS[3], ARGV[1])
elseif ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3])
end
return n
)lua";

// Reads a name's states and aggregate atomically.
constexpr const char* kReadNameScript = R"lua(
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2])}
)lua";

// Replaces the aggregate only if the states are unchanged (ARGV[2] is the
// number of fields seen, ARGV[3..] the blobs in HGETALL order).
constexpr const char* kRepairScript = R"lua(
local all = redis.call('HGETALL', KEYS[1])
if #all ~= tonumber(ARGV[2]) then return -1 end
for i = 1, #all do
  if all[i] ~= ARGV[2 + i] then return -1 end
end
redis.call('SET', KEYS[2], ARGV[1])
return 1
)lua";

std::pair<uint64_t, uint64_t> parse_stream_id(std::string_view id) {
  size_t dash = id.find('-');
  std::string ms(id.substr(0, dash));
  std::string seq = dash == std::string_view::npos ? "0" : std::string(id.substr(dash + 1));
  return {std::strtoull(ms.c_str(), nullptr, 10), std::strtoull(seq.c_str(), nullptr, 10)};
}

std::vector<std::string_view> views(const std::vector<std::string>& v) {
  return std::vector<std::string_view>(v.begin(), v.end());
}

// A state's JSON at `now`, to compare an aggregate with the merge of its
// client states; "" when the handler cannot. Taba's rounded form, not
// TABA_FORMAT_JSON_EXACT: window sums added up in another order may differ
// in their last bits, and that is not damage.
std::string render_json(const taba_handler* h, const taba_state* st, double now) {
  std::string out;
  taba_output sink = plugin::string_output(&out);
  if (h->render(st, TABA_FORMAT_JSON, now, &sink) != TABA_OK) return "";
  return out;
}

// Heartbeat value: time \t roles \t listen \t events/s \t deltas/s \t p50 \t p99 \t samples
std::string encode_server(const ServerInfo& s, double now) {
  std::string roles;
  for (size_t i = 0; i < s.roles.size(); ++i) roles += (i ? "," : "") + s.roles[i];
  return fmt::format("{:.3f}\t{}\t{}\t{:.1f}\t{:.1f}\t{:.6f}\t{:.6f}\t{}", now, roles, s.listen, s.events_per_s,
                     s.deltas_per_s, s.latency_p50_s, s.latency_p99_s, s.latency_samples);
}

bool decode_server(std::string_view id, std::string_view value, double now, ServerInfo* out, double* seen_at) {
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
  return true;
}

// What a Redis query fetched, shaped like the embedded store for the
// query code.
class RedisView final : public ReadView {
 public:
  const NameEntry* find_name(std::string_view name) const override {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                               [](const std::unique_ptr<NameEntry>& e, std::string_view n) { return e->name < n; });
    return it != entries_.end() && (*it)->name == name ? it->get() : nullptr;
  }
  std::vector<const NameEntry*> names() const override {
    std::vector<const NameEntry*> out;
    for (const auto& e : entries_) out.push_back(e.get());
    return out;
  }
  const std::vector<std::string>& clients() const override { return clients_; }
  bool client_has_states(ClientIndex) const override { return true; }

  ClientIndex intern(std::string_view client) {
    auto it = index_.find(std::string(client));
    if (it != index_.end()) return it->second;
    ClientIndex i = static_cast<ClientIndex>(clients_.size());
    clients_.emplace_back(client);
    index_.emplace(std::string(client), i);
    return i;
  }
  NameEntry* add(std::string name, const plugin::Handler* handler) {
    auto e = std::make_unique<NameEntry>();
    e->name = std::move(name);
    e->handler = handler;
    entries_.push_back(std::move(e));
    return entries_.back().get();
  }
  void sort() {
    std::sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  }

 private:
  std::vector<std::unique_ptr<NameEntry>> entries_;
  std::vector<std::string> clients_;
  std::unordered_map<std::string, ClientIndex> index_;
};

bool load_state(const plugin::Handler* h, std::string_view blob, State* out) {
  uint32_t version = 0;
  std::string_view bytes;
  taba_state* st = nullptr;
  char err[128];
  if (!redis::decode_state(blob, &version, &bytes) ||
      h->table->deserialize(bytes.data(), bytes.size(), version, &st, err, sizeof err) != TABA_OK || !st) {
    return false;
  }
  *out = State(h, st);
  return true;
}

}  // namespace

RedisStore::RedisStore(uv_loop_t* loop, const plugin::Registry* registry, const Config::Redis& config, bool run_be,
                       std::string consumer_name)
    : loop_(loop),
      registry_(registry),
      config_(config),
      run_be_(run_be),
      consumer_(std::move(consumer_name)),
      keys_(config.key_prefix) {}

RedisStore::~RedisStore() {
  *alive_ = false;
  for (auto& s : shards_) s->applier.reset();
  for (auto& s : shards_) {
    if (s->shard) s->shard->stop();
  }
  shards_.clear();
  sentinels_.reset();
  if (tick_) {
    uv_timer_stop(tick_);
    uv_close(reinterpret_cast<uv_handle_t*>(tick_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

Status RedisStore::open() {
  std::vector<redis::Address> sentinels;
  for (const std::string& s : config_.sentinels) {
    auto a = redis::parse_address(s);
    if (!a.ok()) return Status::Invalid(fmt::format("redis.sentinels: {}", a.status().message()));
    sentinels.push_back(a.value());
  }
  redis::ConnectionOptions co;
  co.connect_timeout_ms = static_cast<uint32_t>(config_.connect_timeout_ms);
  co.command_timeout_ms = static_cast<uint32_t>(config_.command_timeout_ms);
  co.password = config_.password;
  co.label = "sentinel";
  redis::ConnectionOptions sentinel_options = co;
  sentinel_options.password.clear();
  sentinels_ = std::make_unique<redis::Sentinels>(loop_, sentinels, sentinel_options);
  sentinels_->start();
  vbucket_shard_.assign(static_cast<size_t>(config_.vbuckets), 0);
  for (const auto& sc : config_.shards) {
    auto ctx = std::make_unique<ShardCtx>();
    ctx->name = sc.name;
    ctx->first_vbucket = static_cast<uint32_t>(sc.first_vbucket);
    ctx->last_vbucket = static_cast<uint32_t>(sc.last_vbucket);
    redis::ConnectionOptions so = co;
    so.label = sc.name;
    ctx->shard = std::make_unique<redis::Shard>(loop_, sentinels_.get(), sc.name, so,
                                                static_cast<int>(config_.pool_size));
    for (int64_t v = sc.first_vbucket; v <= sc.last_vbucket; ++v) {
      vbucket_shard_[static_cast<size_t>(v)] = static_cast<uint16_t>(shards_.size());
    }
    shards_.push_back(std::move(ctx));
  }
  for (auto& s : shards_) {
    s->shard->start();
    s->writer = s->shard->dedicated();
    if (run_be_) {
      s->applier = std::make_unique<Applier>(this, s.get(), consumer_);
      s->applier->start();
    }
  }
  tick_ = new uv_timer_t;
  uv_timer_init(loop_, tick_);
  tick_->data = this;
  uv_timer_start(tick_, on_tick, 200, 1000);
  log::info("store: redis, {} shards over {} vbuckets, sentinels {}{}", shards_.size(), config_.vbuckets,
            fmt::join(config_.sentinels, ","), run_be_ ? "; applying as be " + consumer_ : "");
  return Status::Ok();
}

void RedisStore::close(std::function<void()> done) {
  closing_ = true;
  for (auto& s : shards_) {
    if (s->applier) s->applier->stop();
  }
  if (tick_) uv_timer_stop(tick_);
  // Unregister, best effort, then stop the connections.
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, done = std::move(done)](const Status&) {
    if (*alive) {
      for (auto& s : shards_) s->applier.reset();
      for (auto& s : shards_) s->shard->stop();
      if (sentinels_) sentinels_->stop();
    }
    log::info("store: redis store closed");
    done();
  });
  std::string id = self_info_ ? self_info_().id : consumer_;
  for (auto& s : shards_) {
    if (s->shard->ready()) s->shard->command({"HDEL", keys_.servers(), id}, gather->add(nullptr, true));
  }
  gather->arm();
}

bool RedisStore::ready() const {
  if (closing_) return false;
  for (const auto& s : shards_) {
    if (!s->shard->ready()) return false;
  }
  return !shards_.empty();
}

size_t RedisStore::shard_of(std::string_view name) const {
  return vbucket_shard_[redis::vbucket_of(name, static_cast<uint32_t>(vbucket_shard_.size()))];
}

LatencyWindow::Summary RedisStore::local_latency() const { return latencies_.summary(wall_now()); }

// --- heartbeat --------------------------------------------------------------

void RedisStore::on_tick(uv_timer_t* t) { static_cast<RedisStore*>(t->data)->heartbeat(); }

void RedisStore::heartbeat() {
  if (closing_) return;
  double now = wall_now();
  ServerInfo self;
  if (self_info_) self = self_info_();
  if (self.id.empty()) self.id = consumer_;
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

// --- ingest (fe) ------------------------------------------------------------

struct RedisStore::Submit {
  std::string batch_id;
  Bindings bindings;
  std::function<void(const Status&)> done;
  std::vector<std::string> payloads;  // per shard; "" = nothing for that shard
  std::vector<uint64_t> events;       // per shard
  double enqueue_time = 0;
  uint64_t bytes = 0;
};

void RedisStore::submit(std::string batch, BatchId batch_id, Bindings new_bindings,
                        std::function<void(const Status&)> done) {
  auto defer = [this, &done](Status s) {
    ++stats_.submit_failures;
    done(s);
  };
  if (closing_) return defer(Status::Unavailable("server is shutting down"));
  for (const auto& s : shards_) {
    if (!s->shard->ready()) {
      return defer(Status::Unavailable(fmt::format("shard {} has no reachable master", s->name)));
    }
    if (s->stream_length > config_.max_stream_entries) {
      return defer(Status::Unavailable(fmt::format(
          "shard {}: the ingest stream holds {} entries (limit {}); the be is behind", s->name, s->stream_length,
          config_.max_stream_entries)));
    }
  }
  if (in_flight_bytes_ + batch.size() > kMaxInFlightBytes) {
    return defer(Status::Unavailable(fmt::format("{} bytes of posts are already in flight to Redis", in_flight_bytes_)));
  }
  auto sub = std::make_shared<Submit>();
  sub->done = std::move(done);
  sub->bindings = std::move(new_bindings);
  sub->enqueue_time = wall_now();
  if (batch_id.value.empty()) return defer(Status::Internal("a post reached the redis store without a batch id"));
  sub->batch_id = std::move(batch_id.value);

  // Pre-aggregate: one delta state per (client, name).
  protocol::BatchReader reader(batch, /*written_here=*/true);
  Status s = reader.open();
  if (!s.ok()) return defer(s);
  const double now = reader.receive_time();
  struct Acc {
    const plugin::Handler* handler;
    State state;
    std::string client;
    std::string name;
    uint64_t events = 0;
  };
  std::vector<Acc> accs;
  std::unordered_map<std::string, size_t> index;
  std::vector<taba_event> events;
  protocol::BatchBlock block;
  std::string key;
  while (reader.next(&block, &events, &s)) {
    const plugin::Handler* h = registry_->find(block.type);
    if (!h) return defer(Status::Invalid(fmt::format("no loaded plugin serves type \"{}\"", block.type)));
    taba_state* delta = h->table->new_state(block.client.data(), block.client.size(), now);
    if (!delta) return defer(Status::Unavailable(fmt::format("the {} handler could not create a state", block.type)));
    h->table->fold(delta, events.data(), events.size(), now);
    key.assign(block.client);
    key.push_back('\0');
    key.append(block.name);
    auto [it, fresh] = index.emplace(key, accs.size());
    if (fresh) {
      accs.push_back(Acc{h, State(h, delta), std::string(block.client), std::string(block.name), block.event_count});
    } else {
      Acc& acc = accs[it->second];
      h->table->merge(acc.state.get(), delta, now);
      h->table->free_state(delta);
      acc.events += block.event_count;
    }
  }
  if (!s.ok()) return defer(s);
  std::vector<redis::DeltaWriter> writers(shards_.size());
  sub->events.assign(shards_.size(), 0);
  std::string tmp;
  taba_output sink = plugin::string_output(&tmp);
  for (const Acc& acc : accs) {
    tmp.clear();
    if (acc.handler->table->serialize(acc.state.get(), &sink) != TABA_OK) {
      return defer(Status::Internal(fmt::format("the {} handler could not serialize a delta", acc.handler->type_name)));
    }
    size_t shard = shard_of(acc.name);
    writers[shard].add(acc.name, acc.handler->type_name, acc.client, acc.handler->table->state_version, tmp);
    sub->events[shard] += acc.events;
  }
  sub->payloads.resize(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (writers[i].count() > 0) {
      sub->payloads[i] = writers[i].finish();
      sub->bytes += sub->payloads[i].size();
    }
  }
  in_flight_bytes_ += sub->bytes;
  bind_then_append(sub);
}

void RedisStore::set_name_limits(const NameLimits& limits) {
  limits_ = limits;
  const auto vbuckets = static_cast<uint64_t>(config_.vbuckets);
  for (auto& s : shards_) {
    uint64_t own = uint64_t{s->last_vbucket} - s->first_vbucket + 1;
    s->max_names = limits.max_names == 0 ? 0 : (limits.max_names * own + vbuckets - 1) / vbuckets;
  }
}

void RedisStore::bind_then_append(const std::shared_ptr<Submit>& sub) {
  std::vector<std::vector<std::string>> argv(shards_.size());
  std::vector<std::vector<const std::pair<std::string, const plugin::Handler*>*>> wanted(shards_.size());
  for (const auto& b : sub->bindings) {
    size_t s = shard_of(b.first);
    if (argv[s].empty()) argv[s] = {"EVAL", kBindScript, "1", keys_.types(), std::to_string(shards_[s]->max_names)};
    argv[s].push_back(b.first);
    argv[s].push_back(b.second->type_name);
    wanted[s].push_back(&b);
  }
  auto alive = alive_;
  auto conflict = std::make_shared<std::string>();
  auto limited = std::make_shared<std::string>();
  // Per shard, the names this body bound there first.
  auto fresh = std::make_shared<std::vector<std::vector<std::string>>>(shards_.size());
  auto gather = std::make_shared<redis::Gather>([this, alive, sub, conflict, limited, fresh](const Status& s) {
    if (!*alive) return;
    if (!s.ok() || !conflict->empty() || !limited->empty()) {
      in_flight_bytes_ -= sub->bytes;
      Status outcome;
      if (!conflict->empty()) {
        ++stats_.binding_conflicts;
        outcome = Status::Invalid(*conflict);
      } else if (!limited->empty()) {
        ++stats_.refused_max_names;
        outcome = Status::Limit(*limited);
      } else {
        ++stats_.submit_failures;
        outcome = Status::Unavailable(s.message());
      }
      // Nothing of a refused body is kept, its new bindings included (they
      // would count against ingest.max_names): they are undone before the
      // reply. An unbind that fails leaves a name bound without states, as
      // before this cleanup existed; it does not change the reply.
      auto unbound = std::make_shared<redis::Gather>([alive, sub, outcome](const Status&) {
        if (*alive) sub->done(outcome);
      });
      for (size_t i = 0; i < fresh->size(); ++i) {
        if ((*fresh)[i].empty()) continue;
        std::vector<std::string> cmd{"EVAL", kUnbindScript, "1", keys_.types()};
        for (const std::string& name : (*fresh)[i]) {
          cmd.push_back(name);
          cmd.push_back(keys_.states(name));
        }
        shards_[i]->shard->command(views(cmd), unbound->add(nullptr, true));
      }
      unbound->arm();
      return;
    }
    append(sub);
  });
  for (size_t s = 0; s < shards_.size(); ++s) {
    if (argv[s].empty()) continue;
    auto names = wanted[s];
    const ShardCtx* shard = shards_[s].get();
    shards_[s]->shard->command(views(argv[s]), gather->add(
                                                   [names, conflict, limited, fresh, s, shard, this](const redisReply* r) {
                                                     if (!redis::reply_is_array(r)) return;
                                                     if (r->elements == 3 && redis::reply_str(r->element[0]) == "!") {
                                                       *limited = fmt::format(
                                                           "shard {} holds {} names and this body adds {} new "
                                                           "there, more than its share ({}) of ingest.max_names "
                                                           "({}); nothing from it was applied",
                                                           shard->name, redis::reply_str(r->element[1]),
                                                           redis::reply_str(r->element[2]), shard->max_names,
                                                           limits_.max_names);
                                                       return;
                                                     }
                                                     if (r->elements == names.size() + 1) {
                                                       std::string_view flags = redis::reply_str(r->element[names.size()]);
                                                       for (size_t i = 0; i < flags.size() && i < names.size(); ++i) {
                                                         if (flags[i] == '1') (*fresh)[s].push_back(names[i]->first);
                                                       }
                                                     }
                                                     for (size_t i = 0; i < r->elements && i < names.size(); ++i) {
                                                       std::string_view bound = redis::reply_str(r->element[i]);
                                                       const auto* b = names[i];
                                                       if (bound != b->second->type_name && conflict->empty()) {
                                                         *conflict = fmt::format(
                                                             "type \"{}\" conflicts with type \"{}\" bound to name "
                                                             "\"{}\"",
                                                             b->second->type_name, bound, b->first);
                                                       }
                                                     }
                                                   },
                                                   false, shards_[s]->name));
  }
  gather->arm();
}

void RedisStore::append(const std::shared_ptr<Submit>& sub) {
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, sub](const Status& s) {
    if (!*alive) return;
    in_flight_bytes_ -= sub->bytes;
    if (!s.ok()) {
      ++stats_.submit_failures;
      sub->done(Status::Unavailable(s.message()));
      return;
    }
    sub->done(Status::Ok());
  });
  std::string t = fmt::format("{:.6f}", sub->enqueue_time);
  // An XADD may wait behind one WAIT on the writer connection.
  auto xadd_timeout = static_cast<uint32_t>(config_.command_timeout_ms +
                                            (config_.min_replica_acks > 0 ? config_.replica_ack_timeout_ms : 0));
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (sub->payloads[i].empty()) continue;
    ShardCtx* s = shards_[i].get();
    std::string n = std::to_string(sub->events[i]);
    std::string stream = keys_.stream();
    redis::Connection::Callback done = gather->add(nullptr, false, s->name);
    s->writer->command(
        {"XADD", stream, "*", "id", sub->batch_id, "t", t, "n", n, "d", sub->payloads[i]},
        [this, alive, s, done](const Status& st, const redisReply* r) {
          if (!*alive) return;
          if (!st.ok() || redis::reply_is_error(r) || config_.min_replica_acks == 0) {
            if (st.ok() && !redis::reply_is_error(r)) ++stats_.entries_appended;
            return done(st, r);
          }
          ++stats_.entries_appended;
          s->wait_queue.push_back([done](const Status& acked) { done(acked, nullptr); });
          if (!s->wait_outstanding) issue_wait(s);
        },
        xadd_timeout);
  }
  gather->arm();
}

// One WAIT at a time per writer connection covers every XADD answered before
// it was sent; XADDs answered meanwhile wait for the next one.
void RedisStore::issue_wait(ShardCtx* s) {
  auto waiters = std::make_shared<std::vector<std::function<void(const Status&)>>>(std::move(s->wait_queue));
  s->wait_queue.clear();
  s->wait_outstanding = true;
  auto alive = alive_;
  int64_t want = config_.min_replica_acks;
  std::string acks = std::to_string(want);
  std::string wait_ms = std::to_string(config_.replica_ack_timeout_ms);
  s->writer->command(
      {"WAIT", acks, wait_ms},
      [this, alive, s, waiters, want](const Status& st, const redisReply* r) {
        if (!*alive) return;
        s->wait_outstanding = false;
        Status acked = st;
        if (acked.ok() && redis::reply_is_error(r)) {
          acked = Status::Unavailable(fmt::format("shard {}: WAIT: {}", s->name, redis::reply_str(r)));
        } else if (acked.ok() && redis::reply_int(r) < want) {
          acked = Status::Unavailable(fmt::format(
              "shard {}: {} of {} replicas acknowledged within {} ms; retry with the same Taba-Batch-Id", s->name,
              redis::reply_int(r), want, config_.replica_ack_timeout_ms));
        }
        for (auto& w : *waiters) w(acked);
        if (!s->wait_queue.empty() && *alive) issue_wait(s);
      },
      static_cast<uint32_t>(config_.replica_ack_timeout_ms + config_.command_timeout_ms));
}

// --- queries ----------------------------------------------------------------

void RedisStore::list_names(const query::Matcher& names,
                            std::function<void(const Status&, std::vector<std::pair<std::string, std::string>>)> done) {
  auto out = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([alive, out, done = std::move(done)](const Status& s) {
    if (!*alive) return;
    std::sort(out->begin(), out->end());
    done(s, std::move(*out));
  });
  std::string types = keys_.types();
  if (!names.any() && !names.is_regex()) {
    std::vector<std::vector<std::string>> per(shards_.size());
    for (const std::string& n : names.values()) per[shard_of(n)].push_back(n);
    for (size_t s = 0; s < shards_.size(); ++s) {
      if (per[s].empty()) continue;
      std::vector<std::string_view> argv{"HMGET", types};
      for (const auto& n : per[s]) argv.push_back(n);
      auto list = per[s];
      shards_[s]->shard->command(argv, gather->add(
                                           [out, list](const redisReply* r) {
                                             if (!redis::reply_is_array(r)) return;
                                             for (size_t i = 0; i < r->elements && i < list.size(); ++i) {
                                               if (redis::reply_is_nil(r->element[i])) continue;
                                               out->emplace_back(list[i], std::string(redis::reply_str(r->element[i])));
                                             }
                                           },
                                           false, shards_[s]->name));
    }
  } else {
    auto matcher = std::make_shared<query::Matcher>(names);
    for (auto& sp : shards_) {
      sp->shard->command({"HGETALL", types}, gather->add(
                                                 [out, matcher](const redisReply* r) {
                                                   if (!redis::reply_is_array(r)) return;
                                                   for (size_t i = 0; i + 1 < r->elements; i += 2) {
                                                     std::string_view n = redis::reply_str(r->element[i]);
                                                     if (!matcher->matches(n)) continue;
                                                     out->emplace_back(std::string(n),
                                                                       std::string(redis::reply_str(r->element[i + 1])));
                                                   }
                                                 },
                                                 false, sp->name));
    }
  }
  gather->arm();
}

struct RedisStore::Fetch {
  QueryNeed need;
  query::Matcher names;
  query::Matcher clients;
  ViewCallback ready;
  RedisView view;
  std::vector<std::pair<std::string, std::string>> listed;
  std::set<std::string> client_set;
};

void RedisStore::fetch(const QueryNeed& need, ViewCallback ready) {
  auto f = std::make_shared<Fetch>();
  f->need = need;
  f->names = *need.names;
  f->clients = *need.clients;
  f->need.names = &f->names;
  f->need.clients = &f->clients;
  f->ready = std::move(ready);
  auto alive = alive_;
  // Phase 1: the names (and the client list); phase 2: their states.
  auto phase2 = [this, alive, f](const Status& s) {
    if (!*alive) return;
    if (!s.ok()) return f->ready(s, nullptr);
    for (const std::string& c : f->client_set) f->view.intern(c);
    struct Pending {
      NameEntry* entry;
      size_t shard;
    };
    std::vector<Pending> wanted;
    for (const auto& [name, type] : f->listed) {
      const plugin::Handler* h = registry_->find(type);
      if (!h) {
        log::warn("query: name \"{}\" has type \"{}\", which no loaded plugin serves; skipped", name, type);
        continue;
      }
      wanted.push_back({f->view.add(name, h), shard_of(name)});
    }
    f->view.sort();
    if (!f->need.aggregates && !f->need.states) return f->ready(Status::Ok(), &f->view);
    auto gather = std::make_shared<redis::Gather>([alive, f](const Status& st) {
      if (!*alive) return;
      f->ready(st, st.ok() ? &f->view : nullptr);
    });
    for (const Pending& p : wanted) {
      NameEntry* e = p.entry;
      redis::Shard* shard = shards_[p.shard]->shard.get();
      const std::string& sname = shards_[p.shard]->name;
      if (f->need.aggregates) {
        double now = wall_now();
        shard->command({"GET", keys_.aggregate(e->name)},
                       gather->add(
                           [e, now](const redisReply* r) {
                             if (!redis::reply_is_nil(r) && load_state(e->handler, redis::reply_str(r), &e->aggregate)) {
                               return;
                             }
                             // Bound, not applied yet (or unreadable): an empty aggregate.
                             taba_state* fresh = e->handler->table->new_state("", 0, now);
                             if (fresh) e->aggregate = State(e->handler, fresh);
                           },
                           false, sname));
      }
      if (f->need.states) {
        bool exact = !f->clients.any() && !f->clients.is_regex();
        std::string key = keys_.states(e->name);
        auto on_pair = [f, e](std::string_view client, const redisReply* blob) {
          if (redis::reply_is_nil(blob)) return;
          if (!f->clients.matches(client)) return;
          State st;
          if (!load_state(e->handler, redis::reply_str(blob), &st)) return;
          e->states[f->view.intern(client)] = std::move(st);
        };
        if (exact && f->clients.values().empty()) {
          // client= with no value selects no client.
        } else if (exact) {
          std::vector<std::string_view> argv{"HMGET", key};
          for (const std::string& c : f->clients.values()) argv.push_back(c);
          shard->command(argv, gather->add(
                                   [f, on_pair](const redisReply* r) {
                                     if (!redis::reply_is_array(r)) return;
                                     const auto& cs = f->clients.values();
                                     for (size_t i = 0; i < r->elements && i < cs.size(); ++i) on_pair(cs[i], r->element[i]);
                                   },
                                   false, sname));
        } else {
          shard->command({"HGETALL", key}, gather->add(
                                               [on_pair](const redisReply* r) {
                                                 if (!redis::reply_is_array(r)) return;
                                                 for (size_t i = 0; i + 1 < r->elements; i += 2) {
                                                   on_pair(redis::reply_str(r->element[i]), r->element[i + 1]);
                                                 }
                                               },
                                               false, sname));
        }
      }
    }
    gather->arm();
  };
  auto gather = std::make_shared<redis::Gather>(phase2);
  bool need_names = need.names != nullptr;
  if (need_names) {
    auto cb = gather->add(nullptr);
    list_names(f->names, [f, cb](const Status& s, std::vector<std::pair<std::string, std::string>> listed) {
      f->listed = std::move(listed);
      cb(s, nullptr);
    });
  }
  if (need.client_list) {
    for (auto& sp : shards_) {
      sp->shard->command({"SMEMBERS", keys_.clients()}, gather->add(
                                                           [f](const redisReply* r) {
                                                             if (!redis::reply_is_array(r)) return;
                                                             for (size_t i = 0; i < r->elements; ++i) {
                                                               f->client_set.emplace(redis::reply_str(r->element[i]));
                                                             }
                                                           },
                                                           false, sp->name));
    }
  }
  gather->arm();
}

// --- admin ------------------------------------------------------------------

void RedisStore::delete_names(const query::Matcher& names, ReportCallback done) {
  auto alive = alive_;
  list_names(names, [this, alive, done = std::move(done)](const Status& s,
                                                          std::vector<std::pair<std::string, std::string>> listed) {
    if (!*alive) return;
    if (!s.ok()) return done(s, Report{});
    auto report = std::make_shared<Report>();
    auto counts = std::make_shared<std::pair<int64_t, int64_t>>(0, 0);
    auto gather = std::make_shared<redis::Gather>([alive, report, counts, done](const Status& st) {
      if (!*alive) return;
      report->counts.insert(report->counts.begin(), {{"names_deleted", counts->first}, {"states_deleted", counts->second}});
      done(st, *report);
    });
    std::string prefix = keys_.client_names("");
    for (const auto& [name, type] : listed) {
      report->details.push_back(name);
      size_t sh = shard_of(name);
      std::vector<std::string> argv{"EVAL", kDeleteScript, "4", keys_.states(name), keys_.aggregate(name),
                                    keys_.types(), keys_.clients(), name, prefix};
      shards_[sh]->shard->command(views(argv), gather->add(
                                                   [counts](const redisReply* r) {
                                                     if (!redis::reply_is_array(r) || r->elements != 2) return;
                                                     counts->first += redis::reply_int(r->element[0]);
                                                     counts->second += redis::reply_int(r->element[1]);
                                                   },
                                                   false, shards_[sh]->name));
    }
    gather->arm();
  });
}

// Reads every name of every shard with its states (atomically per name)
// and calls `visit` for each; then `done`.
namespace {
struct NameSnapshot {
  std::string name;
  std::string type;
  size_t shard = 0;
  std::vector<std::pair<std::string, std::string>> states;  // client, blob
  std::string aggregate;
  bool has_aggregate = false;
};
}  // namespace

void RedisStore::gc(ReportCallback done) {
  auto alive = alive_;
  query::Matcher all;
  list_names(all, [this, alive, done = std::move(done)](const Status& s,
                                                        std::vector<std::pair<std::string, std::string>> listed) {
    if (!*alive) return;
    if (!s.ok()) return done(s, Report{});
    auto totals = std::make_shared<std::map<std::string, int64_t>>();
    (*totals)["states_pruned"] = 0;
    (*totals)["names_removed"] = 0;
    (*totals)["names_busy"] = 0;
    auto gather = std::make_shared<redis::Gather>([alive, totals, done](const Status& st) {
      if (!*alive) return;
      Report r;
      r.count("states_pruned", (*totals)["states_pruned"]);
      r.count("names_removed", (*totals)["names_removed"]);
      r.count("names_busy", (*totals)["names_busy"]);
      done(st, r);
    });
    double now = wall_now();
    for (const auto& [name_, type_] : listed) {
      const plugin::Handler* h = registry_->find(type_);
      if (!h) continue;
      std::string name = name_;
      size_t sh = shard_of(name);
      redis::Shard* shard = shards_[sh]->shard.get();
      auto cb = gather->add(nullptr);
      shard->command(
          {"EVAL", kReadNameScript, "2", keys_.states(name), keys_.aggregate(name)},
          [this, alive, h, name, shard, totals, now, cb](const Status& st, const redisReply* r) {
            if (!*alive) return;
            if (!st.ok() || !redis::reply_is_array(r) || r->elements < 1 || !redis::reply_is_array(r->element[0])) {
              return cb(st.ok() ? Status::Unavailable("gc: unexpected reply reading " + name) : st, nullptr);
            }
            const redisReply* all_states = r->element[0];
            std::vector<std::pair<std::string, std::string>> dead;
            std::vector<State> live;
            for (size_t i = 0; i + 1 < all_states->elements; i += 2) {
              std::string blob(redis::reply_str(all_states->element[i + 1]));
              State state;
              if (!load_state(h, blob, &state)) continue;
              if (h->table->prunable(state.get(), now)) {
                dead.emplace_back(std::string(redis::reply_str(all_states->element[i])), std::move(blob));
              } else {
                live.push_back(std::move(state));
              }
            }
            if (dead.empty()) return cb(Status::Ok(), nullptr);
            std::string aggregate;
            if (!live.empty()) {
              taba_state* fresh = h->table->new_state("", 0, now);
              if (!fresh) return cb(Status::Ok(), nullptr);
              State agg(h, fresh);
              for (const State& l : live) h->table->merge(agg.get(), l.get(), now);
              std::string tmp;
              taba_output sink = plugin::string_output(&tmp);
              if (h->table->serialize(agg.get(), &sink) != TABA_OK) return cb(Status::Ok(), nullptr);
              aggregate = redis::encode_state(h->table->state_version, tmp);
            }
            std::string aggregate_read;
            if (r->elements > 1 && !redis::reply_is_nil(r->element[1])) {
              aggregate_read = std::string(redis::reply_str(r->element[1]));
            }
            std::vector<std::string> argv{"EVAL",
                                          kPruneScript,
                                          "4",
                                          keys_.states(name),
                                          keys_.aggregate(name),
                                          keys_.types(),
                                          keys_.clients(),
                                          name,
                                          keys_.client_names(""),
                                          aggregate,
                                          std::move(aggregate_read),
                                          std::to_string(dead.size())};
            for (auto& [c, b] : dead) {
              argv.push_back(c);
              argv.push_back(b);
            }
            bool removes = live.empty();
            shard->command(views(argv), [alive, totals, removes, cb](const Status& s2, const redisReply* r2) {
              if (!*alive) return;
              if (!s2.ok()) return cb(s2, nullptr);
              long long n = redis::reply_int(r2);
              if (n < 0) {
                ++(*totals)["names_busy"];  // changed meanwhile: the next GC looks again
              } else {
                (*totals)["states_pruned"] += n;
                if (removes) ++(*totals)["names_removed"];
              }
              cb(Status::Ok(), nullptr);
            });
          });
    }
    gather->arm();
  });
}

void RedisStore::check(bool repair, ReportCallback done) {
  auto alive = alive_;
  query::Matcher all;
  list_names(all, [this, alive, repair, done = std::move(done)](
                      const Status& s, std::vector<std::pair<std::string, std::string>> listed) {
    if (!*alive) return;
    if (!s.ok()) return done(s, Report{});
    struct Totals {
      int64_t names = 0, states = 0, problems = 0, repaired = 0;
      std::vector<std::string> details;
    };
    auto totals = std::make_shared<Totals>();
    auto gather = std::make_shared<redis::Gather>([alive, totals, done](const Status& st) {
      if (!*alive) return;
      Report r;
      r.count("names_checked", totals->names);
      r.count("states_checked", totals->states);
      r.count("problems", totals->problems);
      r.count("repaired", totals->repaired);
      std::sort(totals->details.begin(), totals->details.end());
      r.details = totals->details;
      done(st, r);
    });
    double now = wall_now();
    for (const auto& [name_, type_] : listed) {
      std::string name = name_;
      ++totals->names;
      const plugin::Handler* h = registry_->find(type_);
      if (!h) {
        ++totals->problems;
        totals->details.push_back(fmt::format("name \"{}\": type \"{}\" is served by no loaded plugin", name, type_));
        continue;
      }
      size_t sh = shard_of(name);
      redis::Shard* shard = shards_[sh]->shard.get();
      auto cb = gather->add(nullptr);
      shard->command(
          {"EVAL", kReadNameScript, "2", keys_.states(name), keys_.aggregate(name)},
          [this, alive, h, name, shard, totals, now, repair, cb](const Status& st, const redisReply* r) {
            if (!*alive) return;
            if (!st.ok() || !redis::reply_is_array(r) || r->elements < 1 || !redis::reply_is_array(r->element[0])) {
              return cb(st.ok() ? Status::Unavailable("check: unexpected reply reading " + name) : st, nullptr);
            }
            const redisReply* all_states = r->element[0];
            std::vector<std::string> fields;
            taba_state* fresh = h->table->new_state("", 0, now);
            if (!fresh) return cb(Status::Ok(), nullptr);
            State merged(h, fresh);
            bool bad_state = false;
            for (size_t i = 0; i + 1 < all_states->elements; i += 2) {
              ++totals->states;
              fields.emplace_back(redis::reply_str(all_states->element[i]));
              fields.emplace_back(redis::reply_str(all_states->element[i + 1]));
              State state;
              if (!load_state(h, fields.back(), &state)) {
                ++totals->problems;
                bad_state = true;
                totals->details.push_back(fmt::format("name \"{}\", client \"{}\": the state is unreadable", name,
                                                      fields[fields.size() - 2]));
                continue;
              }
              h->table->merge(merged.get(), state.get(), now);
            }
            State aggregate;
            bool have = r->elements > 1 && !redis::reply_is_nil(r->element[1]) &&
                        load_state(h, redis::reply_str(r->element[1]), &aggregate);
            std::string want = render_json(h->table, merged.get(), now);
            std::string got = have ? render_json(h->table, aggregate.get(), now) : "";
            if (want == got || bad_state) return cb(Status::Ok(), nullptr);
            ++totals->problems;
            totals->details.push_back(fmt::format("name \"{}\": aggregate differs from the merge of its {} client states",
                                                  name, fields.size() / 2));
            if (!repair) return cb(Status::Ok(), nullptr);
            std::string tmp;
            taba_output sink = plugin::string_output(&tmp);
            if (h->table->serialize(merged.get(), &sink) != TABA_OK) return cb(Status::Ok(), nullptr);
            std::vector<std::string> argv{"EVAL", kRepairScript, "2", keys_.states(name), keys_.aggregate(name),
                                          redis::encode_state(h->table->state_version, tmp),
                                          std::to_string(fields.size())};
            for (auto& f : fields) argv.push_back(std::move(f));
            shard->command(views(argv), [alive, totals, cb](const Status& s2, const redisReply* r2) {
              if (!*alive) return;
              if (s2.ok() && redis::reply_int(r2) == 1) ++totals->repaired;
              cb(s2, nullptr);
            });
          });
    }
    gather->arm();
  });
}

void RedisStore::flush(ReportCallback done) {
  // Wait until every entry appended before now has left each stream (the
  // be XDELs an entry in the transaction that applies it).
  struct State2 {
    uint64_t t0 = 0;
    int64_t queued = 0;
    std::vector<std::pair<uint64_t, uint64_t>> targets;
    std::vector<bool> drained;
    ReportCallback done;
  };
  auto st = std::make_shared<State2>();
  st->t0 = uv_hrtime();
  st->done = std::move(done);
  st->targets.assign(shards_.size(), {0, 0});
  st->drained.assign(shards_.size(), false);
  auto alive = alive_;
  auto poll = std::make_shared<std::function<void()>>();
  *poll = [this, alive, st, poll] {
    if (!*alive) return;
    auto gather = std::make_shared<redis::Gather>([this, alive, st, poll](const Status& s) {
      if (!*alive) return;
      bool all = std::all_of(st->drained.begin(), st->drained.end(), [](bool b) { return b; });
      uint64_t waited = (uv_hrtime() - st->t0) / 1000000;
      if (all) {
        Report r;
        r.count("queued_at_start", st->queued);
        r.count("waited_ms", static_cast<int64_t>(waited));
        r.count("entries_applied_here", static_cast<int64_t>(stats_.entries_applied));
        auto finish = std::move(st->done);
        finish(Status::Ok(), r);
        *poll = nullptr;
        return;
      }
      if (waited > static_cast<uint64_t>(kFlushTimeoutMs)) {
        std::string which;
        for (size_t i = 0; i < shards_.size(); ++i) {
          if (!st->drained[i]) which += (which.empty() ? "" : ", ") + shards_[i]->name;
        }
        auto finish = std::move(st->done);
        finish(Status::Unavailable(fmt::format("flush: shards {} still hold older entries after {} s{}; is a be running?",
                                             which, kFlushTimeoutMs / 1000, s.ok() ? "" : " (" + s.message() + ")")),
             Report{});
        *poll = nullptr;
        return;
      }
      auto* timer = new uv_timer_t;
      uv_timer_init(loop_, timer);
      timer->data = new std::function<void()>([poll] {
        if (*poll) (*poll)();
      });
      uv_timer_start(
          timer,
          [](uv_timer_t* t) {
            auto* fn = static_cast<std::function<void()>*>(t->data);
            (*fn)();
            delete fn;
            uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
          },
          20, 0);
    });
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (st->drained[i]) continue;
      shards_[i]->shard->command({"XRANGE", keys_.stream(), "-", "+", "COUNT", "1"},
                                 gather->add(
                                     [st, i](const redisReply* r) {
                                       if (!redis::reply_is_array(r) || r->elements == 0) {
                                         st->drained[i] = true;
                                         return;
                                       }
                                       const redisReply* e = r->element[0];
                                       if (!redis::reply_is_array(e) || e->elements < 1) return;
                                       if (parse_stream_id(redis::reply_str(e->element[0])) > st->targets[i]) {
                                         st->drained[i] = true;
                                       }
                                     },
                                     false, shards_[i]->name));
    }
    gather->arm();
  };
  // The targets: each stream's last id now.
  auto gather = std::make_shared<redis::Gather>([alive, st, poll](const Status& s) {
    if (!*alive) return;
    if (!s.ok()) {
      auto finish = std::move(st->done);
      finish(s, Report{});
      *poll = nullptr;
      return;
    }
    (*poll)();
  });
  for (size_t i = 0; i < shards_.size(); ++i) {
    shards_[i]->shard->command({"XINFO", "STREAM", keys_.stream()},
                               gather->add(
                                   [st, i, gather_ptr = gather.get(), name = shards_[i]->name](
                                       const redisReply* r) {
                                     if (!redis::reply_is_array(r)) {
                                       if (redis::reply_str(r).find("no such key") != std::string_view::npos) {
                                         st->drained[i] = true;  // no stream: nothing queued
                                       } else {
                                         gather_ptr->fail(Status::Unavailable(
                                             fmt::format("flush: {}: {}", name, redis::reply_str(r))));
                                       }
                                       return;
                                     }
                                     for (size_t k = 0; k + 1 < r->elements; k += 2) {
                                       std::string_view key = redis::reply_str(r->element[k]);
                                       if (key == "last-generated-id") {
                                         st->targets[i] = parse_stream_id(redis::reply_str(r->element[k + 1]));
                                       } else if (key == "length") {
                                         st->queued += redis::reply_int(r->element[k + 1]);
                                       }
                                     }
                                   },
                                   true, shards_[i]->name));
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

void RedisStore::metrics(std::vector<Metric>* out) const {
  auto add = [out](const char* name, const char* help, uint64_t v) {
    out->push_back(Metric{name, "counter", help, static_cast<double>(v), {}});
  };
  add("taba_redis_entries_appended_total", "fe: stream entries appended.", stats_.entries_appended);
  add("taba_redis_submit_failures_total", "fe: bodies answered 503 by the Redis store.", stats_.submit_failures);
  add("taba_redis_binding_conflicts_total", "fe: bodies answered 400 for a type conflict.", stats_.binding_conflicts);
  out->push_back(Metric{"taba_store_limit_refusals_total", "counter",
                        "Bodies refused (422) because they would pass a cardinality limit.",
                        static_cast<double>(stats_.refused_max_names), {{"limit", "max_names"}}});
  add("taba_redis_entries_applied_total", "be: entries applied.", stats_.entries_applied);
  add("taba_redis_entries_duplicate_total", "be: entries skipped as already applied (batch id seen).",
      stats_.entries_duplicate);
  add("taba_redis_deltas_applied_total", "be: deltas merged.", stats_.deltas_applied);
  add("taba_redis_deltas_dropped_total", "be: deltas dropped (type mismatch, unreadable).", stats_.deltas_dropped);
  add("taba_redis_txn_conflicts_total", "be: transactions aborted by WATCH and retried.", stats_.txn_conflicts);
  add("taba_redis_txn_failures_total", "be: transactions failed (connection, timeout) and retried.",
      stats_.txn_failures);
  add("taba_redis_entries_claimed_total", "be: entries claimed from idle consumers.", stats_.entries_claimed);
  out->push_back(Metric{"taba_redis_in_flight_bytes", "gauge", "fe: bytes of posts being written to Redis.",
                        static_cast<double>(in_flight_bytes_), {}});
  for (const auto& s : shards_) {
    out->push_back(Metric{"taba_redis_shard_up", "gauge", "1 when the shard has a verified master.",
                          s->shard->ready() ? 1.0 : 0.0, {{"shard", s->name}}});
  }
  for (const auto& s : shards_) {
    out->push_back(Metric{"taba_redis_stream_length", "gauge", "Entries in the shard's ingest stream (unapplied).",
                          static_cast<double>(s->stream_length), {{"shard", s->name}}});
  }
  for (const auto& s : shards_) {
    out->push_back(Metric{"taba_redis_master_changes_total", "counter", "Master address changes seen.",
                          static_cast<double>(s->shard->master_changes()), {{"shard", s->name}}});
  }
}

}  // namespace taba::store
