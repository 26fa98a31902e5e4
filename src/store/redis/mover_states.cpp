// The "states" phase of a re-shard move (mover.h): the source's states of
// the range are merged into the target chunk by chunk, each chunk marked in
// the target's `P movedone` in the same transaction, made durable, then
// deleted from the source.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/mover.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

constexpr size_t kChunkNames = 64;

// ARGV: key prefix, then names. Deletes each name's states, aggregate and
// binding, and unregisters its clients where it was their last name.
constexpr const char* kDeleteScript = R"lua(
local p = ARGV[1]
for i = 2, #ARGV do
  local n = ARGV[i]
  local clients = redis.call('HKEYS', p .. 's:' .. n)
  redis.call('DEL', p .. 's:' .. n, p .. 'a:' .. n)
  redis.call('HDEL', p .. 'types', n)
  for _, c in ipairs(clients) do
    redis.call('SREM', p .. 'cn:' .. c, n)
    if redis.call('SCARD', p .. 'cn:' .. c) == 0 then redis.call('SREM', p .. 'clients', c) end
  end
end
return #ARGV - 1
)lua";

}  // namespace

// One chunk of names of the states phase.
struct Mover::Chunk {
  struct Name {
    std::string name;
    std::string type;
    const plugin::Handler* handler = nullptr;
    std::vector<std::pair<std::string, std::string>> source_states;  // client -> blob
    std::string source_aggregate;
    bool has_aggregate = false;
    // Target side:
    bool done_there = false;
    std::string bound_there;
    std::vector<std::pair<std::string, std::string>> target_states;
    std::string target_aggregate;
    bool target_has_aggregate = false;
  };
  std::vector<Name> names;
  uint64_t bytes = 0;
  bool committed = false;
};

// --- states ---------------------------------------------------------------

void Mover::states() {
  if (pending_index_ < pending_.size()) return next_chunk();  // a chunk to finish (after a failure)
  scan_states();
}

void Mover::scan_states() {
  auto alive = alive_;
  from_->shard->command(
      {"HSCAN", store_->keys().types(), cursor_, "COUNT", kScanCount},
      [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok() || !redis::reply_is_array(r) || r->elements != 2) {
          return failed("scanning the source's names", s.ok() ? Status::Unavailable("bad HSCAN reply") : s);
        }
        cursor_ = std::string(redis::reply_str(r->element[0]));
        pass_end_ = cursor_ == "0";
        const redisReply* items = r->element[1];
        pending_.clear();
        pending_index_ = 0;
        for (size_t i = 0; i + 1 < items->elements; i += 2) {
          std::string_view name = redis::reply_str(items->element[i]);
          if (!move_.contains(store_->vbucket(name))) continue;
          if (pending_.empty() || pending_.back()->names.size() >= chunk_names()) {
            pending_.push_back(std::make_shared<Chunk>());
          }
          Chunk::Name n;
          n.name = std::string(name);
          n.type = std::string(redis::reply_str(items->element[i + 1]));
          n.handler = store_->registry()->find(n.type);
          pending_.back()->names.push_back(std::move(n));
          ++found_in_pass_;
        }
        if (!pending_.empty()) return next_chunk();
        page_done();
      });
}

// A scan page's chunks are done (or it had none): the next page, or at the
// end of a pass: another pass while the last one found names (the final
// pass proves the source holds none of the range), then the fence check.
// A cancel turns the pass into a settling one first (see states()).
void Mover::page_done() {
  pending_.clear();
  pending_index_ = 0;
  if (cancel_ && move_.cancels.empty() && !settling_) {
    // Before turning round, no name may be both merged into the target and
    // still on the source (a chunk a dead driver left half done): one pass
    // that deletes only those.
    settling_ = true;
    cursor_ = "0";
    pass_end_ = false;
    return schedule(0);
  }
  if (!pass_end_) return schedule(0);
  pass_end_ = false;
  if (settling_) {
    settling_ = false;
    return reverse();
  }
  if (found_in_pass_ == 0) return verify_fence();
  found_in_pass_ = 0;
  schedule(0);
}

size_t Mover::chunk_names() const {
  int64_t rate = store_->config().reshard_names_per_s;
  if (rate <= 0) return kChunkNames;
  return std::clamp<size_t>(static_cast<size_t>(rate / 10), 1, kChunkNames);
}

