// One apply transaction of the be: read, merge, commit. See apply_attempt.h.
#include "store/redis/apply_attempt.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/clock.h"
#include "core/log.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {

ApplyAttempt::ApplyAttempt(RedisStore* store, std::string shard_name, const std::vector<Applier::Entry>& batch,
                           const redis::Placement& placement)
    : store_(store), shard_name_(std::move(shard_name)), batch_(batch), vbuckets_total_(placement.vbuckets) {
  const redis::Keys& keys = store_->keys();
  deltas_.resize(batch_.size());
  vbuckets_.resize(batch_.size());
  dedup_keys_.resize(batch_.size());
  markers_.resize(batch_.size());
  elsewhere_.resize(batch_.size());
  foreign_.resize(batch_.size());
  double now = wall_now();
  double ttl = static_cast<double>(store_->config().dedup_ttl_s);
  std::vector<std::string> owners;
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (batch_[i].deleted) continue;
    Status s = redis::decode_deltas(batch_[i].deltas, &deltas_[i]);
    if (!s.ok()) {
      log::error("be {}: entry {} is unreadable and is dropped: {}", shard_name_, batch_[i].id, s.message());
      deltas_[i].clear();
      ++store_->mutable_stats().deltas_dropped;
    }
    if (!batch_[i].batch_id.empty()) dedup_keys_[i] = keys.dedup(batch_[i].batch_id);
    for (const redis::Delta& d : deltas_[i]) {
      uint32_t vb = redis::vbucket_of(d.name, vbuckets_total_);
      vbuckets_[i].push_back(vb);
      if (!dedup_keys_[i].empty()) {
        placement.previous_owners(vb, now, ttl, &owners);
        for (const std::string& o : owners) {
          if (std::find(elsewhere_[i].begin(), elsewhere_[i].end(), o) == elsewhere_[i].end()) {
            elsewhere_[i].push_back(o);
          }
        }
      }
      auto [it, fresh] = name_index_.emplace(std::string(d.name), names_.size());
      if (fresh) {
        NameWork nw;
        nw.name = std::string(d.name);
        names_.push_back(std::move(nw));
      }
      NameWork& nw = names_[it->second];
      if (nw.client_index.emplace(std::string(d.client), nw.clients.size()).second) {
        nw.clients.emplace_back(d.client);
      }
    }
  }
}

