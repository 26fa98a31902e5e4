#include "roles/server.h"

#include <fmt/format.h>

#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/url.h"
#include "roles/server_options.h"
#include "routes/auth.h"
#include "routes/buffered_request.h"
#include "routes/ui.h"
#include "store/embedded/embedded_store.h"
#include "store/redis/redis_store.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

store::NameLimits name_limits(const Config::Ingest& in) {
  return store::NameLimits{static_cast<uint64_t>(in.max_names), static_cast<uint64_t>(in.max_names_per_client)};
}

}  // namespace

ServerRole::ServerRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry)
    : loop_(loop), config_(config), registry_(registry), started_at_(wall_now()) {}

ServerRole::~ServerRole() = default;

Status ServerRole::start() {
  char hostname[256] = "localhost";
  gethostname(hostname, sizeof hostname - 1);
  {
    std::string h;
    int p = 0;
    http::split_host_port(config_.server.listen, &h, &p);
    server_id_ = p ? fmt::format("{}:{}", hostname, p) : fmt::format("{}:pid{}", hostname, getpid());
  }
  Status s = open_store();
  TABA_RETURN_IF_ERROR(s);
  store_open_ = true;
  store_->set_name_limits(name_limits(config_.ingest));
  gc_by_store_ = store_->schedule_gc(config_.has_role(Role::kBe) ? config_.store.gc_interval_s : 0);
  ingest_ = std::make_unique<routes::Ingest>(store_.get(), registry_, config_.ingest);
  // How long the store remembers an applied batch id: told to every poster
  // (Taba-Dedup-Window), so that an agent knows when a re-send is no longer
  // deduplicated.
  ingest_->set_dedup_window_s(config_.redis.enabled ? config_.redis.dedup_ttl_s : config_.store.dedup_ttl_s);
  self_tabs_ = std::make_unique<SelfTabs>(store_.get(), registry_);
  ingest_->set_latency_observer([this](double ms) { self_tabs_->record_ingest_latency_ms(ms); });
  queries_ = std::make_unique<query::QueryService>(store_.get());
  admin_ = std::make_unique<routes::AdminRoutes>(store_.get());
  reshard_ = std::make_unique<routes::ReshardRoutes>(store_.get());

  http::ServerOptions ho = server_options(config_.http);
  server_ = std::make_unique<http::Server>(loop_, ho, [this](const std::shared_ptr<http::Exchange>& ex) {
    return route(ex);
  });
  tab_metrics_ = std::make_unique<routes::TabMetrics>(loop_, store_.get(), config_.prometheus);
  tab_metrics_->set_left_out_names(SelfTabs::names());
  metrics_ = std::make_unique<routes::ServerMetrics>(routes::ServerMetrics::Sources{
      config_.server.roles, started_at_, ingest_.get(), server_.get(), registry_, store_.get(), tab_metrics_.get()});
  std::string host;
  int port = 0;
  if (!http::split_host_port(config_.server.listen, &host, &port)) {
    return Status::Invalid(fmt::format("server.listen: \"{}\" is not HOST:PORT", config_.server.listen));
  }
  s = server_->listen(host, port);
  if (!s.ok()) return Status::IoError(fmt::format("cannot listen on {}: {}", config_.server.listen, s.message()));
  log::info("listening on {}:{}", host, server_->port());
  listen_ = fmt::format("{}:{}", host, server_->port());

  last_self_tabs_ = wall_now();  // the first self tabs one interval after start
  tick_ = std::make_unique<UvTimer>(loop_, [this] { on_tick(this); });
  tick_->start(1000, 1000);
  return Status::Ok();
}

