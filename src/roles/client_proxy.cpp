// The client-proxy role (client_proxy.h): the datagram sockets read with
// recvmmsg into the StatsD buffer (statsd_buffer.h), the flush into queued
// v1 bodies, POST /post, the forwarding thread to the agent, /status and
// /metrics, and shutdown.
#include "roles/client_proxy.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>

#include "core/clock.h"
#include "core/log.h"
#include "http/client.h"
#include "http/url.h"
#include "protocol/statsd.h"
#include "protocol/v1_encoder.h"
#include "roles/server_options.h"
#include "routes/auth.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

// recvmmsg: libuv fills up to this many 64 KiB datagram slots per call.
constexpr size_t kDatagramSlot = 64 * 1024;
constexpr size_t kSlots = 32;
// recvmmsg calls per turn of the loop, at most.
constexpr int kRoundsPerRead = 16;
// After a read that found datagrams, the next read comes this much later
// (instead of a wakeup per datagram). At 1 M lines/s that is ~50 datagrams,
// far within the receive buffer.
constexpr uint64_t kCoalesceMs = 1;
// Names remembered for type checks and gauge deltas (bounded memory).
constexpr size_t kMaxRememberedNames = 1'000'000;
// An agent without POST /post_delta is asked again this often (it may have
// been upgraded meanwhile).
constexpr int64_t kAskAgainMs = 60'000;

// Answers to a POST /post_delta that mean "no such route here": an agent
// (or fe) of a release before delta batches.
bool no_delta_route(int status) { return status == 404 || status == 405 || status == 415; }

}  // namespace

ClientProxyRole::ClientProxyRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry)
    : loop_(loop), config_(config), registry_(registry) {
  client_id_ = config_.client_proxy.client_id;
  if (client_id_.empty()) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    client_id_ = host;
  }
  buffer_ = std::make_unique<StatsdBuffer>(static_cast<uint64_t>(config_.client_proxy.max_buffered_events));
  rng_state_ = std::random_device{}();
  rng_state_ = (rng_state_ << 32) ^ std::random_device{}();
}

ClientProxyRole::~ClientProxyRole() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stop_deadline_ms_ = 0;
  }
  wake_.notify_all();
  if (forwarder_.joinable()) forwarder_.join();
  if (udp_in_.fd >= 0) ::close(udp_in_.fd);
  if (unix_in_.fd >= 0) ::close(unix_in_.fd);
}

