// Tests for the Redis layer (src/redis/: connection, sentinels, shard): real
// redis-server / redis-sentinel processes on free loopback ports (started and
// reaped here), driven by a uv loop that every wait bounds with a deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "redis/connection.h"
#include "redis/sentinels.h"
#include "redis/shard.h"
#include "temp_dir.h"

namespace {

using namespace taba;
using namespace taba::redis;
using taba::test_support::TempDir;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Processes

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// Blocking hiredis round trip for the test's own checks; "" when unreachable.
std::string describe(const redisReply* r) {
  if (!r) return "(null)";
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "ERR " + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (size_t i = 0; i < r->elements; ++i) out += (i ? " " : "") + describe(r->element[i]);
      return out + "]";
    }
    default:
      return "?";
  }
}

std::string sync_command(int port, const std::vector<std::string>& args, const std::string& password = "") {
  timeval tv{0, 300000};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    return "";
  }
  redisSetTimeout(c, timeval{2, 0});
  if (!password.empty()) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password.c_str()));
    if (r) freeReplyObject(r);
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r =
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out = r ? describe(r) : "";
  if (r) freeReplyObject(r);
  redisFree(c);
  return out;
}

bool wait_for(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// A redis-server or redis-sentinel child; SIGKILLed and reaped when dropped.
class Process {
 public:
  Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { kill_now(); }

  bool spawn(const std::vector<std::string>& args, const std::string& log_path) {
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      if (::getppid() != parent) ::_exit(1);
      int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
      }
      if (in >= 0) ::dup2(in, 0);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    return pid_ > 0;
  }
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

 private:
  pid_t pid_ = -1;
};

class RedisServer {
 public:
  // Starts (or restarts, on the same port) a server; true once it answers PING.
  bool start(const std::vector<std::string>& extra = {}, const std::string& password = "") {
    if (port_ == 0) port_ = free_port();
    extra_ = extra;
    password_ = password;
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_.path(),
                                     "--daemonize",
                                     "no"};
    if (!password.empty()) {
      args.push_back("--requirepass");
      args.push_back(password);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    if (!proc_.spawn(args, dir_.path() + "/redis.log")) return false;
    return wait_for([&] { return sync_command(port_, {"PING"}, password_) == "PONG"; }, 5000);
  }
  void kill() { proc_.kill_now(); }
  void pause() const { proc_.signal(SIGSTOP); }
  void resume() const { proc_.signal(SIGCONT); }
  int port() const { return port_; }
  Address address() const { return Address{"127.0.0.1", port_}; }
  std::string command(const std::vector<std::string>& args) const {
    return sync_command(port_, args, password_);
  }

 private:
  TempDir dir_{"taba-redis-test-"};
  Process proc_;
  int port_ = 0;
  std::vector<std::string> extra_;
  std::string password_;
};

class SentinelServer {
 public:
  bool start(int master_port) {
    port_ = free_port();
    std::string conf = dir_.path() + "/sentinel.conf";
    {
      std::ofstream f(conf);
      f << "port " << port_ << "\n"
        << "bind 127.0.0.1\n"
        << "daemonize no\n"
        << "dir " << dir_.path() << "\n"
        << "sentinel monitor m 127.0.0.1 " << master_port << " 1\n"
        << "sentinel down-after-milliseconds m 5000\n"
        << "sentinel failover-timeout m 20000\n";
    }
    if (!proc_.spawn({"redis-sentinel", conf}, dir_.path() + "/sentinel.log")) return false;
    return wait_for([&] { return sync_command(port_, {"PING"}) == "PONG"; }, 5000);
  }
  int port() const { return port_; }
  Address address() const { return Address{"127.0.0.1", port_}; }
  std::string command(const std::vector<std::string>& args) const { return sync_command(port_, args); }

 private:
  TempDir dir_{"taba-redis-test-"};
  Process proc_;
  int port_ = 0;
};

// ---------------------------------------------------------------------------
// Loop

