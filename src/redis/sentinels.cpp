// Sentinel master discovery. See sentinels.h for the contract; the rules of
// connection.cpp's comment on user code destroying its caller hold here.
#include "redis/sentinels.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <list>
#include <utility>

#include "core/defer_queue.h"
#include "core/log.h"
#include "core/uv_timer.h"
#include "redis/internal.h"

namespace taba::redis {

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
  UvTimer sub_timer;
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

}  // namespace taba::redis
