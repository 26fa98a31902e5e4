// HTTP/1.1 server on libuv + llhttp. See server.h for the contract.
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
#include "http/server.h"

#include <llhttp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <iterator>
#include <utility>

#include "core/log.h"

namespace taba::http {

// ---------------------------------------------------------------------------
// Small value helpers.

bool split_host_port(std::string_view text, std::string* host, int* port) {
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    if (h.find(':') == std::string_view::npos) return false;  // brackets are for IPv6 only
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // bare IPv6 needs brackets
  }
  if (h.empty() || p.empty() || p.size() > 5) return false;
  int value = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return false;
  if (host) host->assign(h);
  if (port) *port = value;
  return true;
}

bool split_endpoint(std::string_view text, std::string* host, int* port) {
  if (text.substr(0, 7) == "http://") text.remove_prefix(7);
  if (!text.empty() && text.back() == '/') text.remove_suffix(1);
  return split_host_port(text, host, port) && (!port || *port > 0);
}

namespace server_detail {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// A declined body up to this size is read and dropped to keep the connection.
constexpr uint64_t kMaxDiscardBytes = 64 * 1024;
// How long a lingering close waits for the client to close its side.
constexpr uint32_t kLingerMs = 2000;
constexpr int kListenBacklog = 1024;

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      break;
  }
  if (status >= 200 && status < 300) return "OK";
  if (status >= 400 && status < 500) return "Client Error";
  if (status >= 500 && status < 600) return "Server Error";
  return "Unknown";
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

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

const char kContinueLine[] = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

class Connection;
class ExchangeImpl;
struct Core;

// Heap-allocated so that its asynchronous close can outlive the Server.
struct Listener {
  uv_tcp_t tcp;
  Core* core = nullptr;
};

// Heap-allocated one-shot timer that reports shutdown completion when there
// was no connection left to wait for.
struct DoneTimer {
  uv_timer_t timer;
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
  DoneTimer* done_timer = nullptr;
  int port = 0;
  bool draining = false;
  std::vector<std::function<void()>> done;
  Connection* conns = nullptr;  // intrusive list of live connections
};

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

  // llhttp callbacks.
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

const llhttp_settings_t& Connection::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_begin = [](llhttp_t* p) { return static_cast<Connection*>(p->data)->on_message_begin(); };
    st.on_method = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Connection*>(p->data)->on_span(at, n);
    };
    st.on_version = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Connection*>(p->data)->on_span(at, n);
    };
    st.on_url = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Connection*>(p->data)->on_url(at, n);
    };
    st.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Connection*>(p->data)->on_header_field(at, n);
    };
    st.on_header_field_complete = [](llhttp_t* p) {
      return static_cast<Connection*>(p->data)->on_header_field_complete();
    };
    st.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Connection*>(p->data)->on_header_value(at, n);
    };
    st.on_header_value_complete = [](llhttp_t* p) {
      return static_cast<Connection*>(p->data)->on_header_value_complete();
    };
    st.on_headers_complete = [](llhttp_t* p) {
      return static_cast<Connection*>(p->data)->on_headers_complete();
    };
    st.on_body = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Connection*>(p->data)->on_body(at, n);
    };
    st.on_message_complete = [](llhttp_t* p) {
      return static_cast<Connection*>(p->data)->on_message_complete();
    };
    return st;
  }();
  return s;
}

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
// Connection: reading and parsing

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

int Connection::on_message_begin() {
  phase_ = Phase::kHeaders;
  hdr_bytes_ = 0;
  hdr_mark_ = nullptr;
  body_bytes_ = 0;
  field_open_ = false;
  discard_ok_ = true;
  head_request_ = false;
  exchange_ = std::make_shared<ExchangeImpl>(weak_from_this());
  exchange_->req_.peer = peer_;
  start_timer(TimerMode::kHeader, core_->options.header_timeout_ms);
  return 0;
}

// Bounds the header section while it is being parsed.
int Connection::on_span(const char* at, size_t n) {
  if (phase_ != Phase::kHeaders) return 0;  // e.g. trailers of a chunked body: ignored
  if (!hdr_mark_) hdr_mark_ = at;
  if (hdr_bytes_ + static_cast<size_t>(at + n - hdr_mark_) > core_->options.max_header_bytes) {
    fail(431, "request header fields too large");
    return HPE_USER;
  }
  return 0;
}

int Connection::on_url(const char* at, size_t n) {
  if (int rc = on_span(at, n)) return rc;
  exchange_->req_.target.append(at, n);
  return 0;
}

