// The fe's side of the Redis store: a post becomes one delta per (client,
// name) (pre-aggregated here; a delta batch from POST /post_delta already
// is one), ingest.max_names_per_client is checked (redis_client_limit.cpp),
// its new names are bound to their types on their shards (first writer
// wins, within the shard's share of ingest.max_names), one stream entry
// per shard is appended with XADD, and
// WAIT holds the answer until enough replicas have it when configured.
#include "store/redis/redis_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "core/clock.h"
#include "core/uv_timer.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "redis/reply.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

constexpr uint64_t kMaxInFlightBytes = 256ull << 20;

// Binds names to types, first writer wins; returns each name's binding.
// KEYS: types, owned (fence bytes), bindlog. ARGV: this shard's share of
// ingest.max_names (0 = no limit), then (name, type, vbucket) triples.
// Replies each name's binding, then a string with '1' for each name this
// call bound and '0' for the others. When the new names would pass the
// share, nothing is bound and the reply is {'!', names held, new names}. A
// vbucket this shard does not own (placement.h) fails the call with MOVED
// and binds nothing; a name bound while its vbucket moves out is logged in
// bindlog for the move to copy.
constexpr const char* kBindScript = R"lua(
local owned = redis.call('GET', KEYS[2])
local cap = tonumber(ARGV[1])
local out, fresh = {}, {}
for i = 2, #ARGV, 3 do
  local f = owned and string.byte(owned, tonumber(ARGV[i + 2]) + 1)
  if f ~= 49 and f ~= 109 then return redis.error_reply('MOVED vbucket ' .. ARGV[i + 2] .. ' is not owned here') end
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
for i = 2, #ARGV, 3 do flags[#flags + 1] = '0' end
for _, i in ipairs(fresh) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  flags[(i + 1) / 3] = '1'
  if string.byte(owned, tonumber(ARGV[i + 2]) + 1) == 109 then redis.call('SADD', KEYS[3], ARGV[i]) end
end
out[#out + 1] = table.concat(flags)
return out
)lua";

// Appends a stream entry when this shard owns every vbucket it holds deltas
// of (the fence, placement.h); else fails with MOVED and appends nothing.
// KEYS: stream, owned. ARGV: id, t, n, d, then the vbuckets.
constexpr const char* kAppendScript = R"lua(
local owned = redis.call('GET', KEYS[2])
for i = 5, #ARGV do
  local f = owned and string.byte(owned, tonumber(ARGV[i]) + 1)
  if f ~= 49 and f ~= 109 then return redis.error_reply('MOVED vbucket ' .. ARGV[i] .. ' is not owned here') end
end
return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 't', ARGV[2], 'n', ARGV[3], 'd', ARGV[4])
)lua";

// Attempts of one post against placements that keep fencing it (a move's
// switch takes a few round trips) before it is answered 503.
constexpr int kMaxPlacementAttempts = 12;

bool is_moved(const redisReply* r) { return redis::reply_is_error(r) && redis::reply_str(r).substr(0, 5) == "MOVED"; }

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

}  // namespace

struct RedisStore::Submit {
  std::string batch;  // kept to route it again when a shard fences it
  std::string batch_id;
  int attempts = 0;
  bool moved = false;                       // a shard answered MOVED
  std::vector<std::vector<uint32_t>> vbuckets;  // per shard: the vbuckets of its deltas
  Bindings bindings;
  std::function<void(const Status&)> done;
  std::vector<std::string> payloads;  // per shard; "" = nothing for that shard
  std::vector<uint64_t> events;       // per shard
  double enqueue_time = 0;
  uint64_t bytes = 0;
  redis::ClientNames client_names;  // filled while ingest.max_names_per_client is on
};

namespace {

void note_vbucket(std::vector<uint32_t>* list, uint32_t v) {
  if (std::find(list->begin(), list->end(), v) == list->end()) list->push_back(v);
}

// Each shard's deltas as its stream entry's payload ("" for none).
void take_payloads(std::vector<redis::DeltaWriter>* writers, std::vector<std::string>* payloads, uint64_t* bytes) {
  payloads->clear();
  payloads->resize(writers->size());
  for (size_t i = 0; i < writers->size(); ++i) {
    if ((*writers)[i].count() == 0) continue;
    (*payloads)[i] = (*writers)[i].finish();
    *bytes += (*payloads)[i].size();
  }
}

}  // namespace

