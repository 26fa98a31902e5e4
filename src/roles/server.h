// The server role (fe, be, ctrl): the store (embedded, or Redis when a
// [redis] section is configured) and, over one HTTP server on
// server.listen, the ingest routes (fe), the query and admin routes,
// /metrics, /healthz, /readyz and the web page. Once a second it measures
// the load figures of its heartbeat (events/s, deltas/s), records its self
// tabs (roles/self_tabs.h) and runs the periodic GC (be; in Redis mode the
// store has one be of the cluster run it).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/uv_timer.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "query/query_service.h"
#include "roles/self_tabs.h"
#include "routes/admin.h"
#include "routes/ingest.h"
#include "routes/reshard.h"
#include "routes/server_metrics.h"
#include "store/store.h"

namespace taba::roles {

class ServerRole {
 public:
  ServerRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry);
  ~ServerRole();

  // Opens the store, then listens on server.listen and starts the tick. The
  // error is the whole log line (what failed and why).
  Status start();
  // Whether start() got as far as opening the store: then close it (below)
  // before the process exits.
  bool store_open() const { return store_open_; }
  // SIGTERM, first thing: /readyz answers 503 and the tick stops (no more
  // self tabs or GC) while the other roles drain.
  void mark_stopping();
  // SIGTERM, once the client-proxy and the agent are done: drains the HTTP
  // requests, then closes the store; `done` once it is closed.
  void shutdown(std::function<void()> done);
  // A start that failed later on: stops the tick and closes the store
  // without draining anything.
  void close_store(std::function<void()> done);
  // Before the loop is torn down: destroys the store (its destructor closes
  // its own handles: timers, Redis connections) and closes the tick. The
  // HTTP server's handles are closed by the loop walk; destroy the role after
  // that.
  void release_handles();
  // SIGHUP: the configuration to run with from now on (what needs a restart
  // is already as running; roles/reload.h): tokens, ingest limits, the GC
  // and self-tab intervals.
  void reload(const Config& config);

 private:
  Status open_store();
  std::unique_ptr<http::RequestHandler> route(const std::shared_ptr<http::Exchange>& ex);
  // The routes this server answers, for "/" and 404s.
  std::string route_list() const;
  store::ServerInfo self_info() const;
  static void on_tick(ServerRole* self);  // once a second

  uv_loop_t* loop_;
  Config config_;
  const plugin::Registry* registry_;
  double started_at_;
  std::string server_id_;
  std::string listen_;
  std::unique_ptr<store::Store> store_;
  bool store_open_ = false;
  std::unique_ptr<routes::Ingest> ingest_;
  std::unique_ptr<SelfTabs> self_tabs_;
  std::unique_ptr<query::QueryService> queries_;
  std::unique_ptr<routes::AdminRoutes> admin_;
  std::unique_ptr<routes::ReshardRoutes> reshard_;
  std::unique_ptr<routes::TabMetrics> tab_metrics_;
  std::unique_ptr<routes::ServerMetrics> metrics_;
  std::unique_ptr<http::Server> server_;  // last: destroyed first, before what its requests use

  std::unique_ptr<UvTimer> tick_;
  bool stopping_ = false;
  double last_self_tabs_ = 0;
  double last_tick_ = 0;
  uint64_t last_events_ = 0;
  uint64_t last_deltas_ = 0;
  double events_per_s_ = 0;
  double deltas_per_s_ = 0;
  double last_gc_ = 0;
  bool gc_running_ = false;
  bool gc_by_store_ = false;  // the store runs the periodic GC itself (Store::schedule_gc)
};

}  // namespace taba::roles
