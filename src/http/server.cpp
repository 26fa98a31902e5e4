// HTTP/1.1 server on libuv + llhttp. See server.h for the contract.
//
// This file is the listening side: binding and accepting (further accepts
// are closed at once past max_connections), adopting a connected socket,
// the list of live connections and the counters, and shutdown (stop
// accepting, let busy connections finish, then report). A connection's own
// life is in connection.h.
#include "http/server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/log.h"
#include "core/uv_close.h"
#include "http/connection.h"
#include "http/server_core.h"

namespace taba::http {

namespace server_detail {
namespace {

constexpr int kListenBacklog = 1024;

}  // namespace

std::string format_address(const sockaddr* sa) {
  char ip[64] = {0};
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    uv_ip4_name(in, ip, sizeof ip);
    return fmt::format("{}:{}", ip, ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    uv_ip6_name(in6, ip, sizeof ip);
    return fmt::format("[{}]:{}", ip, ntohs(in6->sin6_port));
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Core

Core::~Core() {
  draining = true;
  for (Connection* c = conns; c;) {
    Connection* next = c->next_;
    c->core_ = nullptr;
    c->prev_ = c->next_ = nullptr;
    c->close_now();
    c = next;
  }
  conns = nullptr;
  if (listener) {
    listener->core = nullptr;
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener->tcp))) {
      uv_close_and_delete_owner<Listener>(&listener->tcp);
    }
  }
  done_timer.reset();
}

void Core::on_connection(uv_stream_t* l, int status) {
  if (status < 0) {
    log::warn("http: accept failed: {}", uv_strerror(status));
    return;
  }
  if (draining) return;
  if (stats.connections_active >= options.max_connections) {
    auto* t = new uv_tcp_t;
    if (uv_tcp_init(loop, t) < 0) {
      delete t;
      return;
    }
    uv_accept(l, reinterpret_cast<uv_stream_t*>(t));
    uv_close_and_delete(t);
    stats.connections_rejected++;
    return;
  }
  auto conn = std::make_shared<Connection>(this);
  conn->start(l, -1);  // on success the connection owns itself
}

void Core::connection_gone(Connection* c) {
  if (c->prev_) {
    c->prev_->next_ = c->next_;
  } else if (conns == c) {
    conns = c->next_;
  }
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  stats.connections_active--;
  maybe_done();
}

void Core::maybe_done() {
  if (!draining || stats.connections_active > 0 || done.empty()) return;
  auto callbacks = std::move(done);
  done.clear();
  for (auto& cb : callbacks) {
    if (cb) cb();  // may destroy the Server: nothing of *this is used afterwards
  }
}

}  // namespace server_detail

// ---------------------------------------------------------------------------
// Server

struct Server::Impl : server_detail::Core {
  using Core::Core;
};

Server::Server(uv_loop_t* loop, ServerOptions options, Router router)
    : impl_(std::make_unique<Impl>(loop, std::move(options), std::move(router))) {}

Server::~Server() = default;

Status Server::listen(const std::string& host_in, int port) {
  using server_detail::Listener;
  Impl& s = *impl_;
  if (s.listener) return Status::Invalid("http server: already listening");
  if (s.draining) return Status::Invalid("http server: shut down");
  if (port < 0 || port > 65535) return Status::Invalid(fmt::format("bad port {}", port));
  std::string host = host_in;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";

  sockaddr_storage addr;
  std::memset(&addr, 0, sizeof addr);
  unsigned family;
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) == 0) {
    family = AF_INET;
  } else if (uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
    family = AF_INET6;
  } else {
    return Status::Invalid(fmt::format("not an IP address: '{}'", host_in));
  }

  auto* l = new Listener;
  l->core = &s;
  int rc = uv_tcp_init_ex(s.loop, &l->tcp, family);
  if (rc < 0) {
    delete l;
    return Status::IoError(fmt::format("socket for {}:{}: {}", host_in, port, uv_strerror(rc)));
  }
  l->tcp.data = l;
  auto fail = [&](const char* what, int err) {
    uv_close_and_delete_owner<Listener>(&l->tcp);
    return Status::IoError(fmt::format("{} {}:{}: {}", what, host_in, port, uv_strerror(err)));
  };
  if (s.options.reuse_port) {
    uv_os_fd_t fd;
    rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&l->tcp), &fd);
    if (rc < 0) return fail("fileno", rc);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return fail("SO_REUSEPORT", -errno);
  }
  rc = uv_tcp_bind(&l->tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc < 0) return fail("bind", rc);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), server_detail::kListenBacklog,
                 [](uv_stream_t* h, int status) {
                   auto* lis = static_cast<Listener*>(h->data);
                   if (lis->core) lis->core->on_connection(h, status);
                 });
  if (rc < 0) return fail("listen", rc);

  sockaddr_storage bound;
  int blen = sizeof bound;
  rc = uv_tcp_getsockname(&l->tcp, reinterpret_cast<sockaddr*>(&bound), &blen);
  if (rc < 0) return fail("getsockname", rc);
  s.port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  s.listener = l;
  log::info("http: listening on {}", server_detail::format_address(reinterpret_cast<sockaddr*>(&bound)));
  return Status::Ok();
}

Status Server::adopt(uv_os_sock_t fd) {
  Impl& s = *impl_;
  if (s.draining) {
    ::close(fd);
    return Status::Invalid("http server: shut down");
  }
  auto conn = std::make_shared<server_detail::Connection>(&s);
  if (!conn->start(nullptr, fd)) return Status::IoError("http server: cannot serve the adopted socket");
  return Status::Ok();
}

int Server::port() const {
  return impl_->port;
}

void Server::shutdown(std::function<void()> done) {
  using server_detail::Connection;
  Impl& s = *impl_;
  s.draining = true;
  if (done) s.done.push_back(std::move(done));
  if (s.listener) {
    server_detail::Listener* l = s.listener;
    s.listener = nullptr;
    l->core = nullptr;
    uv_close_and_delete_owner<server_detail::Listener>(&l->tcp);
  }
  for (Connection* c = s.conns; c; c = c->next_) c->on_drain();  // closing unlinks only later
  if (s.stats.connections_active == 0 && !s.done_timer) {
    // Nothing to wait for: report on the next loop turn, not from inside this call.
    server_detail::Core* core = &s;
    s.done_timer = std::make_unique<UvTimer>(s.loop, [core] {
      core->done_timer.reset();  // the timer goes from inside its own callback (uv_timer.h)
      core->maybe_done();
    });
    s.done_timer->start(0);
  }
}

const ServerStats& Server::stats() const {
  return impl_->stats;
}

}  // namespace taba::http
