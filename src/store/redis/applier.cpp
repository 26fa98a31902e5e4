#include "store/redis/applier.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"

namespace taba::store {
namespace {

constexpr int kReadCount = 32;
constexpr uint32_t kBlockMs = 500;

// Parses [id, [field, value, ...]] into an Entry; false when malformed.
bool parse_entry(const redisReply* r, Applier::Entry* e) {
  if (!redis::reply_is_array(r) || r->elements != 2) return false;
  e->id = std::string(redis::reply_str(r->element[0]));
  const redisReply* fields = r->element[1];
  if (redis::reply_is_nil(fields)) {
    // A pending entry deleted from the stream (XDEL/XTRIM by someone else):
    // nothing to apply; it is acknowledged with the others.
    e->deleted = true;
    return !e->id.empty();
  }
  if (!redis::reply_is_array(fields)) return false;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view k = redis::reply_str(fields->element[i]);
    std::string_view v = redis::reply_str(fields->element[i + 1]);
    if (k == "id") e->batch_id = std::string(v);
    else if (k == "t") e->enqueue_time = std::strtod(std::string(v).c_str(), nullptr);
    else if (k == "d") e->deltas = std::string(v);
  }
  return !e->id.empty();
}

// A state read from Redis (or created here) and whether it changed.
struct Slot {
  State state;
  bool dirty = false;
};

struct NameWork {
  std::string name;
  const plugin::Handler* handler = nullptr;  // from the deltas' type
  std::string bound;                         // the binding read from Redis ("" = none)
  std::vector<std::string> clients;          // in read order
  std::unordered_map<std::string, size_t> client_index;
  std::vector<std::string> client_blobs;     // read replies
  std::vector<bool> client_present;
  std::string aggregate_blob;
  bool aggregate_present = false;
};

}  // namespace

Applier::Applier(RedisStore* store, RedisStore::ShardCtx* shard, std::string consumer)
    : store_(store), shard_(shard), consumer_(std::move(consumer)) {}

