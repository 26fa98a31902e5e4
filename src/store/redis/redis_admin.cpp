// The admin operations of the Redis store: delete names, gc (prune the
// states a plugin calls prunable, rebuild the aggregate), check (and repair)
// aggregates against the merge of their client states, flush (wait until the
// be has applied what was appended before). The writes are Lua scripts; gc's
// and repair's refuse when a concurrent apply changed what they read.
#include "store/redis/redis_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/clock.h"
#include "core/uv_timer.h"
#include "redis/reply.h"
#include "store/redis/redis_store_internal.h"
#include "store/state_json.h"

namespace taba::store {
namespace {

constexpr int kFlushTimeoutMs = 30'000;

// Deletes a name with its states and registry entries; returns {bound,
// states}. When the stream still holds entries, the name gets a tombstone:
// the id of the newest one. Entries up to it were queued before the delete
// and the be skips their deltas of the name (apply_attempt.h); entries
// appended later have higher ids and count. The keeper drops the tombstone
// once the stream holds no entry up to it (housekeeper.h).
// KEYS: states, aggregate, types, clients, stream, tombs.
// ARGV: name, client-names key prefix.
constexpr const char* kDeleteScript = R"lua(
local clients = redis.call('HKEYS', KEYS[1])
for _, c in ipairs(clients) do
  local cn = ARGV[2] .. c
  redis.call('SREM', cn, ARGV[1])
  if redis.call('SCARD', cn) == 0 then redis.call('SREM', KEYS[4], c) end
end
redis.call('DEL', KEYS[1], KEYS[2])
local had = redis.call('HDEL', KEYS[3], ARGV[1])
local newest = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)[1]
if newest then redis.call('HSET', KEYS[6], ARGV[1], newest[1]) end
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

}  // namespace

// /delete, /gc and /check walk names by their owner: while a move splits a
// range they would miss or race the driver, so they wait for it to end.
Status RedisStore::no_move_in_progress() const {
  if (!placement_.move) return Status::Ok();
  const redis::Move& m = *placement_.move;
  return Status::Unavailable(fmt::format("a re-shard is in progress (move {}: vbuckets {}-{} from {} to {}); /delete, "
                                         "/gc and /check run once it has ended",
                                         m.id, m.first, m.last, m.from, m.to));
}

void RedisStore::delete_names(const Matcher& names, ReportCallback done) {
  auto m = std::make_shared<Matcher>(names);
  auto alive = alive_;
  refresh_placement([this, alive, m, done = std::move(done)](const Status&) mutable {
    if (!*alive) return;
    if (Status busy = no_move_in_progress(); !busy.ok()) return done(busy, Report{});
    delete_names_now(*m, std::move(done));
  });
}

void RedisStore::delete_names_now(const Matcher& names, ReportCallback done) {
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
      std::vector<std::string> argv{"EVAL",         kDeleteScript,   "6",  keys_.states(name), keys_.aggregate(name),
                                    keys_.types(),  keys_.clients(), keys_.stream(), keys_.tombs(), name, prefix};
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

void RedisStore::gc(ReportCallback done) {
  
  auto alive = alive_;
  refresh_placement([this, alive, done = std::move(done)](const Status&) mutable {
    if (!*alive) return;
    if (Status busy = no_move_in_progress(); !busy.ok()) return done(busy, Report{});
    gc_now(std::move(done));
  });
}

void RedisStore::gc_now(ReportCallback done) {
  auto alive = alive_;
  Matcher all;
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
              if (h->prunable(state.get(), now)) {
                dead.emplace_back(std::string(redis::reply_str(all_states->element[i])), std::move(blob));
              } else {
                live.push_back(std::move(state));
              }
            }
            if (dead.empty()) return cb(Status::Ok(), nullptr);
            std::string aggregate;
            if (!live.empty()) {
              taba_state* fresh = h->new_state(now);
              if (!fresh) return cb(Status::Ok(), nullptr);
              State agg(h, fresh);
              for (const State& l : live) h->merge(agg.get(), l.get(), now);
              std::string tmp;
              if (!h->serialize(agg.get(), &tmp)) return cb(Status::Ok(), nullptr);
              aggregate = redis::encode_state(h->state_version(), tmp);
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
  refresh_placement([this, alive, repair, done = std::move(done)](const Status&) mutable {
    if (!*alive) return;
    if (Status busy = no_move_in_progress(); !busy.ok()) return done(busy, Report{});
    check_now(repair, std::move(done));
  });
}

void RedisStore::check_now(bool repair, ReportCallback done) {
  auto alive = alive_;
  Matcher all;
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
            taba_state* fresh = h->new_state(now);
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
              h->merge(merged.get(), state.get(), now);
            }
            State aggregate;
            bool have = r->elements > 1 && !redis::reply_is_nil(r->element[1]) &&
                        load_state(h, redis::reply_str(r->element[1]), &aggregate);
            std::string want = render_json(h, merged.get(), now);
            std::string got = have ? render_json(h, aggregate.get(), now) : "";
            if (want == got || bad_state) return cb(Status::Ok(), nullptr);
            ++totals->problems;
            totals->details.push_back(fmt::format("name \"{}\": aggregate differs from the merge of its {} client states",
                                                  name, fields.size() / 2));
            if (!repair) return cb(Status::Ok(), nullptr);
            std::string tmp;
            if (!h->serialize(merged.get(), &tmp)) return cb(Status::Ok(), nullptr);
            std::vector<std::string> argv{"EVAL", kRepairScript, "2", keys_.states(name), keys_.aggregate(name),
                                          redis::encode_state(h->state_version(), tmp),
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
      UvTimer::after(loop_, 20, [poll] {
        if (*poll) (*poll)();
      });
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

}  // namespace taba::store
