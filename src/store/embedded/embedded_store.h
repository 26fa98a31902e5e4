// The embedded store: every state in memory, made durable by a write-ahead
// log of accepted batches plus periodic snapshots (see wal.h).
//
// Ingest: a decoded, validated batch (events, or deltas folded at the edge)
// is appended to the WAL; when the WAL reports it durable (per the fsync
// policy) the batch is applied to memory and the request is answered. Recovery replays the snapshot and the WAL
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

#include "core/latency.h"
#include "core/status.h"
#include "core/string_map.h"
#include "core/uv_timer.h"
#include "plugin/registry.h"
#include "store/client_states.h"
#include "store/embedded/wal.h"
#include "store/store.h"

namespace taba::protocol {
class BatchReader;
class DeltaReader;
}  // namespace taba::protocol

namespace taba::store {

struct StoreOptions {
  std::string dir;  // WAL and snapshots live here
  FsyncPolicy fsync = FsyncPolicy::kEverySec;
  uint64_t wal_max_queued_bytes = 256ull << 20;
  uint32_t snapshot_interval_s = 60;
  double dedup_ttl_s = 3600;  // an applied Taba-Batch-Id is remembered this long
};

struct StoreStats {
  uint64_t batches_applied = 0;
  uint64_t events_applied = 0;
  uint64_t blocks_applied = 0;
  uint64_t batches_replayed = 0;
  uint64_t batches_failed = 0;  // WAL write failed; the request got 503
  uint64_t blocks_dropped = 0;  // a handler could not allocate a state, or a delta did not deserialize
  uint64_t admin_records = 0;   // delete / gc / repair records applied (live and replayed)
  uint64_t batches_duplicate = 0;  // a batch id seen before: acknowledged, not applied again
  uint64_t refused_max_names = 0;             // bodies refused by NameLimits::max_names
  uint64_t refused_max_names_per_client = 0;  // ... by NameLimits::max_names_per_client
  uint64_t in_flight = 0;       // appended, not yet applied
  double last_apply_lag_s = 0;  // receive -> applied, of the last batch
};

class EmbeddedStore final : public Store, public ReadView {
 public:
  EmbeddedStore(uv_loop_t* loop, const plugin::Registry* registry, StoreOptions options);
  ~EmbeddedStore() override;
  EmbeddedStore(const EmbeddedStore&) = delete;
  EmbeddedStore& operator=(const EmbeddedStore&) = delete;

  // Recovers from the directory and starts the WAL and the snapshot timer.
  Status open() override;
  // Snapshot, then fsync and stop the WAL. Call before the loop ends.
  void close(std::function<void()> done) override;
  // Not ready while closing, or while the WAL's last write failed for lack
  // of room and the file system still has no room for it (a probe that
  // needs no write: once room returns, /readyz says so and posts come back).
  bool ready() const override { return unready_reason().empty(); }
  std::string unready_reason() const override;

  // The handler bound to `name` (applied or reserved by an accepted batch
  // still in flight), or nullptr when the name is new.
  const plugin::Handler* bound_handler(std::string_view name) const override;

  // Appends a validated batch to the WAL and applies it once durable.
  // `new_bindings` are the names this batch binds for the first time; they
  // are re-checked here (another request may have bound one meanwhile:
  // that is a conflict, reported without writing anything). `done` runs on
  // the loop thread: OK once applied; Invalid on a binding conflict;
  // Unavailable / IoError when the WAL refused or failed (nothing applied).
  // A batch id seen within dedup_ttl_s is acknowledged without applying it
  // again (a retry after a lost 200); ids are logged with their batch.
  void submit(std::string batch, BatchId batch_id, Bindings new_bindings,
              std::function<void(const Status&)> done) override;
  // Checked in submit against what is applied plus what is in flight (for
  // max_names exactly; max_names_per_client against applied states, so
  // concurrent bodies of one client can pass it by what they hold).
  void set_name_limits(const NameLimits& limits) override { limits_ = limits; }

  // Queries read the store itself (synchronously).
  void fetch(const QueryNeed& need, ViewCallback ready) override;

  // The measured pipeline latency (receive -> applied), smoothed; queries
  // render windows as of now minus this. 0 when nothing was applied for a
  // minute (nothing is in flight then).
  double pipeline_latency_s() const override;

  // Admin operations are WAL records too: durable, and replayed in order
  // (embedded_admin.cpp).
  void delete_names(const Matcher& names, ReportCallback done) override;
  void gc(ReportCallback done) override;
  void check(bool repair, ReportCallback done) override;
  void flush(ReportCallback done) override;
  void status(std::function<void(const Status&, const ClusterStatus&)> done) override;

  // Writes a snapshot now (if anything changed since the last one).
  void snapshot_now(std::function<void(const Status&)> done);