void Mover::next_chunk() {
  if (pending_index_ == pending_.size()) return page_done();
  if (cancel_ && move_.cancels.empty() && !settling_ && !in_flight_) return page_done();  // settle, then reverse
  // reshard_names_per_s: a chunk starts no earlier than its share of a second after the last.
  int64_t rate = store_->config().reshard_names_per_s;
  double now = wall_now();
  if (rate > 0 && !in_flight_ && chunk_started_ > 0) {
    double due = chunk_started_ + static_cast<double>(pending_[pending_index_]->names.size()) / static_cast<double>(rate);
    if (due > now) {
      auto alive = alive_;
      UvTimer::after(store_->loop(), static_cast<uint64_t>((due - now) * 1000) + 1, [this, alive] {
        if (*alive && !finished_) next_chunk();
      });
      chunk_started_ = due;  // start exactly on the schedule next time
      in_flight_ = true;     // (the wait is part of the chunk)
      return;
    }
  }
  if (!in_flight_) chunk_started_ = now;
  in_flight_ = true;
  move_chunk(pending_[pending_index_]);
}

// Reads the chunk's names on the source.
void Mover::move_chunk(std::shared_ptr<Chunk> chunk) {
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  for (auto& n : chunk->names) {
    n.source_states.clear();
    n.has_aggregate = false;
  }
  auto gather = std::make_shared<redis::Gather>([this, alive, chunk](const Status& s) {
    if (!*alive) return;
    if (!s.ok()) return failed("reading the source's states", s);
    merge_chunk(chunk);
  });
  for (auto& n : chunk->names) {
    Chunk::Name* np = &n;
    from_->shard->command({"HGETALL", k.states(n.name)}, gather->add([np, chunk](const redisReply* r) {
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        np->source_states.emplace_back(redis::reply_str(r->element[i]), redis::reply_str(r->element[i + 1]));
        chunk->bytes += r->element[i + 1]->len;
      }
    }));
    from_->shard->command({"GET", k.aggregate(n.name)}, gather->add([np, chunk](const redisReply* r) {
      if (redis::reply_is_nil(r)) return;
      np->source_aggregate = std::string(redis::reply_str(r));
      np->has_aggregate = true;
      chunk->bytes += r->len;
    }));
  }
  gather->arm();
}

// On the target: WATCH, read, merge, MULTI/EXEC (states, aggregate,
// binding, client registry, movedone), WAIT.
void Mover::merge_chunk(std::shared_ptr<Chunk> chunk) {
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  std::vector<std::string> watch{"WATCH", k.move_done(), k.types()};
  for (const auto& n : chunk->names) {
    watch.push_back(k.states(n.name));
    watch.push_back(k.aggregate(n.name));
  }
  auto reads = std::make_shared<redis::Gather>([this, alive, chunk](const Status& s) {
    if (!*alive) return;
    if (!s.ok()) {
      to_txn_->command({"UNWATCH"}, [](const Status&, const redisReply*) {});
      return failed("reading the target's states", s);
    }
    commit_chunk(chunk);
  });
  to_txn_->command(views(watch), reads->add(nullptr));
  std::vector<std::string> ismember{"SMISMEMBER", k.move_done()};
  std::vector<std::string> hmget{"HMGET", k.types()};
  for (const auto& n : chunk->names) {
    ismember.push_back(n.name);
    hmget.push_back(n.name);
  }
  to_txn_->command(views(ismember), reads->add([chunk](const redisReply* r) {
    if (!redis::reply_is_array(r)) return;
    for (size_t i = 0; i < r->elements && i < chunk->names.size(); ++i) {
      chunk->names[i].done_there = redis::reply_int(r->element[i]) == 1;
    }
  }));
  to_txn_->command(views(hmget), reads->add([chunk](const redisReply* r) {
    if (!redis::reply_is_array(r)) return;
    for (size_t i = 0; i < r->elements && i < chunk->names.size(); ++i) {
      chunk->names[i].bound_there = std::string(redis::reply_str(r->element[i]));
    }
  }));
  for (auto& n : chunk->names) {
    Chunk::Name* np = &n;
    np->target_states.clear();
    np->target_has_aggregate = false;
    to_txn_->command({"HGETALL", k.states(n.name)}, reads->add([np](const redisReply* r) {
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        np->target_states.emplace_back(redis::reply_str(r->element[i]), redis::reply_str(r->element[i + 1]));
      }
    }));
    to_txn_->command({"GET", k.aggregate(n.name)}, reads->add([np](const redisReply* r) {
      if (redis::reply_is_nil(r)) return;
      np->target_aggregate = std::string(redis::reply_str(r));
      np->target_has_aggregate = true;
    }));
  }
  reads->arm();
}

