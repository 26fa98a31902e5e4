// One Redis connection on libuv + hiredis 0.14. See connection.h for the contract.
//
// hiredis 0.14 ground rules this file is built around:
//  - The context is freed by hiredis itself on a connect error (after the
//    connect callback), on a read/write error and on EOF (after running every
//    pending reply callback with a NULL reply and then the disconnect callback).
//  - redisAsyncFree() inside a reply callback is deferred by hiredis until the
//    callback returns (REDIS_IN_CALLBACK); outside callbacks it is immediate and
//    runs the pending reply callbacks with NULL synchronously. It must never be
//    called from the connect or the disconnect callback.
//  - There are no async timeouts: connect and command timeouts are uv timers.
// So every context carries `ac->data` = the owning Connection::Impl, and the
// Impl sets it to nullptr before it lets go of the context (its own free, or
// hiredis announcing a free). Callbacks that find nullptr do nothing; the
// Impl keeps its own FIFO of pending command callbacks (replies are ordered)
// and fails them itself, so hiredis' NULL-reply callbacks are never needed.
//
// User code can destroy the object it is called from (a Connection in its own
// reply callback, a Sentinels or a Shard from a result callback); every place
// that runs user code holds a weak reference to the Impl's life token and
// touches nothing after the callback when it expired. sentinels.cpp and
// shard.cpp follow the same rule.
#include "redis/connection.h"

#include <hiredis/async.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <utility>

#include "core/ascii.h"
#include "core/defer_queue.h"
#include "core/log.h"
#include "core/uv_timer.h"
#include "redis/internal.h"
#include "redis/uv_events.h"

namespace taba::redis {

// ---------------------------------------------------------------------------
// Address

std::string Address::str() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<Address> parse_address(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::Invalid(fmt::format("redis address '{}': {}", text, why));
  };
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("expected [ipv6]:port");
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    if (h.find(':') == std::string_view::npos) return bad("brackets are for IPv6 addresses only");
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port");
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return bad("an IPv6 address needs brackets: [addr]:port");
  }
  if (h.empty()) return bad("empty host");
  int port = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || port < 1 || port > 65535) {
    return bad("port must be 1..65535");
  }
  return Address{std::string(h), port};
}

namespace {

int kHandshakeTag;  // privdata of the handshake command (its address only)

}  // namespace

// ---------------------------------------------------------------------------
// Connection

struct Connection::Impl {
  enum class State { kIdle, kConnecting, kHandshake, kUp, kBackoff };

  struct Pending {
    Callback cb;
    uint64_t deadline = 0;  // uv_now() ms; 0 = no timeout
    uint32_t timeout_ms = 0;
  };
  struct Sub {
    std::function<void(std::string_view, std::string_view)> cb;
    std::function<void(const Status&)> on_lost;
  };
  struct DnsRequest {
    uv_getaddrinfo_t req;
    Impl* impl = nullptr;
    std::weak_ptr<int> alive;
    uint64_t gen = 0;
  };

  Impl(uv_loop_t* l, ConnectionOptions o)
      : loop(l),
        opts(std::move(o)),
        prefix(opts.label.empty() ? std::string("redis") : opts.label),
        defer(l),
        cmd_timer(l, [this] { on_cmd_timer(); }),
        connect_timer(l, [this] { on_connect_timer(); }),
        retry_timer(l, [this] {
          if (state == State::kBackoff) start_connect();
        }) {}

  ~Impl() {
    life.reset();
    release_ctx();
    Status why = Status::Unavailable(fmt::format("{}: connection closed", prefix));
    std::deque<Pending> pend = std::exchange(pending, {});
    std::map<std::string, Sub, std::less<>> lost = std::exchange(subs, {});
    std::vector<std::function<void()>> deferred = defer.take();
    for (auto& fn : deferred) fn();
    for (auto& p : pend) p.cb(why, nullptr);
    for (auto& [channel, sub] : lost) {
      if (sub.on_lost) sub.on_lost(why);
    }
  }

  void set_address(const Address& a) {
    addr = a;
    prefix = opts.label.empty() ? a.str() : fmt::format("{} {}", opts.label, a.str());
  }