// WATCH + reads, pipelined on the transaction connection.
void ApplyAttempt::read(redis::Connection* txn, redis::Gather* gather) {
  const redis::Keys& keys = store_->keys();
  std::vector<std::string> watch_keys;
  for (const std::string& k : dedup_keys_) {
    if (!k.empty()) watch_keys.push_back(k);
  }
  if (!names_.empty()) {
    watch_keys.push_back(keys.types());  // a binding removed or made meanwhile
    watch_keys.push_back(keys.tombs());  // a name deleted meanwhile
  }
  for (const NameWork& nw : names_) {
    watch_keys.push_back(keys.states(nw.name));
    watch_keys.push_back(keys.aggregate(nw.name));
  }
  auto w = shared_from_this();
  std::vector<std::string_view> watch{"WATCH"};
  for (const std::string& k : watch_keys) watch.push_back(k);
  txn->command(watch, gather->add(nullptr, false, "WATCH"));
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (dedup_keys_[i].empty()) continue;
    txn->command({"GET", dedup_keys_[i]}, gather->add([w, i](const redisReply* r) {
      if (!redis::reply_is_nil(r)) w->markers_[i] = std::string(redis::reply_str(r));
    }));
    // The vbucket's previous owners: their markers are final (they no
    // longer take its writes and applied everything from before the switch).
    foreign_[i].resize(elsewhere_[i].size());
    for (size_t k = 0; k < elsewhere_[i].size(); ++k) {
      RedisStore::ShardCtx* other = store_->add_shard(elsewhere_[i][k]);
      ++store_->mutable_stats().dedup_lookups;
      other->shard->command({"GET", dedup_keys_[i]}, gather->add(
                                                         [w, i, k](const redisReply* r) {
                                                           if (!redis::reply_is_nil(r)) {
                                                             w->foreign_[i][k] = std::string(redis::reply_str(r));
                                                           }
                                                         },
                                                         false, other->name));
    }
  }
  if (!names_.empty()) {
    std::vector<std::string_view> hmget{"HMGET"};
    std::string types = keys.types();
    hmget.push_back(types);
    for (const NameWork& nw : names_) hmget.push_back(nw.name);
    txn->command(hmget, gather->add([w](const redisReply* r) {
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i < r->elements && i < w->names_.size(); ++i) {
        w->names_[i].bound = std::string(redis::reply_str(r->element[i]));
      }
    }));
    std::string tombs = keys.tombs();
    hmget[1] = tombs;
    txn->command(hmget, gather->add([w](const redisReply* r) {
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i < r->elements && i < w->names_.size(); ++i) {
        w->names_[i].tomb = std::string(redis::reply_str(r->element[i]));
      }
    }));
  }
  for (size_t ni = 0; ni < names_.size(); ++ni) {
    NameWork& nw = names_[ni];
    std::string skey = keys.states(nw.name);
    std::vector<std::string_view> hmget{"HMGET", skey};
    for (const std::string& c : nw.clients) hmget.push_back(c);
    txn->command(hmget, gather->add([w, ni](const redisReply* r) {
      NameWork& n = w->names_[ni];
      n.client_blobs.assign(n.clients.size(), {});
      n.client_present.assign(n.clients.size(), false);
      if (!redis::reply_is_array(r)) return;
      for (size_t c = 0; c < r->elements && c < n.clients.size(); ++c) {
        if (redis::reply_is_nil(r->element[c])) continue;
        n.client_blobs[c] = std::string(redis::reply_str(r->element[c]));
        n.client_present[c] = true;
      }
    }));
    txn->command({"GET", keys.aggregate(nw.name)}, gather->add([w, ni](const redisReply* r) {
      NameWork& n = w->names_[ni];
      n.aggregate_present = !redis::reply_is_nil(r);
      if (n.aggregate_present) n.aggregate_blob = std::string(redis::reply_str(r));
    }));
  }
}

// A delta of a name deleted after its entry was queued (the entry's id is
// at most the name's tombstone, redis_admin.cpp) is skipped: it must not
// bring the name back.
void ApplyAttempt::skip_deleted(size_t i) {
  if (batch_[i].deleted) return;
  std::pair<uint64_t, uint64_t> id;
  bool have_id = false;
  for (size_t j = 0; j < deltas_[i].size(); ++j) {
    const NameWork& nw = names_[name_index_[std::string(deltas_[i][j].name)]];
    if (nw.tomb.empty()) continue;
    if (!have_id) {
      id = parse_stream_id(batch_[i].id);
      have_id = true;
    }
    if (id <= parse_stream_id(nw.tomb)) {
      apply_delta_[i][j] = false;
      ++deleted_;
    }
  }
}