void Mover::commit_chunk(std::shared_ptr<Chunk> chunk) {
  auto alive = alive_;
  const redis::Keys& k = store_->keys();
  double now = wall_now();
  std::vector<std::vector<std::string>> cmds;
  std::map<std::string, std::vector<std::string>> client_names;
  std::vector<std::string> done{"SADD", k.move_done()};
  std::string tmp;
  auto encode = [&](const plugin::Handler* h, const State& st, std::string* out) {
    if (!h->serialize(st.get(), &tmp)) return false;
    *out = redis::encode_state(h->state_version(), tmp);
    return true;
  };
  for (auto& n : chunk->names) {
    if (n.done_there || settling_) continue;  // merged by an earlier attempt (or only settling)
    const plugin::Handler* h = n.handler;
    if (!h) {
      error_ = fmt::format("no loaded plugin serves type \"{}\" of \"{}\"; its states cannot be merged here", n.type,
                           n.name);
      to_txn_->command({"UNWATCH"}, [](const Status&, const redisReply*) {});
      return failed("merging", Status::Unavailable(error_));
    }
    if (!n.bound_there.empty() && n.bound_there != n.type) {
      // Cannot happen while bindings are fenced; dropped loudly rather than
      // blocking the move.
      log::error("reshard {}: \"{}\" is bound to {} on {} but to {} on {}; the source's states are dropped", move_.id,
                 n.name, n.bound_there, move_.to, n.type, move_.from);
      done.push_back(n.name);
      continue;
    }
    std::map<std::string, State> merged;
    for (const auto& [client, blob] : n.target_states) {
      State st;
      if (load_state(h, blob, &st)) merged[client] = std::move(st);
    }
    for (const auto& [client, blob] : n.source_states) {
      State st;
      if (!load_state(h, blob, &st)) {
        log::error("reshard {}: a stored state of (\"{}\", \"{}\") on {} is unreadable; dropped", move_.id, n.name,
                   client, move_.from);
        continue;
      }
      auto it = merged.find(client);
      if (it == merged.end()) {
        merged[client] = std::move(st);
      } else {
        h->merge(it->second.get(), st.get(), now);
      }
    }
    State agg;
    if (n.target_has_aggregate) (void)load_state(h, n.target_aggregate, &agg);
    if (n.has_aggregate) {
      State src;
      if (load_state(h, n.source_aggregate, &src)) {
        if (!agg) {
          agg = std::move(src);
        } else {
          h->merge(agg.get(), src.get(), now);
        }
      }
    }
    std::vector<std::string> hset{"HSET", k.states(n.name)};
    for (const auto& [client, blob] : n.source_states) {
      std::string out;
      auto it = merged.find(client);
      if (it == merged.end() || !encode(h, it->second, &out)) continue;
      hset.push_back(client);
      hset.push_back(std::move(out));
      client_names[client].push_back(n.name);
    }
    if (hset.size() > 2) cmds.push_back(std::move(hset));
    std::string agg_blob;
    if (agg && encode(h, agg, &agg_blob)) cmds.push_back({"SET", k.aggregate(n.name), std::move(agg_blob)});
    cmds.push_back({"HSETNX", k.types(), n.name, n.type});
    done.push_back(n.name);
  }
  redis::register_clients(k, client_names, &cmds);
  if (done.size() > 2) cmds.push_back(std::move(done));
  // Durable on the target's replicas before the source lets go; also when
  // an earlier attempt merged the names (its WAIT may have failed: a
  // failover can still drop what it wrote).
  auto durable = [this, alive, chunk] {
    to_txn_->command({"WAIT", std::to_string(store_->config().min_replica_acks),
                      std::to_string(store_->config().replica_ack_timeout_ms)},
                     [this, alive, chunk](const Status& w, const redisReply* r) {
                       if (!*alive) return;
                       if (!w.ok()) return failed("waiting for the target's replicas", w);
                       if (redis::reply_int(r) < store_->config().min_replica_acks) {
                         return failed("waiting for the target's replicas",
                                       Status::Unavailable(fmt::format("{} of {} acknowledged", redis::reply_int(r),
                                                                       store_->config().min_replica_acks)));
                       }
                       delete_chunk(chunk);
                     },
                     static_cast<uint32_t>(store_->config().replica_ack_timeout_ms +
                                           store_->config().command_timeout_ms));
  };
  if (cmds.empty()) {
    to_txn_->command({"UNWATCH"}, [](const Status&, const redisReply*) {});
    if (store_->config().min_replica_acks == 0) return delete_chunk(chunk);
    // WAIT covers this connection's own writes: marking the names again
    // (no change) makes it cover the earlier attempt's, when this master
    // still holds them.
    std::vector<std::string> again{"SADD", k.move_done()};
    for (const auto& n : chunk->names) {
      if (n.done_there) again.push_back(n.name);
    }
    if (again.size() > 2) to_txn_->command(views(again), [](const Status&, const redisReply*) {});
    return durable();
  }
  auto exec = std::make_shared<redis::Gather>([this, alive, chunk, durable](const Status& s) {
    if (!*alive) return;
    if (!s.ok()) return failed("merging into the target", s);
    if (!chunk->committed) return merge_chunk(chunk);  // a WATCHed key changed (its be applied): again
    durable();
  });
  chunk->committed = false;
  to_txn_->command({"MULTI"}, exec->add(nullptr));
  for (const auto& c : cmds) to_txn_->command(views(c), exec->add(nullptr, true));
  to_txn_->command({"EXEC"}, exec->add([chunk](const redisReply* r) { chunk->committed = redis::reply_is_array(r); }));
  exec->arm();
}

