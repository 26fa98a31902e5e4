#include "roles/daemon.h"

#include <fmt/format.h>
#include <uv.h>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <set>

#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "query/params.h"
#include "query/query_service.h"
#include "roles/agent.h"
#include "roles/client_proxy.h"
#include "roles/self_tabs.h"
#include "roles/server_options.h"
#include "routes/admin.h"
#include "routes/auth.h"
#include "routes/ingest.h"
#include "routes/metrics.h"
#include "routes/ui.h"
#include "store/embedded/embedded_store.h"
#include "store/redis/redis_store.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

constexpr size_t kMaxQueryBodyBytes = 1 << 20;

store::NameLimits name_limits(const Config::Ingest& in) {
  return store::NameLimits{static_cast<uint64_t>(in.max_names), static_cast<uint64_t>(in.max_names_per_client)};
}

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
  Daemon(const Config& config, ConfigSource reload) : config_(config), reload_(std::move(reload)) {}

  int run() {
    uv_loop_init(&loop_);
    plugins_dir_ = config_.server.plugins_dir.empty() ? plugin::default_plugins_dir() : config_.server.plugins_dir;
    const std::string& plugins_dir = plugins_dir_;
    log::info("tabad {} starting: roles {}, data dir {}, plugins {}", TABA_VERSION_STRING,
              fmt::join(config_.server.roles, ","), config_.server.data_dir, plugins_dir);
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

    serves_ = config_.has_role("fe") || config_.has_role("be") || config_.has_role("ctrl");
    if (serves_) {
      int code = start_server_roles();
      if (code >= 0) return code;
    }
    if (config_.has_role("agent")) {
      agent_ = std::make_unique<AgentRole>(&loop_, config_, &registry_);
      Status st = agent_->start();
      if (!st.ok()) {
        log::error("cannot start the agent: {}", st.message());
        return serves_ ? shutdown_store_and_close(1) : close_loop(1);
      }
    }
    if (config_.has_role("client-proxy")) {
      proxy_ = std::make_unique<ClientProxyRole>(&loop_, config_, &registry_);
      Status st = proxy_->start();
      if (!st.ok()) {
        log::error("cannot start the client-proxy: {}", st.message());
        return serves_ ? shutdown_store_and_close(1) : close_loop(1);
      }
    }

    last_self_tabs_ = wall_now();  // the first self tabs one interval after start
    uv_timer_init(&loop_, &tick_);
    tick_.data = this;
    uv_timer_start(&tick_, on_tick, 1000, 1000);

    uv_signal_init(&loop_, &sigterm_);
    uv_signal_init(&loop_, &sigint_);
    sigterm_.data = sigint_.data = this;
    uv_signal_start(&sigterm_, on_signal, SIGTERM);
    uv_signal_start(&sigint_, on_signal, SIGINT);
    uv_signal_init(&loop_, &sighup_);
    sighup_.data = this;
    uv_signal_start(&sighup_, [](uv_signal_t* h, int) { static_cast<Daemon*>(h->data)->reload(); }, SIGHUP);
    std::signal(SIGPIPE, SIG_IGN);

    uv_run(&loop_, UV_RUN_DEFAULT);
    return close_loop(exit_code_);
  }

 private:
  // fe/be/ctrl: the store, the ingest/query/admin routes and their HTTP
  // server. Returns -1 when running, else the exit code.
  int start_server_roles() {
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
      so.dedup_ttl_s = static_cast<double>(config_.store.dedup_ttl_s);
      store_ = std::make_unique<store::EmbeddedStore>(&loop_, &registry_, so);
      store_->set_self_info([this] { return self_info(); });
      s = store_->open();
      if (!s.ok()) {
        log::error("cannot open the store in {}: {}", so.dir, s.message());
        return close_loop(1);
      }
    }
    store_->set_name_limits(name_limits(config_.ingest));
    ingest_ = std::make_unique<routes::Ingest>(store_.get(), &registry_, config_.ingest);
    self_tabs_ = std::make_unique<SelfTabs>(store_.get(), &registry_);
    ingest_->set_latency_observer([this](double ms) { self_tabs_->record_ingest_latency_ms(ms); });
    queries_ = std::make_unique<query::QueryService>(store_.get());
    admin_ = std::make_unique<routes::AdminRoutes>(store_.get());

    http::ServerOptions ho = server_options(config_.http);
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

    return -1;
  }

  static void on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Daemon*>(handle->data);
    if (self->stopping_) return;
    self->stopping_ = true;
    log::info("received {}: draining requests, flushing the store", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_timer_stop(&self->tick_);
    uv_signal_stop(&self->sighup_);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sighup_), nullptr);
    uv_signal_stop(&self->sigterm_);
    uv_signal_stop(&self->sigint_);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigterm_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigint_), nullptr);
    // The proxy hands its buffer to the agent, the agent forwards what it
    // can (possibly to the fe of this very process), then the fe/be stop.
    auto stop_server = [self] {
      if (!self->serves_) {
        log::info("tabad stopped");
        return;
      }
      self->server_->shutdown([self] {
        self->store_->close([] { log::info("tabad stopped"); });
      });
    };
    auto stop_agent = [self, stop_server] {
      if (self->agent_) {
        self->agent_->shutdown(stop_server);
      } else {
        stop_server();
      }
    };
    if (self->proxy_) {
      self->proxy_->shutdown(stop_agent);
    } else {
      stop_agent();
    }
  }

  // Once a second: load figures for the heartbeat; periodic GC (be).
  static void on_tick(uv_timer_t* t) {
    auto* self = static_cast<Daemon*>(t->data);
    if (!self->serves_) return;
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

  // GET /metrics[?tabs=1[&name=…&re=1]]
  void metrics(const http::Request& req, std::function<void(http::Response)> done) {
    if (req.method != "GET") {
      http::Response r = http::Response::text(405, "/metrics accepts only GET\n");
      r.headers.push_back({"Allow", "GET"});
      return done(std::move(r));
    }
    auto params = query::parse_params(req.query, "", {"tabs", "name", "re"});
    if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
    bool tabs = false;
    for (const auto& [k, v] : params->extra) tabs = k == "tabs" && (v == "1" || v == "true");
    routes::MetricsWriter w;
    w.gauge("taba_build_info", "tabad version.", 1, {{"version", TABA_VERSION_STRING}});
    w.gauge("taba_start_time_seconds", "When this process started (epoch seconds).", started_at_);
    w.family("taba_role", "gauge", "Roles this process runs.");
    for (const auto& role : config_.server.roles) w.sample("taba_role", 1, {{"role", role}});
    const routes::IngestStats& in = ingest_->stats();
    w.counter("taba_events_received_total", "Events in accepted bodies.", static_cast<double>(in.events_received));
    w.counter("taba_events_clamped_total", "Events whose future timestamps were clamped to now.",
              static_cast<double>(in.events_clamped));
    w.counter("taba_ingest_bytes_total", "routes::Ingest body bytes received on the wire.", static_cast<double>(in.bytes_received));
    w.family("taba_bodies_total", "counter", "routes::Ingest bodies by outcome.");
    w.sample("taba_bodies_total", static_cast<double>(in.bodies_ok), {{"outcome", "ok"}});
    w.sample("taba_bodies_total", static_cast<double>(in.bodies_rejected), {{"outcome", "rejected"}});
    w.sample("taba_bodies_total", static_cast<double>(in.bodies_unavailable), {{"outcome", "unavailable"}});
    w.counter("taba_bodies_over_limit_total",
              "Bodies refused by a configured limit (ingest.max_events_per_body: 413; ingest.max_names or "
              "max_names_per_client: 422); also counted as rejected.",
              static_cast<double>(in.bodies_over_limit));
    ingest_->write_refusal_metrics(&w, "taba");
    const http::ServerStats& hs = server_->stats();
    w.counter("taba_http_requests_total", "HTTP requests received.", static_cast<double>(hs.requests));
    w.counter("taba_http_connections_accepted_total", "Connections accepted.", static_cast<double>(hs.connections_accepted));
    w.counter("taba_http_connections_rejected_total", "Connections refused over http.max_connections.",
              static_cast<double>(hs.connections_rejected));
    w.gauge("taba_http_connections_active", "Open connections.", static_cast<double>(hs.connections_active));
    w.counter("taba_http_timeouts_total", "Connections closed by a header, body or idle timeout.", static_cast<double>(hs.timeouts));
    w.counter("taba_http_parse_errors_total", "Malformed HTTP requests.", static_cast<double>(hs.parse_errors));
    w.counter("taba_http_oversized_total", "Requests refused for headers (431) or a body (413) over the limit.",
              static_cast<double>(hs.oversized));
    int64_t loaded = 0, refused = 0;
    for (const auto& r : registry_.reports()) (r.loaded ? loaded : refused) += 1;
    w.family("taba_plugins", "gauge", "Plugin files by load result.");
    w.sample("taba_plugins", static_cast<double>(loaded), {{"result", "loaded"}});
    w.sample("taba_plugins", static_cast<double>(refused), {{"result", "refused"}});
    w.gauge("taba_handler_types", "Type names served by loaded handlers.", static_cast<double>(registry_.handlers().size()));
    w.histogram("taba_pipeline_latency_seconds", "Enqueue to applied latency of batches applied by this process.",
                store_->local_latency_window());
    std::vector<store::Metric> sm;
    store_->metrics(&sm);
    std::string last;
    for (const auto& m : sm) {
      if (m.name != last) w.family(m.name, m.type, m.help);
      last = m.name;
      w.sample(m.name, m.value, m.labels);
    }
    if (!tabs) {
      http::Response r = http::Response::text(200, w.take());
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return done(std::move(r));
    }
    auto names = query::Matcher::make(params->names, params->re, params->has_name);
    if (!names.ok()) return done(http::Response::text(400, names.status().message() + "\n"));
    auto ctx = std::make_shared<std::pair<query::Matcher, query::Matcher>>(std::move(names.value()), query::Matcher());
    store::QueryNeed need;
    need.names = &ctx->first;
    need.clients = &ctx->second;
    need.aggregates = true;
    auto writer = std::make_shared<routes::MetricsWriter>(std::move(w));
    double now = wall_now() - store_->pipeline_latency_s();
    store_->fetch(need, [ctx, writer, now, done = std::move(done)](const Status& s, const store::ReadView* view) {
      if (!s.ok()) {
        http::Response r = http::Response::text(503, fmt::format("the store did not answer: {}\n", s.message()));
        r.headers.push_back({"Retry-After", "1"});
        return done(std::move(r));
      }
      writer->family("taba_tab", "gauge", "Numbers of each tab's aggregate, by the field path in its JSON render.");
      for (const store::NameEntry* e : view->names()) {
        if (!e->aggregate || !ctx->first.matches(e->name)) continue;
        // Full precision: a gauge of 0.0012 s must not read 0.
        std::string json = query::render_state(e->handler, e->aggregate.get(), TABA_FORMAT_JSON_EXACT, now);
        routes::flatten_tab(writer.get(), e->name, e->handler->type_name, json);
      }
      http::Response r = http::Response::text(200, writer->take());
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      done(std::move(r));
    });
  }

  // SIGHUP: new plugin files, type aliases, auth tokens, log level, ingest
  // limits and the GC / self-tab intervals change live; anything else that
  // changed is named in the log as needing a restart.
  void reload() {
    if (!reload_ || stopping_) return;
    Result<Config> next = reload_();
    if (!next.ok()) {
      log::error("SIGHUP: the configuration is not valid, nothing changed: {}", next.status().message());
      return;
    }
    Config& n = next.value();
    std::vector<std::string> applied, restart;
    int before = static_cast<int>(registry_.reports().size());
    std::set<std::string> known;
    for (const auto& r : registry_.reports()) known.insert(r.path);
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(plugins_dir_, ec)) {
      std::string path = entry.path().string();
      if (entry.path().extension() != ".so" || known.count(path)) continue;
      registry_.load_file(path);
    }
    int added = static_cast<int>(registry_.reports().size()) - before;
    if (added > 0) applied.push_back(fmt::format("{} new plugin file(s)", added));
    for (const auto& [alias, target] : n.plugins.types) {
      const plugin::Handler* now_h = registry_.find(alias);
      const plugin::Handler* want = registry_.find(target);
      if (want && now_h == want) continue;
      Status st = registry_.add_alias(alias, target);
      if (st.ok()) {
        applied.push_back(fmt::format("type {} = {}", alias, target));
      } else {
        log::error("SIGHUP: {}", st.message());
      }
    }
    if (n.server.log_level != config_.server.log_level) {
      log::Level level;
      log::parse_level(n.server.log_level, &level);
      log::set_level(level);
      applied.push_back("log_level " + n.server.log_level);
    }
    if (n.auth.ingest_token != config_.auth.ingest_token || n.auth.admin_token != config_.auth.admin_token ||
        n.auth.query_token != config_.auth.query_token) {
      applied.push_back("auth tokens");
    }
    if (n.store.gc_interval_s != config_.store.gc_interval_s) applied.push_back("store.gc_interval_s");
    if (n.server.self_tabs_interval_s != config_.server.self_tabs_interval_s) {
      applied.push_back("server.self_tabs_interval_s");
    }
    if (agent_) agent_->reload(n);
    if (proxy_) proxy_->reload(n);
    if (n.ingest.max_inflated_bytes != config_.ingest.max_inflated_bytes ||
        n.ingest.max_inflate_ratio != config_.ingest.max_inflate_ratio ||
        n.ingest.future_clamp_s != config_.ingest.future_clamp_s ||
        n.ingest.max_events_per_body != config_.ingest.max_events_per_body ||
        n.ingest.max_names != config_.ingest.max_names ||
        n.ingest.max_names_per_client != config_.ingest.max_names_per_client) {
      if (ingest_) ingest_->set_options(n.ingest);
      if (store_) store_->set_name_limits(name_limits(n.ingest));
      applied.push_back("[ingest] limits");
    }
    if (n.server.roles != config_.server.roles) restart.push_back("server.roles");
    if (n.server.listen != config_.server.listen) restart.push_back("server.listen");
    if (n.server.data_dir != config_.server.data_dir) restart.push_back("server.data_dir");
    if (n.server.plugins_dir != config_.server.plugins_dir) restart.push_back("server.plugins_dir");
    if (n.store.fsync != config_.store.fsync || n.store.snapshot_interval_s != config_.store.snapshot_interval_s ||
        n.store.wal_max_queued_bytes != config_.store.wal_max_queued_bytes) {
      restart.push_back("[store] fsync / snapshot_interval_s / wal_max_queued_bytes");
    }
    if (dump_config_section(n, "[http]") != dump_config_section(config_, "[http]")) restart.push_back("[http]");
    if (dump_config_section(n, "[agent]") != dump_config_section(config_, "[agent]")) restart.push_back("[agent]");
    if (dump_config_section(n, "[client_proxy]") != dump_config_section(config_, "[client_proxy]")) {
      restart.push_back("[client_proxy]");
    }
    if (dump_config_section(n, "[redis]") != dump_config_section(config_, "[redis]")) restart.push_back("[redis]");
    // Keep what needs a restart as it runs; take the rest.
    n.server.roles = config_.server.roles;
    n.server.listen = config_.server.listen;
    n.server.data_dir = config_.server.data_dir;
    n.server.plugins_dir = config_.server.plugins_dir;
    n.store.fsync = config_.store.fsync;
    n.store.snapshot_interval_s = config_.store.snapshot_interval_s;
    n.store.wal_max_queued_bytes = config_.store.wal_max_queued_bytes;
    n.http = config_.http;
    n.redis = config_.redis;
    n.agent = config_.agent;
    n.client_proxy = config_.client_proxy;
    config_ = std::move(n);
    log::info("SIGHUP: reloaded: {}", applied.empty() ? std::string("nothing changed") : fmt::format("{}", fmt::join(applied, ", ")));
    if (!restart.empty()) log::warn("SIGHUP: changed but only applied by a restart: {}", fmt::join(restart, ", "));
  }

  // One "[section]" of the effective configuration as text, to compare.
  static std::string dump_config_section(const Config& c, std::string_view header) {
    std::string all = dump_config(c);
    size_t at = all.find(std::string(header) + "\n");
    if (at == std::string::npos) return "";
    if (header == "[redis]") return all.substr(at);  // the last section, with its [[redis.shards]]
    size_t end = all.find("\n[", at + 1);
    return all.substr(at, end == std::string::npos ? std::string::npos : end - at);
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
    if (auto denied = routes::check_access(config_.auth, routes::access_of(req.path), req)) {
      ex->reply(std::move(*denied));
      return nullptr;
    }
    if (req.path == "/metrics") {
      return std::make_unique<BufferedRequest>(
          ex, [this](const http::Request& r, std::string_view, std::function<void(http::Response)> done) {
            metrics(r, std::move(done));
          });
    }
    if (routes::Ingest::handles(req.path)) {
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
    if (routes::AdminRoutes::handles(req.path)) {
      routes::AdminRoutes* a = admin_.get();
      return std::make_unique<BufferedRequest>(
          ex, [a](const http::Request& r, std::string_view body, std::function<void(http::Response)> done) {
            a->handle(r, body, std::move(done));
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
                           fmt::join(config_.server.roles, ","), route_list())));
      return nullptr;
    }
    ex->reply(http::Response::text(404, fmt::format("no such route: {} (the web page is /ui; {})\n", req.path,
                                                    route_list())));
    return nullptr;
  }

  // The routes this server answers, for "/" and 404s.
  std::string route_list() const {
    std::string out = "routes: ";
    if (config_.has_role("fe")) out += "/post /post_zip, ";
    out += "/tabs /projection /supertabs /names /clients /types, /status /servers /latency, "
           "/delete /gc /check /flush, /metrics /healthz /readyz /ui";
    return out;
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
    if (agent_) agent_->release_handles();
    if (proxy_) proxy_->release_handles();
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    server_.reset();
    proxy_.reset();
    agent_.reset();
    uv_loop_close(&loop_);
    return code;
  }

  Config config_;
  ConfigSource reload_;
  std::string plugins_dir_;
  uv_loop_t loop_;
  uv_signal_t sighup_;
  std::unique_ptr<SelfTabs> self_tabs_;
  double last_self_tabs_ = 0;
  double started_at_ = wall_now();
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  plugin::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<routes::Ingest> ingest_;
  std::unique_ptr<query::QueryService> queries_;
  std::unique_ptr<routes::AdminRoutes> admin_;
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
  bool serves_ = false;  // fe, be or ctrl
  std::unique_ptr<AgentRole> agent_;
  std::unique_ptr<ClientProxyRole> proxy_;
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_daemon(const Config& config, ConfigSource reload) {
  Daemon d(config, std::move(reload));
  return d.run();
}

}  // namespace taba::roles
