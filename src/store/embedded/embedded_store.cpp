#include "store/embedded/embedded_store.h"

#include <fmt/format.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <unordered_set>

#include "core/clock.h"
#include "core/le_bytes.h"
#include "core/log.h"
#include "protocol/batch.h"
#include "store/embedded/snapshot_child.h"
#include "store/embedded/snapshot_payload.h"

namespace taba::store {
namespace {

template <typename T>
void put(std::string* buf, T v) {
  put_le(buf, v);
}
using Reader = ByteReader;

// Admin records share the WAL with batches; their first byte (0x80) can
// never start a batch (batch version 1).
//   u8 0x80 | u8 op | f64 time | u32 count | count x (u16 len, name)
constexpr uint8_t kAdminTag = 0x80;
// A batch with its Taba-Batch-Id: u8 0x81 | u16 id_len | id | batch bytes.
constexpr uint8_t kIdentifiedBatchTag = 0x81;
enum AdminOp : uint8_t { kDeleteNames = 1, kGc = 2, kRepair = 3 };

bool is_admin_record(std::string_view bytes) { return !bytes.empty() && uint8_t(bytes[0]) == kAdminTag; }

// Splits an identified batch record into its id and batch; plain batches
// (version 1, logged before batch ids were kept) have no id.
bool split_batch_record(std::string_view record, std::string_view* id, std::string_view* batch) {
  if (record.empty() || uint8_t(record[0]) != kIdentifiedBatchTag) {
    *id = {};
    *batch = record;
    return true;
  }
  uint16_t len = 0;
  if (record.size() < 3) return false;
  std::memcpy(&len, record.data() + 1, 2);
  if (record.size() < 3u + len) return false;
  *id = record.substr(3, len);
  *batch = record.substr(3 + len);
  return true;
}

std::string admin_record(AdminOp op, double time, const std::vector<std::string>& names) {
  std::string out;
  put<uint8_t>(&out, kAdminTag);
  put<uint8_t>(&out, op);
  put<double>(&out, time);
  put<uint32_t>(&out, static_cast<uint32_t>(names.size()));
  for (const std::string& n : names) {
    put<uint16_t>(&out, static_cast<uint16_t>(n.size()));
    out += n;
  }
  return out;
}

// Renders a state as JSON at `now` (for comparing an aggregate with its
// re-merged form); "" when the handler cannot. Taba's rounded form, not
// TABA_FORMAT_JSON_EXACT: window sums added up in another order may differ
// in their last bits, and that is not damage.
std::string render_json(const taba_handler* h, const taba_state* st, double now) {
  std::string out;
  taba_output sink = plugin::string_output(&out);
  if (h->render(st, TABA_FORMAT_JSON, now, &sink) != TABA_OK) return "";
  return out;
}

}  // namespace

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
  if (!wal.ok()) return wal.status();
  wal_ = std::move(wal.value());
  changes_since_snapshot_ = stats_.batches_replayed;
  lower_max_client_states();
  log::info("store: recovered {} names, {} clients, {} WAL batches replayed from {}", names_.size(),
            clients_.size(), stats_.batches_replayed, options_.dir);

  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uint64_t ms = uint64_t{options_.snapshot_interval_s} * 1000;
  uv_timer_start(timer_, &EmbeddedStore::on_timer, ms, ms);
  return Status::Ok();
}

