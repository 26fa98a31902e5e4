// HTTP/1.1 server on libuv + llhttp.
//
// One Server per listening socket, driven by one uv loop. Requests are routed
// when their headers are complete; the body then streams into a
// RequestHandler chunk by chunk, so large posts are never buffered twice.
// A handler may answer at once or later (after an asynchronous write, say):
// the connection reads no further request until the current one is answered,
// so pipelined requests are answered in order. The messages themselves
// (Header, Request, Response) are plain values in message.h.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "http/message.h"

namespace taba::http {

// The reply side of one request. Held by shared_ptr so an asynchronous
// handler can keep it past the callback that created it. All methods must be
// called on the loop thread.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const Request& request() const = 0;
  // Sends the response. Only the first call counts; a call after the
  // connection has gone away is a no-op.
  virtual void reply(Response response) = 0;
  virtual bool replied() const = 0;
  // False once the client disconnected or the server closed the connection.
  virtual bool alive() const = 0;
};

// Receives one request's body as it arrives.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // A chunk of the body as it was on the wire (de-chunked, still
  // Content-Encoded). After the handler replied (e.g. an early 400) the
  // server stops calling on_body and discards the rest of the body.
  virtual void on_body(std::string_view chunk) = 0;
  // The whole body has arrived. The handler must reply exactly once, now
  // or later, unless it already did.
  virtual void on_complete() = 0;
};

// Called when a request's headers are complete. Returns the handler for its
// body, or nullptr after replying itself (e.g. 404, 401, 413).
using Router = std::function<std::unique_ptr<RequestHandler>(const std::shared_ptr<Exchange>&)>;

struct ServerOptions {
  size_t max_header_bytes = 64 * 1024;        // request line + headers; over → 431
  uint64_t max_body_bytes = 64ull << 20;      // on the wire; over → 413
  uint32_t header_timeout_ms = 10'000;        // from first byte to headers complete
  uint32_t body_timeout_ms = 30'000;          // longest pause between body bytes
  uint32_t min_body_rate = 1024;              // bytes/s from the body's start, checked once body_timeout_ms
                                              // has passed; slower → 408; 0 = off
  uint32_t idle_timeout_ms = 60'000;          // keep-alive connection with no request
  uint32_t max_connections = 10'000;          // further accepts are closed at once
  bool reuse_port = false;                    // SO_REUSEPORT, for several processes on one port
};

struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_rejected = 0;  // over max_connections
  uint64_t connections_active = 0;
  uint64_t requests = 0;
  uint64_t timeouts = 0;              // connections closed by a timeout
  uint64_t parse_errors = 0;          // malformed HTTP
  uint64_t oversized = 0;             // 413 / 431: over max_body_bytes / max_header_bytes
};

class Server {
 public:
  Server(uv_loop_t* loop, ServerOptions options, Router router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on host:port (port 0 picks a free port).
  Status listen(const std::string& host, int port);
  // Serves an already connected stream socket as if listen() had accepted
  // it; the server owns `fd` from now on, also when this fails. Tests and
  // the fuzz target use it with one end of a socketpair(2), which runs the
  // whole request path without a listening socket.
  Status adopt(uv_os_sock_t fd);
  // The bound port (after listen).
  int port() const;
  // Stops accepting. Idle connections close now; each busy one closes after
  // its current response. `done` runs on the loop when none remain.
  void shutdown(std::function<void()> done);
  const ServerStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::http