std::string ClientProxyRole::new_batch_id() {
  // splitmix64: ids only need to be unique, not secret.
  auto next = [this] {
    uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return fmt::format("{:016x}{:016x}", next(), next());
}

Status ClientProxyRole::start() {
  ingest_ = std::make_unique<routes::Ingest>(this, registry_, config_.ingest);
  http::ServerOptions ho = server_options(config_.http);
  server_ = std::make_unique<http::Server>(loop_, ho, [this](const std::shared_ptr<http::Exchange>& ex) {
    return route(ex);
  });
  std::string host;
  int port = 0;
  http::split_host_port(config_.client_proxy.listen, &host, &port);
  Status s = server_->listen(host, port);
  if (!s.ok()) {
    return Status::IoError(fmt::format("client-proxy: cannot listen on {}: {}", config_.client_proxy.listen, s.message()));
  }

  if (!config_.client_proxy.statsd_udp.empty()) {
    s = open_udp_socket();
    TABA_RETURN_IF_ERROR(s);
  }
  if (!config_.client_proxy.statsd_unix.empty()) {
    s = open_unix_socket();
    TABA_RETURN_IF_ERROR(s);
  }

  // Delta batches need the plugins of the StatsD types in this process.
  std::string missing;
  for (auto kind : {protocol::statsd::Kind::kCounter, protocol::statsd::Kind::kTimer, protocol::statsd::Kind::kGauge,
                    protocol::statsd::Kind::kSet}) {
    std::string_view type = protocol::statsd::taba_type(kind);
    if (registry_ == nullptr || registry_->find(type) == nullptr) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", type);
  }
  may_delta_ = config_.client_proxy.forward_format == ForwardFormat::kDelta && missing.empty();
  if (config_.client_proxy.forward_format == ForwardFormat::kDelta && !missing.empty()) {
    log::warn("client-proxy: no loaded plugin serves {} (server.plugins_dir): forwarding v1 bodies, not delta batches",
              missing);
  }
  format_.store(may_delta_ ? Format::kAsking : Format::kV1);

  flush_timer_ = std::make_unique<UvTimer>(loop_, [this] { flush(); });
  auto every = static_cast<uint64_t>(config_.client_proxy.flush_interval_ms);
  flush_timer_->start(every, every);
  forwarder_ = std::thread([this] { forward_main(); });
  log::info(
      "client-proxy: HTTP {}:{}, StatsD UDP {} (recvmmsg {}), unix {}, forwarding {} to the agent at {} as client {}",
      host, server_->port(), config_.client_proxy.statsd_udp.empty() ? "off" : config_.client_proxy.statsd_udp,
      udp_in_.open ? "on" : "off", config_.client_proxy.statsd_unix.empty() ? "off" : config_.client_proxy.statsd_unix,
      may_delta_ ? "delta batches (v1 bodies if it takes none)" : "v1 bodies", config_.client_proxy.agent, client_id_);
  return Status::Ok();
}

// Asks for a receive buffer of `want` bytes; SO_RCVBUFFORCE passes
// net.core.rmem_max when we may (CAP_NET_ADMIN). The size granted, as
// Linux counts it (twice what was asked, for its bookkeeping).
static int set_receive_buffer(int fd, int want) {
  if (want > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  }
  int got = 0;
  socklen_t len = sizeof got;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
  return got;
}

Status ClientProxyRole::open_udp_socket() {
  std::string uhost;
  int uport = 0;
  http::split_host_port(config_.client_proxy.statsd_udp, &uhost, &uport);
  if (uhost == "localhost") uhost = "127.0.0.1";
  sockaddr_storage addr{};
  socklen_t addr_len = sizeof(sockaddr_in);
  int family = AF_INET;
  if (uv_ip4_addr(uhost.c_str(), uport, reinterpret_cast<sockaddr_in*>(&addr)) != 0) {
    if (uv_ip6_addr(uhost.c_str(), uport, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
      return Status::Invalid(fmt::format("client_proxy.statsd_udp: \"{}\" is not an IP address", uhost));
    }
    family = AF_INET6;
    addr_len = sizeof(sockaddr_in6);
  }
  udp_in_.fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (udp_in_.fd < 0) return Status::IoError(fmt::format("client-proxy: socket(UDP): {}", strerror(errno)));
  if (::bind(udp_in_.fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0) {
    return Status::IoError(
        fmt::format("client-proxy: cannot bind UDP {}: {}", config_.client_proxy.statsd_udp, strerror(errno)));
  }
  if (config_.client_proxy.udp_recv_buffer_bytes > 0) {
    int want = static_cast<int>(config_.client_proxy.udp_recv_buffer_bytes);
    int got = set_receive_buffer(udp_in_.fd, want);
    if (got / 2 < want) {
      log::warn("client-proxy: UDP receive buffer is {} bytes, not the {} asked for (raise net.core.rmem_max)", got / 2,
                want);
    }
  }
  return start_input(&udp_in_);
}

Status ClientProxyRole::open_unix_socket() {
  const std::string& path = config_.client_proxy.statsd_unix;
  unix_in_.fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (unix_in_.fd < 0) return Status::IoError(fmt::format("client-proxy: socket(AF_UNIX): {}", strerror(errno)));
  ::unlink(path.c_str());  // a stale socket from an earlier run
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::bind(unix_in_.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IoError(fmt::format("client-proxy: cannot bind {}: {}", path, strerror(errno)));
  }
  set_receive_buffer(unix_in_.fd, static_cast<int>(config_.client_proxy.udp_recv_buffer_bytes));
  return start_input(&unix_in_);
}

Status ClientProxyRole::start_input(DatagramInput* in) {
  if (recv_buf_.empty()) recv_buf_.resize(kDatagramSlot * kSlots);
  in->self = this;
  int rc = uv_poll_init(loop_, &in->poll, in->fd);
  if (rc != 0) return Status::Internal(fmt::format("uv_poll_init: {}", uv_strerror(rc)));
  in->timer = std::make_unique<UvTimer>(loop_, [in] { in->self->service_input(in); });
  in->open = true;
  in->poll.data = in;
  in->polling = true;
  uv_poll_start(&in->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
    if (status < 0) return;
    auto* input = static_cast<DatagramInput*>(h->data);
    input->self->service_input(input);
  });
  return Status::Ok();
}

size_t ClientProxyRole::read_input(DatagramInput* in, bool* more) {
  *more = false;
  size_t total = 0;
  mmsghdr msgs[kSlots];
  iovec iov[kSlots];
  // A bounded number of calls per turn keeps the loop fair to the other
  // socket, HTTP and the flush timer.
  for (int round = 0; round < kRoundsPerRead; ++round) {
    for (size_t i = 0; i < kSlots; ++i) {
      iov[i] = {recv_buf_.data() + i * kDatagramSlot, kDatagramSlot};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(in->fd, msgs, kSlots, MSG_DONTWAIT, nullptr);
    if (n <= 0) return total;  // nothing more, or an error (counted nowhere: datagrams)
    // One stamp per batch: these datagrams were all waiting when it was read.
    double now = wall_now();
    for (int i = 0; i < n; ++i) {
      handle_datagram(std::string_view(static_cast<const char*>(iov[i].iov_base), msgs[i].msg_len), now);
    }
    total += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < kSlots) return total;
  }
  *more = true;
  return total;
}

void ClientProxyRole::service_input(DatagramInput* in) {
  if (stopping_) return;
  bool more = false;
  size_t got = read_input(in, &more);
  if (got == 0 || more) {
    // Quiet: wait for the socket again. Or more is waiting: readiness
    // brings us back on the next turn of the loop, after the timers and
    // HTTP (a 0 ms timer would not: libuv may run it again at once).
    if (!in->polling) {
      in->polling = true;
      uv_poll_start(&in->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
        if (status < 0) return;
        auto* input = static_cast<DatagramInput*>(h->data);
        input->self->service_input(input);
      });
    }
    return;
  }
  // Busy: read again shortly rather than wake for every datagram.
  in->polling = false;
  uv_poll_stop(&in->poll);
  in->timer->start(kCoalesceMs);
}

void ClientProxyRole::stop_input(DatagramInput* in) {
  if (!in->open) return;
  uv_poll_stop(&in->poll);
  in->timer->stop();
  in->polling = false;
}

void ClientProxyRole::handle_datagram(std::string_view datagram, double now) {
  buffer_->add_datagram(datagram, now, &loop_stats_);
}

void ClientProxyRole::flush() {
  const Format format = format_.load();
  // Until the agent has said whether it takes delta batches, the events
  // stay in the buffer (bounded by max_buffered_events).
  if (format == Format::kAsking) return;
  Body body;
  if (format == Format::kV1) {
    uint64_t events = buffer_->events();
    auto text = std::make_shared<std::string>();
    if (!buffer_->take_body(client_id_, text.get())) return;
    body.text = std::move(text);
    body.events = events;
  } else {
    const double now = wall_now();
    delta_writer_.reset(now);
    const DeltaFlush fold{client_id_, now, static_cast<double>(config_.ingest.future_clamp_s)};
    if (!buffer_->take_deltas(*registry_, fold, &delta_writer_, &loop_stats_)) return;
    body.events = delta_writer_.event_count();
    const bool any = delta_writer_.block_count() > 0;
    std::string batch = delta_writer_.finish();
    if (any) body.text = std::make_shared<const std::string>(protocol::wrap_delta_body(batch));
    body.delta = true;
  }
  if (buffer_->names() > kMaxRememberedNames) {
    // Bounded memory: forget every name (their types and gauge values) and
    // start over; counted so that it shows.
    log::warn("client-proxy: more than {} names seen; forgetting their types and gauge values", kMaxRememberedNames);
    buffer_->forget_names();
    ++loop_stats_.names_forgotten;
  }
  if (!body.text) return;  // every event of the flush was dropped (counted)
  body.batch_id = new_batch_id();
  enqueue(std::move(body), true);
}

bool ClientProxyRole::enqueue(Body body, bool drop_oldest) {
  uint64_t cap = static_cast<uint64_t>(config_.client_proxy.max_retry_bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t size = body.text->size();
    if (!drop_oldest && queued_bytes_ + size > cap && !queue_.empty()) return false;
    // Best effort: the newest data is kept, the oldest queued body goes.
    while (queued_bytes_ + size > cap && !queue_.empty()) {
      fwd_stats_.events_dropped_retry += queue_.front().events;
      queued_bytes_ -= queue_.front().text->size();
      queue_.pop_front();
    }
    queued_bytes_ += size;
    queue_.push_back(std::move(body));
  }
  wake_.notify_one();
  return true;
}

void ClientProxyRole::submit(std::string batch, store::BatchId batch_id, store::Bindings, uint64_t events,
                             std::function<void(const Status&)> done) {
  if (stopping_) return done(Status::Unavailable("the client-proxy is shutting down"));
  protocol::V1Encoder enc;
  Status s = enc.add_batch(batch);
  if (!s.ok()) return done(Status::Internal(s.message()));
  Body body;
  body.batch_id = batch_id.value;  // the client's, or one Ingest made up
  body.text = std::make_shared<const std::string>(enc.finish());
  body.events = events;
  // A post is refused (503) rather than pushing out what others sent.
  if (!enqueue(std::move(body), false)) {
    return done(Status::Unavailable("the client-proxy's queue to the agent is full; retry later"));
  }
  done(Status::Ok());
}

int ClientProxyRole::ask_agent(std::optional<http::ClientConnection>* conn, const std::string& host, int port,
                               int timeout, std::string* error) {
  if (!*conn || !(*conn)->is_open()) {
    auto c = http::ClientConnection::connect(host, port, timeout);
    if (!c.ok()) {
      *error = c.status().message();
      return 0;
    }
    conn->emplace(std::move(c.value()));
  }
  std::vector<http::Header> headers{{"Content-Type", std::string(protocol::kDeltaContentType)}};
  if (!config_.client_proxy.forward_token.empty()) {
    headers.push_back({"Authorization", "Bearer " + config_.client_proxy.forward_token});
  }
  // No blocks: nothing to apply, only the route is asked.
  const std::string empty = protocol::wrap_delta_body(protocol::DeltaWriter(wall_now()).finish());
  auto r = (*conn)->request("POST", "/post_delta", headers, empty, timeout);
  if (!r.ok()) {
    conn->reset();
    *error = r.status().message();
    return 0;
  }
  if (r->status != 200) *error = fmt::format("HTTP {}: {}", r->status, r->body.substr(0, r->body.find('\n')));
  return r->status;
}

void ClientProxyRole::forward_main() {
  std::string host;
  int port = 0;
  http::split_endpoint(config_.client_proxy.agent, &host, &port);
  std::optional<http::ClientConnection> conn;
  int64_t backoff_ms = 0;
  int64_t ask_at_ms = 0;  // when to ask the agent (again) whether it takes delta batches
  std::mt19937_64 rng{std::random_device{}()};
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    int64_t now = steady_ms();
    if (stop_ && (queue_.empty() || now >= stop_deadline_ms_)) break;
    const bool ask = may_delta_ && !stop_ && format_.load() != Format::kDelta && now >= ask_at_ms;
    if (queue_.empty() && !ask) {
      forward_idle_ = true;
      wake_.wait_for(lock, std::chrono::milliseconds(
                               format_.load() == Format::kAsking ? std::max<int64_t>(ask_at_ms - now, 1) : 200));
      continue;
    }
    forward_idle_ = false;
    int timeout = static_cast<int>(config_.client_proxy.forward_timeout_ms);
    if (stop_) timeout = static_cast<int>(std::clamp<int64_t>(stop_deadline_ms_ - now, 100, timeout));
    int status = 0;
    std::string error;
    if (ask) {
      lock.unlock();
      status = ask_agent(&conn, host, port, timeout, &error);
      lock.lock();
      const Format was = format_.load();
      if (no_delta_route(status)) {
        if (was != Format::kV1) {
          log::warn("client-proxy: the agent at {} takes no delta batches ({}); forwarding v1 bodies to its POST /post "
                    "(asking again every {} s)",
                    config_.client_proxy.agent, error, kAskAgainMs / 1000);
        }
        format_.store(Format::kV1);
        ask_at_ms = steady_ms() + kAskAgainMs;
        backoff_ms = 0;
        continue;
      }
      // Any other answer but those worth retrying comes from the route.
      if (status != 0 && status != 401 && status != 403 && status != 408 && status != 429 && status < 500) {
        format_.store(Format::kDelta);
        log::info("client-proxy: the agent at {} takes delta batches: forwarding one per flush to its POST /post_delta",
                  config_.client_proxy.agent);
        backoff_ms = 0;
        continue;
      }
      if (was == Format::kV1) {
        // Still v1 meanwhile: ask again later, and forward what is queued.
        ask_at_ms = steady_ms() + kAskAgainMs;
        continue;
      }
    } else {
      Body body = queue_.front();  // the queue keeps it (shared text) until the agent has it
      lock.unlock();
      if (!conn || !conn->is_open()) {
        auto c = http::ClientConnection::connect(host, port, timeout);
        if (c.ok()) {
          conn.emplace(std::move(c.value()));
        } else {
          error = c.status().message();
        }
      }
      if (conn && conn->is_open()) {
        std::vector<http::Header> headers{{"Taba-Batch-Id", body.batch_id}};
        if (body.delta) headers.push_back({"Content-Type", std::string(protocol::kDeltaContentType)});
        if (!config_.client_proxy.forward_token.empty()) {
          headers.push_back({"Authorization", "Bearer " + config_.client_proxy.forward_token});
        }
        auto r = conn->request("POST", body.delta ? "/post_delta" : "/post", headers, *body.text, timeout);
        if (r.ok()) {
          status = r->status;
          if (status != 200) error = fmt::format("HTTP {}: {}", status, r->body.substr(0, r->body.find('\n')));
        } else {
          conn.reset();
          error = r.status().message();
        }
      }
      lock.lock();
      // A delta batch to an agent that has no /post_delta (an older one took
      // its place): v1 from the next flush on; this batch cannot be sent.
      const bool refused_delta = body.delta && no_delta_route(status);
      if (refused_delta && format_.load() != Format::kV1) {
        log::warn("client-proxy: the agent at {} takes no delta batches ({}); forwarding v1 bodies to its POST /post",
                  config_.client_proxy.agent, error);
        format_.store(Format::kV1);
        ask_at_ms = steady_ms() + kAskAgainMs;
      }
      // 401/403 (a token to fix), 404 (not an agent there yet), 408 and 429
      // are worth retrying; any other 4xx can never succeed.
      bool done = refused_delta || status == 200 ||
                  (status >= 400 && status < 500 && status != 401 && status != 403 && status != 404 && status != 408 &&
                   status != 429);
      if (done) {
        // The front may have been dropped for space meanwhile; find ours.
        bool found = false;
        for (auto it = queue_.begin(); it != queue_.end(); ++it) {
          if (it->batch_id == body.batch_id) {
            queued_bytes_ -= it->text->size();
            queue_.erase(it);
            found = true;
            break;
          }
        }
        // Pushed out for space while on its way: already counted as dropped.
        if (!found && status == 200) fwd_stats_.events_dropped_retry -= body.events;  // delivered after all
        if (status == 200) {
          ++fwd_stats_.bodies_forwarded;
          fwd_stats_.events_forwarded += body.events;
        } else {
          ++fwd_stats_.bodies_rejected;
          if (found) fwd_stats_.events_rejected += body.events;
          log::error("client-proxy: the agent refused a {} of {} events ({}); dropped",
                     body.delta ? "delta batch" : "body", body.events, error);
        }
        backoff_ms = 0;
        continue;
      }
    }
    ++fwd_stats_.forward_failures;
    backoff_ms = backoff_ms == 0 ? 100 : std::min<int64_t>(backoff_ms * 2, 5000);
    int64_t wait = backoff_ms / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(backoff_ms / 2 + 1));
    log::warn("client-proxy: cannot forward to the agent at {} ({}); retrying in {} ms", config_.client_proxy.agent,
              error, wait);
    if (stop_) wait = std::min<int64_t>(wait, std::max<int64_t>(stop_deadline_ms_ - steady_ms(), 0));
    ask_at_ms = steady_ms() + wait;
    wake_.wait_for(lock, std::chrono::milliseconds(wait));
  }
  forward_idle_ = true;
}

