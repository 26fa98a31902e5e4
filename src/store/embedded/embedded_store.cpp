#include "store/embedded/embedded_store.h"

#include <fmt/format.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <ctime>
#include <unordered_set>

#include "core/clock.h"
#include "core/log.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "store/embedded/records.h"
#include "store/embedded/snapshot_child.h"
#include "store/embedded/snapshot_payload.h"

namespace taba::store {

EmbeddedStore::EmbeddedStore(uv_loop_t* loop, const plugin::Registry* registry, StoreOptions options)
    : loop_(loop), registry_(registry), options_(std::move(options)) {}

EmbeddedStore::~EmbeddedStore() {
  if (wal_) wal_->close();
}

Status EmbeddedStore::open() {
  WalOptions wo;
  wo.dir = options_.dir;
  wo.fsync = options_.fsync;
  wo.max_queued_bytes = options_.wal_max_queued_bytes;
  WriteAheadLog::RecoveryVisitor visitor;
  visitor.on_snapshot = [this](std::string_view bytes) { return load_snapshot(bytes); };
  visitor.on_record = [this](std::string_view bytes) {
    ++stats_.batches_replayed;
    if (is_admin_record(bytes)) {
      std::string summary;
      return apply_admin(bytes, &summary);
    }
    return apply(bytes, true);
  };
  auto wal = WriteAheadLog::open(loop_, wo, visitor);
  TABA_RETURN_IF_ERROR(wal);
  wal_ = std::move(wal.value());
  changes_since_snapshot_ = stats_.batches_replayed;
  lower_max_client_states();
  log::info("store: recovered {} names, {} clients, {} WAL batches replayed from {}", names_.size(),
            clients_.size(), stats_.batches_replayed, options_.dir);

  timer_ = std::make_unique<UvTimer>(loop_, [this] { on_timer(); });
  uint64_t ms = uint64_t{options_.snapshot_interval_s} * 1000;
  timer_->start(ms, ms);
  return Status::Ok();
}

void EmbeddedStore::on_timer() {
  if (changes_since_snapshot_ > 0 && !snapshot_running_) {
    snapshot_wanted_ = true;
    maybe_snapshot();
  }
}

std::string EmbeddedStore::unready_reason() const {
  if (closing_) return "the store is closing";
  if (!wal_) return {};
  WalStats w = wal_->stats();
  if (!w.out_of_room) return {};
  // Ready again once the write that failed would fit, with some room to
  // spare; a size limit that statvfs does not see (a quota) reads as ready.
  struct statvfs fs {};
  if (::statvfs(options_.dir.c_str(), &fs) != 0) return {};
  uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes >= w.failed_write_bytes + (64u << 10)) return {};
  return fmt::format("the disk of {} is full ({} bytes free): posts get 503", options_.dir, free_bytes);
}

const plugin::Handler* EmbeddedStore::bound_handler(std::string_view name) const {
  auto it = names_.find(name);
  if (it != names_.end()) return it->second->handler;
  auto r = reserved_.find(name);
  return r == reserved_.end() ? nullptr : r->second;
}

