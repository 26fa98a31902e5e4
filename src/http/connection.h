// One connection of the HTTP server: a libuv TCP stream parsed by llhttp,
// with the server's limits, timeouts, keep-alive and pipelining. Internal to
// the server: server.cpp creates connections, connection.cpp has their I/O
// (setup, timers, reading, writing, closing) and connection_parser.cpp their
// llhttp callbacks (building the Request, routing it, streaming its body).
//
// Per connection there is one uv_tcp_t, one uv_timer_t, one llhttp parser and
// one 64 KiB read buffer, all reused for every request on the connection.
//
// Request life cycle (Connection::phase_):
//   kIdle     waiting for the first byte of a request      timer: idle_timeout_ms
//   kHeaders  request line / headers being parsed           timer: header_timeout_ms (from the first byte)
//   kBody     headers done, body streaming to the handler   timer: body_timeout_ms (restarted on every read)
//   kComplete whole message parsed; the parser is paused    timer: none while the handler owns the
//             (on_message_complete returns HPE_PAUSED)             request; idle_timeout_ms while the
//                                                                  reply is being written
// The next pipelined request is parsed only after the previous reply has been
// written completely (its uv_write callback ran), so replies go out in order
// and a client that pipelines without reading cannot grow our write queue.
// Bytes read while the parser is paused stay in the read buffer; reading
// continues until the buffer is full (so an EOF from the client is still seen).
//
// Closing: close_now() uv_close()s both handles; the Connection is freed in
// the last close callback, which libuv runs only after every pending write
// and shutdown request has called back, and never inside a parser callback.
// When a connection is closed while unread request bytes may remain (an
// error reply, a reply sent before the body ended) it first half-closes
// (uv_shutdown) and discards input for a short while ("lingering close"), so
// the client reads our reply instead of a TCP reset.
//
// Bodies the router declined (it replied and returned no handler): a body of
// known length up to 64 KiB is parsed and discarded so the connection stays
// usable; a larger, chunked or "Expect: 100-continue" body is not read: the
// reply says "Connection: close" and the connection closes after it.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "http/server.h"

namespace taba::http::server_detail {

class Connection;
struct Core;

class ExchangeImpl final : public Exchange {
 public:
  explicit ExchangeImpl(std::weak_ptr<Connection> conn) : conn_(std::move(conn)) {}
  const Request& request() const override { return req_; }
  void reply(Response response) override;
  bool replied() const override { return replied_; }
  bool alive() const override;

  Request req_;
  bool replied_ = false;

 private:
  std::weak_ptr<Connection> conn_;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(Core* core) : core_(core) {}

  // Accepts from `listener`, or (listener == nullptr) takes over the
  // connected socket `fd`, which is closed on failure.
  bool start(uv_stream_t* listener, uv_os_sock_t fd);
  void on_drain();
  void close_now();
  void send_reply(Response response);
  bool open() const { return !closing_ && !lingering_; }

  Core* core_;
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;

 private:
  enum class Phase { kIdle, kHeaders, kBody, kComplete };
  enum class TimerMode { kNone, kIdle, kHeader, kBody, kWrite, kLinger };

  static const llhttp_settings_t& settings();

  // libuv callbacks.
  static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void write_cb(uv_write_t* req, int status);
  static void continue_write_cb(uv_write_t* req, int status);
  static void shutdown_cb(uv_shutdown_t* req, int status);
  static void timer_cb(uv_timer_t* t);
  static void close_cb(uv_handle_t* h);

  // llhttp callbacks (connection_parser.cpp).
  int on_message_begin();
  int on_span(const char* at, size_t n);
  int on_url(const char* at, size_t n);
  int on_header_field(const char* at, size_t n);
  int on_header_field_complete();
  int on_header_value(const char* at, size_t n);
  int on_header_value_complete();
  int on_headers_complete();
  int on_body(const char* at, size_t n);
  int on_message_complete();

  void on_read(ssize_t nread);
  void on_write(int status);
  void on_timer();
  void process();
  void handle_eof();
  void update_reading();
  void finish_request();
  void fail(int status, std::string_view message);
  void send(Response&& response);
  void close_gracefully();
  void linger();
  void start_timer(TimerMode mode, uint32_t ms);
  void stop_timer();
  void finalize();

  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_write_t write_req_;
  uv_write_t continue_req_;
  uv_shutdown_t shutdown_req_;
  llhttp_t parser_;
  std::shared_ptr<Connection> self_;  // owns *this until both handles closed
  int pending_closes_ = 0;

  std::unique_ptr<char[]> buf_;
  size_t pos_ = 0;  // parsed up to here
  size_t len_ = 0;  // read up to here

  std::string peer_;
  Phase phase_ = Phase::kIdle;
  TimerMode timer_mode_ = TimerMode::kNone;
  std::shared_ptr<ExchangeImpl> exchange_;
  std::unique_ptr<RequestHandler> handler_;
  std::string out_head_;
  std::string out_body_;

  size_t hdr_bytes_ = 0;            // header bytes of earlier execute() calls
  const char* hdr_mark_ = nullptr;  // first header byte in the current execute() call
  uint64_t body_bytes_ = 0;
  uint64_t body_started_ms_ = 0;  // loop time when the body phase began
  bool field_open_ = false;
  bool keep_alive_ = true;
  bool paused_ = false;      // parser paused after on_message_complete
  bool stop_parse_ = false;  // never parse again (connection closes after the reply)
  bool routing_ = false;     // inside the router call
  bool discard_ok_ = true;   // a declined body may be read and dropped
  bool head_request_ = false;
  bool reading_ = false;
  bool write_in_flight_ = false;
  bool peer_eof_ = false;
  bool lingering_ = false;
  bool closing_ = false;
};

}  // namespace taba::http::server_detail
