// The HTTP server's state that its connections see: options, router,
// counters, the list of live connections, and the handles that may outlive
// the Server (the heap-allocated listener; the shutdown timer, a UvTimer).
// Internal to the server (server.cpp, connection.cpp, connection_parser.cpp).
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/uv_timer.h"
#include "http/server.h"

namespace taba::http::server_detail {

class Connection;
struct Core;

// Heap-allocated so that its asynchronous close can outlive the Server.
struct Listener {
  uv_tcp_t tcp;
  Core* core = nullptr;
};

// Server state shared with its connections (Server::Impl derives from it).
struct Core {
  Core(uv_loop_t* l, ServerOptions o, Router r) : loop(l), options(std::move(o)), router(std::move(r)) {}
  ~Core();

  void on_connection(uv_stream_t* listener, int status);
  void connection_gone(Connection* c);
  void maybe_done();

  uv_loop_t* loop;
  ServerOptions options;
  Router router;
  ServerStats stats;
  Listener* listener = nullptr;
  // Reports shutdown completion on the next loop turn when there was no
  // connection left to wait for.
  std::unique_ptr<UvTimer> done_timer;
  int port = 0;
  bool draining = false;
  std::vector<std::function<void()>> done;
  Connection* conns = nullptr;  // intrusive list of live connections
};

// "ip:port" ("[ip]:port" for IPv6) of a socket address, for logs and Request::peer.
std::string format_address(const sockaddr* sa);

}  // namespace taba::http::server_detail