void EmbeddedStore::submit(std::string batch, BatchId id, Bindings new_bindings,
                           std::function<void(const Status&)> done) {
  // Only a client's id can come back in a retry after a lost 200 (a made-up
  // one comes back only after a 503, when nothing was applied).
  std::string batch_id = id.from_client ? std::move(id.value) : std::string();
  if (closing_) {
    done(Status::Unavailable("server is shutting down"));
    return;
  }
  if (!batch_id.empty()) {
    // A retry of a batch already applied is acknowledged without applying it
    // again; a retry of one still in flight gets that one's outcome.
    if (applied_ids_.find(batch_id) != applied_ids_.end()) {
      ++stats_.batches_duplicate;
      done(Status::Ok());
      return;
    }
    if (auto it = in_flight_ids_.find(batch_id); it != in_flight_ids_.end()) {
      ++stats_.batches_duplicate;
      it->second.push_back(std::move(done));
      return;
    }
    in_flight_ids_.emplace(batch_id, std::vector<std::function<void(const Status&)>>{});
    done = [this, batch_id, first = std::move(done)](const Status& st) {
      std::vector<std::function<void(const Status&)>> waiters;
      if (auto it = in_flight_ids_.find(batch_id); it != in_flight_ids_.end()) {
        waiters = std::move(it->second);
        in_flight_ids_.erase(it);
      }
      first(st);
      for (auto& w : waiters) w(st);
    };
    make_identified_batch_record(batch_id, &batch);
  }
  if (batch.size() > options_.wal_max_queued_bytes) {
    // Permanent: retrying cannot help, so not a 503.
    done(Status::Invalid(fmt::format("the decoded body is {} bytes, more than store.wal_max_queued_bytes ({}); "
                                     "post smaller bodies",
                                     batch.size(), options_.wal_max_queued_bytes)));
    return;
  }
  for (const auto& [name, handler] : new_bindings) {
    const plugin::Handler* bound = bound_handler(name);
    if (bound && bound != handler) {
      done(Status::Invalid(fmt::format("type \"{}\" conflicts with type \"{}\" bound to name \"{}\"",
                                       handler->type_name, bound->type_name, name)));
      return;
    }
  }
  if (Status limited = check_name_limits(batch, new_bindings); !limited.ok()) {
    done(limited);
    return;
  }
  for (const auto& [name, handler] : new_bindings) {
    if (!bound_handler(name)) reserved_.emplace(name, handler);
  }
  Pending p{std::move(batch), {}, std::move(done), {}};
  if (snapshot_wanted_) {
    held_.push_back(std::move(p));
    return;
  }
  append(std::move(p));
}

void EmbeddedStore::append(Pending p) {
  auto shared = std::make_shared<Pending>(std::move(p));
  ++stats_.in_flight;
  append_times_.push_back(wall_now());
  // The log shares the batch's bytes with `shared` (no copy).
  Status s = wal_->append(std::shared_ptr<const std::string>(shared, &shared->batch), [this, shared](const Status& st) {
    --stats_.in_flight;
    if (!append_times_.empty()) append_times_.pop_front();
    if (st.ok()) {
      std::string summary;
      bool admin = is_admin_record(shared->batch);
      Status applied = admin ? apply_admin(shared->batch, &summary) : apply(shared->batch, false);
      if (admin) lower_max_client_states();
      if (!applied.ok()) log::error("store: applying a logged record failed: {}", applied.message());
      if (admin) {
        shared->admin_done(applied, summary);
      } else {
        shared->done(Status::Ok());
      }
    } else {
      ++stats_.batches_failed;
      // A full disk fails every post until space returns: one line per 10 s.
      double t = wall_now();
      if (t - last_failure_log_ >= 10) {
        log::error("store: WAL write failed ({} posts refused so far): {}", stats_.batches_failed, st.message());
        last_failure_log_ = t;
      }
      if (shared->admin_done) {
        shared->admin_done(st, "");
      } else {
        shared->done(st);
      }
    }
    on_applied();
  });
  if (!s.ok()) {
    --stats_.in_flight;
    append_times_.pop_back();
    ++stats_.batches_failed;
    if (shared->admin_done) {
      shared->admin_done(s, "");
    } else {
      shared->done(s);
    }
    on_applied();
  }
}

void EmbeddedStore::on_applied() {
  maybe_snapshot();
  if (stats_.in_flight == 0 && held_.empty() && !drain_waiters_.empty()) {
    auto waiters = std::move(drain_waiters_);
    drain_waiters_.clear();
    for (auto& w : waiters) w();
  }
}

void EmbeddedStore::maybe_snapshot() {
  // A snapshot must reflect every record in the segments it covers, so it
  // waits until nothing is in flight; new batches are held meanwhile.
  if (!snapshot_wanted_ || stats_.in_flight > 0 || snapshot_running_) return;
  snapshot_wanted_ = false;
  start_snapshot([](const Status& s) {
    if (!s.ok()) log::error("store: snapshot failed: {}", s.message());
  });
  std::deque<Pending> held = std::move(held_);
  held_.clear();
  for (Pending& p : held) append(std::move(p));
}

