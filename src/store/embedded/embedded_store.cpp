#include "store/embedded/embedded_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "core/clock.h"
#include "core/log.h"
#include "protocol/batch.h"

namespace taba::store {
namespace {

constexpr uint32_t kSnapshotVersion = 1;

template <typename T>
void put(std::string* buf, T v) {
  char tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  buf->append(tmp, sizeof(T));
}

// Bounds-checked reader over snapshot bytes.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool get(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool bytes(size_t n, std::string_view* out) {
    if (in_.size() - pos_ < n) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

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
    return apply(bytes, true);
  };
  auto wal = WriteAheadLog::open(loop_, wo, visitor);
  if (!wal.ok()) return wal.status();
  wal_ = std::move(wal.value());
  changes_since_snapshot_ = stats_.batches_replayed;
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

const plugin::Handler* EmbeddedStore::bound_handler(std::string_view name) const {
  auto it = names_.find(name);
  if (it != names_.end()) return it->second->handler;
  auto r = reserved_.find(name);
  return r == reserved_.end() ? nullptr : r->second;
}

void EmbeddedStore::submit(std::string batch,
                           const std::vector<std::pair<std::string, const plugin::Handler*>>& new_bindings,
                           std::function<void(const Status&)> done) {
  if (closing_) {
    done(Status::Unavailable("server is shutting down"));
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
  for (const auto& [name, handler] : new_bindings) {
    if (!bound_handler(name)) reserved_.emplace(name, handler);
  }
  Pending p{std::move(batch), {}, std::move(done)};
  if (snapshot_wanted_) {
    held_.push_back(std::move(p));
    return;
  }
  append(std::move(p));
}

void EmbeddedStore::append(Pending p) {
  auto shared = std::make_shared<Pending>(std::move(p));
  ++stats_.in_flight;
  Status s = wal_->append(shared->batch, [this, shared](const Status& st) {
    --stats_.in_flight;
    if (st.ok()) {
      Status applied = apply(shared->batch, false);
      if (!applied.ok()) log::error("store: applying a logged batch failed: {}", applied.message());
      shared->done(Status::Ok());
    } else {
      ++stats_.batches_failed;
      log::error("store: WAL write failed: {}", st.message());
      shared->done(st);
    }
    on_applied();
  });
  if (!s.ok()) {
    --stats_.in_flight;
    ++stats_.batches_failed;
    shared->done(s);
  }
}

void EmbeddedStore::on_applied() { maybe_snapshot(); }

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
  Result<std::string> serialized = serialize_snapshot();
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
  uint64_t changes = changes_since_snapshot_;
  changes_since_snapshot_ = 0;
  log::debug("store: snapshot of {} bytes serialized in {:.1f} ms", payload.size(), (uv_hrtime() - t0) / 1e6);
  wal_->snapshot(std::move(payload), [this, changes, done = std::move(done)](const Status& s) {
    snapshot_running_ = false;
    if (!s.ok()) changes_since_snapshot_ += changes;
    done(s);
    auto waiters = std::move(snapshot_waiters_);
    snapshot_waiters_.clear();
    for (auto& w : waiters) w(s);
  });
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

ClientIndex EmbeddedStore::intern_client(std::string_view client) {
  auto it = client_index_.find(client);
  if (it != client_index_.end()) return it->second;
  ClientIndex index = static_cast<ClientIndex>(clients_.size());
  clients_.emplace_back(client);
  client_index_.emplace(std::string(client), index);
  return index;
}

Status EmbeddedStore::apply(std::string_view batch, bool replay) {
  protocol::BatchReader reader(batch);
  Status s = reader.open();
  if (!s.ok()) return s;
  const double now = reader.receive_time();
  protocol::BatchBlock block;
  while (reader.next(&block, &events_, &s)) {
    auto it = names_.find(block.name);
    NameEntry* entry;
    if (it == names_.end()) {
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
      entry = it->second.get();
      if (entry->handler->type_name != block.type) {
        log::warn("store: {} block for name \"{}\" of type {} skipped (bound to {})", replay ? "replayed" : "live",
                  block.name, block.type, entry->handler->type_name);
        continue;
      }
    }
    const taba_handler* h = entry->handler->table;
    ClientIndex ci = intern_client(block.client);
    taba_state* fresh_state = h->new_state(block.client.data(), block.client.size(), now);
    if (!fresh_state) {
      ++stats_.blocks_dropped;
      log::error("store: {} handler could not create a state: {} events of \"{}\" dropped",
                 entry->handler->type_name, block.event_count, block.name);
      continue;
    }
    State& st = entry->states[ci];
    if (!st) {
      // A new client: fold straight into its state, then add it to the aggregate.
      st = State(entry->handler, fresh_state);
      h->fold(st.get(), events_.data(), events_.size(), now);
      h->merge(entry->aggregate.get(), st.get(), now);
    } else {
      taba_state* delta = fresh_state;
      h->fold(delta, events_.data(), events_.size(), now);
      h->merge(st.get(), delta, now);
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
    latency_ewma_s_ = last_live_apply_ == 0 ? lag : 0.8 * latency_ewma_s_ + 0.2 * lag;
    last_live_apply_ = applied_at;
  }
  return Status::Ok();
}

// Snapshot layout (little-endian):
//   u32 version | u32 client_count | clients: u16 len, bytes
//   u32 name_count | names: u16 len, name | u8 len, type | u32 state_version |
//     u32 len, aggregate | u32 state_count | states: u32 client, u32 len, bytes
Result<std::string> EmbeddedStore::serialize_snapshot() const {
  std::string out;
  put<uint32_t>(&out, kSnapshotVersion);
  put<uint32_t>(&out, static_cast<uint32_t>(clients_.size()));
  for (const std::string& c : clients_) {
    put<uint16_t>(&out, static_cast<uint16_t>(c.size()));
    out += c;
  }
  put<uint32_t>(&out, static_cast<uint32_t>(names_.size()));
  std::string tmp;
  taba_output sink = plugin::string_output(&tmp);
  bool failed = false;
  auto put_state = [&](const taba_handler* h, const State& st) {
    tmp.clear();
    if (h->serialize(st.get(), &sink) != TABA_OK) failed = true;
    put<uint32_t>(&out, static_cast<uint32_t>(tmp.size()));
    out += tmp;
  };
  for (const auto& [name, entry] : names_) {
    const taba_handler* h = entry->handler->table;
    put<uint16_t>(&out, static_cast<uint16_t>(name.size()));
    out += name;
    put<uint8_t>(&out, static_cast<uint8_t>(entry->handler->type_name.size()));
    out += entry->handler->type_name;
    put<uint32_t>(&out, h->state_version);
    put_state(h, entry->aggregate);
    put<uint32_t>(&out, static_cast<uint32_t>(entry->states.size()));
    entry->states.for_each([&](ClientIndex ci, const State& st) {
      put<uint32_t>(&out, ci);
      put_state(h, st);
    });
    if (failed) {
      return Status::Internal(fmt::format("the {} handler could not serialize a state of name \"{}\"",
                                          entry->handler->type_name, name));
    }
  }
  return out;
}

Status EmbeddedStore::load_snapshot(std::string_view bytes) {
  Reader r(bytes);
  auto corrupt = [](const std::string& what) { return Status::Corruption("snapshot: " + what); };
  uint32_t version = 0, nclients = 0, nnames = 0;
  if (!r.get(&version)) return corrupt("truncated header");
  if (version != kSnapshotVersion) return corrupt(fmt::format("unknown version {}", version));
  if (!r.get(&nclients)) return corrupt("truncated client count");
  for (uint32_t i = 0; i < nclients; ++i) {
    uint16_t len = 0;
    std::string_view c;
    if (!r.get(&len) || !r.bytes(len, &c)) return corrupt("truncated client list");
    intern_client(c);
  }
  if (!r.get(&nnames)) return corrupt("truncated name count");
  char err[256];
  for (uint32_t i = 0; i < nnames; ++i) {
    uint16_t name_len = 0;
    uint8_t type_len = 0;
    uint32_t state_version = 0, len = 0, nstates = 0;
    std::string_view name, type, blob;
    if (!r.get(&name_len) || !r.bytes(name_len, &name) || !r.get(&type_len) || !r.bytes(type_len, &type) ||
        !r.get(&state_version) || !r.get(&len) || !r.bytes(len, &blob)) {
      return corrupt("truncated name entry");
    }
    const plugin::Handler* handler = registry_->find(type);
    if (!handler) {
      return Status::Invalid(fmt::format(
          "snapshot holds name \"{}\" of type \"{}\", which no loaded plugin serves; install that plugin (or "
          "map the type to one) so its states are not lost",
          name, type));
    }
    const taba_handler* h = handler->table;
    auto load = [&](std::string_view data, State* out) -> Status {
      taba_state* st = nullptr;
      err[0] = '\0';
      taba_status rc = h->deserialize(data.data(), data.size(), state_version, &st, err, sizeof err);
      if (rc != TABA_OK || !st) {
        err[sizeof err - 1] = '\0';
        return Status::Corruption(fmt::format("snapshot: state of name \"{}\" ({} v{}) unreadable: {}", name, type,
                                              state_version, err));
      }
      *out = State(handler, st);
      return Status::Ok();
    };
    auto entry = std::make_unique<NameEntry>();
    entry->name.assign(name);
    entry->handler = handler;
    Status s = load(blob, &entry->aggregate);
    if (!s.ok()) return s;
    if (!r.get(&nstates)) return corrupt("truncated state count");
    for (uint32_t k = 0; k < nstates; ++k) {
      uint32_t ci = 0;
      if (!r.get(&ci) || !r.get(&len) || !r.bytes(len, &blob)) return corrupt("truncated state");
      if (ci >= clients_.size()) return corrupt(fmt::format("state refers to unknown client #{}", ci));
      State st;
      s = load(blob, &st);
      if (!s.ok()) return s;
      entry->states[ci] = std::move(st);
    }
    names_.emplace(entry->name, std::move(entry));
  }
  if (!r.done()) return corrupt("trailing bytes");
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

}  // namespace taba::store