class TestLoop {
 public:
  TestLoop() {
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick_);
  }
  ~TestLoop() {
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    bool closed = false;
    for (int i = 0; i < 1000 && !closed; ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
      closed = uv_loop_close(&loop) == 0;
    }
    if (!closed) {  // a leaked handle: report it, then close everything to free the loop
      uv_walk(
          &loop,
          [](uv_handle_t* h, void*) {
            if (!uv_is_closing(h)) uv_close(h, nullptr);
          },
          nullptr);
      uv_run(&loop, UV_RUN_NOWAIT);
      uv_loop_close(&loop);
      if (std::uncaught_exceptions() == 0) FAIL_CHECK("handles left open on the loop");
    }
  }
  // Runs the loop until pred() holds or timeout_ms passed; returns pred().
  bool run_until(const std::function<bool()>& pred, uint64_t timeout_ms) {
    uv_update_time(&loop);
    uint64_t deadline = uv_now(&loop) + timeout_ms;
    uv_timer_start(
        &tick_, [](uv_timer_t*) {}, 5, 5);  // UV_RUN_ONCE returns at least every 5 ms
    bool ok = pred();
    while (!ok && uv_now(&loop) < deadline) {
      uv_run(&loop, UV_RUN_ONCE);
      ok = pred();
    }
    uv_timer_stop(&tick_);
    return ok;
  }
  void run_for(uint64_t ms) {
    run_until([] { return false; }, ms);
  }

  uv_loop_t loop;

 private:
  uv_timer_t tick_;
};

ConnectionOptions options(std::string label, uint32_t command_ms = 2000, uint32_t connect_ms = 1000,
                          std::string password = "") {
  ConnectionOptions o;
  o.label = std::move(label);
  o.command_timeout_ms = command_ms;
  o.connect_timeout_ms = connect_ms;
  o.password = std::move(password);
  return o;
}

// The outcome of one command.
struct Outcome {
  bool done = false;
  Status status;
  std::string reply;  // describe(reply)
  int type = -1;
  Connection::Callback callback() {
    return [this](const Status& st, const redisReply* r) {
      done = true;
      status = st;
      type = r ? r->type : -1;
      reply = r ? describe(r) : "";
    };
  }
};

// Runs one command on `c` and waits for its answer.
Outcome run(TestLoop& t, Connection& c, const std::vector<std::string_view>& argv, uint32_t timeout_ms = 0) {
  Outcome o;
  c.command(argv, o.callback(), timeout_ms);
  REQUIRE(t.run_until([&] { return o.done; }, 5000));
  return o;
}

Outcome run(TestLoop& t, Shard& s, const std::vector<std::string_view>& argv) {
  Outcome o;
  s.command(argv, o.callback());
  REQUIRE(t.run_until([&] { return o.done; }, 5000));
  return o;
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------

TEST_CASE("redis parse_address accepts host:port and bracketed IPv6", "[redis]") {
  auto a = parse_address("127.0.0.1:6379");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 6379);
  CHECK(a->str() == "127.0.0.1:6379");
  auto b = parse_address("[::1]:26379");
  REQUIRE(b.ok());
  CHECK(b->host == "::1");
  CHECK(b->str() == "[::1]:26379");
  CHECK(parse_address("redis.internal:1").ok());
  for (const char* bad : {"", "host", "host:", ":6379", "host:0", "host:65536", "host:12x", "::1:6379",
                          "[::1]6379", "[host]:1"}) {
    INFO(bad);
    CHECK_FALSE(parse_address(bad).ok());
  }
}

TEST_CASE("redis Connection SET and GET with binary keys and values", "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start());
  Connection c(&t.loop, options("t"));
  CHECK_FALSE(c.connected());
  c.connect(srv.address());
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));
  CHECK(c.address().str() == srv.address().str());

  std::string key("bin\0key\r\n", 9);
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += std::string(100000, '\0');
  Outcome set = run(t, c, {"SET", key, value});
  CHECK(set.status.ok());
  CHECK(set.reply == "OK");

  std::string got;
  bool done = false;
  c.command({"GET", key}, [&](const Status& st, const redisReply* r) {
    REQUIRE(st.ok());
    REQUIRE(r->type == REDIS_REPLY_STRING);
    got.assign(r->str, r->len);
    done = true;
  });
  CHECK(c.pending() == 1);
  REQUIRE(t.run_until([&] { return done; }, 5000));
  CHECK(got == value);
  CHECK(c.pending() == 0);

  Outcome missing = run(t, c, {"GET", "no-such-key"});
  CHECK(missing.status.ok());
  CHECK(missing.type == REDIS_REPLY_NIL);
  Outcome error = run(t, c, {"NO-SUCH-COMMAND", "x"});
  CHECK(error.status.ok());  // an error reply is a reply
  CHECK(error.type == REDIS_REPLY_ERROR);
  Outcome empty = run(t, c, {"SET", "empty", ""});
  CHECK(empty.reply == "OK");
  CHECK(run(t, c, {"STRLEN", "empty"}).reply == "0");
}