void EmbeddedStore::start_snapshot(std::function<void(const Status&)> done) {
  snapshot_running_ = true;
  uint64_t t0 = uv_hrtime();
  uint64_t changes = changes_since_snapshot_;
  auto finished = [this, changes, done](const Status& s) {
    snapshot_running_ = false;
    if (!s.ok()) changes_since_snapshot_ += changes;
    done(s);
    auto waiters = std::move(snapshot_waiters_);
    snapshot_waiters_.clear();
    for (auto& w : waiters) w(s);
  };
  const SnapshotSource source{clients_, names_, applied_order_};
  if (!closing_) {
    // A forked child serializes a copy-on-write image of the states as of
    // now (nothing is in flight: maybe_snapshot waits for that; see
    // snapshot_child.h); the WAL switches segments at this same moment, so
    // the snapshot covers exactly the records applied.
    SnapshotChild child;
    if (fork_snapshot_child(source, &child)) {
      changes_since_snapshot_ = 0;
      log::debug("store: snapshot process {} forked in {:.1f} ms", child.pid, (uv_hrtime() - t0) / 1e6);
      wal_->snapshot([child] { return read_snapshot_child(child); }, finished);
      return;
    }
  }
  Result<std::string> serialized = encode_snapshot(source);
  if (!serialized.ok()) {
    // Keep the previous snapshot and every WAL segment since it.
    snapshot_running_ = false;
    done(serialized.status());
    auto waiters = std::move(snapshot_waiters_);
    snapshot_waiters_.clear();
    for (auto& w : waiters) w(serialized.status());
    return;
  }
  std::string payload = std::move(serialized.value());
  changes_since_snapshot_ = 0;
  log::debug("store: snapshot of {} bytes serialized in {:.1f} ms", payload.size(), (uv_hrtime() - t0) / 1e6);
  wal_->snapshot(std::move(payload), finished);
}

void EmbeddedStore::snapshot_now(std::function<void(const Status&)> done) {
  if (changes_since_snapshot_ == 0 && !snapshot_running_ && !snapshot_wanted_) {
    done(Status::Ok());
    return;
  }
  snapshot_waiters_.push_back(std::move(done));
  if (!snapshot_running_) {
    snapshot_wanted_ = true;
    maybe_snapshot();
  }
}

void EmbeddedStore::close(std::function<void()> done) {
  closing_ = true;
  timer_.reset();
  // Drain what is in flight, snapshot, then stop the WAL.
  auto finish = [this, done = std::move(done)](const Status& s) {
    if (!s.ok()) log::error("store: final snapshot failed: {}", s.message());
    if (wal_) wal_->close();
    log::info("store: closed ({} batches applied this run)", stats_.batches_applied);
    done();
  };
  if (!wal_) {
    finish(Status::Ok());
    return;
  }
  if (changes_since_snapshot_ == 0 && !snapshot_running_ && !snapshot_wanted_ && stats_.in_flight == 0) {
    finish(Status::Ok());
    return;
  }
  snapshot_waiters_.push_back(std::move(finish));
  if (!snapshot_running_) {
    snapshot_wanted_ = true;
    maybe_snapshot();
  }
}