// The store: Redis when [redis] is configured, else the embedded store in
// server.data_dir.
Status ServerRole::open_store() {
  Status s;
  if (config_.redis.enabled) {
    store_ = std::make_unique<store::RedisStore>(loop_, registry_, config_.redis, config_.has_role(Role::kBe), server_id_);
    store_->set_self_info([this] { return self_info(); });
    s = store_->open();
    if (!s.ok()) return Status::IoError(fmt::format("cannot start the redis store: {}", s.message()));
  } else {
    store::StoreOptions so;
    so.dir = config_.server.data_dir;
    so.fsync = config_.store.fsync;
    so.wal_max_queued_bytes = static_cast<uint64_t>(config_.store.wal_max_queued_bytes);
    so.snapshot_interval_s = static_cast<uint32_t>(config_.store.snapshot_interval_s);
    so.dedup_ttl_s = static_cast<double>(config_.store.dedup_ttl_s);
    store_ = std::make_unique<store::EmbeddedStore>(loop_, registry_, so);
    store_->set_self_info([this] { return self_info(); });
    s = store_->open();
    if (!s.ok()) return Status::IoError(fmt::format("cannot open the store in {}: {}", so.dir, s.message()));
  }
  return Status::Ok();
}

void ServerRole::mark_stopping() {
  stopping_ = true;
  if (tick_) tick_->stop();
}

void ServerRole::shutdown(std::function<void()> done) {
  server_->shutdown([this, done = std::move(done)] { store_->close(done); });
}

void ServerRole::close_store(std::function<void()> done) {
  if (tick_) tick_->stop();
  store_->close(std::move(done));
}

void ServerRole::release_handles() {
  tab_metrics_.reset();  // its deferred slices, before the store they read
  store_.reset();
  tick_.reset();
}

void ServerRole::reload(const Config& config) {
  if (config.ingest != config_.ingest) {
    if (ingest_) ingest_->set_options(config.ingest);
    if (store_) store_->set_name_limits(name_limits(config.ingest));
  }
  if (tab_metrics_) tab_metrics_->set_options(config.prometheus);
  if (store_) gc_by_store_ = store_->schedule_gc(config.has_role(Role::kBe) ? config.store.gc_interval_s : 0);
  config_ = config;
}

// Once a second: load figures for the heartbeat; self tabs; periodic GC (be,
// unless the store schedules it: Redis).
void ServerRole::on_tick(ServerRole* self) {
  double now = wall_now();
  uint64_t events = self->ingest_->stats().events_received;
  uint64_t deltas = self->store_->local_deltas_applied();
  double dt = self->last_tick_ == 0 ? 1 : now - self->last_tick_;
  if (dt > 0 && self->last_tick_ != 0) {
    self->events_per_s_ = static_cast<double>(events - self->last_events_) / dt;
    self->deltas_per_s_ = static_cast<double>(deltas - self->last_deltas_) / dt;
  }
  self->last_tick_ = now;
  self->last_events_ = events;
  self->last_deltas_ = deltas;
  int64_t self_every = self->config_.server.self_tabs_interval_s;
  if (self_every > 0 && !self->stopping_ && now - self->last_self_tabs_ >= static_cast<double>(self_every)) {
    self->last_self_tabs_ = now;
    const routes::IngestStats& st = self->ingest_->stats();
    self->self_tabs_->flush(self->server_id_, st.events_received, st.bodies_rejected, st.bodies_unavailable);
  }
  int64_t gc_every = self->config_.store.gc_interval_s;
  if (!self->gc_by_store_ && gc_every > 0 && self->config_.has_role(Role::kBe) && !self->stopping_ &&
      !self->gc_running_ &&
      now - self->last_gc_ >= static_cast<double>(gc_every)) {
    if (self->last_gc_ == 0) {
      self->last_gc_ = now;  // the first GC one interval after start
      return;
    }
    self->last_gc_ = now;
    self->gc_running_ = true;
    self->store_->gc([self](const Status& s, const store::Report& report) {
      self->gc_running_ = false;
      if (!s.ok()) {
        log::warn("gc: {}", s.message());
        return;
      }
      std::string counts;
      for (const auto& [k, v] : report.counts) counts += fmt::format(" {}={}", k, v);
      log::info("gc:{}", counts);
    });
  }
}

