// The embedded store's admin operations: delete, gc, check/repair, flush
// and status. Those that change states are WAL records (records.h), durable
// like a batch and replayed in order at recovery through the same
// apply_admin, so a replay reaches the same result; what a record holds
// (the matching names, the names to repair) is decided on the loop thread
// from memory before it is appended.
#include "store/embedded/embedded_store.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/le_bytes.h"
#include "store/embedded/records.h"
#include "store/state_json.h"

namespace taba::store {
namespace {

// Turns "k=v k=v" summaries into report counts.
void add_summary(Report* report, const std::string& summary) {
  size_t pos = 0;
  while (pos < summary.size()) {
    size_t end = summary.find(' ', pos);
    if (end == std::string::npos) end = summary.size();
    std::string_view kv(summary.data() + pos, end - pos);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) {
      report->count(std::string(kv.substr(0, eq)), std::stoll(std::string(kv.substr(eq + 1))));
    }
    pos = end + 1;
  }
}

}  // namespace

void EmbeddedStore::append_admin(std::string record,
                                 std::function<void(const Status&, const std::string&)> applied) {
  if (closing_) {
    applied(Status::Unavailable("server is shutting down"), "");
    return;
  }
  Pending p{std::move(record), {}, {}, std::move(applied)};
  if (snapshot_wanted_) {
    held_.push_back(std::move(p));
    return;
  }
  append(std::move(p));
}

size_t EmbeddedStore::erase_name(std::string_view name) {
  auto it = names_.find(name);
  if (it == names_.end()) return 0;
  NameEntry* entry = it->second.get();
  size_t states = entry->states.size();
  entry->states.for_each([&](ClientIndex ci, const State&) { --client_state_counts_[ci]; });
  names_.erase(it);
  return states;
}

Status EmbeddedStore::rebuild_aggregate(NameEntry* entry, double now) {
  const plugin::Handler* h = entry->handler;
  taba_state* fresh = h->new_state(now);
  if (!fresh) return Status::Internal(fmt::format("{} handler: new_state failed", entry->handler->type_name));
  entry->states.for_each([&](ClientIndex, const State& st) { h->merge(fresh, st.get(), now); });
  entry->aggregate = State(entry->handler, fresh);
  return Status::Ok();
}

Status EmbeddedStore::apply_admin(std::string_view record, std::string* summary) {
  ByteReader r(record);
  uint8_t tag = 0, op = 0;
  double time = 0;
  uint32_t count = 0;
  if (!r.get(&tag) || !r.get(&op) || !r.get(&time) || !r.get(&count)) {
    return Status::Corruption("admin record: truncated header");
  }
  std::vector<std::string_view> names;
  for (uint32_t i = 0; i < count; ++i) {
    uint16_t len = 0;
    std::string_view n;
    if (!r.get(&len) || !r.bytes(len, &n)) return Status::Corruption("admin record: truncated name list");
    names.push_back(n);
  }
  ++stats_.admin_records;
  ++changes_since_snapshot_;
  switch (op) {
    case kDeleteNames: {
      size_t states = 0, removed = 0;
      for (std::string_view n : names) {
        if (names_.find(n) != names_.end()) ++removed;
        states += erase_name(n);
      }
      *summary = fmt::format("names_deleted={} states_deleted={}", removed, states);
      return Status::Ok();
    }
    case kGc: {
      size_t pruned = 0, names_removed = 0;
      std::vector<std::string> empty;
      for (auto& [name, entry] : names_) {
        const plugin::Handler* h = entry->handler;
        std::vector<ClientIndex> dead;
        entry->states.for_each([&](ClientIndex ci, const State& st) {
          if (h->prunable(st.get(), time)) dead.push_back(ci);
        });
        if (dead.empty()) continue;
        for (ClientIndex ci : dead) {
          entry->states.erase(ci);
          --client_state_counts_[ci];
        }
        pruned += dead.size();
        if (entry->states.size() == 0) {
          empty.push_back(name);
        } else {
          TABA_RETURN_IF_ERROR(rebuild_aggregate(entry.get(), time));
        }
      }
      for (const std::string& n : empty) {
        erase_name(n);
        ++names_removed;
      }
      *summary = fmt::format("states_pruned={} names_removed={} names_busy=0", pruned, names_removed);
      return Status::Ok();
    }
    case kRepair: {
      size_t repaired = 0;
      for (std::string_view n : names) {
        auto it = names_.find(n);
        if (it == names_.end()) continue;
        TABA_RETURN_IF_ERROR(rebuild_aggregate(it->second.get(), time));
        ++repaired;
      }
      *summary = fmt::format("aggregates_repaired={}", repaired);
      return Status::Ok();
    }
    default:
      return Status::Corruption(fmt::format("admin record: unknown operation {}", op));
  }
}

void EmbeddedStore::delete_names(const Matcher& matcher, ReportCallback done) {
  std::vector<std::string> doomed;
  for (const NameEntry* e : names()) {
    if (matcher.matches(e->name)) doomed.push_back(e->name);
  }
  if (doomed.empty()) {
    Report report;
    report.count("names_deleted", 0);
    report.count("states_deleted", 0);
    done(Status::Ok(), report);
    return;
  }
  std::string record = admin_record(kDeleteNames, wall_now(), doomed);
  append_admin(std::move(record), [doomed, done = std::move(done)](const Status& s, const std::string& summary) {
    Report report;
    if (s.ok()) {
      add_summary(&report, summary);
      report.details = doomed;
    }
    done(s, report);
  });
}

