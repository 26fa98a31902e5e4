#include "roles/daemon.h"

#include <fmt/format.h>
#include <uv.h>

#include <csignal>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "plugin/registry.h"
#include "roles/agent.h"
#include "roles/client_proxy.h"
#include "roles/reload.h"
#include "roles/server.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

// The process: the plugin registry, the roles it runs (the server role for
// fe/be/ctrl, the agent, the client-proxy) on one loop, the signals, and
// the order things stop in.
class Daemon {
 public:
  Daemon(const Config& config, ConfigSource reload) : config_(config), reload_(std::move(reload)) {}

  int run() {
    uv_loop_init(&loop_);
    plugins_dir_ = config_.server.plugins_dir.empty() ? plugin::default_plugins_dir() : config_.server.plugins_dir;
    const std::string& plugins_dir = plugins_dir_;
    log::info("tabad {} starting: roles {}, data dir {}, plugins {}", TABA_VERSION_STRING,
              fmt::join(role_names(config_.server.roles), ","), config_.server.data_dir, plugins_dir);
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

    if (config_.serves()) {
      server_ = std::make_unique<ServerRole>(&loop_, config_, &registry_);
      Status st = server_->start();
      if (!st.ok()) {
        log::error("{}", st.message());
        return server_->store_open() ? close_store_and_loop(1) : close_loop(1);
      }
    }
    if (config_.has_role(Role::kAgent)) {
      agent_ = std::make_unique<AgentRole>(&loop_, config_, &registry_);
      Status st = agent_->start();
      if (!st.ok()) {
        log::error("cannot start the agent: {}", st.message());
        return server_ ? close_store_and_loop(1) : close_loop(1);
      }
    }
    if (config_.has_role(Role::kClientProxy)) {
      proxy_ = std::make_unique<ClientProxyRole>(&loop_, config_, &registry_);
      Status st = proxy_->start();
      if (!st.ok()) {
        log::error("cannot start the client-proxy: {}", st.message());
        return server_ ? close_store_and_loop(1) : close_loop(1);
      }
    }

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
  static void on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Daemon*>(handle->data);
    if (self->stopping_) return;
    self->stopping_ = true;
    // What stopping means depends on the roles this process runs: only the
    // server role has a store to flush.
    std::vector<std::string_view> steps;
    if (self->proxy_) steps.push_back("handing the client-proxy's buffer to the agent");
    if (self->agent_) steps.push_back("forwarding the agent's spool");
    if (self->server_) steps.push_back("draining requests, flushing the store");
    log::info("received {}: {}", signum == SIGTERM ? "SIGTERM" : "SIGINT", fmt::join(steps, "; "));
    if (self->server_) self->server_->mark_stopping();
    uv_signal_stop(&self->sighup_);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sighup_), nullptr);
    uv_signal_stop(&self->sigterm_);
    uv_signal_stop(&self->sigint_);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigterm_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->sigint_), nullptr);
    // The proxy hands its buffer to the agent, the agent forwards what it
    // can (possibly to the fe of this very process), then the fe/be stop.
    auto stop_server = [self] {
      if (!self->server_) {
        log::info("tabad stopped");
        return;
      }
      self->server_->shutdown([] { log::info("tabad stopped"); });
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

  // SIGHUP (roles/reload.h).
  void reload() {
    if (!reload_ || stopping_) return;
    if (!reload_config(&config_, reload_(), &registry_, plugins_dir_)) return;
    if (agent_) agent_->reload(config_);
    if (proxy_) proxy_->reload(config_);
    if (server_) server_->reload(config_);
  }

  // A role failed to start: the store finishes its final writes, then every
  // handle closes. Other handles (the fe's listener, an agent started
  // before the failing role) keep the loop alive, so the store's completion
  // stops it; running until no handle is left would never return.
  // The store may also finish at once, inside close_store(): uv_stop() then
  // would leave the loop's stop flag set, and close_loop()'s run would
  // return before closing anything.
  int close_store_and_loop(int code) {
    bool closed = false;
    bool running = false;
    server_->close_store([this, &closed, &running] {
      closed = true;
      if (running) uv_stop(&loop_);
    });
    while (!closed) {
      running = true;
      const int alive = uv_run(&loop_, UV_RUN_DEFAULT);
      running = false;
      if (alive == 0) break;
    }
    return close_loop(code);
  }

  int close_loop(int code) {
    // The store first: its destructor closes its own handles (timers, Redis
    // connections) with the callbacks that free them. Then every other
    // handle, then the loop.
    if (server_) server_->release_handles();
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
  uv_signal_t sigterm_;
  uv_signal_t sigint_;
  plugin::Registry registry_;
  std::unique_ptr<ServerRole> server_;  // fe, be or ctrl
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