  // Lets go of the hiredis context: callbacks for it become no-ops. Safe
  // everywhere except inside the connect callback of that context (where no
  // user code runs) and the disconnect callback (where ac is already null).
  void release_ctx() {
    if (!ac) return;
    redisAsyncContext* a = std::exchange(ac, nullptr);
    a->data = nullptr;
    redisAsyncFree(a);  // deferred by hiredis when inside one of a's reply callbacks
  }

  void stop_timers() {
    cmd_timer.stop();
    connect_timer.stop();
    retry_timer.stop();
    armed = 0;
    soon = false;
  }

  void start_connect() {
    retry_timer.stop();
    state = State::kConnecting;
    ++gen;
    soon = false;
    if (opts.connect_timeout_ms > 0) connect_timer.start(opts.connect_timeout_ms);
    if (addr.port < 1 || addr.port > 65535 || addr.host.empty()) {
      fail_soon(Status::Unavailable(fmt::format("{}: invalid address", prefix)));
      return;
    }
    unsigned char buf[sizeof(in6_addr)];
    if (uv_inet_pton(AF_INET, addr.host.c_str(), buf) == 0 ||
        uv_inet_pton(AF_INET6, addr.host.c_str(), buf) == 0) {
      open(addr.host);
      return;
    }
    // hiredis 0.14 would resolve a name with a blocking getaddrinfo on the loop.
    auto* d = new DnsRequest;
    d->req.data = d;
    d->impl = this;
    d->alive = life;
    d->gen = gen;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(loop, &d->req, &Impl::on_dns, addr.host.c_str(), nullptr, &hints);
    if (rc < 0) {
      delete d;
      fail_soon(Status::Unavailable(fmt::format("{}: cannot resolve host: {}", prefix, uv_strerror(rc))));
    }
  }