const redis::Delta* ApplyAttempt::merge() {
  double now = wall_now();
  const plugin::Registry* registry = store_->registry();
  // Which (batch id, vbucket)s were applied: here, on a previous owner, or
  // earlier in this read set. An entry's deltas of one vbucket all apply or
  // all skip.
  std::unordered_map<std::string, redis::DedupBits> applied;
  std::unordered_map<std::string, std::string> key_of;
  apply_.assign(batch_.size(), false);
  apply_delta_.assign(batch_.size(), {});
  for (size_t i = 0; i < batch_.size(); ++i) {
    apply_delta_[i].assign(deltas_[i].size(), true);
    skip_deleted(i);
    if (dedup_keys_[i].empty() || deltas_[i].empty()) {
      apply_[i] = true;  // (an entry with nothing to apply counts as applied, as it always did)
      continue;
    }
    auto [it, fresh] = applied.try_emplace(batch_[i].batch_id, vbuckets_total_);
    redis::DedupBits& bits = it->second;
    if (fresh) key_of[batch_[i].batch_id] = dedup_keys_[i];
    bits.merge_marker(markers_[i]);
    for (const std::string& m : foreign_[i]) bits.merge_marker(m);
    for (size_t j = 0; j < deltas_[i].size(); ++j) {
      apply_delta_[i][j] = apply_delta_[i][j] && !bits.test(vbuckets_[i][j]);
      if (apply_delta_[i][j]) apply_[i] = true;
    }
    for (uint32_t vb : vbuckets_[i]) bits.set(vb);
  }
  marks_.clear();
  for (auto& [batch_id, bits] : applied) marks_.emplace_back(key_of[batch_id], bits.bytes());
  for (size_t i = 0; i < batch_.size(); ++i) {
    for (size_t j = 0; j < deltas_[i].size(); ++j) {
      if (apply_delta_[i][j] && !registry->find(deltas_[i][j].type)) return &deltas_[i][j];
    }
  }
  states_.resize(names_.size());
  // Why the last state or delta could not be read: its handler's reason,
  // or "malformed stored state" when there is none.
  std::string err;
  auto unreadable = [&](std::string_view why) {
    err = why.empty() ? std::string_view("malformed stored state") : why;
    return false;
  };
  auto load = [&](const plugin::Handler* h, const std::string& blob, State* out) {
    uint32_t version = 0;
    std::string_view bytes;
    if (!redis::decode_state(blob, &version, &bytes)) return unreadable("");
    Result<State> st = h->deserialize(bytes, version);
    if (!st.ok()) return unreadable(st.status().message());
    *out = std::move(*st);
    return true;
  };
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (!apply_[i]) continue;
    for (size_t j = 0; j < deltas_[i].size(); ++j) {
      if (!apply_delta_[i][j]) continue;
      const redis::Delta& d = deltas_[i][j];
      size_t ni = name_index_[std::string(d.name)];
      NameWork& nw = names_[ni];
      NameState& st = states_[ni];
      if (st.skip) {
        ++dropped_;
        continue;
      }
      if (!nw.handler) {
        nw.handler = registry->find(d.type);
        std::string_view want = d.type;
        if (!nw.handler || (!nw.bound.empty() && nw.bound != want)) {
          log::warn("be {}: deltas of \"{}\" as {} dropped: the name is bound to {}", shard_name_, nw.name, d.type,
                    nw.bound);
          st.skip = true;
          ++dropped_;
          continue;
        }
        st.bind = nw.bound.empty();
        st.clients.resize(nw.clients.size());
        for (size_t c = 0; c < nw.clients.size(); ++c) {
          if (nw.client_present[c] && !load(nw.handler, nw.client_blobs[c], &st.clients[c].state)) {
            log::error("be {}: stored state of (\"{}\", \"{}\") is unreadable ({}); replaced", shard_name_, nw.name,
                       nw.clients[c], err);
          }
        }
        if (!nw.aggregate_present || !load(nw.handler, nw.aggregate_blob, &st.aggregate.state)) {
          taba_state* fresh = nw.handler->new_state(now);
          if (fresh) st.aggregate.state = State(nw.handler, fresh);
        }
        if (!st.aggregate.state) {
          st.skip = true;
          ++dropped_;
          continue;
        }
      } else if (nw.handler->type_name != d.type) {
        ++dropped_;
        continue;
      }
      const plugin::Handler* h = nw.handler;
      State delta;
      if (Result<State> read = h->deserialize(d.state, d.state_version); read.ok()) {
        delta = std::move(*read);
      } else {
        unreadable(read.status().message());
      }
      if (!delta) {
        log::error("be {}: a delta of \"{}\" is unreadable ({}); dropped", shard_name_, nw.name, err);
        ++dropped_;
        continue;
      }
      Slot& client = st.clients[nw.client_index[std::string(d.client)]];
      h->merge(st.aggregate.state.get(), delta.get(), now);
      st.aggregate.dirty = true;
      if (!client.state) {
        client.state = std::move(delta);
      } else {
        h->merge(client.state.get(), delta.get(), now);
      }
      client.dirty = true;
      ++deltas_applied_;
    }
  }
  return nullptr;
}

