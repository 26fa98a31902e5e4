// The Redis store's shell: opening the shards (and the be's appliers) and
// closing them, readiness, the vbucket -> shard map and /metrics. What it
// does lives beside it: redis_submit.cpp (the fe's posts), redis_fetch.cpp
// (queries), redis_admin.cpp (delete, gc, check, flush), redis_heartbeat.cpp
// (the server registry and status).
#include "store/redis/redis_store.h"

#include <fmt/format.h>

#include "core/clock.h"
#include "core/log.h"
#include "redis/reply.h"
#include "store/redis/applier.h"
#include "store/redis/housekeeper.h"
#include "store/redis/mover.h"

namespace taba::store {

RedisStore::RedisStore(uv_loop_t* loop, const plugin::Registry* registry, const Config::Redis& config, bool run_be,
                       std::string consumer_name)
    : loop_(loop),
      registry_(registry),
      config_(config),
      run_be_(run_be),
      consumer_(std::move(consumer_name)),
      keys_(config.key_prefix) {}

RedisStore::~RedisStore() {
  *alive_ = false;
  mover_.reset();
  keeper_.reset();
  for (auto& s : shards_) s->applier.reset();
  for (auto& s : shards_) {
    if (s->shard) s->shard->stop();
  }
  shards_.clear();
  sentinels_.reset();
  tick_.reset();
}

Status RedisStore::open() {
  std::vector<redis::Address> sentinels;
  for (const std::string& s : config_.sentinels) {
    auto a = redis::parse_address(s);
    if (!a.ok()) return Status::Invalid(fmt::format("redis.sentinels: {}", a.status().message()));
    sentinels.push_back(a.value());
  }
  redis::ConnectionOptions co;
  co.connect_timeout_ms = static_cast<uint32_t>(config_.connect_timeout_ms);
  co.command_timeout_ms = static_cast<uint32_t>(config_.command_timeout_ms);
  co.password = config_.password;
  co.label = "sentinel";
  redis::ConnectionOptions sentinel_options = co;
  sentinel_options.password.clear();
  sentinels_ = std::make_unique<redis::Sentinels>(loop_, sentinels, sentinel_options);
  sentinels_->start();
  connection_options_ = co;
  // The configured ranges are the initial placement; the cluster's own
  // (a higher epoch) replaces it at the first refresh.
  placement_ = redis::Placement::initial(config_);
  for (const std::string& name : placement_.shards) add_shard(name);
  adopt(placement_);
  if (run_be_) keeper_ = std::make_unique<Housekeeper>(this, consumer_);
  tick_ = std::make_unique<UvTimer>(loop_, [this] { heartbeat(); });
  tick_->start(200, 1000);
  log::info("store: redis, {} shards over {} vbuckets, sentinels {}{}", shards_.size(), config_.vbuckets,
            fmt::join(config_.sentinels, ","), run_be_ ? "; applying as be " + consumer_ : "");
  return Status::Ok();
}

void RedisStore::close(std::function<void()> done) {
  closing_ = true;
  mover_.reset();
  for (auto& s : shards_) {
    if (s->applier) s->applier->stop();
  }
  if (tick_) tick_->stop();
  // Unregister, best effort, then stop the connections.
  auto alive = alive_;
  auto gather = std::make_shared<redis::Gather>([this, alive, done = std::move(done)](const Status&) {
    if (*alive) {
      for (auto& s : shards_) s->applier.reset();
      for (auto& s : shards_) s->shard->stop();
      if (sentinels_) sentinels_->stop();
    }
    log::info("store: redis store closed");
    done();
  });
  std::string id = self_info_ ? self_info_().id : consumer_;
  for (auto& s : shards_) {
    if (s->shard->ready()) s->shard->command({"HDEL", keys_.servers(), id}, gather->add(nullptr, true));
  }
  if (keeper_) keeper_->release(gather.get());  // another be takes over at once
  keeper_.reset();
  gather->arm();
}

bool RedisStore::ready() const {
  if (closing_ || !placement_loaded_) return false;
  for (const auto& s : shards_) {
    if (!s->shard->ready()) return false;
  }
  return !shards_.empty();
}

size_t RedisStore::shard_of(std::string_view name) const {
  return vbucket_shard_[redis::vbucket_of(name, static_cast<uint32_t>(vbucket_shard_.size()))];
}

bool RedisStore::schedule_gc(int64_t interval_s) {
  if (keeper_) keeper_->set_gc_interval(interval_s);
  return true;
}

LatencyWindow::Summary RedisStore::local_latency() const { return latencies_.summary(wall_now()); }

void RedisStore::metrics(std::vector<Metric>* out) const {
  auto add = [out](const char* name, const char* help, uint64_t v) {
    out->push_back(Metric{name, "counter", help, static_cast<double>(v), {}});
  };
  add("taba_redis_entries_appended_total", "fe: stream entries appended.", stats_.entries_appended);
  add("taba_redis_submit_failures_total", "fe: bodies answered 503 by the Redis store.", stats_.submit_failures);
  add("taba_redis_binding_conflicts_total", "fe: bodies answered 400 for a type conflict.", stats_.binding_conflicts);
  out->push_back(Metric{"taba_store_limit_refusals_total", "counter",
                        "Bodies refused (422) because they would pass a cardinality limit.",
                        static_cast<double>(stats_.refused_max_names), {{"limit", "max_names"}}});
  out->push_back(Metric{"taba_store_limit_refusals_total", "counter",
                        "Bodies refused (422) because they would pass a cardinality limit.",
                        static_cast<double>(stats_.refused_max_names_per_client), {{"limit", "max_names_per_client"}}});
  add("taba_redis_client_limit_checks_total",
      "fe: bodies whose clients' names were counted on the shards for ingest.max_names_per_client (the rest passed "
      "the P cnmax pre-check).",
      stats_.client_limit_checks);
  add("taba_redis_entries_applied_total", "be: entries applied.", stats_.entries_applied);
  add("taba_redis_entries_duplicate_total", "be: entries skipped as already applied (batch id seen).",
      stats_.entries_duplicate);
  add("taba_redis_deltas_applied_total", "be: deltas merged.", stats_.deltas_applied);
  add("taba_redis_deltas_dropped_total", "be: deltas dropped (type mismatch, unreadable).", stats_.deltas_dropped);
  add("taba_redis_deltas_deleted_total",
      "be: deltas skipped because their name was deleted after they were queued (a /delete tombstone).",
      stats_.deltas_deleted);
  add("taba_redis_txn_conflicts_total", "be: transactions aborted by WATCH and retried.", stats_.txn_conflicts);
  add("taba_redis_txn_failures_total", "be: transactions failed (connection, timeout) and retried.",
      stats_.txn_failures);
  add("taba_redis_entries_claimed_total", "be: entries claimed from idle consumers.", stats_.entries_claimed);
  add("taba_redis_read_bytes_total", "be: bytes of stream entries read into read sets.", stats_.read_bytes);
  add("taba_redis_read_sets_cut_total", "be: reads stopped at redis.max_read_bytes (the rest is read next round).",
      stats_.read_sets_cut);
  out->push_back(Metric{"taba_redis_read_set_max_bytes", "gauge",
                        "be: the largest read set applied in one transaction, in entry bytes (at most "
                        "redis.max_read_bytes, or one entry larger than that).",
                        static_cast<double>(stats_.read_set_max_bytes), {}});
  add("taba_redis_fenced_total",
      "fe: appends and bindings a shard refused because it no longer owns a vbucket of them (routed again).",
      stats_.fenced);
  add("taba_redis_entries_held_total", "be: read sets held back while their vbuckets drain on their old shard.",
      stats_.entries_held);
  add("taba_redis_dedup_lookups_total", "be: batch markers read from a vbucket's previous owner.",
      stats_.dedup_lookups);
  add("taba_redis_placement_changes_total", "Placements adopted (a higher epoch).", stats_.placement_changes);
  add("taba_redis_placement_errors_total", "Placements that could not be read or parsed.", stats_.placement_errors);
  out->push_back(Metric{"taba_redis_placement_epoch", "gauge", "The epoch of the placement this process routes by.",
                        static_cast<double>(placement_.epoch), {}});
  out->push_back(Metric{"taba_redis_placement_age_seconds", "gauge", "Seconds since the placement was last read.",
                        placement_loaded_ ? placement_age_s() : -1.0, {}});
  for (const auto& s : shards_) {
    double owned = 0;
    for (const auto& [first, last] : placement_.ranges_of(s->name)) owned += last - first + 1;
    out->push_back(Metric{"taba_redis_shard_vbuckets", "gauge", "Vbuckets the shard owns in the placement.", owned,
                          {{"shard", s->name}}});
  }
  out->push_back(Metric{"taba_redis_move_in_progress", "gauge",
                        "1 while a re-shard move is in progress (labels: its source, target and phase).",
                        placement_.move ? 1.0 : 0.0,
                        placement_.move ? std::vector<std::pair<std::string, std::string>>{{"from", placement_.move->from},
                                                                                             {"to", placement_.move->to},
                                                                                             {"phase", placement_.move->phase}}
                                        : std::vector<std::pair<std::string, std::string>>{}});
  if (mover_) mover_->metrics(out);
  if (keeper_) keeper_->metrics(out);
  {
    // What the fe's ingest.max_names_per_client pre-check uses (redis_submit.cpp).
    double bound = 0;
    for (const auto& sh : shards_) {
      if (!may_hold_data(sh.get())) continue;
      if (sh->names_max < 0) {
        bound = -1;
        break;
      }
      bound += static_cast<double>(sh->names_max);
    }
    out->push_back(Metric{"taba_redis_client_names_bound", "gauge",
                          "An upper bound of the names any one client holds (the shards' P cnmax summed, as of the "
                          "last heartbeat); -1 while unknown.",
                          bound, {}});
  }
  out->push_back(Metric{"taba_redis_in_flight_bytes", "gauge", "fe: bytes of posts being written to Redis.",
                        static_cast<double>(in_flight_bytes_), {}});
  for (const auto& s : shards_) {
    out->push_back(Metric{"taba_redis_shard_up", "gauge", "1 when the shard has a verified master.",
                          s->shard->ready() ? 1.0 : 0.0, {{"shard", s->name}}});
  }
  for (const auto& s : shards_) {
    out->push_back(Metric{"taba_redis_stream_length", "gauge", "Entries in the shard's ingest stream (unapplied).",
                          static_cast<double>(s->stream_length), {{"shard", s->name}}});
  }
  for (const auto& s : shards_) {
    out->push_back(Metric{"taba_redis_master_changes_total", "counter", "Master address changes seen.",
                          static_cast<double>(s->shard->master_changes()), {{"shard", s->name}}});
  }
}

}  // namespace taba::store