std::unique_ptr<http::RequestHandler> ClientProxyRole::route(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  if (auto denied = routes::check_access(config_.auth, routes::access_of(req.method, req.path), req)) {
    ex->reply(std::move(*denied));
    return nullptr;
  }
  if (routes::Ingest::handles(req.path)) return ingest_->start(ex);
  if (req.method != "GET") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only GET\n", req.path));
    r.headers.push_back({"Allow", "GET"});
    ex->reply(std::move(r));
  } else if (req.path == "/status") {
    ex->reply(http::Response::text(200, status_text()));
  } else if (req.path == "/metrics") {
    routes::MetricsWriter w;
    write_metrics(&w);
    http::Response r = http::Response::text(200, w.take());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    ex->reply(std::move(r));
  } else if (req.path == "/healthz" || req.path == "/readyz") {
    ex->reply(stopping_ ? http::Response::text(503, "shutting down\n") : http::Response::text(200, "ok\n"));
  } else {
    ex->reply(http::Response::text(
        404, fmt::format("no such route: {} (the client-proxy serves /post /post_zip /status /metrics /healthz /readyz)\n",
                         req.path)));
  }
  return nullptr;
}

ProxyStats ClientProxyRole::stats() const {
  ProxyStats s = loop_stats_;
  std::lock_guard<std::mutex> lock(mu_);
  s.events_dropped_retry = fwd_stats_.events_dropped_retry;
  s.bodies_forwarded = fwd_stats_.bodies_forwarded;
  s.events_forwarded = fwd_stats_.events_forwarded;
  s.bodies_rejected = fwd_stats_.bodies_rejected;
  s.events_rejected = fwd_stats_.events_rejected;
  s.forward_failures = fwd_stats_.forward_failures;
  s.queued_bytes = queued_bytes_;
  s.queued_bodies = queue_.size();
  return s;
}