  static void on_dns(uv_getaddrinfo_t* req, int status, addrinfo* res) {
    std::unique_ptr<DnsRequest> d(static_cast<DnsRequest*>(req->data));
    std::string ip;
    for (addrinfo* ai = res; ai && ip.empty(); ai = ai->ai_next) {
      char text[INET6_ADDRSTRLEN] = {0};
      if (ai->ai_family == AF_INET) {
        uv_ip4_name(reinterpret_cast<const sockaddr_in*>(ai->ai_addr), text, sizeof text);
        ip = text;
      } else if (ai->ai_family == AF_INET6) {
        uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(ai->ai_addr), text, sizeof text);
        ip = text;
      }
    }
    if (res) uv_freeaddrinfo(res);
    if (d->alive.expired()) return;
    Impl* c = d->impl;
    if (c->gen != d->gen || c->state != State::kConnecting) return;
    if (status < 0 || ip.empty()) {
      c->failure(Status::Unavailable(fmt::format("{}: cannot resolve host: {}", c->prefix,
                                                 status < 0 ? uv_strerror(status) : "no address")));
      return;
    }
    c->open(ip);
  }

  void open(const std::string& ip) {
    redisAsyncContext* a = redisAsyncConnect(ip.c_str(), addr.port);
    if (!a) {
      fail_soon(Status::Unavailable(fmt::format("{}: cannot create a hiredis context", prefix)));
      return;
    }
    if (a->err) {
      std::string e = a->errstr ? a->errstr : "error";
      redisAsyncFree(a);
      fail_soon(Status::Unavailable(fmt::format("{}: connect failed: {}", prefix, e)));
      return;
    }
    if (uv_events_attach(a, loop) != REDIS_OK) {
      redisAsyncFree(a);
      fail_soon(Status::Unavailable(fmt::format("{}: cannot attach to the loop", prefix)));
      return;
    }
    a->data = this;
    // After the attach: setting the connect callback arms the write watcher.
    redisAsyncSetConnectCallback(a, &Impl::on_connect_cb);
    redisAsyncSetDisconnectCallback(a, &Impl::on_disconnect_cb);
    ac = a;
  }

  // Reports `why` from the connect timer on the next iteration (for failures
  // detected inside a call or inside a hiredis connect callback).
  void fail_soon(Status why) {
    soon = true;
    soon_error = std::move(why);
    connect_timer.start(0);
  }

  void on_connect_timer() {
    Status why = soon ? std::move(soon_error)
                      : Status::Unavailable(fmt::format("{}: connect timed out after {} ms", prefix,
                                                        opts.connect_timeout_ms));
    soon = false;
    release_ctx();
    failure(std::move(why));
  }

  static void on_connect_cb(const redisAsyncContext* cac, int status) {
    auto* a = const_cast<redisAsyncContext*>(cac);
    auto* c = static_cast<Impl*>(a->data);
    if (!c) return;
    if (status != REDIS_OK) {
      std::string e = a->errstr ? a->errstr : "error";
      a->data = nullptr;  // hiredis frees the context when we return
      c->ac = nullptr;
      c->failure(Status::Unavailable(fmt::format("{}: connect failed: {}", c->prefix, e)));
      return;
    }
    c->state = State::kHandshake;
    int rc;
    if (!c->opts.password.empty()) {
      const char* argv[2] = {"AUTH", c->opts.password.data()};
      size_t lens[2] = {4, c->opts.password.size()};
      rc = redisAsyncCommandArgv(a, &Impl::on_reply_cb, &kHandshakeTag, 2, argv, lens);
    } else {
      const char* argv[1] = {"PING"};
      size_t lens[1] = {4};
      rc = redisAsyncCommandArgv(a, &Impl::on_reply_cb, &kHandshakeTag, 1, argv, lens);
    }
    // No freeing inside the connect callback: report from the timer instead.
    if (rc != REDIS_OK)
      c->fail_soon(Status::Unavailable(fmt::format("{}: cannot send the handshake", c->prefix)));
  }

  static void on_disconnect_cb(const redisAsyncContext* cac, int /*status*/) {
    auto* a = const_cast<redisAsyncContext*>(cac);
    auto* c = static_cast<Impl*>(a->data);
    if (!c) return;
    c->context_lost(a);
  }

  // hiredis is freeing `a` on its own (error or EOF).
  void context_lost(redisAsyncContext* a) {
    std::string e = (a->err && a->errstr) ? a->errstr : "connection closed";
    a->data = nullptr;
    ac = nullptr;
    failure(Status::Unavailable(fmt::format("{}: connection lost: {}", prefix, e)));
  }

  static void on_reply_cb(redisAsyncContext* a, void* r, void* privdata) {
    auto* c = static_cast<Impl*>(a->data);
    if (!c) return;
    auto* reply = static_cast<redisReply*>(r);
    if (!reply) {  // hiredis is freeing the context
      c->context_lost(a);
      return;
    }
    if (privdata == &kHandshakeTag) {
      c->on_handshake(reply);
    } else {
      c->on_command_reply(reply);
    }
  }

  static void on_sub_cb(redisAsyncContext* a, void* r, void* /*privdata*/) {
    auto* c = static_cast<Impl*>(a->data);
    if (!c) return;
    auto* reply = static_cast<redisReply*>(r);
    if (!reply) {
      c->context_lost(a);
      return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    const redisReply* channel = reply->element[1];
    const redisReply* payload = reply->element[2];
    if (reply_text(kind) != "message" || channel->type != REDIS_REPLY_STRING ||
        payload->type != REDIS_REPLY_STRING) {
      return;  // "subscribe" confirmations
    }
    auto it = c->subs.find(reply_text(channel));
    if (it == c->subs.end() || !it->second.cb) return;
    auto cb = it->second.cb;  // a copy: the callback may destroy the connection
    cb(reply_text(channel), reply_text(payload));
  }

  void on_handshake(const redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR) {
      std::string e(reply_text(reply));
      release_ctx();  // inside a reply callback: hiredis frees after we return
      failure(Status::Unavailable(
          fmt::format("{}: {} failed: {}", prefix, opts.password.empty() ? "PING" : "AUTH", e)));
      return;
    }
    state = State::kUp;
    attempt = 0;
    connect_timer.stop();
    log::debug("redis {}: connected", prefix);
    notify(true, Status::Ok());
  }

  void on_command_reply(const redisReply* reply) {
    if (pending.empty()) {
      log::warn("redis {}: reply without a pending command", prefix);
      return;
    }
    Pending p = std::move(pending.front());
    pending.pop_front();
    if (pending.empty()) {
      cmd_timer.stop();
      armed = 0;
    }
    if (reply->type == REDIS_REPLY_ERROR && error_hook) error_hook(reply);  // never destroys *this
    p.cb(Status::Ok(), reply);
  }

  void arm(uint64_t deadline) {
    armed = deadline;
    uint64_t now = uv_now(loop);
    cmd_timer.start(deadline > now ? deadline - now : 0);
  }

  // The timer is armed at or before the earliest pending deadline.
  void on_cmd_timer() {
    armed = 0;
    const Pending* first = nullptr;
    for (const Pending& p : pending) {
      if (p.deadline != 0 && (!first || p.deadline < first->deadline)) first = &p;
    }
    if (!first) return;
    if (first->deadline > uv_now(loop)) {
      arm(first->deadline);
      return;
    }
    Status why =
        Status::Unavailable(fmt::format("{}: command timed out after {} ms", prefix, first->timeout_ms));
    release_ctx();
    failure(std::move(why));
  }

  // A spontaneous failure: the context is already released. Fails what is
  // pending, tells the listeners and schedules a reconnect.
  void failure(Status why) {
    stop_timers();
    ++gen;
    state = State::kBackoff;
    uint32_t delay = backoff_ms(attempt);
    attempt = std::min(attempt + 1, 30);
    retry_timer.start(delay);
    log::debug("redis {} (reconnecting in {} ms)", why.message(), delay);
    std::deque<Pending> pend = std::exchange(pending, {});
    std::map<std::string, Sub, std::less<>> lost = std::exchange(subs, {});
    std::weak_ptr<int> alive = life;
    for (auto& p : pend) p.cb(why, nullptr);  // `pend` is ours: finish even if *this is gone
    for (auto& [channel, sub] : lost) {
      if (sub.on_lost) sub.on_lost(why);
    }
    if (alive.expired()) return;
    notify(false, why);
  }

  // A requested close (disconnect(), connect() elsewhere): no reconnect, no
  // listener call; what was pending fails on the next iteration.
  void drop(const Status& why) {
    release_ctx();
    stop_timers();
    ++gen;
    state = State::kIdle;
    for (auto& p : pending) {
      defer.post([cb = std::move(p.cb), why] { cb(why, nullptr); });
    }
    pending.clear();
    for (auto& [channel, sub] : subs) {
      if (sub.on_lost) defer.post([f = std::move(sub.on_lost), why] { f(why); });
    }
    subs.clear();
  }

  void notify(bool up, const Status& why) {
    auto copy = listeners;
    std::weak_ptr<int> alive = life;
    for (auto& fn : copy) {
      fn(up, why);
      if (alive.expired()) return;
    }
  }

  void fail_later(Callback cb, Status why) {
    defer.post([cb = std::move(cb), why = std::move(why)] { cb(why, nullptr); });
  }

  uv_loop_t* loop;
  ConnectionOptions opts;
  Address addr;
  std::string prefix;  // "<label> <host:port>" for messages
  State state = State::kIdle;
  redisAsyncContext* ac = nullptr;
  uint64_t gen = 0;  // connect attempt; stale DNS answers are dropped
  int attempt = 0;   // consecutive failures, for the backoff
  std::deque<Pending> pending;
  std::map<std::string, Sub, std::less<>> subs;
  std::vector<std::function<void(bool, const Status&)>> listeners;
  std::function<void(const redisReply*)> error_hook;  // Shard: READONLY / MASTERDOWN
  bool soon = false;
  Status soon_error;
  uint64_t armed = 0;  // deadline the command timer is armed for (0 = not armed)
  std::shared_ptr<int> life = std::make_shared<int>(0);
  DeferQueue defer;
  UvTimer cmd_timer;
  UvTimer connect_timer;
  UvTimer retry_timer;
};

