#include "roles/daemon.h"

#include <fmt/format.h>
#include <uv.h>

#include <unistd.h>

#include <csignal>

#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "query/query_service.h"
#include "roles/admin.h"
#include "roles/ingest.h"
#include "store/embedded/embedded_store.h"
#include "store/redis/redis_store.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

constexpr size_t kMaxQueryBodyBytes = 1 << 20;

// Collects a small request body, then answers with `respond`.
class BufferedRequest : public http::RequestHandler {
 public:
  using Respond =
      std::function<void(const http::Request&, std::string_view, std::function<void(http::Response)>)>;
  BufferedRequest(std::shared_ptr<http::Exchange> exchange, Respond respond)
      : exchange_(std::move(exchange)), respond_(std::move(respond)) {}

  void on_body(std::string_view chunk) override {
    if (body_.size() + chunk.size() > kMaxQueryBodyBytes) {
      exchange_->reply(http::Response::text(413, fmt::format("query body exceeds {} bytes\n", kMaxQueryBodyBytes)));
      return;
    }
    body_.append(chunk);
  }
  void on_complete() override {
    if (exchange_->replied()) return;
    std::shared_ptr<http::Exchange> ex = exchange_;
    respond_(ex->request(), body_, [ex](http::Response r) {
      if (!ex->replied()) ex->reply(std::move(r));
    });
  }

 private:
  std::shared_ptr<http::Exchange> exchange_;
  Respond respond_;
  std::string body_;
};

class Daemon {
 public:
  explicit Daemon(const Config& config) : config_(config) {}

  int run() {
    uv_loop_init(&loop_);
    std::string plugins_dir =
        config_.server.plugins_dir.empty() ? plugin::default_plugins_dir() : config_.server.plugins_dir;
    log::info("tabad {} starting: roles {}, listen {}, data dir {}, plugins {}", TABA_VERSION_STRING,
              fmt::join(config_.server.roles, ","), config_.server.listen, config_.server.data_dir, plugins_dir);
    if (!registry_.load_dir(plugins_dir)) {
      log::error("no plugins directory at {}; set --plugins-dir", plugins_dir);
    }
    for (const auto& [alias, target] : config_.plugins.types) {
      Status st = registry_.add_alias(alias, target);
      if (!st.ok()) {
        log::error("{}", st.message());
        return close_loop(2);
      }
    }
    if (registry_.handlers().empty()) log::warn("no handler plugins loaded: every post will be rejected");

    char hostname[256] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    {
      std::string h;
      int p = 0;
      http::split_host_port(config_.server.listen, &h, &p);
      server_id_ = p ? fmt::format("{}:{}", hostname, p) : fmt::format("{}:pid{}", hostname, getpid());
    }
    Status s;
    if (config_.redis.enabled) {
      store_ = std::make_unique<store::RedisStore>(&loop_, &registry_, config_.redis, config_.has_role("be"),
                                                   server_id_);
      store_->set_self_info([this] { return self_info(); });
      s = store_->open();
      if (!s.ok()) {
        log::error("cannot start the redis store: {}", s.message());
        return close_loop(1);
      }
    } else {
      store::StoreOptions so;
      so.dir = config_.server.data_dir;
      so.fsync = config_.store.fsync == "always" ? store::FsyncPolicy::kAlways : store::FsyncPolicy::kEverySec;
      so.wal_max_queued_bytes = static_cast<uint64_t>(config_.store.wal_max_queued_bytes);
      so.snapshot_interval_s = static_cast<uint32_t>(config_.store.snapshot_interval_s);
      store_ = std::make_unique<store::EmbeddedStore>(&loop_, &registry_, so);
      store_->set_self_info([this] { return self_info(); });
      s = store_->open();
      if (!s.ok()) {
        log::error("cannot open the store in {}: {}", so.dir, s.message());
        return close_loop(1);
      }
    }
    ingest_ = std::make_unique<Ingest>(store_.get(), &registry_, config_.ingest);
    queries_ = std::make_unique<query::QueryService>(store_.get());
    admin_ = std::make_unique<AdminRoutes>(store_.get());

    http::ServerOptions ho;
    ho.max_body_bytes = static_cast<uint64_t>(config_.http.max_body_bytes);
    ho.max_header_bytes = static_cast<size_t>(config_.http.max_header_bytes);
    ho.header_timeout_ms = static_cast<uint32_t>(config_.http.header_timeout_ms);
    ho.body_timeout_ms = static_cast<uint32_t>(config_.http.body_timeout_ms);
    ho.idle_timeout_ms = static_cast<uint32_t>(config_.http.idle_timeout_ms);
    ho.max_connections = static_cast<uint32_t>(config_.http.max_connections);
    server_ = std::make_unique<http::Server>(&loop_, ho, [this](const std::shared_ptr<http::Exchange>& ex) {
      return route(ex);
    });
    std::string host;
    int port = 0;
    if (!http::split_host_port(config_.server.listen, &host, &port)) {
      log::error("server.listen: \"{}\" is not HOST:PORT", config_.server.listen);
      return shutdown_store_and_close(1);
    }
    s = server_->listen(host, port);
    if (!s.ok()) {
      log::error("cannot listen on {}: {}", config_.server.listen, s.message());
      return shutdown_store_and_close(1);
    }
    log::info("listening on {}:{}", host, server_->port());
    listen_ = fmt::format("{}:{}", host, server_->port());

    uv_timer_init(&loop_, &tick_);
    tick_.data = this;
    uv_timer_start(&tick_, on_tick, 1000, 1000);

    uv_signal_init(&loop_, &sigterm_);
    uv_signal_init(&loop_, &sigint_);
    sigterm_.data = sigint_.data = this;
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    uv_signal_start(&sigint_, on_signal, SIGINT);
    std::signal(SIGPIPE, SIG_IGN);

    uv_run(&loop_, UV_RUN_DEFAULT);
    return close_loop(exit_code_);
  }