void ClientProxyRole::write_metrics(routes::MetricsWriter* w) const {
  w->gauge("taba_build_info", "tabad version.", 1, {{"version", TABA_VERSION_STRING}});
  ingest_->write_refusal_metrics(w, "taba_proxy");
  ProxyStats s = stats();
  w->counter("taba_proxy_datagrams_total", "StatsD datagrams received (UDP and unix socket).", static_cast<double>(s.datagrams));
  w->counter("taba_proxy_lines_total", "StatsD values accepted.", static_cast<double>(s.lines));
  w->counter("taba_proxy_bad_lines_total", "StatsD lines skipped: malformed, unmappable name or type conflict.",
             static_cast<double>(s.bad_lines));
  w->counter("taba_proxy_type_conflicts_total", "StatsD lines whose name was seen before with another type.",
             static_cast<double>(s.type_conflicts));
  w->counter("taba_proxy_events_buffered_total", "Events taken into the buffer.", static_cast<double>(s.events_buffered));
  w->family("taba_proxy_events_dropped_total", "counter", "Events dropped by the proxy, by reason.");
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_dropped_full), {{"reason", "buffer_full"}});
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_dropped_retry), {{"reason", "queue_full"}});
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_rejected), {{"reason", "rejected"}});
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_dropped_fold), {{"reason", "not_foldable"}});
  w->counter("taba_proxy_bodies_forwarded_total", "Bodies (delta batches or v1 bodies) the agent accepted.",
             static_cast<double>(s.bodies_forwarded));
  w->counter("taba_proxy_events_forwarded_total", "Events in bodies the agent accepted.", static_cast<double>(s.events_forwarded));
  w->counter("taba_proxy_bodies_rejected_total", "Bodies the agent refused (4xx) and the proxy dropped.",
             static_cast<double>(s.bodies_rejected));
  w->counter("taba_proxy_forward_failures_total", "Forwarding attempts that failed and were retried.",
             static_cast<double>(s.forward_failures));
  w->counter("taba_proxy_names_forgotten_total",
             "Times the proxy's name table (types, gauge values) passed 1,000,000 names and was cleared.",
             static_cast<double>(s.names_forgotten));
  w->gauge("taba_proxy_queued_bytes", "Bytes of bodies waiting for the agent.", static_cast<double>(s.queued_bytes));
  w->gauge("taba_proxy_buffered_events", "Events in the buffer, not yet in a body.", static_cast<double>(buffer_ ? buffer_->events() : 0));
}

