// One HTTP server connection's I/O (connection.h): setup and teardown, the
// timers, reading and feeding the parser one message at a time, writing
// replies, and closing (at once or lingering).
#include "http/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstring>
#include <utility>

#include "core/log.h"
#include "http/response_head.h"
#include "http/server_core.h"

namespace taba::http::server_detail {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// How long a lingering close waits for the client to close its side.
constexpr uint32_t kLingerMs = 2000;

}  // namespace

// ---------------------------------------------------------------------------
// Exchange

void ExchangeImpl::reply(Response response) {
  if (replied_) return;
  replied_ = true;
  if (auto c = conn_.lock()) c->send_reply(std::move(response));
}

bool ExchangeImpl::alive() const {
  auto c = conn_.lock();
  return c && c->open();
}

// ---------------------------------------------------------------------------
// Connection: setup and teardown

bool Connection::start(uv_stream_t* listener, uv_os_sock_t fd) {
  int rc = uv_tcp_init(core_->loop, &tcp_);
  if (rc < 0) {
    log::warn("http: uv_tcp_init: {}", uv_strerror(rc));
    if (!listener) ::close(fd);
    return false;
  }
  tcp_.data = this;
  uv_timer_init(core_->loop, &timer_);
  timer_.data = this;
  write_req_.data = this;
  continue_req_.data = this;
  shutdown_req_.data = this;
  pending_closes_ = 2;
  self_ = shared_from_this();

  next_ = core_->conns;
  if (next_) next_->prev_ = this;
  core_->conns = this;
  core_->stats.connections_accepted++;
  core_->stats.connections_active++;

  rc = listener ? uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_)) : uv_tcp_open(&tcp_, fd);
  if (rc < 0) {
    log::debug("http: {}: {}", listener ? "uv_accept" : "uv_tcp_open", uv_strerror(rc));
    if (!listener) ::close(fd);  // not the handle's yet
    close_now();
    return false;
  }
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage ss;
  int sslen = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &sslen) == 0) {
    peer_ = format_address(reinterpret_cast<sockaddr*>(&ss));
  }
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
  start_timer(TimerMode::kIdle, core_->options.idle_timeout_ms);
  update_reading();
  return true;
}

void Connection::close_now() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), close_cb);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);
}

void Connection::close_cb(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  if (--c->pending_closes_ == 0) c->finalize();
}

void Connection::finalize() {
  std::shared_ptr<Connection> keep = std::move(self_);  // *this dies with `keep`
  handler_.reset();
  exchange_.reset();
  if (core_) core_->connection_gone(this);  // may run the shutdown callback: touch nothing after
}

// Closes now when nothing unread is known to be pending, else lingers.
void Connection::close_gracefully() {
  if (closing_) return;
  bool clean = (phase_ == Phase::kIdle || phase_ == Phase::kComplete) && pos_ == len_;
  if (clean || peer_eof_) {
    close_now();
  } else {
    linger();
  }
}

void Connection::linger() {
  if (closing_ || lingering_) return;
  lingering_ = true;
  stop_parse_ = true;
  keep_alive_ = false;
  pos_ = len_ = 0;
  int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), shutdown_cb);
  if (rc < 0) {
    close_now();
    return;
  }
  start_timer(TimerMode::kLinger, kLingerMs);
  update_reading();
}

void Connection::shutdown_cb(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  if (c->closing_) return;
  if (status < 0) c->close_now();
}

void Connection::on_drain() {
  if (closing_ || lingering_) return;
  keep_alive_ = false;
  if (phase_ == Phase::kIdle && !write_in_flight_ && pos_ == len_) close_now();
}

// ---------------------------------------------------------------------------
// Connection: timers

void Connection::start_timer(TimerMode mode, uint32_t ms) {
  if (closing_) return;
  if (ms == 0) {  // 0 disables that timeout
    stop_timer();
    return;
  }
  timer_mode_ = mode;
  uv_timer_start(&timer_, timer_cb, ms, 0);
}

void Connection::stop_timer() {
  timer_mode_ = TimerMode::kNone;
  if (!closing_) uv_timer_stop(&timer_);
}