TEST_CASE("redis Connection pipelines 10000 INCRs answered in order", "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start());
  Connection c(&t.loop, options("t"));
  c.connect(srv.address());
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));

  constexpr int kCount = 10000;
  int answered = 0;
  int out_of_order = 0;
  for (int i = 0; i < kCount; ++i) {
    c.command({"INCR", "counter"}, [&, i](const Status& st, const redisReply* r) {
      if (!st.ok() || r->type != REDIS_REPLY_INTEGER || r->integer != i + 1) ++out_of_order;
      ++answered;
    });
  }
  CHECK(c.pending() == static_cast<size_t>(kCount));
  REQUIRE(t.run_until([&] { return answered == kCount; }, 10000));
  CHECK(out_of_order == 0);
  CHECK(c.pending() == 0);
  CHECK(srv.command({"GET", "counter"}) == std::to_string(kCount));
}

TEST_CASE("redis Connection command to a stopped server times out and recovers after SIGCONT", "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start());
  Connection c(&t.loop, options("t", 300, 300));
  int ups = 0;
  int downs = 0;
  std::string last_down;
  c.on_state([&](bool up, const Status& why) {
    if (up) {
      ++ups;
    } else {
      ++downs;
      last_down = why.message();
    }
  });
  c.connect(srv.address());
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));
  CHECK(ups == 1);
  CHECK(run(t, c, {"SET", "k", "v"}).reply == "OK");

  srv.pause();
  Outcome slow;
  Outcome quick;
  c.command({"GET", "k"}, slow.callback());        // 300 ms (the default)
  c.command({"GET", "k"}, quick.callback(), 150);  // a later command with a shorter timeout
  auto started = Clock::now();
  REQUIRE(t.run_until([&] { return slow.done && quick.done; }, 3000));
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  CHECK(elapsed >= 100);
  CHECK(elapsed < 1000);
  std::string expected = "t " + srv.address().str() + ": command timed out after 150 ms";
  CHECK(slow.status.code() == Status::Code::kUnavailable);
  CHECK(slow.status.message() == expected);
  CHECK(quick.status.message() == expected);
  CHECK_FALSE(c.connected());
  CHECK(c.pending() == 0);
  CHECK(downs >= 1);

  // While stopped, reconnect attempts fail their handshake (connect timeout).
  t.run_for(400);
  CHECK_FALSE(c.connected());
  Outcome refused;
  c.command({"GET", "k"}, refused.callback());
  CHECK_FALSE(refused.done);
  REQUIRE(t.run_until([&] { return refused.done; }, 1000));
  CHECK(refused.status.code() == Status::Code::kUnavailable);

  srv.resume();
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));
  CHECK(ups == 2);
  Outcome get = run(t, c, {"GET", "k"});
  CHECK(get.status.ok());
  CHECK(get.reply == "v");
}