store::ServerInfo ServerRole::self_info() const {
  store::ServerInfo info;
  info.id = server_id_;
  info.roles = role_names(config_.server.roles);
  info.listen = listen_;
  info.events_per_s = events_per_s_;
  info.deltas_per_s = deltas_per_s_;
  LatencyWindow::Summary lat = store_->local_latency();
  info.latency_p50_s = lat.p50_s;
  info.latency_p99_s = lat.p99_s;
  info.latency_samples = lat.samples;
  return info;
}

std::unique_ptr<http::RequestHandler> ServerRole::route(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  if (auto denied = routes::check_access(config_.auth, routes::access_of(req.method, req.path), req)) {
    ex->reply(std::move(*denied));
    return nullptr;
  }
  if (req.path == "/metrics") {
    routes::ServerMetrics* m = metrics_.get();
    return std::make_unique<routes::BufferedRequest>(
        ex, [m](const http::Request& r, std::string_view, std::function<void(http::Response)> done) {
          m->handle(r, std::move(done));
        });
  }
  if (req.path == "/metrics/tabs") {
    routes::TabMetrics* t = tab_metrics_.get();
    return std::make_unique<routes::BufferedRequest>(
        ex, [t](const http::Request& r, std::string_view, std::function<void(http::Response)> done) {
          t->handle(r, std::move(done));
        });
  }
  if (routes::Ingest::handles(req.path)) {
    if (!config_.has_role(Role::kFe)) {
      ex->reply(http::Response::text(
          404, fmt::format("{}: this server runs {} and takes no posts; post to an fe\n", req.path,
                           fmt::join(role_names(config_.server.roles), ","))));
      return nullptr;
    }
    return ingest_->start(ex);
  }
  if (query::QueryService::handles(req.path)) {
    const query::QueryService* q = queries_.get();
    return std::make_unique<routes::BufferedRequest>(
        ex, [q](const http::Request& r, std::string_view body, std::function<void(http::Response)> done) {
          q->handle(r, body, std::move(done));
        });
  }
  if (routes::AdminRoutes::handles(req.path)) {
    routes::AdminRoutes* a = admin_.get();
    return std::make_unique<routes::BufferedRequest>(
        ex, [a](const http::Request& r, std::string_view body, std::function<void(http::Response)> done) {
          a->handle(r, body, std::move(done));
        });
  }
  if (routes::ReshardRoutes::handles(req.path)) {
    routes::ReshardRoutes* r = reshard_.get();
    return std::make_unique<routes::BufferedRequest>(
        ex, [r](const http::Request& q, std::string_view body, std::function<void(http::Response)> done) {
          r->handle(q, body, std::move(done));
        });
  }
  if (routes::is_ui_path(req.path)) {
    ex->reply(routes::ui_response(req));
    return nullptr;
  }
  if (req.path == "/healthz") {
    ex->reply(http::Response::text(200, "ok\n"));
    return nullptr;
  }
  if (req.path == "/readyz") {
    if (stopping_) {
      ex->reply(http::Response::text(503, "shutting down\n"));
    } else if (std::string why = store_->unready_reason(); !why.empty()) {
      ex->reply(http::Response::text(503, why + "\n"));
    } else {
      ex->reply(http::Response::text(200, "ready\n"));
    }
    return nullptr;
  }
  if (req.path == "/") {
    ex->reply(http::Response::text(
        200, fmt::format("tabad {} running {}: the web page is /ui.\n{}\n", TABA_VERSION_STRING,
                         fmt::join(role_names(config_.server.roles), ","), route_list())));
    return nullptr;
  }
  ex->reply(http::Response::text(404, fmt::format("no such route: {} (the web page is /ui; {})\n", req.path,
                                                  route_list())));
  return nullptr;
}

std::string ServerRole::route_list() const {
  std::string out = "routes: ";
  if (config_.has_role(Role::kFe)) out += "/post /post_zip /post_delta, ";
  out += "/tabs /projection /supertabs /names /clients /types, /status /servers /latency, "
         "/delete /gc /check /flush /reshard, /metrics /metrics/tabs /healthz /readyz /ui";
  return out;
}

}  // namespace taba::roles