void RedisStore::submit(std::string batch, BatchId batch_id, Bindings new_bindings,
                        std::function<void(const Status&)> done) {
  auto defer = [this, &done](Status s) {
    ++stats_.submit_failures;
    done(s);
  };
  if (closing_) return defer(Status::Unavailable("server is shutting down"));
  for (const auto& s : shards_) {
    if (!s->owns) continue;
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

  sub->batch = std::move(batch);
  Status s = protocol::is_delta_batch(sub->batch) ? shard_deltas(sub->batch, sub.get())
                                                  : shard_events(sub->batch, sub.get());
  if (!s.ok()) return defer(s);
  sub->bytes += sub->batch.size();
  in_flight_bytes_ += sub->bytes;
  auto alive = alive_;
  check_client_names(sub->client_names, [this, alive, sub](const Status& checked) {
    if (!*alive) return;
    if (checked.ok()) return bind_then_append(sub);
    in_flight_bytes_ -= sub->bytes;
    if (checked.code() != Status::Code::kLimit) ++stats_.submit_failures;
    sub->done(checked);
  });
}

// A shard fenced part of the post (it no longer owns a vbucket of it): learn
// the placement and route the whole post again. Parts already appended are
// appended again; the be applies each (batch id, vbucket) once, so they
// count once. A post still fenced after kMaxPlacementAttempts (a move's
// switch stuck) is answered 503, to be retried with the same batch id.
void RedisStore::resubmit(const std::shared_ptr<Submit>& sub) {
  ++stats_.fenced;
  if (++sub->attempts >= kMaxPlacementAttempts) {
    in_flight_bytes_ -= sub->bytes;
    ++stats_.submit_failures;
    sub->done(Status::Unavailable(
        "its vbuckets are moving between shards and the move has not switched yet; retry with the same "
        "Taba-Batch-Id"));
    return;
  }
  auto alive = alive_;
  uint64_t epoch = placement_.epoch;
  refresh_placement([this, alive, sub, epoch](const Status&) {
    if (!*alive) return;
    auto again = [this, alive, sub] {
      if (!*alive) return;
      in_flight_bytes_ -= sub->bytes;
      sub->bytes = sub->batch.size();
      sub->moved = false;
      Status s = protocol::is_delta_batch(sub->batch) ? shard_deltas(sub->batch, sub.get())
                                                      : shard_events(sub->batch, sub.get());
      if (!s.ok()) {
        ++stats_.submit_failures;
        return sub->done(s);
      }
      in_flight_bytes_ += sub->bytes;
      bind_then_append(sub);
    };
    // A shard the post now goes to may have just joined: let it connect.
    bool connecting = false;
    for (const auto& s : shards_) {
      if (s->owns && !s->shard->ready()) connecting = true;
    }
    if (placement_.epoch != epoch && !connecting) return again();
    // Same placement (the move is between its fence and its switch), or a
    // shard still connecting: wait.
    UvTimer::after(loop_, static_cast<uint64_t>(25 * sub->attempts), again);
  });
}

Status RedisStore::shard_events(std::string_view batch, Submit* sub) {
  // Pre-aggregate: one delta state per (client, name).
  protocol::BatchReader reader(batch, /*written_here=*/true);
  Status s = reader.open();
  TABA_RETURN_IF_ERROR(s);
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
    if (!h) return Status::Invalid(fmt::format("no loaded plugin serves type \"{}\"", block.type));
    taba_state* delta = h->new_state(block.client, now);
    if (!delta) return Status::Unavailable(fmt::format("the {} handler could not create a state", block.type));
    h->fold(delta, events.data(), events.size(), now);
    key.assign(block.client);
    key.push_back('\0');
    key.append(block.name);
    auto [it, fresh] = index.emplace(key, accs.size());
    if (fresh) {
      accs.push_back(Acc{h, State(h, delta), std::string(block.client), std::string(block.name), block.event_count});
    } else {
      Acc& acc = accs[it->second];
      h->merge(acc.state.get(), delta, now);
      h->free_state(delta);
      acc.events += block.event_count;
    }
  }
  TABA_RETURN_IF_ERROR(s);
  std::vector<redis::DeltaWriter> writers(shards_.size());
  sub->events.assign(shards_.size(), 0);
  sub->vbuckets.assign(shards_.size(), {});
  std::string tmp;
  const bool per_client = limits_.max_names_per_client > 0;
  sub->client_names.clear();
  for (const Acc& acc : accs) {
    if (per_client) sub->client_names.add(acc.client, acc.name);
    if (!acc.handler->serialize(acc.state.get(), &tmp)) {
      return Status::Internal(fmt::format("the {} handler could not serialize a delta", acc.handler->type_name));
    }
    uint32_t vb = vbucket(acc.name);
    size_t shard = vbucket_shard_[vb];
    writers[shard].add(acc.name, acc.handler->type_name, acc.client, acc.handler->state_version(), tmp);
    sub->events[shard] += acc.events;
    note_vbucket(&sub->vbuckets[shard], vb);
  }
  take_payloads(&writers, &sub->payloads, &sub->bytes);
  return Status::Ok();
}