TEST_CASE("redis Connection commands while disconnected fail on a later loop iteration", "[redis]") {
  TestLoop t;
  Connection never(&t.loop, options("t"));
  Outcome o;
  never.command({"PING"}, o.callback());
  CHECK_FALSE(o.done);  // not re-entrant
  REQUIRE(t.run_until([&] { return o.done; }, 1000));
  CHECK(o.status.code() == Status::Code::kUnavailable);
  CHECK(o.type == -1);

  bool lost = false;
  never.subscribe(
      "ch", [](std::string_view, std::string_view) {}, [&](const Status&) { lost = true; });
  CHECK_FALSE(lost);
  REQUIRE(t.run_until([&] { return lost; }, 1000));

  // A command pending when disconnect() is called fails afterwards, not inside it.
  RedisServer srv;
  REQUIRE(srv.start());
  Connection c(&t.loop, options("t"));
  c.connect(srv.address());
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));
  Outcome pending;
  c.command({"BLPOP", "nothing", "0"}, pending.callback());
  REQUIRE(t.run_until(
      [&] {
        return srv.command({"CLIENT", "LIST"}).find("cmd=blpop") != std::string::npos;
      },
      2000));
  c.disconnect();
  CHECK_FALSE(pending.done);
  CHECK_FALSE(c.connected());
  REQUIRE(t.run_until([&] { return pending.done; }, 1000));
  CHECK(pending.status.message() == "t " + srv.address().str() + ": disconnected");
  // No reconnect after an explicit disconnect.
  t.run_for(300);
  CHECK_FALSE(c.connected());
}

TEST_CASE("redis Connection comes back after the server is killed and restarted on the same port",
          "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start());
  Connection c(&t.loop, options("t", 1000, 300));
  int ups = 0;
  int downs = 0;
  c.on_state([&](bool up, const Status&) { up ? ++ups : ++downs; });
  c.connect(srv.address());
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));
  CHECK(run(t, c, {"SET", "a", "1"}).reply == "OK");

  srv.kill();
  REQUIRE(t.run_until([&] { return downs >= 1; }, 3000));
  CHECK_FALSE(c.connected());
  Outcome while_down;
  c.command({"GET", "a"}, while_down.callback());
  REQUIRE(t.run_until([&] { return while_down.done; }, 1000));
  CHECK(while_down.status.code() == Status::Code::kUnavailable);
  t.run_for(300);  // a few refused reconnects

  REQUIRE(srv.start());
  REQUIRE(t.run_until([&] { return c.connected(); }, 5000));
  CHECK(ups == 2);
  CHECK(run(t, c, {"SET", "a", "2"}).reply == "OK");
  CHECK(run(t, c, {"GET", "a"}).reply == "2");
}

TEST_CASE("redis Connection SUBSCRIBE delivers messages and reports the loss once", "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start());
  Connection sub(&t.loop, options("sub"));
  Connection pub(&t.loop, options("pub"));
  sub.connect(srv.address());
  pub.connect(srv.address());
  REQUIRE(t.run_until([&] { return sub.connected() && pub.connected(); }, 5000));
  std::vector<std::string> messages;
  int lost = 0;
  sub.subscribe(
      "news",
      [&](std::string_view channel, std::string_view message) {
        CHECK(channel == "news");
        messages.emplace_back(message);
      },
      [&](const Status& why) {
        ++lost;
        CHECK(why.code() == Status::Code::kUnavailable);
      });
  // Publish until the subscription is active (PUBLISH answers the receiver count).
  REQUIRE(t.run_until([&] { return srv.command({"PUBSUB", "NUMSUB", "news"}) == "[news 1]"; }, 3000));
  std::string binary("a\0b", 3);
  CHECK(run(t, pub, {"PUBLISH", "news", binary}).reply == "1");
  CHECK(run(t, pub, {"PUBLISH", "news", "second"}).reply == "1");
  REQUIRE(t.run_until([&] { return messages.size() == 2; }, 3000));
  CHECK(messages[0] == binary);
  CHECK(messages[1] == "second");

  Outcome refused;
  sub.command({"GET", "x"}, refused.callback());
  REQUIRE(t.run_until([&] { return refused.done; }, 1000));
  CHECK(refused.status.code() == Status::Code::kInvalid);

  srv.kill();
  REQUIRE(t.run_until([&] { return lost == 1; }, 3000));
  t.run_for(200);
  CHECK(lost == 1);
}