Status EmbeddedStore::check_name_limits(std::string_view batch, const Bindings& new_bindings) {
  if (limits_.max_names > 0 && !new_bindings.empty()) {
    // Names applied plus those reserved by batches in flight: exact.
    uint64_t fresh = 0;
    for (const auto& b : new_bindings) fresh += bound_handler(b.first) == nullptr;
    uint64_t held = names_.size() + reserved_.size();
    if (fresh > 0 && held + fresh > limits_.max_names) {
      ++stats_.refused_max_names;
      return Status::Limit(fmt::format("the store holds {} names and this body adds {} new, more than "
                                       "ingest.max_names ({}); nothing from it was applied",
                                       held, fresh, limits_.max_names));
    }
  }
  if (limits_.max_names_per_client == 0) return Status::Ok();
  std::string_view id, records;
  if (!split_batch_record(batch, &id, &records)) return Status::Ok();  // apply reports the corruption
  // The block headers (client, name) of an event batch or a delta batch.
  const bool deltas = protocol::is_delta_batch(records);
  protocol::BatchReader reader(records);
  protocol::DeltaReader delta_reader(records);
  if (!(deltas ? delta_reader.open() : reader.open()).ok()) return Status::Ok();
  const uint32_t block_count = deltas ? delta_reader.block_count() : reader.block_count();
  // Cheap and usually enough: no client can reach the limit even if every
  // block of this body gave it a new name.
  if (uint64_t{max_client_states_} + block_count <= limits_.max_names_per_client) return Status::Ok();
  std::unordered_map<std::string_view, std::unordered_set<std::string_view>> fresh_names;  // client -> new names
  protocol::BatchBlock block;
  protocol::DeltaBlock delta;
  Status s;
  while (deltas ? delta_reader.next(&delta, &s) : reader.next_header(&block, &s)) {
    const std::string_view client = deltas ? delta.client : block.client;
    const std::string_view name = deltas ? delta.name : block.name;
    ClientIndex ci = 0;
    bool known = find_client(client, &ci);
    if (known) {
      auto it = names_.find(name);
      if (it != names_.end() && it->second->states.find(ci)) continue;
    }
    auto& names = fresh_names[client];
    names.insert(name);
    uint64_t held = known ? client_state_counts_[ci] : 0;
    if (held + names.size() > limits_.max_names_per_client) {
      ++stats_.refused_max_names_per_client;
      return Status::Limit(fmt::format("client \"{}\" has {} names and this body adds {} new, more than "
                                       "ingest.max_names_per_client ({}); nothing from it was applied",
                                       client, held, names.size(), limits_.max_names_per_client));
    }
  }
  return Status::Ok();
}

void EmbeddedStore::lower_max_client_states() {
  max_client_states_ = client_state_counts_.empty()
                           ? 0
                           : *std::max_element(client_state_counts_.begin(), client_state_counts_.end());
}

ClientIndex EmbeddedStore::intern_client(std::string_view client) {
  auto it = client_index_.find(client);
  if (it != client_index_.end()) return it->second;
  ClientIndex index = static_cast<ClientIndex>(clients_.size());
  clients_.emplace_back(client);
  client_state_counts_.push_back(0);
  client_index_.emplace(std::string(client), index);
  return index;
}

void EmbeddedStore::remember_batch_id(std::string_view id, double time) {
  applied_ids_.emplace(std::string(id), time);
  applied_order_.emplace_back(time, std::string(id));
  // Forget ids older than the horizon (by batch receive time: replay forgets
  // exactly what the live process forgot).
  while (!applied_order_.empty() && applied_order_.front().first < time - options_.dedup_ttl_s) {
    auto it = applied_ids_.find(applied_order_.front().second);
    if (it != applied_ids_.end() && it->second == applied_order_.front().first) applied_ids_.erase(it);
    applied_order_.pop_front();
  }
}

Status EmbeddedStore::load_snapshot(std::string_view bytes) {
  LoadedSnapshot loaded;
  Status s = decode_snapshot(bytes, *registry_, &loaded);
  TABA_RETURN_IF_ERROR(s);
  // Recovery starts from an empty store: the snapshot's client indexes are
  // the store's.
  for (std::string_view c : loaded.clients) intern_client(c);
  for (auto& [name, entry] : loaded.names) {
    entry->states.for_each([&](ClientIndex ci, const State&) {
      max_client_states_ = std::max(max_client_states_, ++client_state_counts_[ci]);
    });
  }
  names_ = std::move(loaded.names);
  for (const auto& [time, id] : loaded.applied_ids) remember_batch_id(id, time);
  return Status::Ok();
}

const NameEntry* EmbeddedStore::find_name(std::string_view name) const {
  auto it = names_.find(name);
  return it == names_.end() ? nullptr : it->second.get();
}

