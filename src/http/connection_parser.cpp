// One HTTP server connection's llhttp callbacks (connection.h): they build
// the Request, bound the header section and the body, route the request when
// its headers are complete and stream its body to the handler, one message at
// a time.
#include "http/connection.h"

#include <fmt/format.h>

#include <exception>
#include <utility>

#include "core/ascii.h"
#include "core/log.h"
#include "http/response_head.h"
#include "http/server_core.h"

namespace taba::http::server_detail {
namespace {

// A declined body up to this size is read and dropped to keep the connection.
constexpr uint64_t kMaxDiscardBytes = 64 * 1024;

}  // namespace

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
    name.push_back(ascii_lower(ch));
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
  bool expect_continue = req.http_minor >= 1 && ascii_iequals(req.header("expect"), "100-continue");
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

}  // namespace taba::http::server_detail