TEST_CASE("redis Connection may be destroyed inside its own callbacks", "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start());

  // In a reply callback, with another command still pending.
  auto c = std::make_unique<Connection>(&t.loop, options("t"));
  c->connect(srv.address());
  REQUIRE(t.run_until([&] { return c->connected(); }, 5000));
  bool first = false;
  Outcome second;
  c->command({"PING"}, [&](const Status& st, const redisReply*) {
    CHECK(st.ok());
    c.reset();
    first = true;
  });
  c->command({"PING"}, second.callback());
  REQUIRE(t.run_until([&] { return first && second.done; }, 3000));
  CHECK(second.status.code() == Status::Code::kUnavailable);

  // In the "up" and the "down" notifications.
  auto up = std::make_unique<Connection>(&t.loop, options("t"));
  up->on_state([&](bool is_up, const Status&) {
    if (is_up) up.reset();
  });
  up->connect(srv.address());
  REQUIRE(t.run_until([&] { return up == nullptr; }, 5000));

  auto down = std::make_unique<Connection>(&t.loop, options("t"));
  down->on_state([&](bool is_up, const Status&) {
    if (!is_up) down.reset();
  });
  down->connect(Address{"127.0.0.1", free_port()});
  REQUIRE(t.run_until([&] { return down == nullptr; }, 5000));

  // With commands in flight and a timeout armed.
  auto busy = std::make_unique<Connection>(&t.loop, options("t"));
  busy->connect(srv.address());
  REQUIRE(t.run_until([&] { return busy->connected(); }, 5000));
  int failed = 0;
  for (int i = 0; i < 100; ++i) {
    busy->command({"INCR", "n"}, [&](const Status& st, const redisReply*) {
      if (!st.ok()) ++failed;
    });
  }
  busy.reset();
  CHECK(failed == 100);
  t.run_for(50);
}

TEST_CASE("redis Connection AUTH with a password", "[redis]") {
  TestLoop t;
  RedisServer srv;
  REQUIRE(srv.start({}, "s3cret"));

  Connection good(&t.loop, options("good", 2000, 1000, "s3cret"));
  good.connect(srv.address());
  REQUIRE(t.run_until([&] { return good.connected(); }, 5000));
  CHECK(run(t, good, {"SET", "k", "v"}).reply == "OK");
  CHECK(run(t, good, {"GET", "k"}).reply == "v");

  std::string none_why;
  Connection none(&t.loop, options("none"));
  none.on_state([&](bool up, const Status& why) {
    if (!up) none_why = why.message();
  });
  none.connect(srv.address());
  std::string wrong_why;
  Connection wrong(&t.loop, options("wrong", 2000, 1000, "nope"));
  wrong.on_state([&](bool up, const Status& why) {
    if (!up) wrong_why = why.message();
  });
  wrong.connect(srv.address());
  REQUIRE(t.run_until([&] { return !none_why.empty() && !wrong_why.empty(); }, 5000));
  CHECK(contains(none_why, "NOAUTH"));
  CHECK(contains(wrong_why, "AUTH failed"));
  CHECK_FALSE(none.connected());
  CHECK_FALSE(wrong.connected());
}

TEST_CASE("redis Sentinels resolve a master and name every failing sentinel", "[redis]") {
  TestLoop t;
  RedisServer master;
  REQUIRE(master.start());
  SentinelServer sentinel;
  REQUIRE(sentinel.start(master.port()));
  Address dead{"127.0.0.1", free_port()};

  // A refused connect is reported at once, not after the connect timeout.
  Sentinels sentinels(&t.loop, {dead, sentinel.address()}, options("sentinel", 3000, 3000));
  bool done = false;
  Status status;
  Address found;
  auto started = Clock::now();
  sentinels.resolve("m", [&](const Status& st, const Address& a) {
    done = true;
    status = st;
    found = a;
  });
  CHECK_FALSE(done);
  REQUIRE(t.run_until([&] { return done; }, 5000));
  CHECK(Clock::now() - started < std::chrono::milliseconds(1500));
  REQUIRE(status.ok());
  CHECK(found.str() == master.address().str());

  done = false;
  sentinels.resolve("unknown", [&](const Status& st, const Address&) {
    done = true;
    status = st;
  });
  REQUIRE(t.run_until([&] { return done; }, 5000));
  CHECK(status.code() == Status::Code::kUnavailable);
  INFO(status.message());
  CHECK(contains(status.message(), dead.str()));
  CHECK(contains(status.message(), sentinel.address().str() + ": unknown master"));

  Sentinels none(&t.loop, {}, options("sentinel"));
  done = false;
  none.resolve("m", [&](const Status& st, const Address&) {
    done = true;
    status = st;
  });
  CHECK_FALSE(done);
  REQUIRE(t.run_until([&] { return done; }, 1000));
  CHECK(status.code() == Status::Code::kUnavailable);

  // A resolution still in flight when the Sentinels go away fails at once.
  auto doomed = std::make_unique<Sentinels>(&t.loop, std::vector<Address>{sentinel.address()}, options("s"));
  done = false;
  doomed->resolve("m", [&](const Status& st, const Address&) {
    done = true;
    status = st;
  });
  doomed.reset();
  CHECK(done);
  CHECK(status.code() == Status::Code::kUnavailable);
}