void EmbeddedStore::on_timer(uv_timer_t* t) {
  auto* self = static_cast<EmbeddedStore*>(t->data);
  if (self->changes_since_snapshot_ > 0 && !self->snapshot_running_) {
    self->snapshot_wanted_ = true;
    self->maybe_snapshot();
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
    std::string record;
    record.reserve(3 + batch_id.size() + batch.size());
    put<uint8_t>(&record, kIdentifiedBatchTag);
    put<uint16_t>(&record, static_cast<uint16_t>(batch_id.size()));
    record += batch_id;
    record += batch;
    batch = std::move(record);
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
  Status s = wal_->append(shared->batch, [this, shared](const Status& st) {
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
  if (timer_) {
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
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
  protocol::BatchReader reader(records);
  if (!reader.open().ok()) return Status::Ok();
  // Cheap and usually enough: no client can reach the limit even if every
  // block of this body gave it a new name.
  if (uint64_t{max_client_states_} + reader.block_count() <= limits_.max_names_per_client) return Status::Ok();
  std::unordered_map<std::string_view, std::unordered_set<std::string_view>> fresh_names;  // client -> new names
  protocol::BatchBlock block;
  Status s;
  while (reader.next_header(&block, &s)) {
    ClientIndex ci = 0;
    bool known = find_client(block.client, &ci);
    if (known) {
      auto it = names_.find(block.name);
      if (it != names_.end() && it->second->states.find(ci)) continue;
    }
    auto& names = fresh_names[block.client];
    names.insert(block.name);
    uint64_t held = known ? client_state_counts_[ci] : 0;
    if (held + names.size() > limits_.max_names_per_client) {
      ++stats_.refused_max_names_per_client;
      return Status::Limit(fmt::format("client \"{}\" has {} names and this body adds {} new, more than "
                                       "ingest.max_names_per_client ({}); nothing from it was applied",
                                       block.client, held, names.size(), limits_.max_names_per_client));
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

Status EmbeddedStore::apply(std::string_view record, bool replay) {
  std::string_view batch_id, batch;
  if (!split_batch_record(record, &batch_id, &batch)) return Status::Corruption("batch record: truncated batch id");
  protocol::BatchReader reader(batch, /*written_here=*/!replay);
  Status s = reader.open();
  if (!s.ok()) return s;
  const double now = reader.receive_time();
  if (!batch_id.empty()) {
    if (applied_ids_.find(batch_id) != applied_ids_.end()) return Status::Ok();  // logged twice: apply once
    remember_batch_id(batch_id, now);
  }
  // Blocks are read one ahead: the next block's name, client and states are
  // looked up and its handler's prefetch hint issued before the current
  // block is folded, so the cache misses of cold states overlap with work.
  // A lookup ahead is kept only when it found something (entries and client
  // indexes are never removed while a batch applies); a miss is looked up
  // again, since the current block may create that name or client.
  protocol::BatchBlock block;
  protocol::BatchBlock next_block;
  NameEntry* next_entry = nullptr;
  ClientIndex next_client = 0;
  bool next_client_known = false;
  auto look_ahead = [&] {
    next_entry = nullptr;
    next_client_known = false;
    auto found = names_.find(next_block.name);
    if (found == names_.end()) return;
    next_entry = found->second.get();
    next_client_known = find_client(next_block.client, &next_client);
    if (!next_entry->handler->prefetch || next_entry->handler->type_name != next_block.type) return;
    const taba_state* targets[2] = {next_entry->aggregate.get(), nullptr};
    size_t count = 1;
    if (next_client_known) {
      if (const State* st = next_entry->states.find(next_client)) targets[count++] = st->get();
    }
    next_entry->handler->prefetch(targets, count, events_ahead_.data(), events_ahead_.size(), now);
  };
  bool have_next = reader.next(&next_block, &events_ahead_, &s);
  if (have_next) look_ahead();
  while (have_next) {
    block = next_block;
    std::swap(events_, events_ahead_);
    NameEntry* const entry_ahead = next_entry;
    const bool client_known = next_client_known;
    const ClientIndex client_ahead = next_client;
    have_next = reader.next(&next_block, &events_ahead_, &s);
    if (have_next) look_ahead();

    NameEntry* entry = entry_ahead;
    auto it = entry ? names_.end() : names_.find(block.name);
    if (!entry && it == names_.end()) {
      const plugin::Handler* handler = registry_->find(block.type);
      if (!handler) {
        return Status::Invalid(fmt::format("name \"{}\" has type \"{}\", which no loaded plugin serves", block.name,
                                           block.type));
      }
      auto fresh = std::make_unique<NameEntry>();
      fresh->name.assign(block.name);
      fresh->handler = handler;
      taba_state* aggregate = handler->table->new_state("", 0, now);
      if (!aggregate) return Status::Internal(fmt::format("{} handler: new_state failed", handler->type_name));
      fresh->aggregate = State(handler, aggregate);
      entry = fresh.get();
      names_.emplace(fresh->name, std::move(fresh));
      if (auto r = reserved_.find(block.name); r != reserved_.end()) reserved_.erase(r);
    } else {
      if (!entry) entry = it->second.get();
      if (entry->handler->type_name != block.type) {
        log::warn("store: {} block for name \"{}\" of type {} skipped (bound to {})", replay ? "replayed" : "live",
                  block.name, block.type, entry->handler->type_name);
        continue;
      }
    }
    const taba_handler* h = entry->handler->table;
    ClientIndex ci = client_known ? client_ahead : intern_client(block.client);
    State* existing = entry->states.find(ci);
    taba_state* fresh_state = nullptr;
    if (!existing || !entry->handler->fold_many) {
      fresh_state = h->new_state(block.client.data(), block.client.size(), now);
      if (!fresh_state) {
        ++stats_.blocks_dropped;
        log::error("store: {} handler could not create a state: {} events of \"{}\" dropped",
                   entry->handler->type_name, block.event_count, block.name);
        continue;
      }
    }
    State* client_state = existing;
    if (!existing) {
      // A new client: its first events fold straight into its new state.
      client_state = &entry->states[ci];
      *client_state = State(entry->handler, fresh_state);
      max_client_states_ = std::max(max_client_states_, ++client_state_counts_[ci]);
    }
    if (entry->handler->fold_many) {
      // One pass over the events into both states (handler.h, ABI 1.1).
      taba_state* const targets[2] = {client_state->get(), entry->aggregate.get()};
      entry->handler->fold_many(targets, 2, block.client.data(), block.client.size(), events_.data(),
                                events_.size(), now);
    } else if (!existing) {
      h->fold(client_state->get(), events_.data(), events_.size(), now);
      h->merge(entry->aggregate.get(), client_state->get(), now);
    } else {
      taba_state* delta = fresh_state;
      h->fold(delta, events_.data(), events_.size(), now);
      h->merge(client_state->get(), delta, now);
      h->merge(entry->aggregate.get(), delta, now);
      h->free_state(delta);
    }
    ++stats_.blocks_applied;
    stats_.events_applied += block.event_count;
  }
  if (!s.ok()) return s;
  ++stats_.batches_applied;
  ++changes_since_snapshot_;
  if (!replay) {
    double applied_at = wall_now();
    double lag = std::clamp(applied_at - now, 0.0, 30.0);
    stats_.last_apply_lag_s = lag;
    latencies_.add(applied_at, lag);
    latency_ewma_s_ = last_live_apply_ == 0 ? lag : 0.8 * latency_ewma_s_ + 0.2 * lag;
    last_live_apply_ = applied_at;
  }
  return Status::Ok();
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
  if (!s.ok()) return s;
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

// --- admin -----------------------------------------------------------------

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
  const taba_handler* h = entry->handler->table;
  taba_state* fresh = h->new_state("", 0, now);
  if (!fresh) return Status::Internal(fmt::format("{} handler: new_state failed", entry->handler->type_name));
  entry->states.for_each([&](ClientIndex, const State& st) { h->merge(fresh, st.get(), now); });
  entry->aggregate = State(entry->handler, fresh);
  return Status::Ok();
}

Status EmbeddedStore::apply_admin(std::string_view record, std::string* summary) {
  Reader r(record);
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
        const taba_handler* h = entry->handler->table;
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
          Status s = rebuild_aggregate(entry.get(), time);
          if (!s.ok()) return s;
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
        Status s = rebuild_aggregate(it->second.get(), time);
        if (!s.ok()) return s;
        ++repaired;
      }
      *summary = fmt::format("aggregates_repaired={}", repaired);
      return Status::Ok();
    }
    default:
      return Status::Corruption(fmt::format("admin record: unknown operation {}", op));
  }
}

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

void EmbeddedStore::delete_names(const query::Matcher& matcher, ReportCallback done) {
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
    const taba_handler* h = entry->handler->table;
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
    const taba_handler* h = e->handler->table;
    states += static_cast<int64_t>(e->states.size());
    e->states.for_each([&](ClientIndex ci, const State&) {
      if (ci < counts.size()) ++counts[ci];
    });
    taba_state* fresh = h->new_state("", 0, now);
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