std::string ClientProxyRole::status_text() const {
  ProxyStats s = stats();
  const Format format = format_.load();
  std::string forwarding = format == Format::kDelta   ? "delta batches (POST /post_delta)"
                           : format == Format::kAsking ? "waiting for the agent to say whether it takes delta batches"
                           : may_delta_ ? "v1 bodies (POST /post): the agent takes no delta batches; asking again every minute"
                                        : "v1 bodies (POST /post)";
  return fmt::format(
      "client-proxy {} as client {}{}\n"
      "statsd     udp {}, unix {}: {} datagrams, {} values, {} bad lines ({} type conflicts)\n"
      "buffer     {} events now (max {}), {} dropped while full, {} not foldable\n"
      "queue      {} bodies, {} bytes (max {}), {} events dropped while full\n"
      "forwarded  to {}: {} bodies, {} events; {} failed attempts retried; {} bodies refused\n"
      "format     {}\n",
      config_.client_proxy.listen, client_id_, stopping_ ? ", shutting down" : "",
      config_.client_proxy.statsd_udp.empty() ? "off" : config_.client_proxy.statsd_udp,
      config_.client_proxy.statsd_unix.empty() ? "off" : config_.client_proxy.statsd_unix, s.datagrams, s.lines,
      s.bad_lines, s.type_conflicts, buffer_ ? buffer_->events() : 0, config_.client_proxy.max_buffered_events,
      s.events_dropped_full, s.events_dropped_fold, s.queued_bodies, s.queued_bytes,
      config_.client_proxy.max_retry_bytes, s.events_dropped_retry, config_.client_proxy.agent, s.bodies_forwarded,
      s.events_forwarded, s.forward_failures, s.bodies_rejected, forwarding);
}