int Connection::on_header_field(const char* at, size_t n) {
  if (int rc = on_span(at, n)) return rc;
  if (phase_ != Phase::kHeaders) return 0;
  auto& headers = exchange_->req_.headers;
  if (!field_open_) {
    headers.emplace_back();
    field_open_ = true;
  }
  std::string& name = headers.back().name;
  for (size_t i = 0; i < n; ++i) {
    char ch = at[i];
    name.push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch);
  }
  return 0;
}

int Connection::on_header_field_complete() {
  field_open_ = false;
  return 0;
}

int Connection::on_header_value(const char* at, size_t n) {
  if (int rc = on_span(at, n)) return rc;
  if (phase_ != Phase::kHeaders) return 0;
  auto& headers = exchange_->req_.headers;
  if (!headers.empty()) headers.back().value.append(at, n);
  return 0;
}

int Connection::on_header_value_complete() {
  if (phase_ != Phase::kHeaders) return 0;
  auto& headers = exchange_->req_.headers;
  if (!headers.empty()) {
    std::string& v = headers.back().value;
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  }
  return 0;
}

int Connection::on_headers_complete() {
  const ServerOptions& opt = core_->options;
  Request& req = exchange_->req_;
  req.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  req.http_minor = parser_.http_minor;
  size_t q = req.target.find('?');
  if (q == std::string::npos) {
    req.path = req.target;
  } else {
    req.path = req.target.substr(0, q);
    req.query = req.target.substr(q + 1);
  }
  if (parser_.flags & F_CONTENT_LENGTH) req.content_length = parser_.content_length;
  req.chunked = (parser_.flags & F_CHUNKED) != 0;
  head_request_ = req.method == "HEAD";
  keep_alive_ = llhttp_should_keep_alive(&parser_) != 0 && parser_.upgrade == 0 && !core_->draining;
  phase_ = Phase::kBody;
  hdr_mark_ = nullptr;
  core_->stats.requests++;

  bool has_body = req.chunked || (req.content_length && *req.content_length > 0);
  bool expect_continue = req.http_minor >= 1 && iequals(req.header("expect"), "100-continue");
  if (has_body) {
    body_started_ms_ = uv_now(core_->loop);
    start_timer(TimerMode::kBody, opt.body_timeout_ms);
  } else {
    stop_timer();
  }

  if (req.content_length && *req.content_length > opt.max_body_bytes) {
    fail(413, fmt::format("request body of {} bytes exceeds the limit of {} bytes", *req.content_length,
                          opt.max_body_bytes));
    return HPE_PAUSED;  // stop_parse_ is set: the process loop stops here
  }

  discard_ok_ = !has_body || (!req.chunked && !expect_continue && *req.content_length <= kMaxDiscardBytes);
  std::unique_ptr<RequestHandler> handler;
  bool threw = true;
  routing_ = true;
  try {
    handler = core_->router(exchange_);
    threw = false;
  } catch (const std::exception& e) {
    log::error("http: router failed on {} {}: {}", req.method, req.path, e.what());
  } catch (...) {
    log::error("http: router failed on {} {}", req.method, req.path);
  }
  if (!closing_ && !handler && !exchange_->replied_) {
    if (!threw) log::error("http: router neither replied nor gave a handler for {} {}", req.method, req.path);
    exchange_->reply(Response::text(500, "internal error\n"));
  }
  routing_ = false;
  if (closing_) return HPE_USER;
  if (exchange_->replied_) {
    handler.reset();  // the reply is out: the body, if any, is dropped
    if (has_body && !discard_ok_) {
      stop_parse_ = true;  // the reply said "Connection: close"
      if (write_in_flight_) start_timer(TimerMode::kWrite, opt.idle_timeout_ms);
      return HPE_PAUSED;
    }
    return 0;
  }
  handler_ = std::move(handler);
  if (expect_continue && has_body) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(kContinueLine), sizeof kContinueLine - 1);
    int rc = uv_write(&continue_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, continue_write_cb);
    if (rc < 0) {
      close_now();
      return HPE_USER;
    }
  }
  return 0;
}

