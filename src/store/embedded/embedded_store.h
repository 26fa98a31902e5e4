// The embedded store: every state in memory, made durable by a write-ahead
// log of accepted batches plus periodic snapshots (see wal.h).
//
// Ingest: a decoded, validated batch is appended to the WAL; when the WAL
// reports it durable (per the fsync policy) the batch is applied to memory
// and the request is answered. Recovery replays the snapshot and the WAL
// through the same apply code, with each batch's recorded receive time, so
// the result is the same as before the crash.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/string_map.h"
#include "plugin/registry.h"
#include "store/embedded/client_states.h"
#include "store/embedded/wal.h"

namespace taba::store {

// A handler state owned by the store; freed through its handler.
class State {
 public:
  State() = default;
  State(const plugin::Handler* h, taba_state* s) : handler_(h), state_(s) {}
  ~State() { reset(); }
  State(State&& o) noexcept : handler_(o.handler_), state_(o.state_) { o.state_ = nullptr; }
  State& operator=(State&& o) noexcept {
    if (this != &o) {
      reset();
      handler_ = o.handler_;
      state_ = o.state_;
      o.state_ = nullptr;
    }
    return *this;
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  taba_state* get() const { return state_; }
  explicit operator bool() const { return state_ != nullptr; }
  void reset() {
    if (state_) handler_->table->free_state(state_);
    state_ = nullptr;
  }

 private:
  const plugin::Handler* handler_ = nullptr;
  taba_state* state_ = nullptr;
};

using ClientIndex = uint32_t;

// One tab: its type binding, the per-client states and their aggregate.
struct NameEntry {
  std::string name;
  const plugin::Handler* handler = nullptr;
  State aggregate;
  ClientStates<State> states;
};

struct StoreOptions {
  std::string dir;  // WAL and snapshots live here
  FsyncPolicy fsync = FsyncPolicy::kEverySec;
  uint64_t wal_max_queued_bytes = 256ull << 20;
  uint32_t snapshot_interval_s = 60;
};

struct StoreStats {
  uint64_t batches_applied = 0;
  uint64_t events_applied = 0;
  uint64_t blocks_applied = 0;
  uint64_t batches_replayed = 0;
  uint64_t batches_failed = 0;  // WAL write failed; the request got 503
  uint64_t blocks_dropped = 0;  // a handler could not allocate a state
  uint64_t in_flight = 0;       // appended, not yet applied
  double last_apply_lag_s = 0;  // receive -> applied, of the last batch
};

class EmbeddedStore {
 public:
  EmbeddedStore(uv_loop_t* loop, const plugin::Registry* registry, StoreOptions options);
  ~EmbeddedStore();
  EmbeddedStore(const EmbeddedStore&) = delete;
  EmbeddedStore& operator=(const EmbeddedStore&) = delete;

  // Recovers from the directory and starts the WAL and the snapshot timer.
  Status open();

  // The handler bound to `name` (applied or reserved by an accepted batch
  // still in flight), or nullptr when the name is new.
  const plugin::Handler* bound_handler(std::string_view name) const;

  // Appends a validated batch to the WAL and applies it once durable.
  // `new_bindings` are the names this batch binds for the first time; they
  // are re-checked here (another request may have bound one meanwhile:
  // that is a conflict, reported without writing anything). `done` runs on
  // the loop thread: OK once applied; Invalid on a binding conflict;
  // Unavailable / IoError when the WAL refused or failed (nothing applied).
  void submit(std::string batch, const std::vector<std::pair<std::string, const plugin::Handler*>>& new_bindings,
              std::function<void(const Status&)> done);

  // Writes a snapshot now (if anything changed since the last one).
  void snapshot_now(std::function<void(const Status&)> done);

  // Snapshot, then fsync and stop the WAL. Call before the loop ends.
  void close(std::function<void()> done);

  // --- reads (loop thread) ---
  const NameEntry* find_name(std::string_view name) const;
  // All names, sorted.
  std::vector<const NameEntry*> names() const;
  const std::string& client_name(ClientIndex index) const { return clients_[index]; }
  // Index of a known client, or false.
  bool find_client(std::string_view client, ClientIndex* out) const;
  const std::vector<std::string>& clients() const { return clients_; }

  // The measured pipeline latency (receive -> applied), smoothed; queries
  // render windows as of now minus this. 0 when nothing was applied for a
  // minute (nothing is in flight then).
  double pipeline_latency_s() const;

  StoreStats stats() const;
  WalStats wal_stats() const;

 private:
  struct Pending {
    std::string batch;
    std::vector<std::pair<std::string, const plugin::Handler*>> bindings;
    std::function<void(const Status&)> done;
  };
  Status apply(std::string_view batch, bool replay);
  ClientIndex intern_client(std::string_view client);
  void append(Pending p);
  void on_applied();
  void maybe_snapshot();
  void start_snapshot(std::function<void(const Status&)> done);
  Result<std::string> serialize_snapshot() const;
  Status load_snapshot(std::string_view bytes);
  static void on_timer(uv_timer_t* t);

  uv_loop_t* loop_;
  const plugin::Registry* registry_;
  StoreOptions options_;
  std::unique_ptr<WriteAheadLog> wal_;
  uv_timer_t* timer_ = nullptr;

  StringMap<std::unique_ptr<NameEntry>> names_;
  StringMap<const plugin::Handler*> reserved_;  // bound by in-flight batches
  std::vector<std::string> clients_;
  StringMap<ClientIndex> client_index_;

  std::vector<taba_event> events_;  // scratch, reused per block
  StoreStats stats_;
  double latency_ewma_s_ = 0;
  double last_live_apply_ = 0;  // wall clock of the last live apply
  uint64_t changes_since_snapshot_ = 0;
  bool snapshot_wanted_ = false;
  bool snapshot_running_ = false;
  std::vector<std::function<void(const Status&)>> snapshot_waiters_;
  std::deque<Pending> held_;  // waiting for a snapshot to start
  bool closing_ = false;
};

}  // namespace taba::store