// The delta batch's blocks go to their shards unchanged: folded at the
// edge, they need no pre-aggregation (POST /post_delta checked that each
// deserializes with a loaded plugin).
Status RedisStore::shard_deltas(std::string_view batch, Submit* sub) {
  protocol::DeltaReader reader(batch);
  TABA_RETURN_IF_ERROR(reader.open());
  std::vector<redis::DeltaWriter> writers(shards_.size());
  sub->events.assign(shards_.size(), 0);
  sub->vbuckets.assign(shards_.size(), {});
  protocol::DeltaBlock block;
  Status s;
  const bool per_client = limits_.max_names_per_client > 0;
  sub->client_names.clear();
  while (reader.next(&block, &s)) {
    if (per_client) sub->client_names.add(block.client, block.name);
    uint32_t vb = vbucket(block.name);
    size_t shard = vbucket_shard_[vb];
    writers[shard].add(block.name, block.type, block.client, block.state_version, block.state);
    sub->events[shard] += block.events;
    note_vbucket(&sub->vbuckets[shard], vb);
  }
  TABA_RETURN_IF_ERROR(s);
  take_payloads(&writers, &sub->payloads, &sub->bytes);
  return Status::Ok();
}

void RedisStore::set_name_limits(const NameLimits& limits) {
  limits_ = limits;
  const auto vbuckets = static_cast<uint64_t>(placement_.vbuckets);
  for (auto& s : shards_) {
    uint64_t own = 0;
    for (const auto& [first, last] : placement_.ranges_of(s->name)) own += uint64_t{last} - first + 1;
    // A shard that owns nothing yet (a move's target) gets at least 1: 0 means no limit.
    s->max_names = limits.max_names == 0 ? 0 : std::max<uint64_t>(1, (limits.max_names * own + vbuckets - 1) / vbuckets);
  }
}

void RedisStore::bind_then_append(const std::shared_ptr<Submit>& sub) {
  std::vector<std::vector<std::string>> argv(shards_.size());
  std::vector<std::vector<const std::pair<std::string, const plugin::Handler*>*>> wanted(shards_.size());
  for (const auto& b : sub->bindings) {
    uint32_t vb = vbucket(b.first);
    size_t s = vbucket_shard_[vb];
    if (argv[s].empty()) {
      argv[s] = {"EVAL", kBindScript, "3", keys_.types(), keys_.owned(), keys_.bindlog(),
                 std::to_string(shards_[s]->max_names)};
    }
    argv[s].push_back(b.first);
    argv[s].push_back(b.second->type_name);
    argv[s].push_back(std::to_string(vb));
    wanted[s].push_back(&b);
  }
  auto alive = alive_;
  auto conflict = std::make_shared<std::string>();
  auto limited = std::make_shared<std::string>();
  auto failed = std::make_shared<std::string>();  // an error reply other than MOVED
  // Per shard, the names this body bound there first.
  auto fresh = std::make_shared<std::vector<std::vector<std::string>>>(shards_.size());
  auto gather = std::make_shared<redis::Gather>([this, alive, sub, conflict, limited, fresh, failed](Status s) {
    if (!*alive) return;
    if (s.ok() && !failed->empty()) s = Status::Unavailable(*failed);
    if (s.ok() && sub->moved && conflict->empty() && limited->empty()) return resubmit(sub);
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
                                                   [names, conflict, limited, fresh, s, shard, this, sub, failed](const redisReply* r) {
                                                     if (is_moved(r)) sub->moved = true;
                                                     if (redis::reply_is_error(r) && !is_moved(r) && failed->empty()) {
                                                       *failed = fmt::format("{}: {}", shard->name, redis::reply_str(r));
                                                     }
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
                                                   true, shards_[s]->name));
  }
  gather->arm();
}

void RedisStore::append(const std::shared_ptr<Submit>& sub) {
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, sub](const Status& s) {
    if (!*alive) return;
    if (s.ok() && sub->moved) return resubmit(sub);
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
  std::string stream = keys_.stream();
  std::string owned = keys_.owned();
  for (size_t i = 0; i < sub->payloads.size(); ++i) {
    if (sub->payloads[i].empty()) continue;
    ShardCtx* s = shards_[i].get();
    std::string n = std::to_string(sub->events[i]);
    std::vector<std::string> vbs;
    vbs.reserve(sub->vbuckets[i].size());
    for (uint32_t v : sub->vbuckets[i]) vbs.push_back(std::to_string(v));
    std::vector<std::string_view> argv{"EVAL", kAppendScript, "2", stream, owned, sub->batch_id, t, n, sub->payloads[i]};
    for (const std::string& v : vbs) argv.push_back(v);
    redis::Connection::Callback done = gather->add(nullptr, false, s->name);
    s->writer->command(
        argv,
        [this, alive, s, sub, done](const Status& st, const redisReply* r) {
          if (!*alive) return;
          if (st.ok() && is_moved(r)) {
            sub->moved = true;
            return done(st, nullptr);
          }
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

}  // namespace taba::store