int Connection::on_body(const char* at, size_t n) {
  body_bytes_ += n;
  if (body_bytes_ > core_->options.max_body_bytes) {
    fail(413, fmt::format("request body exceeds the limit of {} bytes", core_->options.max_body_bytes));
    return HPE_USER;
  }
  // The pause timer alone lets a client hold a connection by sending a byte
  // just before each timeout; past the first body_timeout_ms the body must
  // also average min_body_rate.
  const ServerOptions& opt = core_->options;
  if (opt.min_body_rate > 0) {
    uint64_t elapsed_ms = uv_now(core_->loop) - body_started_ms_;
    if (elapsed_ms > opt.body_timeout_ms && body_bytes_ * 1000 < uint64_t{opt.min_body_rate} * elapsed_ms) {
      core_->stats.timeouts++;
      fail(408, fmt::format("request body arriving at {} bytes/s, under the minimum of {} bytes/s",
                            body_bytes_ * 1000 / elapsed_ms, opt.min_body_rate));
      return HPE_USER;
    }
  }
  if (!handler_ || exchange_->replied_) return 0;  // declined or answered: drop
  try {
    handler_->on_body(std::string_view(at, n));
  } catch (const std::exception& e) {
    log::error("http: body handler failed on {}: {}", exchange_->req_.path, e.what());
    fail(500, "internal error");
  } catch (...) {
    log::error("http: body handler failed on {}", exchange_->req_.path);
    fail(500, "internal error");
  }
  if (closing_ || stop_parse_) return HPE_USER;
  return 0;
}

int Connection::on_message_complete() {
  phase_ = Phase::kComplete;
  if (exchange_->replied_) {
    if (write_in_flight_) {
      start_timer(TimerMode::kWrite, core_->options.idle_timeout_ms);
    } else {
      stop_timer();
    }
  } else {
    stop_timer();  // the handler owns the request until it replies
  }
  if (handler_ && !exchange_->replied_) {
    try {
      handler_->on_complete();
    } catch (const std::exception& e) {
      log::error("http: handler failed on {}: {}", exchange_->req_.path, e.what());
      fail(500, "internal error");
    } catch (...) {
      log::error("http: handler failed on {}", exchange_->req_.path);
      fail(500, "internal error");
    }
  }
  return HPE_PAUSED;  // one message at a time: resume after the reply is written
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
  bool bodyless = r.status < 200 || r.status == 204 || r.status == 304;
  out_head_.clear();
  auto out = std::back_inserter(out_head_);
  fmt::format_to(out, "HTTP/1.1 {} {}\r\n", r.status, reason_phrase(r.status));
  if (!bodyless) {
    if (!r.content_type.empty() && !has_crlf(r.content_type)) {
      fmt::format_to(out, "Content-Type: {}\r\n", r.content_type);
    }
    fmt::format_to(out, "Content-Length: {}\r\n", r.body.size());
  }
  out_head_.append(keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
  for (const Header& h : r.headers) {
    if (h.name.empty() || has_crlf(h.name) || has_crlf(h.value) || iequals(h.name, "content-length") ||
        iequals(h.name, "connection") || iequals(h.name, "transfer-encoding") ||
        iequals(h.name, "content-type")) {
      log::debug("http: dropped response header '{}'", h.name);
      continue;
    }
    fmt::format_to(out, "{}: {}\r\n", h.name, h.value);
  }
  out_head_.append("\r\n");
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
      uv_close(reinterpret_cast<uv_handle_t*>(&listener->tcp),
               [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
    }
  }
  if (done_timer) {
    done_timer->core = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&done_timer->timer),
             [](uv_handle_t* h) { delete static_cast<DoneTimer*>(h->data); });
  }
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
    uv_close(reinterpret_cast<uv_handle_t*>(t),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
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
    uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp),
             [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
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
  using server_detail::DoneTimer;
  Impl& s = *impl_;
  s.draining = true;
  if (done) s.done.push_back(std::move(done));
  if (s.listener) {
    server_detail::Listener* l = s.listener;
    s.listener = nullptr;
    l->core = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp),
             [](uv_handle_t* h) { delete static_cast<server_detail::Listener*>(h->data); });
  }
  for (Connection* c = s.conns; c; c = c->next_) c->on_drain();  // closing unlinks only later
  if (s.stats.connections_active == 0 && !s.done_timer) {
    // Nothing to wait for: report on the next loop turn, not from inside this call.
    auto* t = new DoneTimer;
    t->core = &s;
    uv_timer_init(s.loop, &t->timer);
    t->timer.data = t;
    s.done_timer = t;
    uv_timer_start(
        &t->timer,
        [](uv_timer_t* h) {
          auto* dt = static_cast<DoneTimer*>(h->data);
          server_detail::Core* core = dt->core;
          uv_close(reinterpret_cast<uv_handle_t*>(&dt->timer),
                   [](uv_handle_t* hh) { delete static_cast<DoneTimer*>(hh->data); });
          if (core) {
            core->done_timer = nullptr;
            core->maybe_done();
          }
        },
        0, 0);
  }
}

const ServerStats& Server::stats() const {
  return impl_->stats;
}

}  // namespace taba::http