  // --- ReadView (loop thread) ---
  const NameEntry* find_name(std::string_view name) const override;
  std::vector<const NameEntry*> names() const override;
  const std::vector<std::string>& clients() const override { return clients_; }
  bool client_has_states(ClientIndex client) const override {
    return client < client_state_counts_.size() && client_state_counts_[client] > 0;
  }
  const std::string& client_name(ClientIndex index) const { return clients_[index]; }
  // Index of a known client, or false.
  bool find_client(std::string_view client, ClientIndex* out) const;

  LatencyWindow::Summary local_latency() const override;
  const LatencyWindow& local_latency_window() const override { return latencies_; }
  void metrics(std::vector<Metric>* out) const override;
  uint64_t local_deltas_applied() const override { return stats_.blocks_applied; }
  StoreStats stats() const;
  WalStats wal_stats() const;

 private:
  struct Pending {
    std::string batch;
    std::vector<std::pair<std::string, const plugin::Handler*>> bindings;
    std::function<void(const Status&)> done;
    std::function<void(const Status&, const std::string&)> admin_done;  // admin records
  };
  // Applies a WAL record's batch (apply.cpp): events (apply_events) or
  // deltas folded at the edge (apply_deltas); live and at replay alike.
  Status apply(std::string_view record, bool replay);
  Status apply_events(protocol::BatchReader* reader, double now, bool replay);
  Status apply_deltas(protocol::DeltaReader* reader, double now, bool replay);
  // The entry of `name` for a block of `type`, created when the name is
  // new; *out nullptr (and OK) when the name is bound to another type (the
  // block is skipped and logged). Error: no loaded plugin serves `type`.
  Status name_entry(std::string_view name, std::string_view type, double now, bool replay, NameEntry** out);
  // Makes `state` the client's state of the entry (the client had none).
  State* add_client_state(NameEntry* entry, ClientIndex client, State state);
  // Status::Limit when the batch would pass a NameLimits guard.
  Status check_name_limits(std::string_view batch, const Bindings& new_bindings);
  // Recomputes max_client_states_ after states were removed.
  void lower_max_client_states();
  void remember_batch_id(std::string_view id, double time);
  Status apply_admin(std::string_view record, std::string* summary);
  // Appends an admin record; `applied` runs after it is durable and applied.
  void append_admin(std::string record, std::function<void(const Status&, const std::string&)> applied);
  size_t erase_name(std::string_view name);
  // Re-merges a name's aggregate from its client states.
  Status rebuild_aggregate(NameEntry* entry, double now);
  void set_state(NameEntry* entry, ClientIndex client, State state);
  ClientIndex intern_client(std::string_view client);
  void append(Pending p);
  void on_applied();
  void maybe_snapshot();
  void start_snapshot(std::function<void(const Status&)> done);
  // Restores the tables from a snapshot payload (snapshot_payload.h).
  Status load_snapshot(std::string_view bytes);
  void on_timer();  // every snapshot_interval_s

  uv_loop_t* loop_;
  const plugin::Registry* registry_;
  StoreOptions options_;
  std::unique_ptr<WriteAheadLog> wal_;
  std::unique_ptr<UvTimer> timer_;

  StringMap<std::unique_ptr<NameEntry>> names_;
  StringMap<const plugin::Handler*> reserved_;  // bound by in-flight batches
  std::vector<std::string> clients_;
  std::vector<uint32_t> client_state_counts_;  // states per client, across names
  uint32_t max_client_states_ = 0;  // at least the largest of client_state_counts_ (lowered after admin records)
  NameLimits limits_;
  StringMap<ClientIndex> client_index_;

  std::vector<taba_event> events_;        // scratch, reused per block
  std::vector<taba_event> events_ahead_;  // the next block's (apply reads one ahead)
  StoreStats stats_;
  double latency_ewma_s_ = 0;
  LatencyWindow latencies_;
  std::vector<std::function<void()>> drain_waiters_;  // flush: run when nothing is in flight
  double last_live_apply_ = 0;  // wall clock of the last live apply
  double last_failure_log_ = -1e9;  // wall clock of the last "WAL write failed" line
  uint64_t changes_since_snapshot_ = 0;
  bool snapshot_wanted_ = false;
  bool snapshot_running_ = false;
  std::vector<std::function<void(const Status&)>> snapshot_waiters_;
  std::deque<Pending> held_;  // waiting for a snapshot to start
  std::deque<double> append_times_;
  // Batch ids applied within dedup_ttl_s (persisted in snapshots, rebuilt by
  // replay), and those in flight with the requests waiting on them.
  StringMap<double> applied_ids_;
  std::deque<std::pair<double, std::string>> applied_order_;
  StringMap<std::vector<std::function<void(const Status&)>>> in_flight_ids_;  // wall clock of each in-flight append, oldest first
  bool closing_ = false;
};

}  // namespace taba::store