Applier::~Applier() {
  *alive_ = false;
  if (timer_) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

void Applier::start() {
  reader_ = shard_->shard->dedicated();
  txn_ = shard_->shard->dedicated();
  timer_ = new uv_timer_t;
  uv_timer_init(store_->loop(), timer_);
  timer_->data = this;
  retry_later(10);
}

void Applier::stop() {
  stopping_ = true;
  if (timer_) uv_timer_stop(timer_);
}

void Applier::on_timer(uv_timer_t* t) {
  auto* self = static_cast<Applier*>(t->data);
  if (self->stopping_) return;
  if (!self->batch_.empty()) {
    self->attempt();
  } else if (!self->group_ready_) {
    self->ensure_group();
  } else {
    self->next();
  }
}

void Applier::retry_later(uint32_t ms) {
  if (stopping_ || !timer_) return;
  uv_timer_start(timer_, on_timer, ms, 0);
}

void Applier::ensure_group() {
  std::string stream = store_->keys().stream();
  auto alive = alive_;
  txn_->command({"XGROUP", "CREATE", stream, redis::kGroup, "0", "MKSTREAM"},
                [this, alive](const Status& s, const redisReply* r) {
                  if (!*alive || stopping_) return;
                  if (!s.ok() || (redis::reply_is_error(r) &&
                                  redis::reply_str(r).substr(0, 9) != "BUSYGROUP")) {
                    if (failures_++ == 0) {
                      log::warn("be {}: cannot create the consumer group: {}", shard_->name,
                                s.ok() ? std::string(redis::reply_str(r)) : s.message());
                    }
                    retry_later(std::min(2000, 100 << std::min(failures_, 4)));
                    return;
                  }
                  failures_ = 0;
                  group_ready_ = true;
                  own_pending_done_ = false;
                  next();
                });
}

void Applier::next() {
  if (stopping_) return;
  std::string stream = store_->keys().stream();
  std::string count = std::to_string(kReadCount);
  double now = wall_now();
  auto alive = alive_;
  uint32_t timeout = static_cast<uint32_t>(store_->config().command_timeout_ms);
  if (now - last_claim_ >= store_->config().claim_idle_ms / 2000.0) {
    last_claim_ = now;
    std::string idle = std::to_string(store_->config().claim_idle_ms);
    reader_->command({"XAUTOCLAIM", stream, redis::kGroup, consumer_, idle, claim_cursor_, "COUNT", count},
                     [this, alive](const Status& s, const redisReply* r) {
                       if (!*alive || stopping_) return;
                       if (!s.ok() || !redis::reply_is_array(r) || r->elements < 2) {
                         failures_++;
                         own_pending_done_ = false;  // it may have claimed entries before failing
                         retry_later(200);
                         return;
                       }
                       claim_cursor_ = std::string(redis::reply_str(r->element[0]));
                       if (claim_cursor_.empty()) claim_cursor_ = "0-0";
                       read_reply(r->element[1], true);
                     });
    return;
  }
  const char* from = own_pending_done_ ? ">" : "0";
  std::vector<std::string_view> argv{"XREADGROUP", "GROUP", redis::kGroup, consumer_, "COUNT", count};
  std::string block = std::to_string(kBlockMs);
  if (own_pending_done_) {
    argv.push_back("BLOCK");
    argv.push_back(block);
  }
  argv.push_back("STREAMS");
  argv.push_back(stream);
  argv.push_back(from);
  bool own = !own_pending_done_;
  reader_->command(
      argv,
      [this, alive, own](const Status& s, const redisReply* r) {
        if (!*alive || stopping_) return;
        if (!s.ok() || redis::reply_is_error(r)) {
          if (redis::reply_is_error(r) && redis::reply_str(r).substr(0, 7) == "NOGROUP") group_ready_ = false;
          if (failures_++ == 0) {
            log::warn("be {}: reading the stream failed: {}", shard_->name,
                      s.ok() ? std::string(redis::reply_str(r)) : s.message());
          }
          own_pending_done_ = false;
          retry_later(std::min(2000, 50 << std::min(failures_, 5)));
          return;
        }
        // [[stream, [entries]]] or nil (BLOCK timed out).
        const redisReply* entries = nullptr;
        if (redis::reply_is_array(r) && r->elements > 0 && redis::reply_is_array(r->element[0]) &&
            r->element[0]->elements == 2) {
          entries = r->element[0]->element[1];
        }
        if (own && (!entries || entries->elements == 0)) own_pending_done_ = true;
        read_reply(entries, false);
      },
      timeout + kBlockMs);
}

void Applier::read_reply(const redisReply* entries, bool from_claim) {
  batch_.clear();
  if (entries && redis::reply_is_array(entries)) {
    for (size_t i = 0; i < entries->elements; ++i) {
      Entry e;
      if (parse_entry(entries->element[i], &e)) batch_.push_back(std::move(e));
    }
  }
  if (batch_.empty()) {
    if (failures_ > 0) {
      log::info("be {}: reading the stream again", shard_->name);
      failures_ = 0;
    }
    next();
    return;
  }
  if (from_claim) {
    store_->mutable_stats().entries_claimed += batch_.size();
    log::info("be {}: claimed {} entries left pending by another consumer", shard_->name, batch_.size());
  }
  attempt();
}

// One transaction over batch_ (see the header).
void Applier::attempt() {
  if (stopping_) return;
  struct Work {
    std::vector<std::vector<redis::Delta>> deltas;  // per entry
    std::vector<std::string> dedup_keys;            // per entry ("" = none)
    std::vector<bool> applied_before;               // per entry
    std::vector<NameWork> names;
    std::unordered_map<std::string, size_t> name_index;
  };
  auto w = std::make_shared<Work>();
  const redis::Keys& keys = store_->keys();
  w->deltas.resize(batch_.size());
  w->dedup_keys.resize(batch_.size());
  w->applied_before.assign(batch_.size(), false);
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (batch_[i].deleted) continue;
    Status s = redis::decode_deltas(batch_[i].deltas, &w->deltas[i]);
    if (!s.ok()) {
      log::error("be {}: entry {} is unreadable and is dropped: {}", shard_->name, batch_[i].id, s.message());
      w->deltas[i].clear();
      ++store_->mutable_stats().deltas_dropped;
    }
    if (!batch_[i].batch_id.empty()) w->dedup_keys[i] = keys.dedup(batch_[i].batch_id);
    for (const redis::Delta& d : w->deltas[i]) {
      auto [it, fresh] = w->name_index.emplace(std::string(d.name), w->names.size());
      if (fresh) {
        NameWork nw;
        nw.name = std::string(d.name);
        w->names.push_back(std::move(nw));
      }
      NameWork& nw = w->names[it->second];
      if (nw.client_index.emplace(std::string(d.client), nw.clients.size()).second) {
        nw.clients.emplace_back(d.client);
      }
    }
  }

  // WATCH + reads, pipelined on the transaction connection.
  std::vector<std::string> watch_keys;
  for (const std::string& k : w->dedup_keys) {
    if (!k.empty()) watch_keys.push_back(k);
  }
  if (!w->names.empty()) watch_keys.push_back(keys.types());  // a binding removed or made meanwhile
  for (const NameWork& nw : w->names) {
    watch_keys.push_back(keys.states(nw.name));
    watch_keys.push_back(keys.aggregate(nw.name));
  }
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, w](const Status& s) {
    if (!*alive || stopping_) return;
    if (!s.ok()) {
      ++store_->mutable_stats().txn_failures;
      if (failures_++ == 0) log::warn("be {}: transaction reads failed: {}", shard_->name, s.message());
      retry_later(std::min(2000, 50 << std::min(failures_, 5)));
      return;
    }
    // --- merge in memory ---
    const redis::Keys& k = store_->keys();
    double now = wall_now();
    const plugin::Registry* registry = store_->registry();
    std::unordered_set<std::string> seen_batches;
    std::vector<bool> apply(batch_.size(), false);
    for (size_t i = 0; i < batch_.size(); ++i) {
      if (w->applied_before[i]) continue;
      if (!batch_[i].batch_id.empty() && !seen_batches.insert(batch_[i].batch_id).second) continue;
      apply[i] = true;
    }
    // A type this be cannot merge (its plugin is missing here) leaves the
    // whole read set pending for a be that has it; nothing is acknowledged.
    for (size_t i = 0; i < batch_.size(); ++i) {
      if (!apply[i]) continue;
      for (const redis::Delta& d : w->deltas[i]) {
        if (registry->find(d.type)) continue;
        ++store_->mutable_stats().txn_failures;
        if (failures_++ % 12 == 0) {
          log::error("be {}: no loaded plugin serves type \"{}\" (name \"{}\"); its entries stay pending for a be "
                     "that has it",
                     shard_->name, d.type, d.name);
        }
        txn_->command({"UNWATCH"}, [](const Status&, const redisReply*) {});
        retry_later(5000);
        return;
      }
    }
    struct NameState {
      std::vector<Slot> clients;
      Slot aggregate;
      bool bind = false;
      bool skip = false;
    };
    std::vector<NameState> ns(w->names.size());
    char err[256] = "malformed stored state";
    auto load = [&](const plugin::Handler* h, const std::string& blob, State* out) {
      uint32_t version = 0;
      std::string_view bytes;
      taba_state* st = nullptr;
      std::snprintf(err, sizeof err, "%s", "malformed stored state");
      if (!redis::decode_state(blob, &version, &bytes) ||
          h->table->deserialize(bytes.data(), bytes.size(), version, &st, err, sizeof err) != TABA_OK || !st) {
        return false;
      }
      *out = State(h, st);
      return true;
    };
    uint64_t deltas_applied = 0, dropped = 0;
    for (size_t i = 0; i < batch_.size(); ++i) {
      if (!apply[i]) continue;
      for (const redis::Delta& d : w->deltas[i]) {
        size_t ni = w->name_index[std::string(d.name)];
        NameWork& nw = w->names[ni];
        NameState& st = ns[ni];
        if (st.skip) {
          ++dropped;
          continue;
        }
        if (!nw.handler) {
          nw.handler = registry->find(d.type);
          std::string_view want = d.type;
          if (!nw.handler || (!nw.bound.empty() && nw.bound != want)) {
            log::warn("be {}: deltas of \"{}\" as {} dropped: the name is bound to {}", shard_->name, nw.name,
                      d.type, nw.bound);
            st.skip = true;
            ++dropped;
            continue;
          }
          st.bind = nw.bound.empty();
          st.clients.resize(nw.clients.size());
          for (size_t c = 0; c < nw.clients.size(); ++c) {
            if (nw.client_present[c] && !load(nw.handler, nw.client_blobs[c], &st.clients[c].state)) {
              log::error("be {}: stored state of (\"{}\", \"{}\") is unreadable ({}); replaced", shard_->name,
                         nw.name, nw.clients[c], err);
            }
          }
          if (!nw.aggregate_present || !load(nw.handler, nw.aggregate_blob, &st.aggregate.state)) {
            taba_state* fresh = nw.handler->table->new_state("", 0, now);
            if (fresh) st.aggregate.state = State(nw.handler, fresh);
          }
          if (!st.aggregate.state) {
            st.skip = true;
            ++dropped;
            continue;
          }
        } else if (nw.handler->type_name != d.type) {
          ++dropped;
          continue;
        }
        const taba_handler* h = nw.handler->table;
        State delta;
        taba_state* raw = nullptr;
        if (h->deserialize(d.state.data(), d.state.size(), d.state_version, &raw, err, sizeof err) == TABA_OK && raw) {
          delta = State(nw.handler, raw);
        }
        if (!delta) {
          log::error("be {}: a delta of \"{}\" is unreadable ({}); dropped", shard_->name, nw.name, err);
          ++dropped;
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
        ++deltas_applied;
      }
    }

    // --- MULTI ... EXEC ---
    std::vector<std::vector<std::string>> cmds;
    std::string tmp;
    taba_output sink = plugin::string_output(&tmp);
    auto serialize = [&](const plugin::Handler* h, const State& s2, std::string* out) {
      tmp.clear();
      if (h->table->serialize(s2.get(), &sink) != TABA_OK) return false;
      *out = redis::encode_state(h->table->state_version, tmp);
      return true;
    };
    std::unordered_map<std::string, std::vector<std::string>> client_names;
    for (size_t ni = 0; ni < w->names.size(); ++ni) {
      NameWork& nw = w->names[ni];
      NameState& st = ns[ni];
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
        log::error("be {}: the {} handler could not serialize \"{}\"; its deltas are dropped", shard_->name,
                   nw.handler->type_name, nw.name);
        continue;
      }
      if (hset.size() > 2) cmds.push_back(std::move(hset));
      cmds.push_back({"SET", k.aggregate(nw.name), std::move(agg)});
      if (st.bind) cmds.push_back({"HSETNX", k.types(), nw.name, nw.handler->type_name});
    }
    if (!client_names.empty()) {
      std::vector<std::string> sadd{"SADD", k.clients()};
      for (auto& [client, names] : client_names) {
        sadd.push_back(client);
        std::vector<std::string> cn{"SADD", k.client_names(client)};
        for (auto& n : names) cn.push_back(std::move(n));
        cmds.push_back(std::move(cn));
      }
      cmds.push_back(std::move(sadd));
    }
    std::string ttl = std::to_string(store_->config().dedup_ttl_s);
    std::vector<std::string> ack{"XACK", k.stream(), redis::kGroup};
    std::vector<std::string> del{"XDEL", k.stream()};
    for (size_t i = 0; i < batch_.size(); ++i) {
      if (apply[i] && !w->dedup_keys[i].empty()) cmds.push_back({"SET", w->dedup_keys[i], "1", "EX", ttl});
      ack.push_back(batch_[i].id);
      del.push_back(batch_[i].id);
    }
    cmds.push_back(std::move(ack));
    cmds.push_back(std::move(del));

    auto exec_gather_state = std::make_shared<int>(0);  // 1 = committed, 2 = aborted
    auto g2 = std::make_shared<redis::Gather>([this, alive, exec_gather_state, apply, deltas_applied,
                                               dropped](const Status& st2) {
      if (!*alive || stopping_) return;
      if (!st2.ok()) {
        ++store_->mutable_stats().txn_failures;
        if (failures_++ == 0) log::warn("be {}: transaction failed: {}", shard_->name, st2.message());
        retry_later(std::min(2000, 50 << std::min(failures_, 5)));
        return;
      }
      if (*exec_gather_state != 1) {
        ++store_->mutable_stats().txn_conflicts;
        retry_later(1 + static_cast<uint32_t>(std::rand() % 10));
        return;
      }
      failures_ = 0;
      double done_at = wall_now();
      RedisStoreStats& stats = store_->mutable_stats();
      for (size_t i = 0; i < batch_.size(); ++i) {
        if (apply[i]) {
          ++stats.entries_applied;
          store_->latencies().add(done_at, std::max(0.0, done_at - batch_[i].enqueue_time));
        } else {
          ++stats.entries_duplicate;
        }
      }
      stats.deltas_applied += deltas_applied;
      stats.deltas_dropped += dropped;
      batch_.clear();
      next();
    });
    txn_->command({"MULTI"}, g2->add(nullptr));
    for (const auto& c : cmds) {
      std::vector<std::string_view> argv(c.begin(), c.end());
      txn_->command(argv, g2->add(nullptr, true));
    }
    std::string shard_name = shard_->name;
    txn_->command({"EXEC"}, g2->add([exec_gather_state, shard_name](const redisReply* r) {
      *exec_gather_state = redis::reply_is_array(r) ? 1 : 2;
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i < r->elements; ++i) {
        if (redis::reply_is_error(r->element[i])) {
          // Committed; cannot be undone. Only keys outside tabad's layout can cause this.
          log::error("be {}: a command of an applied transaction failed: {}", shard_name,
                     redis::reply_str(r->element[i]));
        }
      }
    }));
    g2->arm();
  });

  std::vector<std::string_view> watch{"WATCH"};
  for (const std::string& k : watch_keys) watch.push_back(k);
  txn_->command(watch, gather->add(nullptr, false, "WATCH"));
  for (size_t i = 0; i < batch_.size(); ++i) {
    if (w->dedup_keys[i].empty()) continue;
    txn_->command({"EXISTS", w->dedup_keys[i]},
                  gather->add([w, i](const redisReply* r) { w->applied_before[i] = redis::reply_int(r) > 0; }));
  }
  if (!w->names.empty()) {
    std::vector<std::string_view> hmget{"HMGET"};
    std::string types = keys.types();
    hmget.push_back(types);
    for (const NameWork& nw : w->names) hmget.push_back(nw.name);
    txn_->command(hmget, gather->add([w](const redisReply* r) {
      if (!redis::reply_is_array(r)) return;
      for (size_t i = 0; i < r->elements && i < w->names.size(); ++i) {
        w->names[i].bound = std::string(redis::reply_str(r->element[i]));
      }
    }));
  }
  for (size_t ni = 0; ni < w->names.size(); ++ni) {
    NameWork& nw = w->names[ni];
    std::string skey = keys.states(nw.name);
    std::vector<std::string_view> hmget{"HMGET", skey};
    for (const std::string& c : nw.clients) hmget.push_back(c);
    txn_->command(hmget, gather->add([w, ni](const redisReply* r) {
      NameWork& n = w->names[ni];
      n.client_blobs.assign(n.clients.size(), {});
      n.client_present.assign(n.clients.size(), false);
      if (!redis::reply_is_array(r)) return;
      for (size_t c = 0; c < r->elements && c < n.clients.size(); ++c) {
        if (redis::reply_is_nil(r->element[c])) continue;
        n.client_blobs[c] = std::string(redis::reply_str(r->element[c]));
        n.client_present[c] = true;
      }
    }));
    txn_->command({"GET", keys.aggregate(nw.name)}, gather->add([w, ni](const redisReply* r) {
      NameWork& n = w->names[ni];
      n.aggregate_present = !redis::reply_is_nil(r);
      if (n.aggregate_present) n.aggregate_blob = std::string(redis::reply_str(r));
    }));
  }
  gather->arm();
}

}  // namespace taba::store