int ClientProxyRole::http_port() const { return server_ ? server_->port() : 0; }

int ClientProxyRole::udp_port() const {
  if (udp_in_.fd < 0) return 0;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(udp_in_.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void ClientProxyRole::reload(const Config& config) {
  config_.auth = config.auth;
  config_.ingest = config.ingest;
  if (ingest_) ingest_->set_options(config.ingest);
}

void ClientProxyRole::shutdown(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  shutdown_done_ = std::move(done);
  stop_input(&udp_in_);
  stop_input(&unix_in_);
  server_->shutdown([this] {
    flush();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      stop_deadline_ms_ = steady_ms() + config_.agent.shutdown_grace_ms;
    }
    wake_.notify_all();
    ClientProxyRole* self = this;
    drain_timer_ = std::make_unique<UvTimer>(loop_, [self] {
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        if (!self->forward_idle_ || (!self->queue_.empty() && steady_ms() < self->stop_deadline_ms_)) return;
      }
      self->drain_timer_->stop();
      if (self->forwarder_.joinable()) self->forwarder_.join();
      ProxyStats s = self->stats();
      if (s.queued_bodies > 0) {
        log::warn("client-proxy: stopped with {} bodies the agent did not take; they are dropped", s.queued_bodies);
      }
      self->close_handles();  // the loop ends once every role's handles are closed
      if (self->shutdown_done_) self->shutdown_done_();
    });
    drain_timer_->start(50, 50);
  });
}

void ClientProxyRole::release_handles() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stop_deadline_ms_ = 0;
  }
  wake_.notify_all();
  if (forwarder_.joinable()) forwarder_.join();
  close_handles();
}

void ClientProxyRole::close_handles() {
  auto close = [](void* h) {
    if (!uv_is_closing(static_cast<uv_handle_t*>(h))) uv_close(static_cast<uv_handle_t*>(h), nullptr);
  };
  for (DatagramInput* in : {&udp_in_, &unix_in_}) {
    if (!in->open) continue;
    close(&in->poll);
    in->timer->close();
    in->open = false;
  }
  if (flush_timer_) flush_timer_->close();
  if (drain_timer_) drain_timer_->close();
}

}  // namespace taba::roles