 private:
  static void on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Daemon*>(handle->data);
    if (self->stopping_) return;
    self->stopping_ = true;
    log::info("received {}: draining requests, flushing the store", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_timer_stop(&self->tick_);
    uv_signal_stop(&self->sigterm_);
    uv_signal_stop(&self->sigint_);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigterm_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigint_), nullptr);
    self->server_->shutdown([self] {
      self->store_->close([] { log::info("tabad stopped"); });
    });
  }

  // Once a second: load figures for the heartbeat; periodic GC (be).
  static void on_tick(uv_timer_t* t) {
    auto* self = static_cast<Daemon*>(t->data);
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
    int64_t gc_every = self->config_.store.gc_interval_s;
    if (gc_every > 0 && self->config_.has_role("be") && !self->stopping_ && !self->gc_running_ &&
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

  store::ServerInfo self_info() const {
    store::ServerInfo info;
    info.id = server_id_;
    info.roles = config_.server.roles;
    info.listen = listen_;
    info.events_per_s = events_per_s_;
    info.deltas_per_s = deltas_per_s_;
    LatencyWindow::Summary lat = store_->local_latency();
    info.latency_p50_s = lat.p50_s;
    info.latency_p99_s = lat.p99_s;
    info.latency_samples = lat.samples;
    return info;
  }

  std::unique_ptr<http::RequestHandler> route(const std::shared_ptr<http::Exchange>& ex) {
    const http::Request& req = ex->request();
    if (Ingest::handles(req.path)) {
      if (!config_.has_role("fe")) {
        ex->reply(http::Response::text(
            404, fmt::format("{}: this server runs {} and takes no posts; post to an fe\n", req.path,
                             fmt::join(config_.server.roles, ","))));
        return nullptr;
      }
      return ingest_->start(ex);
    }
    if (query::QueryService::handles(req.path)) {
      const query::QueryService* q = queries_.get();
      return std::make_unique<BufferedRequest>(
          ex, [q](const http::Request& r, std::string_view body, std::function<void(http::Response)> done) {
            q->handle(r, body, std::move(done));
          });
    }
    if (AdminRoutes::handles(req.path)) {
      AdminRoutes* a = admin_.get();
      return std::make_unique<BufferedRequest>(
          ex, [a](const http::Request& r, std::string_view body, std::function<void(http::Response)> done) {
            a->handle(r, body, std::move(done));
          });
    }
    if (req.path == "/healthz") {
      ex->reply(http::Response::text(200, "ok\n"));
      return nullptr;
    }
    if (req.path == "/readyz") {
      if (stopping_) {
        ex->reply(http::Response::text(503, "shutting down\n"));
      } else if (!store_->ready()) {
        ex->reply(http::Response::text(503, "the store is not reachable\n"));
      } else {
        ex->reply(http::Response::text(200, "ready\n"));
      }
      return nullptr;
    }
    ex->reply(http::Response::text(404, fmt::format("no such route: {}\n", req.path)));
    return nullptr;
  }

  int shutdown_store_and_close(int code) {
    store_->close([] {});
    uv_run(&loop_, UV_RUN_DEFAULT);  // until the store's final writes complete
    return close_loop(code);
  }

  int close_loop(int code) {
    // The store first: its destructor closes its own handles (timers, Redis
    // connections) with the callbacks that free them. Then every other
    // handle, then the loop.
    store_.reset();
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    server_.reset();
    uv_loop_close(&loop_);
    return code;
  }

  const Config& config_;
  uv_loop_t loop_;
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  plugin::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Ingest> ingest_;
  std::unique_ptr<query::QueryService> queries_;
  std::unique_ptr<AdminRoutes> admin_;
  uv_timer_t tick_;
  std::string server_id_;
  std::string listen_;
  double last_tick_ = 0;
  uint64_t last_events_ = 0;
  uint64_t last_deltas_ = 0;
  double events_per_s_ = 0;
  double deltas_per_s_ = 0;
  double last_gc_ = 0;
  bool gc_running_ = false;
  std::unique_ptr<http::Server> server_;
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_daemon(const Config& config) {
  Daemon d(config);
  return d.run();
}

}  // namespace taba::roles
