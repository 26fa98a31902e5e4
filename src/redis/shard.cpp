// A shard following its master through Sentinel. See shard.h for the
// contract; the rules of connection.cpp's comment on user code destroying its
// caller hold here.
#include "redis/shard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/defer_queue.h"
#include "core/log.h"
#include "core/uv_timer.h"
#include "redis/internal.h"

namespace taba::redis {
namespace {

bool error_starts_with(const redisReply* r, std::string_view prefix) {
  return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= prefix.size() &&
         std::memcmp(r->str, prefix.data(), prefix.size()) == 0;
}

}  // namespace

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
    m->conn->set_error_hook([this, mp, tok](const redisReply* r) {
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
  UvTimer resolve_timer;
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
