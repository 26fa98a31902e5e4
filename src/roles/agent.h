// The agent role (docs/operations.md, "An agent on every host"; docs/api.md §14): one per host, between clients and the fes.
//
//   POST /post, /post_zip   validated like the fe (400 names the line), then
//                           written to the spool; 200 only once written;
//                           503 + Retry-After when the spool is full
//   POST /post_delta        delta batches (protocol/delta_batch.h), validated
//                           like the fe (400 names the block), then spooled
//                           as they are
//   GET /status             spool, forwarding, endpoints, dead letters
//                           (text, or JSON with ?format=json / Accept)
//   GET /metrics            Prometheus text
//   GET /healthz, /readyz   liveness; ready unless full or stopping
//
// A client's Taba-Batch-Id is remembered for agent.dedup_ttl_s (also across
// a restart, for ids whose records are still spooled), so a client retrying
// after a lost 200 is spooled once. Forwarding (agent/forwarder.h) stamps
// each spooled segment with its own batch id for the fe.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "agent/forwarder.h"
#include "agent/id_journal.h"
#include "agent/spool.h"
#include "core/config.h"
#include "core/uv_timer.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "routes/ingest.h"
#include "routes/metrics.h"

namespace taba::roles {

class AgentRole : public routes::IngestSink {
 public:
  AgentRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry);
  ~AgentRole() override;

  // Recovers the spool, starts forwarding and listens on agent.listen.
  Status start();
  // The bound HTTP port.
  int port() const;
  // SIGTERM: stops accepting, seals the spool, forwards for at most
  // agent.shutdown_grace_ms, then stops; what is left stays spooled.
  void shutdown(std::function<void()> done);
  // Before the loop is torn down: stops forwarding, closes the spool and
  // this role's own handles (the HTTP server's are closed by the loop walk;
  // destroy the role after that).
  void release_handles();
  // SIGHUP: tokens and ingest limits.
  void reload(const Config& config);

  void write_metrics(routes::MetricsWriter* w) const;
  std::string status_text() const;
  std::string status_json() const;

  // IngestSink
  const plugin::Handler* bound_handler(std::string_view) const override { return nullptr; }
  void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings, uint64_t events,
              std::function<void(const Status&)> done) override;
  // Refused blocks of a post become a dead letter "dl-refused-<batch id>"
  // (.v1, or .delta holding the refused delta blocks' envelope).
  bool keeps_refused() const override { return true; }
  // Blocks of types no plugin here serves are spooled and forwarded as v1.
  bool forwards_unknown_types() const override { return true; }
  void refused(const std::string& v1_text, const std::string& batch_id, uint64_t events,
               const std::string& reasons) override;
  bool accepts_deltas() const override { return true; }
  void refused_deltas(const std::string& delta_batch, const std::string& batch_id, uint64_t events,
                      const std::string& reasons) override;

 private:
  std::unique_ptr<http::RequestHandler> route(const std::shared_ptr<http::Exchange>& ex);
  void remember(const std::string& id, double expires);
  bool seen(const std::string& id);
  static void on_drain_timer(AgentRole* self);

  uv_loop_t* loop_;
  Config config_;
  const plugin::Registry* registry_;
  std::unique_ptr<agent::Spool> spool_;
  agent::IdJournal journal_;  // before forwarder_: its workers write to it
  std::unique_ptr<agent::Forwarder> forwarder_;
  std::unique_ptr<routes::Ingest> ingest_;
  std::unique_ptr<http::Server> server_;
  std::string spool_dir_;
  std::string dead_letter_dir_;

  // Client batch ids: applied (with expiry, in expiry order) and in flight.
  std::unordered_map<std::string, double> seen_ids_;
  std::deque<std::pair<double, std::string>> seen_order_;
  std::unordered_set<std::string> in_flight_ids_;
  uint64_t duplicate_posts_ = 0;
  uint64_t events_spooled_ = 0;  // duplicates not counted

  std::unique_ptr<UvTimer> drain_timer_;  // every 50 ms while shutting down, until the forwarder stops
  bool stopping_ = false;
  std::function<void()> shutdown_done_;
  double started_at_ = 0;
};

}  // namespace taba::roles