TEST_CASE(
    "redis Shard dedicated connection WATCH MULTI EXEC returns nil when another connection touched the key",
    "[redis]") {
  TestLoop t;
  RedisServer master;
  REQUIRE(master.start());
  SentinelServer sentinel;
  REQUIRE(sentinel.start(master.port()));
  Sentinels sentinels(&t.loop, {sentinel.address()}, options("sentinel"));
  Shard shard(&t.loop, &sentinels, "m", options("shard1"), 2);
  CHECK(shard.name() == "m");

  Outcome early;
  shard.command({"PING"}, early.callback());  // not started
  REQUIRE(t.run_until([&] { return early.done; }, 1000));
  CHECK(early.status.code() == Status::Code::kUnavailable);

  shard.start();
  REQUIRE(t.run_until([&] { return shard.ready(); }, 5000));
  CHECK(shard.master().str() == master.address().str());
  CHECK(shard.master_changes() == 0);
  Connection* tx = shard.dedicated();
  REQUIRE(tx != nullptr);
  REQUIRE(t.run_until([&] { return tx->connected(); }, 5000));
  CHECK(run(t, shard, {"SET", "balance", "10"}).reply == "OK");

  // Touched by another connection between WATCH and EXEC: EXEC answers nil.
  CHECK(run(t, *tx, {"WATCH", "balance"}).reply == "OK");
  CHECK(run(t, shard, {"SET", "balance", "20"}).reply == "OK");
  Outcome multi;
  Outcome queued;
  Outcome exec;
  tx->command({"MULTI"}, multi.callback());
  tx->command({"SET", "balance", "30"}, queued.callback());
  tx->command({"EXEC"}, exec.callback());
  REQUIRE(t.run_until([&] { return exec.done; }, 5000));
  CHECK(multi.reply == "OK");
  CHECK(queued.reply == "QUEUED");
  CHECK(exec.status.ok());
  CHECK(exec.type == REDIS_REPLY_NIL);
  CHECK(run(t, shard, {"GET", "balance"}).reply == "20");

  // Untouched: EXEC runs the transaction.
  CHECK(run(t, *tx, {"WATCH", "balance"}).reply == "OK");
  Outcome multi2;
  Outcome queued2;
  tx->command({"MULTI"}, multi2.callback());
  tx->command({"INCRBY", "balance", "5"}, queued2.callback());
  Outcome exec2 = run(t, *tx, {"EXEC"});
  CHECK(exec2.type == REDIS_REPLY_ARRAY);
  CHECK(exec2.reply == "[25]");

  shard.stop();
  CHECK_FALSE(shard.ready());
  Outcome after;
  shard.command({"PING"}, after.callback());
  REQUIRE(t.run_until([&] { return after.done; }, 1000));
  CHECK(after.status.code() == Status::Code::kUnavailable);
}