// MULTI ... EXEC.
void ApplyAttempt::commit(redis::Connection* txn, redis::Gather* gather) {
  const redis::Keys& k = store_->keys();
  std::vector<std::vector<std::string>> cmds;
  std::string tmp;
  auto serialize = [&](const plugin::Handler* h, const State& s2, std::string* out) {
    if (!h->serialize(s2.get(), &tmp)) return false;
    *out = redis::encode_state(h->state_version(), tmp);
    return true;
  };
  std::map<std::string, std::vector<std::string>> client_names;
  for (size_t ni = 0; ni < names_.size(); ++ni) {
    NameWork& nw = names_[ni];
    NameState& st = states_[ni];
    if (st.skip || !nw.handler || !st.aggregate.dirty) continue;
    std::vector<std::string> hset{"HSET", k.states(nw.name)};
    for (size_t c = 0; c < nw.clients.size(); ++c) {
      if (!st.clients[c].dirty) continue;
      std::string blob;
      if (!serialize(nw.handler, st.clients[c].state, &blob)) continue;
      hset.push_back(nw.clients[c]);
      hset.push_back(std::move(blob));
      client_names[nw.clients[c]].push_back(nw.name);
    }
    std::string agg;
    if (!serialize(nw.handler, st.aggregate.state, &agg)) {
      log::error("be {}: the {} handler could not serialize \"{}\"; its deltas are dropped", shard_name_,
                 nw.handler->type_name, nw.name);
      continue;
    }
    if (hset.size() > 2) cmds.push_back(std::move(hset));
    cmds.push_back({"SET", k.aggregate(nw.name), std::move(agg)});
    if (st.bind) cmds.push_back({"HSETNX", k.types(), nw.name, nw.handler->type_name});
  }
  redis::register_clients(k, client_names, &cmds);
  std::string ttl = std::to_string(store_->config().dedup_ttl_s);
  std::vector<std::string> ack{"XACK", k.stream(), redis::kGroup};
  std::vector<std::string> del{"XDEL", k.stream()};
  for (auto& [key, marker] : marks_) cmds.push_back({"SET", key, std::move(marker), "EX", ttl});
  for (size_t i = 0; i < batch_.size(); ++i) {
    ack.push_back(batch_[i].id);
    del.push_back(batch_[i].id);
  }
  cmds.push_back(std::move(ack));
  cmds.push_back(std::move(del));

  txn->command({"MULTI"}, gather->add(nullptr));
  for (const auto& c : cmds) {
    std::vector<std::string_view> argv(c.begin(), c.end());
    txn->command(argv, gather->add(nullptr, true));
  }
  auto self = shared_from_this();
  txn->command({"EXEC"}, gather->add([self](const redisReply* r) {
    self->committed_ = redis::reply_is_array(r);
    if (!redis::reply_is_array(r)) return;
    for (size_t i = 0; i < r->elements; ++i) {
      if (redis::reply_is_error(r->element[i])) {
        // Committed; cannot be undone. Only keys outside tabad's layout can cause this.
        log::error("be {}: a command of an applied transaction failed: {}", self->shard_name_,
                   redis::reply_str(r->element[i]));
      }
    }
  }));
}

void ApplyAttempt::count_committed() {
  double done_at = wall_now();
  RedisStoreStats& stats = store_->mutable_stats();
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (apply_[i]) {
      ++stats.entries_applied;
      store_->latencies().add(done_at, std::max(0.0, done_at - batch_[i].enqueue_time));
    } else {
      ++stats.entries_duplicate;
    }
  }
  stats.deltas_applied += deltas_applied_;
  stats.deltas_dropped += dropped_;
  stats.deltas_deleted += deleted_;
}

}  // namespace taba::store