void Connection::timer_cb(uv_timer_t* t) {
  static_cast<Connection*>(t->data)->on_timer();
}

void Connection::on_timer() {
  if (closing_) return;
  TimerMode mode = timer_mode_;
  timer_mode_ = TimerMode::kNone;
  switch (mode) {
    case TimerMode::kNone:
      break;
    case TimerMode::kIdle:
      core_->stats.timeouts++;
      close_now();
      break;
    case TimerMode::kHeader:
      core_->stats.timeouts++;
      log::debug("http: {} header timeout", peer_);
      fail(408, "request header timeout");
      break;
    case TimerMode::kBody:
      core_->stats.timeouts++;
      log::debug("http: {} body timeout", peer_);
      fail(408, "request body timeout");
      break;
    case TimerMode::kWrite:
      core_->stats.timeouts++;
      log::debug("http: {} write timeout", peer_);
      close_now();
      break;
    case TimerMode::kLinger:
      close_now();
      break;
  }
}

// ---------------------------------------------------------------------------
// Connection: reading, and feeding the parser

void Connection::alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(h->data);
  if (!c->buf_) c->buf_.reset(new char[kReadBufferSize]);
  if (c->lingering_) {
    *buf = uv_buf_init(c->buf_.get(), kReadBufferSize);
  } else {
    *buf = uv_buf_init(c->buf_.get() + c->len_, static_cast<unsigned>(kReadBufferSize - c->len_));
  }
}

void Connection::read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  static_cast<Connection*>(s->data)->on_read(nread);
}

void Connection::on_read(ssize_t nread) {
  if (closing_) return;
  if (nread > 0) {
    if (lingering_) return;  // discard
    len_ += static_cast<size_t>(nread);
    if (phase_ == Phase::kBody && !stop_parse_) start_timer(TimerMode::kBody, core_->options.body_timeout_ms);
    process();
  } else if (nread == UV_EOF) {
    peer_eof_ = true;
    if (lingering_) {
      close_now();
      return;
    }
    process();
  } else if (nread == UV_ENOBUFS) {
    update_reading();
  } else if (nread < 0) {
    log::debug("http: {} read error: {}", peer_, uv_strerror(static_cast<int>(nread)));
    close_now();
  }
}

void Connection::update_reading() {
  if (closing_) return;
  bool want = !peer_eof_ && (lingering_ || (!stop_parse_ && len_ < kReadBufferSize));
  if (want && !reading_) {
    int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), alloc_cb, read_cb);
    if (rc < 0) {
      close_now();
      return;
    }
    reading_ = true;
  } else if (!want && reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }
}

// Feeds buffered bytes to the parser, one message at a time.
void Connection::process() {
  while (!closing_ && !stop_parse_) {
    if (paused_) {
      if (phase_ == Phase::kComplete) {
        if (!exchange_ || !exchange_->replied_ || write_in_flight_) break;  // still answering
        if (!keep_alive_) {
          close_gracefully();
          return;
        }
        finish_request();
      }
      llhttp_resume(&parser_);
      paused_ = false;
    }
    if (pos_ >= len_) break;
    const char* start = buf_.get() + pos_;
    size_t n = len_ - pos_;
    hdr_mark_ = nullptr;
    llhttp_errno_t err = llhttp_execute(&parser_, start, n);
    if (closing_) return;
    if (stop_parse_) break;  // a callback replied early or failed the request
    if (err == HPE_OK) {
      pos_ = len_;
      if (phase_ == Phase::kHeaders) {
        // Count what this call consumed of the header section, whitespace included.
        hdr_bytes_ += static_cast<size_t>(start + n - (hdr_mark_ ? hdr_mark_ : start));
        if (hdr_bytes_ > core_->options.max_header_bytes) {
          fail(431, "request header fields too large");
          break;
        }
      }
    } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      pos_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf_.get());
      paused_ = true;
    } else {
      core_->stats.parse_errors++;
      const char* reason = llhttp_get_error_reason(&parser_);
      log::debug("http: {} bad request: {} ({})", peer_, reason ? reason : "?", llhttp_errno_name(err));
      fail(400, fmt::format("bad request: {}", reason ? reason : llhttp_errno_name(err)));
      break;
    }
  }
  if (closing_) return;
  if (pos_ == len_) {
    pos_ = len_ = 0;
  } else if (len_ == kReadBufferSize && pos_ > 0 && !lingering_) {
    std::memmove(buf_.get(), buf_.get() + pos_, len_ - pos_);
    len_ -= pos_;
    pos_ = 0;
  }
  handle_eof();
  update_reading();
}

