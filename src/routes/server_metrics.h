// GET /metrics of a server (fe, be, ctrl): the process's own metrics in the
// Prometheus text format 0.0.4 or OpenMetrics (build and roles, ingest
// outcomes, HTTP, plugins, pipeline latency, the store's own figures and
// the export of /metrics/tabs). The tabs themselves are on /metrics/tabs
// (routes/tab_metrics.h); the agent and the client-proxy write their own
// /metrics (roles/agent.h, roles/client_proxy.h).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "routes/ingest.h"
#include "routes/tab_metrics.h"
#include "store/store.h"

namespace taba::routes {

class ServerMetrics {
 public:
  // What the page reads; nothing of it is owned.
  struct Sources {
    std::vector<Role> roles;         // server.roles
    double started_at = 0;           // when the process started (epoch seconds)
    const Ingest* ingest = nullptr;
    const http::Server* server = nullptr;
    const plugin::Registry* registry = nullptr;
    store::Store* store = nullptr;
    const TabMetrics* tab_metrics = nullptr;
  };
  explicit ServerMetrics(Sources sources) : sources_(std::move(sources)) {}

  // Answers a request whose body is complete.
  void handle(const http::Request& request, std::function<void(http::Response)> done);

 private:
  Sources sources_;
};

}  // namespace taba::routes