TEST_CASE("redis Shard treats a READONLY reply as a lost master and recovers when the node is master again",
          "[redis]") {
  TestLoop t;
  RedisServer master;
  REQUIRE(master.start());
  RedisServer other;
  REQUIRE(other.start());
  SentinelServer sentinel;
  REQUIRE(sentinel.start(master.port()));
  Sentinels sentinels(&t.loop, {sentinel.address()}, options("sentinel", 1000, 500));
  Shard shard(&t.loop, &sentinels, "m", options("shard1", 1000, 500), 2);
  shard.start();
  REQUIRE(t.run_until([&] { return shard.ready(); }, 5000));

  // The node turns replica behind the sentinel's back: writes answer READONLY.
  REQUIRE(master.command({"REPLICAOF", "127.0.0.1", std::to_string(other.port())}) == "OK");
  Outcome write = run(t, shard, {"SET", "k", "v"});
  CHECK(write.status.ok());  // the caller still gets the reply
  CHECK(write.type == REDIS_REPLY_ERROR);
  CHECK(contains(write.reply, "READONLY"));
  CHECK_FALSE(shard.ready());  // no more commands to a replica
  Outcome refused = run(t, shard, {"GET", "k"});
  CHECK(refused.status.code() == Status::Code::kUnavailable);
  INFO(refused.status.message());  // says why: the READONLY, or ROLE if re-resolution already ran
  CHECK((contains(refused.status.message(), "READONLY") ||
         contains(refused.status.message(), "answers ROLE with 'slave'")));
  // Re-resolution gives the same address; ROLE keeps saying "slave".
  t.run_for(300);
  CHECK_FALSE(shard.ready());

  REQUIRE(master.command({"REPLICAOF", "NO", "ONE"}) == "OK");
  REQUIRE(t.run_until([&] { return shard.ready(); }, 5000));
  CHECK(run(t, shard, {"SET", "k", "v"}).reply == "OK");
  CHECK(shard.master_changes() == 0);
}

TEST_CASE("redis Shard follows a SENTINEL FAILOVER to the new master", "[redis]") {
  TestLoop t;
  RedisServer master;
  REQUIRE(master.start({"--repl-diskless-sync-delay", "0"}));  // else the first sync waits 5 s
  RedisServer replica;
  REQUIRE(replica.start({"--replicaof", "127.0.0.1", std::to_string(master.port())}));
  REQUIRE(wait_for(
      [&] {
        return contains(replica.command({"INFO", "replication"}), "master_link_status:up");
      },
      5000));
  SentinelServer sentinel;
  REQUIRE(sentinel.start(master.port()));

  Sentinels sentinels(&t.loop, {sentinel.address()}, options("sentinel", 1000, 500));
  std::vector<std::pair<std::string, std::string>> switches;
  sentinels.on_switch(
      [&](const std::string& name, const Address& a) { switches.emplace_back(name, a.str()); });
  sentinels.start();
  Shard shard(&t.loop, &sentinels, "m", options("shard1", 1000, 500), 2);
  shard.start();
  Connection* dedicated = shard.dedicated();
  REQUIRE(t.run_until([&] { return shard.ready() && dedicated->connected(); }, 5000));
  CHECK(shard.master().str() == master.address().str());
  CHECK(run(t, shard, {"SET", "before", "1"}).reply == "OK");
  REQUIRE(wait_for([&] { return replica.command({"GET", "before"}) == "1"; }, 5000));  // replication is async

  // The sentinel must know the replica before it can fail over to it.
  auto last_try = Clock::now() - std::chrono::seconds(1);
  std::string answer;
  REQUIRE(t.run_until(
      [&] {
        if (Clock::now() - last_try < std::chrono::milliseconds(200)) return false;
        last_try = Clock::now();
        answer = sentinel.command({"SENTINEL", "FAILOVER", "m"});
        return answer == "OK";
      },
      15000));

  REQUIRE(
      t.run_until([&] { return shard.master().str() == replica.address().str() && shard.ready(); }, 15000));
  CHECK(shard.master_changes() == 1);
  REQUIRE(t.run_until([&] { return !switches.empty(); }, 2000));
  CHECK(switches[0].first == "m");
  CHECK(switches[0].second == replica.address().str());

  Outcome after = run(t, shard, {"SET", "after", "2"});
  CHECK(after.status.ok());
  CHECK(after.reply == "OK");
  CHECK(replica.command({"GET", "after"}) == "2");
  CHECK(replica.command({"GET", "before"}) == "1");
  REQUIRE(t.run_until([&] { return dedicated->connected(); }, 5000));
  CHECK(dedicated->address().str() == replica.address().str());
  CHECK(run(t, *dedicated, {"INCR", "after"}).reply == "3");
}

}  // namespace