// The client will send nothing more: close once nothing is left to answer.
void Connection::handle_eof() {
  if (!peer_eof_ || closing_ || lingering_ || pos_ < len_) return;
  if (write_in_flight_) {
    keep_alive_ = false;  // close when the reply is out
    return;
  }
  if (phase_ == Phase::kComplete && exchange_ && !exchange_->replied_) {
    keep_alive_ = false;  // the handler still answers; then close
    return;
  }
  close_now();  // idle, or a request that can no longer complete
}

void Connection::finish_request() {
  handler_.reset();
  exchange_.reset();
  phase_ = Phase::kIdle;
  body_bytes_ = 0;
  start_timer(TimerMode::kIdle, core_->options.idle_timeout_ms);
}

// ---------------------------------------------------------------------------
// Connection: writing

void Connection::send_reply(Response response) {
  if (closing_ || lingering_) return;
  if (routing_) {
    if (!discard_ok_) keep_alive_ = false;
  } else if (phase_ != Phase::kComplete) {
    // Answered before the body ended: don't resynchronise, close after the reply.
    keep_alive_ = false;
    stop_parse_ = true;
  }
  send(std::move(response));
  update_reading();
}

// Server-made error reply (or a bare close when a reply is already out).
void Connection::fail(int status, std::string_view message) {
  if (status == 413 || status == 431) core_->stats.oversized++;
  keep_alive_ = false;
  stop_parse_ = true;
  if (closing_ || lingering_) return;
  if (write_in_flight_) {
    start_timer(TimerMode::kWrite, core_->options.idle_timeout_ms);
    return;  // on_write closes
  }
  if (exchange_ && exchange_->replied_) {
    close_gracefully();
    return;
  }
  if (exchange_) exchange_->replied_ = true;
  std::string body;
  body.reserve(message.size() + 1);
  body.append(message);
  body.push_back('\n');
  send(Response::text(status, std::move(body)));
  update_reading();
}

void Connection::send(Response&& r) {
  if (closing_) return;
  if (core_->draining) keep_alive_ = false;
  bool bodyless = bodyless_status(r.status);
  write_response_head(r, keep_alive_, &out_head_);
  out_body_ = std::move(r.body);

  uv_buf_t bufs[2];
  unsigned nbufs = 0;
  bufs[nbufs++] = uv_buf_init(out_head_.data(), static_cast<unsigned>(out_head_.size()));
  if (!bodyless && !head_request_ && !out_body_.empty()) {
    bufs[nbufs++] = uv_buf_init(out_body_.data(), static_cast<unsigned>(out_body_.size()));
  }
  int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&tcp_), bufs, nbufs, write_cb);
  if (rc < 0) {
    log::debug("http: {} write failed: {}", peer_, uv_strerror(rc));
    close_now();
    return;
  }
  write_in_flight_ = true;
  if (phase_ != Phase::kBody || stop_parse_) {
    start_timer(TimerMode::kWrite, core_->options.idle_timeout_ms);
  }
}

void Connection::write_cb(uv_write_t* req, int status) {
  static_cast<Connection*>(req->data)->on_write(status);
}

void Connection::continue_write_cb(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->data);
  if (status < 0 && !c->closing_) c->close_now();
}

void Connection::on_write(int status) {
  write_in_flight_ = false;
  std::string().swap(out_body_);  // don't keep a large body's memory
  if (closing_) return;
  if (status < 0) {
    log::debug("http: {} write failed: {}", peer_, uv_strerror(status));
    close_now();
    return;
  }
  if (timer_mode_ == TimerMode::kWrite) stop_timer();
  if (!keep_alive_) {
    close_gracefully();
    return;
  }
  if (phase_ == Phase::kComplete) process();  // next request, if any
  // else: a declined body is still being read and dropped
}

}  // namespace taba::http::server_detail