std::vector<const NameEntry*> EmbeddedStore::names() const {
  std::vector<const NameEntry*> out;
  out.reserve(names_.size());
  for (const auto& [k, v] : names_) out.push_back(v.get());
  std::sort(out.begin(), out.end(), [](const NameEntry* a, const NameEntry* b) { return a->name < b->name; });
  return out;
}

bool EmbeddedStore::find_client(std::string_view client, ClientIndex* out) const {
  auto it = client_index_.find(client);
  if (it == client_index_.end()) return false;
  *out = it->second;
  return true;
}

double EmbeddedStore::pipeline_latency_s() const {
  if (last_live_apply_ == 0 || wall_now() - last_live_apply_ > 60) return 0;
  return latency_ewma_s_;
}

StoreStats EmbeddedStore::stats() const { return stats_; }
WalStats EmbeddedStore::wal_stats() const { return wal_ ? wal_->stats() : WalStats{}; }

void EmbeddedStore::fetch(const QueryNeed&, ViewCallback ready) { ready(Status::Ok(), this); }

LatencyWindow::Summary EmbeddedStore::local_latency() const { return latencies_.summary(wall_now()); }

void EmbeddedStore::metrics(std::vector<Metric>* out) const {
  auto add = [out](const char* name, const char* type, const char* help, double v) {
    out->push_back(Metric{name, type, help, v, {}});
  };
  WalStats w = wal_stats();
  add("taba_store_batches_applied_total", "counter", "Batches applied to memory (live).",
      static_cast<double>(stats_.batches_applied));
  add("taba_store_events_applied_total", "counter", "Events applied to memory (live and replayed).",
      static_cast<double>(stats_.events_applied));
  add("taba_store_batches_replayed_total", "counter", "WAL records replayed at startup.",
      static_cast<double>(stats_.batches_replayed));
  add("taba_store_batches_failed_total", "counter", "Batches the WAL refused or failed to write (answered 503).",
      static_cast<double>(stats_.batches_failed));
  add("taba_store_batches_duplicate_total", "counter",
      "Batches whose Taba-Batch-Id was already applied (acknowledged, not applied again).",
      static_cast<double>(stats_.batches_duplicate));
  add("taba_store_blocks_dropped_total", "counter", "(client, name) blocks dropped because a handler could not "
      "create a state.", static_cast<double>(stats_.blocks_dropped));
  add("taba_store_in_flight_batches", "gauge", "Batches appended to the WAL and not yet applied.",
      static_cast<double>(stats_.in_flight + held_.size()));
  add("taba_store_names", "gauge", "Names held.", static_cast<double>(names_.size()));
  out->push_back(Metric{"taba_store_limit_refusals_total", "counter",
                        "Bodies refused (422) because they would pass a cardinality limit.",
                        static_cast<double>(stats_.refused_max_names), {{"limit", "max_names"}}});
  out->push_back(Metric{"taba_store_limit_refusals_total", "counter",
                        "Bodies refused (422) because they would pass a cardinality limit.",
                        static_cast<double>(stats_.refused_max_names_per_client), {{"limit", "max_names_per_client"}}});
  add("taba_store_clients", "gauge", "Clients known.", static_cast<double>(clients_.size()));
  add("taba_wal_queued_bytes", "gauge", "Bytes accepted by the WAL and not yet written.",
      static_cast<double>(w.queued_bytes));
  add("taba_wal_bytes_written_total", "counter", "Bytes written to WAL segments.", static_cast<double>(w.bytes_written));
  add("taba_wal_fsyncs_total", "counter", "fdatasync calls on WAL segments.", static_cast<double>(w.fsyncs));
  add("taba_wal_write_errors_total", "counter", "Failed WAL writes.", static_cast<double>(w.write_errors));
  add("taba_wal_out_of_room", "gauge", "1 while the WAL's last write failed for lack of room (posts get 503).",
      w.out_of_room ? 1.0 : 0.0);
  add("taba_wal_snapshots_written_total", "counter", "Snapshots written.", static_cast<double>(w.snapshots_written));
  add("taba_wal_torn_records_skipped_total", "counter", "Torn WAL records skipped at recovery.",
      static_cast<double>(w.torn_records_skipped));
}

}  // namespace taba::store
