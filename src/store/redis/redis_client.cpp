// Redis client layer on libuv + hiredis 0.14. See redis_client.h for the contract.
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
// touches nothing after the callback when it expired.
#include "store/redis/redis_client.h"

#include <hiredis/async.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <random>
#include <utility>

#include "core/log.h"

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

bool same(const Address& a, const Address& b) {
  return a.port == b.port && a.host == b.host;
}

// 100 ms doubling to 2 s; uniform jitter over the upper half of the step.
uint32_t backoff_ms(int attempt) {
  static thread_local std::minstd_rand rng(static_cast<uint32_t>(uv_hrtime()));
  uint32_t step = std::min<uint32_t>(100u << std::clamp(attempt, 0, 5), 2000u);
  return step / 2 + static_cast<uint32_t>(rng() % (step / 2 + 1));
}

bool error_starts_with(const redisReply* r, std::string_view prefix) {
  return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= prefix.size() &&
         std::memcmp(r->str, prefix.data(), prefix.size()) == 0;
}

std::string_view reply_text(const redisReply* r) {
  if (!r || !r->str) return {};
  return std::string_view(r->str, r->len);
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

// A one-shot uv timer whose handle outlives its owner until the close
// callback, so a callback may destroy the owner (and this Timer) safely.
class Timer {
 public:
  Timer(uv_loop_t* loop, std::function<void()> fn) : box_(new Box) {
    uv_timer_init(loop, &box_->timer);
    box_->timer.data = box_;
    box_->fn = std::move(fn);
  }
  ~Timer() {
    uv_close(reinterpret_cast<uv_handle_t*>(&box_->timer),
             [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(uint64_t ms) { uv_timer_start(&box_->timer, &Timer::fire, ms, 0); }
  void stop() { uv_timer_stop(&box_->timer); }
  bool active() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&box_->timer)) != 0; }

 private:
  struct Box {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  static void fire(uv_timer_t* t) {
    auto* box = static_cast<Box*>(t->data);
    box->fn();  // the Box lives until its close callback even if the owner is gone now
  }
  Box* box_;
};

// Runs closures on a later loop iteration (uv_idle: a closure posted while the
// queue runs waits for the next iteration, so retry loops cannot starve I/O).
class DeferQueue {
 public:
  explicit DeferQueue(uv_loop_t* loop) : box_(new Box) {
    uv_idle_init(loop, &box_->idle);
    box_->idle.data = box_;
    box_->queue = this;
  }
  ~DeferQueue() {
    box_->queue = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&box_->idle),
             [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
  }
  DeferQueue(const DeferQueue&) = delete;
  DeferQueue& operator=(const DeferQueue&) = delete;

  void post(std::function<void()> fn) {
    items_.push_back(std::move(fn));
    uv_idle_start(&box_->idle, &DeferQueue::run);
  }
  // For the owner's destructor: what has not run yet.
  std::vector<std::function<void()>> take() {
    uv_idle_stop(&box_->idle);
    return std::exchange(items_, {});
  }

 private:
  struct Box {
    uv_idle_t idle;
    DeferQueue* queue = nullptr;
  };
  static void run(uv_idle_t* h) {
    auto* box = static_cast<Box*>(h->data);
    uv_idle_stop(h);
    if (!box->queue) return;
    // The closures are self-contained: running them does not need the queue,
    // which a closure may destroy (together with its owner).
    std::vector<std::function<void()>> items = std::exchange(box->queue->items_, {});
    for (auto& fn : items) fn();
  }
  Box* box_;
  std::vector<std::function<void()>> items_;
};

int kHandshakeTag;  // privdata of the handshake command (its address only)

// hiredis event hooks on a uv_poll_t. This replaces hiredis 0.14's
// adapters/libuv.h, which drops every poll callback whose status is not 0:
// libuv reports POLLERR (a refused connect, a reset connection) as status
// UV_EBADF with no events and stops the handle, so with that adapter hiredis
// never learns of the error and the connection hangs until a timeout.
struct UvEvents {
  redisAsyncContext* context = nullptr;
  uv_poll_t handle;
  int events = 0;
};

void uv_events_poll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<UvEvents*>(handle->data);
  // On an error, let hiredis read/write what it waits for: it then finds the
  // socket error itself (getsockopt(SO_ERROR) while connecting, read/write after).
  int ready = status < 0 ? p->events : events;
  if (p->context && (ready & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context && (ready & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
  if (status < 0 && p->context && p->events) uv_poll_start(&p->handle, p->events, uv_events_poll);
}

void uv_events_update(UvEvents* p) {
  if (p->events) {
    uv_poll_start(&p->handle, p->events, uv_events_poll);
  } else {
    uv_poll_stop(&p->handle);
  }
}

void uv_events_add_read(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events |= UV_READABLE;
  uv_events_update(p);
}

void uv_events_del_read(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events &= ~UV_READABLE;
  uv_events_update(p);
}

void uv_events_add_write(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events |= UV_WRITABLE;
  uv_events_update(p);
}

void uv_events_del_write(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->events &= ~UV_WRITABLE;
  uv_events_update(p);
}

void uv_events_cleanup(void* data) {
  auto* p = static_cast<UvEvents*>(data);
  p->context = nullptr;  // the context is being freed; a poll callback may still be running
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle),
           [](uv_handle_t* h) { delete static_cast<UvEvents*>(h->data); });
}

int uv_events_attach(redisAsyncContext* ac, uv_loop_t* loop) {
  if (ac->ev.data != nullptr) return REDIS_ERR;
  auto* p = new UvEvents;
  if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {  // fails before the handle is registered
    delete p;
    return REDIS_ERR;
  }
  p->handle.data = p;
  p->context = ac;
  ac->ev.addRead = uv_events_add_read;
  ac->ev.delRead = uv_events_del_read;
  ac->ev.addWrite = uv_events_add_write;
  ac->ev.delWrite = uv_events_del_write;
  ac->ev.cleanup = uv_events_cleanup;
  ac->ev.data = p;
  return REDIS_OK;
}

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
  Timer cmd_timer;
  Timer connect_timer;
  Timer retry_timer;
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
    if (iequals(argv[0], mode)) {
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

// ---------------------------------------------------------------------------
// Sentinels

struct Sentinels::Impl {
  using Done = std::function<void(const Status&, const Address&)>;
  struct Query {
    std::string name;
    Done done;
    size_t index = 0;   // sentinel being asked
    uint64_t step = 0;  // bumped per sentinel: callbacks of earlier steps are ignored
    std::vector<std::string> errors;
    std::unique_ptr<Connection> conn;
  };

  Impl(uv_loop_t* l, std::vector<Address> s, ConnectionOptions o)
      : loop(l), sentinels(std::move(s)), opts(std::move(o)), defer(l), sub_timer(l, [this] {
          if (started) sub_connect();
        }) {
    if (opts.label.empty()) opts.label = "sentinel";
  }

  ~Impl() {
    life.reset();
    ++sub_gen;
    sub_conn.reset();
    std::list<std::shared_ptr<Query>> left = std::exchange(queries, {});
    std::vector<std::function<void()>> deferred = defer.take();
    for (auto& fn : deferred) fn();
    for (auto& q : left) {
      ++q->step;
      q->conn.reset();
      Done done = std::move(q->done);
      if (done)
        done(Status::Unavailable(fmt::format("cannot resolve master '{}': sentinels stopped", q->name)), {});
    }
  }

  void try_next(const std::shared_ptr<Query>& q) {
    if (q->index >= sentinels.size()) {
      std::string why;
      for (const std::string& e : q->errors) why += (why.empty() ? "" : "; ") + e;
      finish(q, Status::Unavailable(fmt::format("cannot resolve master '{}': {}", q->name, why)), {});
      return;
    }
    uint64_t step = ++q->step;
    std::weak_ptr<Query> wq = q;
    std::weak_ptr<int> alive = life;
    auto conn = std::make_unique<Connection>(loop, opts);
    Connection* cp = conn.get();
    Address sentinel = sentinels[q->index];
    cp->on_state([this, alive, wq, step, cp, sentinel](bool up, const Status& why) {
      std::shared_ptr<Query> query = wq.lock();
      if (!query || alive.expired() || query->step != step) return;
      if (!up) {
        failed_step(query, why.message());
        return;
      }
      cp->command({"SENTINEL", "get-master-addr-by-name", query->name},
                  [this, alive, wq, step, sentinel](const Status& st, const redisReply* r) {
                    std::shared_ptr<Query> current = wq.lock();
                    if (!current || alive.expired() || current->step != step) return;
                    if (!st.ok()) {
                      failed_step(current, st.message());
                      return;
                    }
                    answered(current, sentinel, r);
                  });
    });
    std::unique_ptr<Connection> old = std::exchange(q->conn, std::move(conn));
    old.reset();  // may be the connection whose callback we are in: that is allowed
    cp->connect(sentinel);
  }

  void answered(const std::shared_ptr<Query>& q, const Address& sentinel, const redisReply* r) {
    std::string where = fmt::format("{} {}", opts.label, sentinel.str());
    if (r->type == REDIS_REPLY_NIL) {
      failed_step(q, fmt::format("{}: unknown master", where));
      return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      failed_step(q, fmt::format("{}: {}", where, reply_text(r)));
      return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING) {
      std::string_view port_text = reply_text(r->element[1]);
      int port = 0;
      auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
      if (ec == std::errc() && end == port_text.data() + port_text.size() && port > 0 && port <= 65535 &&
          r->element[0]->len > 0) {
        finish(q, Status::Ok(), Address{std::string(reply_text(r->element[0])), port});
        return;
      }
    }
    failed_step(q, fmt::format("{}: unexpected reply to get-master-addr-by-name", where));
  }

  void failed_step(const std::shared_ptr<Query>& q, std::string why) {
    q->errors.push_back(std::move(why));
    q->index++;
    try_next(q);
  }

  void finish(std::shared_ptr<Query> q, const Status& st, const Address& a) {
    ++q->step;
    queries.remove(q);
    q->conn.reset();
    Done done = std::move(q->done);
    done(st, a);  // may destroy the Sentinels: nothing after this
  }

  // --- +switch-master subscription

  void sub_connect() {
    uint64_t g = ++sub_gen;
    std::weak_ptr<int> alive = life;
    const Address target = sentinels[sub_index];
    auto conn = std::make_unique<Connection>(loop, opts);
    Connection* cp = conn.get();
    cp->on_state([this, alive, g, cp, target](bool up, const Status& why) {
      if (alive.expired() || g != sub_gen) return;
      if (!up) {
        sub_failed(g, why);
        return;
      }
      cp->subscribe(
          "+switch-master",
          [this, alive](std::string_view, std::string_view message) {
            if (!alive.expired()) on_switch_message(message);
          },
          [this, alive, g](const Status& lost) {
            if (!alive.expired()) sub_failed(g, lost);
          });
      sub_attempt = 0;
      if (sub_lost_logged || !sub_logged_once) {
        log::info("redis sentinels: following +switch-master on {}", target.str());
      }
      sub_logged_once = true;
      sub_lost_logged = false;
    });
    std::unique_ptr<Connection> old = std::exchange(sub_conn, std::move(conn));
    old.reset();
    cp->connect(target);
  }

  void sub_failed(uint64_t g, const Status& why) {
    if (g != sub_gen || !started) return;
    ++sub_gen;                             // the rest of this connection's events are stale
    if (sub_conn) sub_conn->disconnect();  // no auto-reconnect: we move on
    if (!sub_lost_logged) {
      log::warn("redis sentinels: +switch-master subscription: {}", why.message());
      sub_lost_logged = true;
    }
    sub_index = (sub_index + 1) % sentinels.size();
    sub_timer.start(backoff_ms(sub_attempt));
    sub_attempt = std::min(sub_attempt + 1, 30);
  }

  // "<master name> <old ip> <old port> <new ip> <new port>"
  void on_switch_message(std::string_view message) {
    std::vector<std::string_view> parts;
    size_t pos = 0;
    while (pos <= message.size()) {
      size_t sp = message.find(' ', pos);
      if (sp == std::string_view::npos) sp = message.size();
      if (sp > pos) parts.push_back(message.substr(pos, sp - pos));
      pos = sp + 1;
    }
    if (parts.size() != 5) {
      log::warn("redis sentinels: unexpected +switch-master message '{}'", message);
      return;
    }
    int port = 0;
    auto [end, ec] = std::from_chars(parts[4].data(), parts[4].data() + parts[4].size(), port);
    if (ec != std::errc() || end != parts[4].data() + parts[4].size() || port < 1 || port > 65535) {
      log::warn("redis sentinels: unexpected +switch-master message '{}'", message);
      return;
    }
    std::string name(parts[0]);
    Address to{std::string(parts[3]), port};
    log::info("redis sentinels: +switch-master {} {}:{} -> {}", name, parts[1], parts[2], to.str());
    auto copy = listeners;
    std::weak_ptr<int> alive = life;
    for (auto& fn : copy) {
      fn(name, to);
      if (alive.expired()) return;
    }
  }

  uv_loop_t* loop;
  std::vector<Address> sentinels;
  ConnectionOptions opts;
  std::list<std::shared_ptr<Query>> queries;
  std::vector<std::function<void(const std::string&, const Address&)>> listeners;
  bool started = false;
  size_t sub_index = 0;
  int sub_attempt = 0;
  uint64_t sub_gen = 0;
  bool sub_lost_logged = false;
  bool sub_logged_once = false;
  std::unique_ptr<Connection> sub_conn;
  std::shared_ptr<int> life = std::make_shared<int>(0);
  DeferQueue defer;
  Timer sub_timer;
};

Sentinels::Sentinels(uv_loop_t* loop, std::vector<Address> sentinels, ConnectionOptions options)
    : impl_(std::make_unique<Impl>(loop, std::move(sentinels), std::move(options))) {}

Sentinels::~Sentinels() {
  impl_.reset();
}

void Sentinels::start() {
  if (!impl_ || impl_->started) return;
  impl_->started = true;
  impl_->sub_attempt = 0;
  if (impl_->sentinels.empty()) return;
  impl_->sub_connect();
}

void Sentinels::stop() {
  if (!impl_) return;
  Impl& s = *impl_;
  s.started = false;
  ++s.sub_gen;
  s.sub_timer.stop();
  std::unique_ptr<Connection> old = std::move(s.sub_conn);
  old.reset();
}

void Sentinels::resolve(const std::string& master_name,
                        std::function<void(const Status&, const Address&)> done) {
  if (!impl_) {
    done(Status::Unavailable("sentinels stopped"), {});
    return;
  }
  Impl& s = *impl_;
  if (s.sentinels.empty()) {
    s.defer.post([done = std::move(done), master_name] {
      done(Status::Unavailable(fmt::format("cannot resolve master '{}': no sentinels", master_name)), {});
    });
    return;
  }
  auto q = std::make_shared<Impl::Query>();
  q->name = master_name;
  q->done = std::move(done);
  s.queries.push_back(q);
  s.try_next(q);  // only starts connecting: no callback runs before we return
}

void Sentinels::on_switch(std::function<void(const std::string& master_name, const Address&)> cb) {
  if (impl_ && cb) impl_->listeners.push_back(std::move(cb));
}

// ---------------------------------------------------------------------------
// Shard

struct Shard::Impl {
  struct Member {
    ~Member() {
      token.reset();  // first: the connection's last callbacks must see the member gone
      conn.reset();
    }
    std::unique_ptr<Connection> conn;
    bool verified = false;  // ROLE answered "master" since the last (re)connect
    uint64_t verify_seq = 0;
    std::shared_ptr<int> token = std::make_shared<int>(0);
  };

  Impl(uv_loop_t* l, Sentinels* s, std::string n, ConnectionOptions o, int size)
      : loop(l),
        sentinels(s),
        name(std::move(n)),
        opts(std::move(o)),
        pool_size(std::max(size, 1)),
        defer(l),
        resolve_timer(l, [this] { do_resolve(); }) {
    if (opts.label.empty()) opts.label = name;
  }

  ~Impl() {
    life.reset();
    stop();
    std::vector<std::function<void()>> deferred = defer.take();
    for (auto& fn : deferred) fn();
  }

  std::unique_ptr<Member> make_member() {
    auto m = std::make_unique<Member>();
    m->conn = std::make_unique<Connection>(loop, opts);
    Member* mp = m.get();
    std::weak_ptr<int> tok = m->token;
    m->conn->on_state([this, mp, tok](bool up, const Status& why) {
      if (!tok.expired()) on_member_state(mp, up, why);
    });
    Shard::hook_errors(m->conn.get(), [this, mp, tok](const redisReply* r) {
      if (!tok.expired()) on_error_reply(mp, r);
    });
    if (have_master) m->conn->connect(master);
    return m;
  }

  template <typename Fn>
  void each_member(Fn&& fn) {
    for (auto& m : pool) fn(*m);
    for (auto& m : dedicated) fn(*m);
  }

  bool ready() const {
    for (const auto& m : pool) {
      if (m->verified && m->conn->connected()) return true;
    }
    return false;
  }

  void start() {
    if (started) return;
    started = true;
    ++epoch;
    resolve_attempt = 0;
    healthy = false;
    loss_logged = false;
    while (static_cast<int>(pool.size()) < pool_size) pool.push_back(make_member());
    request_resolve();
  }

  void stop() {
    started = false;
    ++epoch;
    resolving = false;
    resolve_timer.stop();
    healthy = false;
    auto p = std::exchange(pool, {});
    auto d = std::exchange(dedicated, {});
    p.clear();  // pending callbacks fail now
    d.clear();
  }

  void on_member_state(Member* m, bool up, const Status& why) {
    if (!started) return;
    if (up) {
      verify(m);
      return;
    }
    m->verified = false;
    problem = why.message();
    update_health();
    request_resolve();
  }

  void verify(Member* m) {
    uint64_t seq = ++m->verify_seq;
    std::weak_ptr<int> tok = m->token;
    m->conn->command({"ROLE"}, [this, m, tok, seq](const Status& st, const redisReply* r) {
      if (tok.expired() || m->verify_seq != seq || !started) return;
      if (!st.ok()) return;  // the connection failure reaches on_member_state
      std::string_view role;
      if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING) {
        role = reply_text(r->element[0]);
      } else if (r->type == REDIS_REPLY_ERROR) {
        role = reply_text(r);
      }
      if (role == "master") {
        m->verified = true;
        update_health();
        return;
      }
      m->verified = false;
      problem = fmt::format("{} answers ROLE with '{}'", m->conn->address().str(), role);
      update_health();
      request_resolve();
    });
  }

  void on_error_reply(Member* m, const redisReply* r) {
    if (!started) return;
    if (!error_starts_with(r, "READONLY") && !error_starts_with(r, "MASTERDOWN")) return;
    Address at = m->conn->address();
    std::string_view text = reply_text(r);
    problem = fmt::format("{} answered {}", at.str(), text.substr(0, text.find(' ')));
    each_member([&](Member& x) {
      if (same(x.conn->address(), at)) x.verified = false;
    });
    update_health();
    request_resolve();
  }

  void request_resolve() {
    if (!started || resolving || resolve_timer.active()) return;
    uint32_t delay = resolve_attempt == 0 ? 0 : backoff_ms(resolve_attempt - 1);
    resolve_attempt = std::min(resolve_attempt + 1, 30);
    resolve_timer.start(delay);
  }

  void do_resolve() {
    if (!started) return;
    if (!sentinels) {
      on_resolved(Status::Unavailable("no sentinels"), {});
      return;
    }
    resolving = true;
    uint64_t ep = epoch;
    std::weak_ptr<int> alive = life;
    sentinels->resolve(name, [this, alive, ep](const Status& st, const Address& a) {
      if (alive.expired() || epoch != ep) return;
      resolving = false;
      on_resolved(st, a);
    });
  }

  void on_resolved(const Status& st, const Address& a) {
    if (!started) return;
    if (!st.ok()) {
      problem = st.message();
      update_health();
      request_resolve();
      return;
    }
    if (!have_master || !same(master, a)) {
      set_master(a);
      return;
    }
    each_member([&](Member& m) {
      if (!m.conn->connected()) {
        m.conn->connect(master);  // now, instead of at the end of its backoff
      } else if (!m.verified && m.conn->pending() == 0) {
        // Not while commands are in flight: a ROLE sent between a user's
        // MULTI and EXEC would be queued, not answered. Such a member is
        // verified at a later resolution.
        verify(&m);
      }
    });
  }

  void set_master(const Address& a) {
    if (have_master) {
      ++changes;
      log::info("redis shard {}: master {} -> {}", name, master.str(), a.str());
    } else {
      log::info("redis shard {}: master is {}", name, a.str());
    }
    master = a;
    have_master = true;
    loss_logged = false;  // the change line stands for the loss
    problem.clear();
    each_member([&](Member& m) {
      m.verified = false;
      ++m.verify_seq;
      m.conn->connect(a);
    });
    healthy = false;
  }

  void on_switch(const std::string& master_name, const Address& a) {
    if (!started || master_name != name) return;
    if (have_master && same(master, a)) return;
    set_master(a);
  }

  // Called after every change that can affect ready(). Logs one line when
  // the shard stops being usable (or cannot get usable), one when it is back;
  // nothing for the retries in between.
  void update_health() {
    bool was = healthy;
    healthy = ready();
    if (healthy) {
      if (!was) resolve_attempt = 0;
      if (loss_logged) log::info("redis shard {}: master {} is back", name, master.str());
      loss_logged = false;
      return;
    }
    if (loss_logged || problem.empty()) return;
    loss_logged = true;
    if (was) {
      log::warn("redis shard {}: lost master {}: {}", name, master.str(), problem);
    } else if (have_master) {
      log::warn("redis shard {}: cannot use master {}: {}", name, master.str(), problem);
    } else {
      log::warn("redis shard {}: no master: {}", name, problem);
    }
  }

  void fail_later(Connection::Callback cb, Status why) {
    defer.post([cb = std::move(cb), why = std::move(why)] { cb(why, nullptr); });
  }

  uv_loop_t* loop;
  Sentinels* sentinels;
  std::string name;
  ConnectionOptions opts;
  int pool_size;
  std::vector<std::unique_ptr<Member>> pool;
  std::vector<std::unique_ptr<Member>> dedicated;
  Address master;
  bool have_master = false;
  uint64_t changes = 0;
  size_t rr = 0;
  bool started = false;
  uint64_t epoch = 0;  // start/stop generation: resolutions of an earlier one are ignored
  bool resolving = false;
  int resolve_attempt = 0;
  bool healthy = false;
  bool loss_logged = false;  // the current outage has been logged
  std::string problem;       // why the shard is (or was last) not ready
  std::shared_ptr<int> life = std::make_shared<int>(0);
  DeferQueue defer;
  Timer resolve_timer;
};

Shard::Shard(uv_loop_t* loop, Sentinels* sentinels, std::string master_name, ConnectionOptions options,
             int pool_size)
    : impl_(std::make_unique<Impl>(loop, sentinels, std::move(master_name), std::move(options), pool_size)) {
  if (sentinels) {
    Impl* s = impl_.get();
    std::weak_ptr<int> alive = s->life;
    sentinels->on_switch([s, alive](const std::string& name, const Address& a) {
      if (!alive.expired()) s->on_switch(name, a);
    });
  }
}

Shard::~Shard() {
  impl_.reset();
}

void Shard::hook_errors(Connection* conn, std::function<void(const redisReply*)> fn) {
  conn->impl_->error_hook = std::move(fn);
}

void Shard::start() {
  if (impl_) impl_->start();
}

void Shard::stop() {
  if (impl_) impl_->stop();
}

const std::string& Shard::name() const {
  return impl_->name;
}

bool Shard::ready() const {
  return impl_ && impl_->ready();
}

Address Shard::master() const {
  return impl_ && impl_->have_master ? impl_->master : Address{};
}

uint64_t Shard::master_changes() const {
  return impl_ ? impl_->changes : 0;
}

void Shard::command(const std::vector<std::string_view>& argv, Connection::Callback cb, uint32_t timeout_ms) {
  if (!impl_) {
    cb(Status::Unavailable("redis shard: stopped"), nullptr);
    return;
  }
  Impl& s = *impl_;
  if (!s.started) {
    s.fail_later(std::move(cb), Status::Unavailable(fmt::format("redis shard {}: stopped", s.name)));
    return;
  }
  size_t n = s.pool.size();
  for (size_t i = 0; i < n; ++i) {
    size_t idx = (s.rr + i) % n;
    Impl::Member& m = *s.pool[idx];
    if (m.verified && m.conn->connected()) {
      s.rr = (idx + 1) % n;
      m.conn->command(argv, std::move(cb), timeout_ms);
      return;
    }
  }
  std::string where = s.have_master ? fmt::format(" {}", s.master.str()) : std::string();
  std::string why = s.problem.empty() ? std::string() : fmt::format(" ({})", s.problem);
  s.fail_later(std::move(cb), Status::Unavailable(fmt::format("redis shard {}: no connection to master{}{}",
                                                              s.name, where, why)));
}

Connection* Shard::dedicated() {
  if (!impl_) return nullptr;
  impl_->dedicated.push_back(impl_->make_member());
  return impl_->dedicated.back()->conn.get();
}

}  // namespace taba::redis
