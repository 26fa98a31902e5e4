// Queries on the Redis store: list the names a query wants (HMGET or
// HGETALL of the types hash, per shard), then fetch only the aggregates
// (GET) or client states (HMGET / HGETALL) it needs into a ReadView shaped
// like the embedded store's, for the query code.
#include "store/redis/redis_store.h"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/redis_store_internal.h"

namespace taba::store {
namespace {

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

}  // namespace

void RedisStore::list_names(const Matcher& names,
                            std::function<void(const Status&, std::vector<std::pair<std::string, std::string>>)> done) {
  auto out = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([alive, out, done = std::move(done)](const Status& s) {
    if (!*alive) return;
    // A moving name is bound on its source and its target: listed once.
    std::sort(out->begin(), out->end());
    out->erase(std::unique(out->begin(), out->end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
               out->end());
    done(s, std::move(*out));
  });
  std::string types = keys_.types();
  if (!names.any() && !names.is_regex()) {
    std::vector<std::vector<std::string>> per(shards_.size());
    const redis::Placement& p = placement_;
    for (const std::string& n : names.values()) {
      uint32_t vb = vbucket(n);
      per[vbucket_shard_[vb]].push_back(n);
      if (p.move && p.move->split() && p.move->contains(vb)) {
        for (size_t i = 0; i < shards_.size(); ++i) {
          if ((shards_[i]->name == p.move->from || shards_[i]->name == p.move->to) && i != vbucket_shard_[vb]) {
            per[i].push_back(n);
          }
        }
      }
    }
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
    auto matcher = std::make_shared<Matcher>(names);
    for (auto& sp : shards_) {
      if (!sp->shard->ready() && !may_hold_data(sp.get())) continue;  // a shard that holds nothing may be gone
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
  Matcher names;
  Matcher clients;
  ViewCallback ready;
  RedisView view;
  std::vector<std::pair<std::string, std::string>> listed;
  std::set<std::string> client_set;
};

namespace {

// A split name's part on the move's target, with whether the driver has
// merged the source's part into it, atomically. KEYS: movedone, aggregate,
// states. ARGV: name, '1' to read the aggregate, states mode ('all', 'some'
// with the clients after it, 'none'). Replies {marked, aggregate or nil,
// {client, state, ...}}.
constexpr const char* kSplitReadScript = R"lua(
local done = redis.call('SISMEMBER', KEYS[1], ARGV[1])
local agg = false
if ARGV[2] == '1' then agg = redis.call('GET', KEYS[2]) end
local st = {}
if ARGV[3] == 'all' then
  st = redis.call('HGETALL', KEYS[3])
elseif ARGV[3] == 'some' then
  local cs = {}
  for i = 4, #ARGV do cs[#cs + 1] = ARGV[i] end
  local vals = redis.call('HMGET', KEYS[3], unpack(cs))
  for i, v in ipairs(vals) do
    if v then
      st[#st + 1] = cs[i]
      st[#st + 1] = v
    end
  end
end
return {done, agg, st}
)lua";

// What one shard holds of one name.
struct Part {
  State aggregate;
  std::vector<std::pair<std::string, State>> states;
};

// A name a query reads: from its owner, or, while a move splits its range,
// from the move's source first and then its target (placement.h): the
// driver merges a name into the target (marking it in `P movedone` in the
// same transaction) before deleting it from the source, so reading the
// source first never misses a part and `movedone` says when the source's
// part is already inside the target's.
struct Wanted {
  NameEntry* entry = nullptr;
  RedisStore::ShardCtx* first = nullptr;   // the owner, or the move's source
  RedisStore::ShardCtx* second = nullptr;  // the move's target, when split
  Part a, b;
  bool merged_into_second = false;
};

}  // namespace

void RedisStore::fetch(const QueryNeed& need, ViewCallback ready) {
  // A query routes reads by the placement: a copy older than this is
  // re-read first (a process paused past a move's switch must not miss the
  // range's new shard).
  if (placement_age_s() > kQueryFreshnessS) {
    auto alive = alive_;
    auto names = std::make_shared<Matcher>(*need.names);
    auto clients = std::make_shared<Matcher>(*need.clients);
    QueryNeed copy = need;
    refresh_placement([this, alive, copy, names, clients, ready = std::move(ready)](const Status& s) mutable {
      if (!*alive) return;
      if (!s.ok() && !placement_loaded_) return ready(s, nullptr);
      copy.names = names.get();
      copy.clients = clients.get();
      fetch_now(copy, std::move(ready));
    });
    return;
  }
  fetch_now(need, std::move(ready));
}

void RedisStore::fetch_now(const QueryNeed& need, ViewCallback ready) {
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
    auto wanted = std::make_shared<std::vector<Wanted>>();
    const redis::Placement& p = placement_;
    for (const auto& [name, type] : f->listed) {
      const plugin::Handler* h = registry_->find(type);
      if (!h) {
        log::warn("query: name \"{}\" has type \"{}\", which no loaded plugin serves; skipped", name, type);
        continue;
      }
      Wanted w;
      w.entry = f->view.add(name, h);
      uint32_t vb = vbucket(name);
      if (p.move && p.move->split() && p.move->contains(vb)) {
        w.first = shard_named(p.move->from);
        w.second = shard_named(p.move->to);
      } else {
        w.first = shards_[vbucket_shard_[vb]].get();
      }
      wanted->push_back(std::move(w));
    }
    f->view.sort();
    if (!f->need.aggregates && !f->need.states) return f->ready(Status::Ok(), &f->view);
    // Issues the reads of one name's part on one shard.
    auto read_part = [this, f](RedisStore::ShardCtx* shard, NameEntry* e, Part* part, redis::Gather* gather) {
      const std::string& sname = shard->name;
      if (f->need.aggregates) {
        shard->shard->command({"GET", keys_.aggregate(e->name)}, gather->add(
                                                                     [e, part](const redisReply* r) {
                                                                       if (redis::reply_is_nil(r)) return;
                                                                       (void)load_state(e->handler, redis::reply_str(r),
                                                                                        &part->aggregate);
                                                                     },
                                                                     false, sname));
      }
      if (!f->need.states) return;
      bool exact = !f->clients.any() && !f->clients.is_regex();
      std::string key = keys_.states(e->name);
      auto on_pair = [f, e, part](std::string_view client, const redisReply* blob) {
        if (redis::reply_is_nil(blob)) return;
        if (!f->clients.matches(client)) return;
        State st;
        if (!load_state(e->handler, redis::reply_str(blob), &st)) return;
        part->states.emplace_back(std::string(client), std::move(st));
      };
      if (exact && f->clients.values().empty()) {
        // client= with no value selects no client.
      } else if (exact) {
        std::vector<std::string_view> argv{"HMGET", key};
        for (const std::string& c : f->clients.values()) argv.push_back(c);
        shard->shard->command(argv, gather->add(
                                        [f, on_pair](const redisReply* r) {
                                          if (!redis::reply_is_array(r)) return;
                                          const auto& cs = f->clients.values();
                                          for (size_t i = 0; i < r->elements && i < cs.size(); ++i) {
                                            on_pair(cs[i], r->element[i]);
                                          }
                                        },
                                        false, sname));
      } else {
        shard->shard->command({"HGETALL", key}, gather->add(
                                                    [on_pair](const redisReply* r) {
                                                      if (!redis::reply_is_array(r)) return;
                                                      for (size_t i = 0; i + 1 < r->elements; i += 2) {
                                                        on_pair(redis::reply_str(r->element[i]), r->element[i + 1]);
                                                      }
                                                    },
                                                    false, sname));
      }
    };
    // Last: each name's parts merged into its entry.
    auto finish = [alive, f, wanted](const Status& st) {
      if (!*alive) return;
      if (!st.ok()) return f->ready(st, nullptr);
      double now = wall_now();
      for (Wanted& w : *wanted) {
        NameEntry* e = w.entry;
        const plugin::Handler* h = e->handler;
        std::vector<Part*> parts{&w.a};
        if (w.second) parts = w.merged_into_second ? std::vector<Part*>{&w.b} : std::vector<Part*>{&w.a, &w.b};
        for (Part* part : parts) {
          if (part->aggregate) {
            if (!e->aggregate) {
              e->aggregate = std::move(part->aggregate);
            } else {
              h->merge(e->aggregate.get(), part->aggregate.get(), now);
            }
          }
          for (auto& [client, state] : part->states) {
            State& slot = e->states[f->view.intern(client)];
            if (!slot) {
              slot = std::move(state);
            } else {
              h->merge(slot.get(), state.get(), now);
            }
          }
        }
        if (f->need.aggregates && !e->aggregate) {
          // Bound, not applied yet (or unreadable): an empty aggregate.
          taba_state* fresh = h->new_state(now);
          if (fresh) e->aggregate = State(h, fresh);
        }
      }
      f->ready(Status::Ok(), &f->view);
    };
    // Second: the targets of split names, and whether each name was merged there.
    // (The target's part and its mark are read in one script: the driver's
    // merge could otherwise fall between them and a part be lost or doubled.)
    auto second = [this, alive, f, wanted, finish](const Status& st) {
      if (!*alive) return;
      if (!st.ok()) return finish(st);
      auto gather = std::make_shared<redis::Gather>(finish);
      bool exact = !f->clients.any() && !f->clients.is_regex();
      std::string mode = !f->need.states ? "none" : !exact ? "all" : f->clients.values().empty() ? "none" : "some";
      for (Wanted& w : *wanted) {
        if (!w.second) continue;
        NameEntry* e = w.entry;
        std::vector<std::string> argv{"EVAL", kSplitReadScript, "3", keys_.move_done(), keys_.aggregate(e->name),
                                      keys_.states(e->name), e->name, f->need.aggregates ? "1" : "0", mode};
        if (mode == "some") {
          for (const std::string& c : f->clients.values()) argv.push_back(c);
        }
        Wanted* wp = &w;
        w.second->shard->command(views(argv), gather->add(
                                                  [f, wp](const redisReply* r) {
                                                    if (!redis::reply_is_array(r) || r->elements != 3) return;
                                                    wp->merged_into_second = redis::reply_int(r->element[0]) == 1;
                                                    NameEntry* en = wp->entry;
                                                    if (!redis::reply_is_nil(r->element[1])) {
                                                      (void)load_state(en->handler, redis::reply_str(r->element[1]),
                                                                       &wp->b.aggregate);
                                                    }
                                                    const redisReply* pairs = r->element[2];
                                                    for (size_t i = 0; redis::reply_is_array(pairs) && i + 1 < pairs->elements;
                                                         i += 2) {
                                                      std::string_view client = redis::reply_str(pairs->element[i]);
                                                      if (!f->clients.matches(client)) continue;
                                                      State one;
                                                      if (!load_state(en->handler, redis::reply_str(pairs->element[i + 1]),
                                                                      &one)) {
                                                        continue;
                                                      }
                                                      wp->b.states.emplace_back(std::string(client), std::move(one));
                                                    }
                                                  },
                                                  false, w.second->name));
      }
      gather->arm();
    };
    // First: every owner, and the sources of split names.
    auto gather = std::make_shared<redis::Gather>(second);
    for (Wanted& w : *wanted) read_part(w.first, w.entry, &w.a, gather.get());
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
      if (!sp->shard->ready() && !may_hold_data(sp.get())) continue;
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

}  // namespace taba::store