Connection::Connection(uv_loop_t* loop, ConnectionOptions options)
    : impl_(std::make_unique<Impl>(loop, std::move(options))) {}

Connection::~Connection() {
  impl_.reset();  // null while the Impl runs the last callbacks
}

void Connection::connect(const Address& address) {
  if (!impl_) return;
  Impl& c = *impl_;
  bool same_addr = same(c.addr, address);
  if (same_addr && (c.state == Impl::State::kConnecting || c.state == Impl::State::kHandshake ||
                    c.state == Impl::State::kUp)) {
    return;
  }
  if (c.state != Impl::State::kIdle) {
    c.drop(Status::Unavailable(fmt::format("{}: reconnecting to {}", c.prefix, address.str())));
  }
  c.set_address(address);
  c.attempt = 0;
  c.start_connect();
}

void Connection::disconnect() {
  if (!impl_) return;
  impl_->drop(Status::Unavailable(fmt::format("{}: disconnected", impl_->prefix)));
}

bool Connection::connected() const {
  return impl_ && impl_->state == Impl::State::kUp;
}

const Address& Connection::address() const {
  static const Address kNone;
  return impl_ ? impl_->addr : kNone;
}

size_t Connection::pending() const {
  return impl_ ? impl_->pending.size() : 0;
}