// On the source: delete the chunk's names (script), WAIT.
void Mover::delete_chunk(std::shared_ptr<Chunk> chunk) {
  auto alive = alive_;
  std::vector<std::string> argv{"EVAL", kDeleteScript, "0", store_->keys().prefix()};
  uint64_t merged = 0;
  for (const auto& n : chunk->names) {
    if (settling_ && !n.done_there) continue;  // settling deletes only what is merged already
    argv.push_back(n.name);
    ++merged;
  }
  auto after = [this, alive, chunk, merged] {
    if (!*alive) return;
    in_flight_ = false;
    failures_ = 0;
    error_.clear();
    names_moved_ += merged;
    if (!settling_) bytes_moved_ += chunk->bytes;
    ++pending_index_;
    next_chunk();
  };
  if (argv.size() == 4) return after();
  from_txn_->command(views(argv), [this, alive, after](const Status& s, const redisReply* r) {
    if (!*alive) return;
    if (!s.ok() || redis::reply_is_error(r)) {
      return failed("deleting from the source", s.ok() ? Status::Unavailable(std::string(redis::reply_str(r))) : s);
    }
    if (store_->config().min_replica_acks == 0) return after();
    from_txn_->command({"WAIT", std::to_string(store_->config().min_replica_acks),
                        std::to_string(store_->config().replica_ack_timeout_ms)},
                       [this, alive, after](const Status& w, const redisReply* rr) {
                         if (!*alive) return;
                         if (!w.ok() || redis::reply_int(rr) < store_->config().min_replica_acks) {
                           return failed("waiting for the source's replicas",
                                         w.ok() ? Status::Unavailable("not enough replicas acknowledged") : w);
                         }
                         after();
                       },
                       static_cast<uint32_t>(store_->config().replica_ack_timeout_ms +
                                             store_->config().command_timeout_ms));
  });
}

// The source holds none of the range: check that its fence still holds (a
// failover to a replica that missed it would have it take writes again).
void Mover::verify_fence() {
  auto alive = alive_;
  from_->shard->command(
      {"GETRANGE", store_->keys().owned(), std::to_string(move_.first), std::to_string(move_.last)},
      [this, alive](const Status& s, const redisReply* r) {
        if (!*alive) return;
        if (!s.ok()) return failed("checking the source's fence", s);
        std::string_view bytes = redis::reply_str(r);
        if (bytes.find_first_not_of('0') != std::string_view::npos) {
          log::error("reshard {}: the source {} takes writes of the range again (a failover lost the fence); "
                     "fencing again",
                     move_.id, move_.from);
          return switching_again();
        }
        finishing();
      });
}

// The fence was lost: fence again, wait for the stream, move what came in.
void Mover::switching_again() {
  auto alive = alive_;
  std::string zeros(move_.last - move_.first + 1, '0');
  from_txn_->command({"SETRANGE", store_->keys().owned(), std::to_string(move_.first), zeros},
                     [this, alive](const Status& s, const redisReply*) {
                       if (!*alive) return;
                       if (!s.ok()) return failed("fencing the source again", s);
                       cursor_ = "0";
                       pass_end_ = false;
                       found_in_pass_ = 1;  // forces another full pass
                       draining();
                     });
}

}  // namespace taba::store