void EmbeddedStore::gc(ReportCallback done) {
  double now = wall_now();
  int64_t prunable = 0;
  for (const auto& [name, entry] : names_) {
    const plugin::Handler* h = entry->handler;
    entry->states.for_each([&](ClientIndex, const State& st) { prunable += h->prunable(st.get(), now) ? 1 : 0; });
  }
  if (prunable == 0) {
    Report report;
    report.count("states_pruned", 0);
    report.count("names_removed", 0);
    report.count("names_busy", 0);
    done(Status::Ok(), report);
    return;
  }
  append_admin(admin_record(kGc, now, {}), [done = std::move(done)](const Status& s, const std::string& summary) {
    Report report;
    if (s.ok()) add_summary(&report, summary);
    done(s, report);
  });
}

void EmbeddedStore::check(bool repair, ReportCallback done) {
  double now = wall_now();
  Report report;
  int64_t states = 0;
  std::vector<std::string> broken;
  std::vector<uint32_t> counts(clients_.size(), 0);
  for (const NameEntry* e : names()) {
    const plugin::Handler* h = e->handler;
    states += static_cast<int64_t>(e->states.size());
    e->states.for_each([&](ClientIndex ci, const State&) {
      if (ci < counts.size()) ++counts[ci];
    });
    taba_state* fresh = h->new_state(now);
    if (!fresh) continue;
    e->states.for_each([&](ClientIndex, const State& st) { h->merge(fresh, st.get(), now); });
    std::string want = render_json(h, fresh, now);
    std::string have = render_json(h, e->aggregate.get(), now);
    h->free_state(fresh);
    if (want != have) {
      broken.push_back(e->name);
      report.details.push_back(fmt::format("name \"{}\": aggregate differs from the merge of its {} client states",
                                           e->name, e->states.size()));
    }
  }
  int64_t count_problems = 0;
  for (size_t ci = 0; ci < counts.size(); ++ci) {
    if (counts[ci] != client_state_counts_[ci]) {
      ++count_problems;
      report.details.push_back(fmt::format("client \"{}\": {} states counted, {} held", clients_[ci],
                                           client_state_counts_[ci], counts[ci]));
    }
  }
  int64_t orphan_bindings = 0;
  if (stats_.in_flight == 0 && held_.empty()) {
    for (const auto& [name, handler] : reserved_) {
      ++orphan_bindings;
      report.details.push_back(fmt::format("name \"{}\": type {} reserved by a batch that was never applied", name,
                                           handler->type_name));
    }
  }
  report.count("names_checked", static_cast<int64_t>(names_.size()));
  report.count("states_checked", states);
  report.count("problems", static_cast<int64_t>(broken.size()) + count_problems + orphan_bindings);
  if (!repair || (broken.empty() && count_problems == 0 && orphan_bindings == 0)) {
    report.count("repaired", 0);
    done(Status::Ok(), report);
    return;
  }
  // Counts and reservations are memory-only; aggregates are rebuilt through
  // a logged record so a replay reaches the same result.
  if (count_problems) {
    client_state_counts_ = counts;
    client_state_counts_.resize(clients_.size(), 0);
  }
  if (orphan_bindings) reserved_.clear();
  int64_t fixed = count_problems + orphan_bindings;
  if (broken.empty()) {
    report.count("repaired", fixed);
    done(Status::Ok(), report);
    return;
  }
  append_admin(admin_record(kRepair, now, broken),
               [report, fixed, done = std::move(done)](const Status& s, const std::string& summary) mutable {
                 Report r2;
                 add_summary(&r2, summary);
                 int64_t repaired = fixed;
                 for (const auto& [k, v] : r2.counts) repaired += v;
                 report.count("repaired", s.ok() ? repaired : fixed);
                 done(s, report);
               });
}

void EmbeddedStore::flush(ReportCallback done) {
  uint64_t t0 = uv_hrtime();
  int64_t queued = static_cast<int64_t>(stats_.in_flight + held_.size());
  auto finish = [this, t0, queued, done = std::move(done)] {
    Report report;
    report.count("queued_at_start", queued);
    report.count("waited_ms", static_cast<int64_t>((uv_hrtime() - t0) / 1000000));
    report.count("batches_applied_total", static_cast<int64_t>(stats_.batches_applied));
    done(Status::Ok(), report);
  };
  if (stats_.in_flight == 0 && held_.empty()) {
    finish();
    return;
  }
  drain_waiters_.push_back(std::move(finish));
}

void EmbeddedStore::status(std::function<void(const Status&, const ClusterStatus&)> done) {
  ClusterStatus cs;
  cs.store = "embedded";
  ShardStatus shard;
  shard.name = "embedded";
  shard.master = options_.dir;
  shard.up = !closing_;
  shard.stream_length = static_cast<int64_t>(stats_.in_flight + held_.size());
  shard.pending = static_cast<int64_t>(stats_.in_flight);
  if (!append_times_.empty()) shard.oldest_pending_age_s = std::max(0.0, wall_now() - append_times_.front());
  cs.shards.push_back(std::move(shard));
  cs.pipeline_latency_s = pipeline_latency_s();
  if (self_info_) cs.servers.push_back(self_info_());
  done(Status::Ok(), cs);
}

}  // namespace taba::store