void Connection::on_state(std::function<void(bool up, const Status& why)> cb) {
  if (impl_ && cb) impl_->listeners.push_back(std::move(cb));
}

void Connection::command(const std::vector<std::string_view>& argv, Callback cb, uint32_t timeout_ms) {
  if (!impl_) {  // called from a callback run by the destructor
    cb(Status::Unavailable("redis: connection closed"), nullptr);
    return;
  }
  Impl& c = *impl_;
  if (c.state != Impl::State::kUp) {
    c.fail_later(std::move(cb), Status::Unavailable(fmt::format("{}: not connected", c.prefix)));
    return;
  }
  if (argv.empty()) {
    c.fail_later(std::move(cb), Status::Invalid(fmt::format("{}: empty command", c.prefix)));
    return;
  }
  for (std::string_view mode : {"subscribe", "psubscribe", "unsubscribe", "punsubscribe", "monitor"}) {
    if (ascii_iequals(argv[0], mode)) {
      c.fail_later(std::move(cb), Status::Invalid(fmt::format("{}: {} is not a command() (use subscribe())",
                                                              c.prefix, argv[0])));
      return;
    }
  }
  if (!c.subs.empty()) {
    c.fail_later(std::move(cb),
                 Status::Invalid(fmt::format("{}: a subscribed connection takes no commands", c.prefix)));
    return;
  }
  std::vector<const char*> ptrs(argv.size());
  std::vector<size_t> lens(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    ptrs[i] = argv[i].empty() ? "" : argv[i].data();
    lens[i] = argv[i].size();
  }
  int rc = redisAsyncCommandArgv(c.ac, &Impl::on_reply_cb, nullptr, static_cast<int>(argv.size()),
                                 ptrs.data(), lens.data());
  if (rc != REDIS_OK) {
    c.fail_later(std::move(cb), Status::Unavailable(fmt::format("{}: cannot queue the command", c.prefix)));
    return;
  }
  uint32_t t = timeout_ms != 0 ? timeout_ms : c.opts.command_timeout_ms;
  uint64_t deadline = t != 0 ? uv_now(c.loop) + t : 0;
  c.pending.push_back(Impl::Pending{std::move(cb), deadline, t});
  if (deadline != 0 && (c.armed == 0 || deadline < c.armed)) c.arm(deadline);
}

void Connection::subscribe(const std::string& channel,
                           std::function<void(std::string_view, std::string_view)> cb,
                           std::function<void(const Status&)> on_lost) {
  if (!impl_) {
    if (on_lost) on_lost(Status::Unavailable("redis: connection closed"));
    return;
  }
  Impl& c = *impl_;
  auto lose_later = [&](Status why) {
    if (on_lost) c.defer.post([f = std::move(on_lost), why = std::move(why)] { f(why); });
  };
  if (c.state != Impl::State::kUp) {
    lose_later(Status::Unavailable(fmt::format("{}: not connected", c.prefix)));
    return;
  }
  const char* argv[2] = {"SUBSCRIBE", channel.c_str()};
  size_t lens[2] = {9, channel.size()};
  if (redisAsyncCommandArgv(c.ac, &Impl::on_sub_cb, nullptr, 2, argv, lens) != REDIS_OK) {
    lose_later(Status::Unavailable(fmt::format("{}: cannot queue SUBSCRIBE", c.prefix)));
    return;
  }
  c.subs[channel] = Impl::Sub{std::move(cb), std::move(on_lost)};
}

void Connection::set_error_hook(std::function<void(const redisReply*)> fn) {
  impl_->error_hook = std::move(fn);
}

}  // namespace taba::redis
