// Self-instrumentation (docs/api.md §13, "Self-instrumentation"): every server records its own tabs,
// without an external agent, through its own store:
//   taba_events_received     CounterGroup  events accepted per interval (fe)
//   taba_bodies_rejected     CounterGroup  bodies answered 4xx per interval (fe)
//   taba_bodies_unavailable  CounterGroup  bodies answered 503 per interval (fe)
//   taba_ingest_latency_ms   PercentileGroup  body complete -> reply, per post (fe)
//   taba_pipeline_latency_ms PercentileGroup  enqueue -> applied, per batch (be)
// under the client ID of the server ("host:port"). A type whose plugin is not
// loaded, or a name already bound to another type, is skipped (logged once).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "plugin/registry.h"
#include "store/store.h"

namespace taba::roles {

class SelfTabs {
 public:
  SelfTabs(store::Store* store, const plugin::Registry* registry) : store_(store), registry_(registry) {}

  // The names it records (/metrics/tabs leaves them out: /metrics has them).
  static std::vector<std::string> names();

  // A finished ingest request's latency (bounded sample per interval).
  void record_ingest_latency_ms(double ms);
  // Builds and submits this interval's events. `received` etc. are the
  // totals so far; the interval's increase is what gets recorded.
  void flush(const std::string& client, uint64_t received, uint64_t rejected, uint64_t unavailable);

 private:
  store::Store* store_;
  const plugin::Registry* registry_;
  std::vector<double> ingest_ms_;
  uint64_t seen_ingest_ = 0;
  uint64_t last_received_ = 0, last_rejected_ = 0, last_unavailable_ = 0;
  uint64_t last_latency_total_ = 0;
  std::set<std::string> warned_;
  bool in_flight_ = false;
};

}  // namespace taba::roles
