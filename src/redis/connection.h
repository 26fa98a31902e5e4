// One asynchronous Redis connection on the process's libuv loop (hiredis 0.14
// with our own uv_poll event hooks), and the address it connects to. The rest
// of the Redis layer builds on it: Sentinel master discovery (sentinels.h) and
// a shard that follows its master through failovers (shard.h); the ground
// rules below hold for all three.
//
// hiredis writes with write(2): the process must ignore SIGPIPE (tabad does).
//
// Everything here runs on the loop thread and is not thread-safe. No callback
// is ever invoked from inside the call that registered it: failures that are
// known at once (not connected, no usable connection) are reported on a later
// loop iteration. Destructors are the exception: they fail what is pending
// immediately.
//
// Connection
//   connect() resolves the host (uv_getaddrinfo unless it is an IP literal),
//   opens the TCP connection and sends a handshake (AUTH <password> when a
//   password is set, else PING); connected() turns true, and on_state
//   listeners hear (true, OK), only when the handshake is answered. The whole
//   sequence is bounded by connect_timeout_ms. After a spontaneous failure
//   (connect error, handshake error, connection loss, a command timeout) the
//   listeners hear (false, why) and the connection retries the same address
//   by itself, with exponential backoff and jitter (100 ms doubling to 2 s);
//   a successful handshake resets the backoff. Listeners hear about every
//   failed attempt, not only the first. connect() to another address,
//   disconnect() and the destructor are not reported to the listeners.
//   A connection that has a subscription accepts no other commands (they fail
//   with Invalid); subscribe() on a connection that is not up reports on_lost.
//   A subscription has no timeout and no keepalive: a peer that stops without
//   closing the TCP connection is not noticed.
#pragma once

#include <hiredis/hiredis.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::redis {

struct Address {
  std::string host;
  int port = 0;
  std::string str() const;  // "host:port" ("[v6]:port" for an IPv6 host)
};

// "host:port" or "[v6addr]:port"; port 1..65535.
Result<Address> parse_address(std::string_view host_port);

struct ConnectionOptions {
  uint32_t connect_timeout_ms = 1000;  // DNS + TCP connect + handshake; 0 = none
  uint32_t command_timeout_ms = 2000;  // 0 = none
  std::string password;                // AUTH after connect when non-empty
  std::string label;                   // for log lines and messages, e.g. "shard1"
};

// One hiredis async connection. Callbacks run on the loop thread.
// A command's callback gets OK + the reply (which may be a REDIS_REPLY_ERROR
// reply; the pointer is valid only during the callback), or Unavailable and
// nullptr when the connection is down, failed, or the command timed out.
// Every command has a timeout; because replies are ordered, a timeout declares
// the whole connection broken: it is disconnected and every pending callback
// fails with Unavailable("<label> <addr>: command timed out after N ms").
// Commands issued while not connected fail on a later loop iteration.
// A Connection may be destroyed from inside any of its own callbacks.
class Connection {
 public:
  using Callback = std::function<void(const Status&, const redisReply*)>;

  Connection(uv_loop_t* loop, ConnectionOptions options);
  // Safe at any time; pending command callbacks fail with Unavailable and
  // subscriptions' on_lost run, immediately (they must not use this object).
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void connect(const Address& address);  // async; reconnects if connected elsewhere; no-op when
                                         // already up or connecting to `address`
  void disconnect();                     // async; pending commands fail; no reconnect
  bool connected() const;                // TCP up and AUTH (or PING) answered
  const Address& address() const;        // the last address given to connect()
  // Binary-safe argv. timeout_ms 0 = options default.
  void command(const std::vector<std::string_view>& argv, Callback cb, uint32_t timeout_ms = 0);
  // SUBSCRIBE: cb(channel, message) for every message, no timeout; on_lost runs
  // once if the connection drops (the caller resubscribes elsewhere).
  void subscribe(const std::string& channel, std::function<void(std::string_view, std::string_view)> cb,
                 std::function<void(const Status&)> on_lost);
  void on_state(std::function<void(bool up, const Status& why)> cb);  // adds a listener
  size_t pending() const;                                             // commands awaiting a reply

 private:
  friend class Shard;
  // The Shard's watch for READONLY / MASTERDOWN: runs before the command's
  // callback for every error reply (and never destroys the connection).
  void set_error_hook(std::function<void(const redisReply*)> fn);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::redis
