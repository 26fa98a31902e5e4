// Tests for http::Server: a real server on a uv loop thread, driven by a
// plain blocking-socket client on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"

namespace {

using namespace taba::http;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------
// Blocking test client.

struct ClientResponse {
  bool ok = false;  // a complete response was read
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Client {
 public:
  explicit Client(int port, const char* ip = "127.0.0.1") {
    bool v6 = std::strchr(ip, ':') != nullptr;
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET6, ip, &a->sin6_addr);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET, ip, &a->sin_addr);
      len = sizeof *a;
    }
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // Sends everything; false if the peer closed or reset.
  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response (bodies framed by Content-Length; none otherwise).
  ClientResponse read_response(bool head = false) {
    ClientResponse r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    std::string head_text = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head_text.find("\r\n");
    std::string status_line = head_text.substr(0, line_end);
    if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return r;
    r.status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end == std::string::npos ? head_text.size() : line_end + 2;
    while (pos < head_text.size()) {
      size_t e = head_text.find("\r\n", pos);
      if (e == std::string::npos) e = head_text.size();
      std::string line = head_text.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t v = line.find_first_not_of(' ', colon + 1);
        r.headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      pos = e + 2;
    }
    size_t length = 0;
    if (!head && r.headers.count("content-length")) length = std::stoul(r.headers["content-length"]);
    while (buf_.size() < length) {
      if (!fill()) return r;
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    r.ok = true;
    return r;
  }

  // True if the server closes the connection (EOF or reset) within `ms`
  // without sending anything more.
  bool closed_within(int ms) {
    if (!buf_.empty()) return false;
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, ms);
    if (rc <= 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n > 0) {
      buf_.push_back(c);
      return false;
    }
    return n == 0 || errno == ECONNRESET;
  }

  // Half-close: no more requests, but responses can still be read.
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Closes with a TCP reset.
  void abort() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

  std::string& buffered() { return buf_; }

 private:
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// ---------------------------------------------------------------------------
// Server on a loop thread.

// What the handlers saw, shared between the loop thread and the test.
struct Journal {
  std::mutex mu;
  std::vector<std::string> events;  // "route /x", "reply /slow", "done", ...
  std::vector<std::string> alive_checks;
  void add(std::string e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(std::move(e));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return events;
  }
  size_t count(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (auto& x : events) n += x == e;
    return n;
  }
  bool wait_for(const std::string& e, std::chrono::milliseconds limit = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (count(e) > 0) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }
};

// Replies from a timer `delay_ms` later (on the loop thread).
void reply_later(uv_loop_t* loop, std::shared_ptr<Exchange> ex, uint64_t delay_ms, Response response,
                 Journal* journal) {
  struct Later {
    uv_timer_t timer;
    std::shared_ptr<Exchange> ex;
    Response response;
    Journal* journal;
  };
  auto* l = new Later{{}, std::move(ex), std::move(response), journal};
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  uv_timer_start(
      &l->timer,
      [](uv_timer_t* t) {
        auto* self = static_cast<Later*>(t->data);
        self->journal->add(std::string("alive ") + (self->ex->alive() ? "yes " : "no ") +
                           self->ex->request().path);
        self->journal->add("reply " + self->ex->request().path);
        self->ex->reply(std::move(self->response));
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
      },
      delay_ms, 0);
}

// Counts body bytes and chunks; replies with the tally.
class CountHandler : public RequestHandler {
 public:
  explicit CountHandler(std::shared_ptr<Exchange> ex) : ex_(std::move(ex)) {}
  void on_body(std::string_view chunk) override {
    chunks_++;
    bytes_ += chunk.size();
    for (unsigned char c : chunk) sum_ = sum_ * 31 + c;
  }
  void on_complete() override {
    ex_->reply(Response::text(200, "bytes=" + std::to_string(bytes_) + " chunks=" + std::to_string(chunks_) +
                                       " sum=" + std::to_string(sum_)));
  }

 private:
  std::shared_ptr<Exchange> ex_;
  uint64_t bytes_ = 0;
  uint64_t chunks_ = 0;
  uint64_t sum_ = 0;
};

// Echoes the body.
class EchoHandler : public RequestHandler {
 public:
  explicit EchoHandler(std::shared_ptr<Exchange> ex) : ex_(std::move(ex)) {}
  void on_body(std::string_view chunk) override { body_.append(chunk); }
  void on_complete() override { ex_->reply(Response::text(200, std::move(body_))); }

 private:
  std::shared_ptr<Exchange> ex_;
  std::string body_;
};

// Replies 400 on the first body chunk.
class RejectHandler : public RequestHandler {
 public:
  explicit RejectHandler(std::shared_ptr<Exchange> ex, Journal* j) : ex_(std::move(ex)), journal_(j) {}
  void on_body(std::string_view) override {
    if (ex_->replied()) journal_->add("on_body after reply");
    ex_->reply(Response::text(400, "rejected"));
  }
  void on_complete() override { journal_->add("on_complete after reply"); }

 private:
  std::shared_ptr<Exchange> ex_;
  Journal* journal_;
};

// Replies from a timer once the body is complete.
class SlowHandler : public RequestHandler {
 public:
  SlowHandler(uv_loop_t* loop, std::shared_ptr<Exchange> ex, Journal* j, uint64_t ms)
      : loop_(loop), ex_(std::move(ex)), journal_(j), ms_(ms) {}
  void on_body(std::string_view) override {}
  void on_complete() override { reply_later(loop_, ex_, ms_, Response::text(200, "slow"), journal_); }

 private:
  uv_loop_t* loop_;
  std::shared_ptr<Exchange> ex_;
  Journal* journal_;
  uint64_t ms_;
};

// Never replies by itself.
class SilentHandler : public RequestHandler {
 public:
  void on_body(std::string_view) override {}
  void on_complete() override {}
};

std::string describe(const Request& r) {
  std::string s = "method=" + r.method + " target=" + r.target + " path=" + r.path + " query=" + r.query +
                  " minor=" + std::to_string(r.http_minor) + " chunked=" + (r.chunked ? "1" : "0") +
                  " cl=" + (r.content_length ? std::to_string(*r.content_length) : "none") +
                  " x-test=" + std::string(r.header("x-test")) + " peer=" + r.peer;
  size_t n = 0;
  for (const Header& h : r.headers) n += h.name == "x-test";
  s += " x-test-count=" + std::to_string(n);
  return s;
}

class TestServer {
 public:
  explicit TestServer(ServerOptions options = {}, const std::string& host = "127.0.0.1") {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &async_, [](uv_async_t* a) { static_cast<TestServer*>(a->data)->drain_queue(); });
    async_.data = this;
    server_ = std::make_unique<Server>(&loop_, options,
                                       [this](const std::shared_ptr<Exchange>& ex) { return route(ex); });
    taba::Status st = server_->listen(host, 0);
    listen_status_ = st;
    port_ = server_->port();
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~TestServer() { stop(); }

  const taba::Status& listen_status() const { return listen_status_; }
  int port() const { return port_; }
  Journal& journal() { return journal_; }
  uv_loop_t* loop() { return &loop_; }

  // Runs fn on the loop thread and waits for its result.
  template <typename F>
  auto call(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
    auto fut = task->get_future();
    post([task] { (*task)(); });
    return fut.get();
  }
  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    uv_async_send(&async_);
  }
  ServerStats stats() {
    return call([this] { return server_->stats(); });
  }
  bool wait_stat(const std::function<bool(const ServerStats&)>& pred,
                 std::chrono::milliseconds limit = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred(stats())) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  // Starts a shutdown; the returned future is ready when `done` ran.
  std::shared_future<void> shutdown() {
    auto promise = std::make_shared<std::promise<void>>();
    std::shared_future<void> fut = promise->get_future().share();
    post([this, promise] {
      server_->shutdown([this, promise] {
        journal_.add("done");
        promise->set_value();
      });
    });
    shutdown_started_ = true;
    shutdown_future_ = fut;
    return fut;
  }

  // Shuts down (if not yet), stops the loop thread, checks the loop is clean.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    if (!shutdown_started_) shutdown();
    bool done = shutdown_future_.wait_for(10s) == std::future_status::ready;
    CHECK(done);
    post([this] { uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr); });
    if (!done) post([this] { uv_stop(&loop_); });
    thread_.join();
    server_.reset();
    uv_run(&loop_, UV_RUN_NOWAIT);
    CHECK(uv_loop_close(&loop_) == 0);
  }

 private:
  std::unique_ptr<RequestHandler> route(const std::shared_ptr<Exchange>& ex) {
    const Request& r = ex->request();
    journal_.add("route " + r.path);
    if (r.path == "/hello") {
      ex->reply(Response::text(200, "hello"));
      return nullptr;
    }
    if (r.path == "/info") {
      ex->reply(Response::text(200, describe(r)));
      return nullptr;
    }
    if (r.path == "/json") {
      Response resp = Response::json(200, "{\"a\":1}");
      resp.headers.push_back({"Retry-After", "7"});
      ex->reply(std::move(resp));
      return nullptr;
    }
    if (r.path == "/nocontent") {
      ex->reply(Response::text(204, ""));
      return nullptr;
    }
    if (r.path == "/count") return std::make_unique<CountHandler>(ex);
    if (r.path == "/echo") return std::make_unique<EchoHandler>(ex);
    if (r.path == "/reject") return std::make_unique<RejectHandler>(ex, &journal_);
    if (r.path == "/slow") return std::make_unique<SlowHandler>(&loop_, ex, &journal_, 50);
    if (r.path == "/slower") return std::make_unique<SlowHandler>(&loop_, ex, &journal_, 300);
    if (r.path == "/throw") throw std::runtime_error("boom");
    if (r.path == "/silent") return nullptr;  // a router bug: neither reply nor handler
    ex->reply(Response::text(404, "not found"));
    return nullptr;
  }

  void drain_queue() {
    std::deque<std::function<void()>> q;
    {
      std::lock_guard<std::mutex> lock(mu_);
      q.swap(queue_);
    }
    for (auto& f : q) f();
  }

  uv_loop_t loop_;
  uv_async_t async_;
  std::unique_ptr<Server> server_;
  taba::Status listen_status_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::function<void()>> queue_;
  Journal journal_;
  bool shutdown_started_ = false;
  bool stopped_ = false;
  std::shared_future<void> shutdown_future_;
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body, const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra + "\r\n" + body;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245 + 12345;
    s[i] = static_cast<char>('a' + (x >> 16) % 26);
  }
  return s;
}

std::string tally(const std::string& body) {
  uint64_t sum = 0;
  for (unsigned char c : body) sum = sum * 31 + c;
  return "bytes=" + std::to_string(body.size()) + " sum=" + std::to_string(sum);
}

// "bytes=N chunks=M sum=S" -> "bytes=N sum=S"
std::string strip_chunks(const std::string& s) {
  size_t a = s.find(" chunks=");
  size_t b = s.find(" sum=");
  if (a == std::string::npos || b == std::string::npos) return s;
  return s.substr(0, a) + s.substr(b);
}

uint64_t chunks_of(const std::string& s) {
  size_t a = s.find("chunks=");
  return a == std::string::npos ? 0 : std::stoull(s.substr(a + 7));
}

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE("http helpers: Response and Request", "[http]") {
  Response t = Response::text(404, "nope");
  CHECK(t.status == 404);
  CHECK(t.body == "nope");
  CHECK(t.content_type == "text/plain; charset=utf-8");
  Response j = Response::json(200, "{}");
  CHECK(j.content_type == "application/json");
  Request r;
  r.headers = {{"accept", "a"}, {"x", "1"}, {"accept", "b"}};
  CHECK(r.header("accept") == "a");
  CHECK(r.header("x") == "1");
  CHECK(r.header("missing").empty());
}

TEST_CASE("http server: simple GET", "[http]") {
  TestServer s;
  REQUIRE(s.listen_status().ok());
  REQUIRE(s.port() > 0);
  Client c(s.port());
  REQUIRE(c.connected());
  REQUIRE(c.send("GET /info?a=1&b=2 HTTP/1.1\r\nHost: test\r\nX-Test: Hello  \r\nx-TEST: second\r\n\r\n"));
  ClientResponse r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "text/plain; charset=utf-8");
  CHECK(r.header("connection") == "keep-alive");
  CHECK(r.body.find("method=GET target=/info?a=1&b=2 path=/info query=a=1&b=2 minor=1 chunked=0 cl=none") ==
        0);
  CHECK(r.body.find("x-test=Hello ") != std::string::npos);
  CHECK(r.body.find("x-test-count=2") != std::string::npos);
  CHECK(r.body.find("peer=127.0.0.1:") != std::string::npos);

  REQUIRE(c.send(get("/json")));
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "application/json");
  CHECK(r.header("retry-after") == "7");
  CHECK(r.body == "{\"a\":1}");

  REQUIRE(c.send(get("/missing")));
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 404);

  REQUIRE(c.send(get("/nocontent")));
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 204);
  CHECK(r.header("content-length").empty());

  REQUIRE(c.send("HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n"));
  r = c.read_response(/*head=*/true);
  REQUIRE(r.ok);
  CHECK(r.header("content-length") == "5");
  REQUIRE(c.send(get("/hello")));  // no stray body bytes from the HEAD reply
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.body == "hello");
}

TEST_CASE("http server: keep-alive serves sequential requests on one connection", "[http]") {
  TestServer s;
  Client c(s.port());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(c.send(get("/info?i=" + std::to_string(i))));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 200);
    CHECK(r.header("connection") == "keep-alive");
    CHECK(r.body.find("query=i=" + std::to_string(i) + " ") != std::string::npos);
  }
  ServerStats st = s.stats();
  CHECK(st.connections_accepted == 1);
  CHECK(st.connections_active == 1);
  CHECK(st.requests == 3);
}

TEST_CASE("http server: pipelined requests are answered in order", "[http]") {
  TestServer s;
  Client c(s.port());
  std::string batch =
      get("/info?n=1") + post("/echo", "second") + get("/info?n=3") + post("/count", "abc") + get("/hello");
  REQUIRE(c.send(batch));
  ClientResponse r1 = c.read_response();
  ClientResponse r2 = c.read_response();
  ClientResponse r3 = c.read_response();
  ClientResponse r4 = c.read_response();
  ClientResponse r5 = c.read_response();
  REQUIRE(r5.ok);
  CHECK(r1.body.find("query=n=1 ") != std::string::npos);
  CHECK(r2.body == "second");
  CHECK(r3.body.find("query=n=3 ") != std::string::npos);
  CHECK(strip_chunks(r4.body) == tally("abc"));
  CHECK(r5.body == "hello");
  CHECK(s.stats().requests == 5);
}

TEST_CASE("http server: a 5 MB Content-Length body streams to on_body", "[http]") {
  TestServer s;
  Client c(s.port());
  const std::string body = pattern(5 * 1024 * 1024);
  std::thread sender([&] { c.send(post("/count", body)); });
  ClientResponse r = c.read_response();
  sender.join();
  REQUIRE(r.ok);
  CHECK(r.status == 200);
  CHECK(strip_chunks(r.body) == tally(body));
  CHECK(chunks_of(r.body) > 1);  // streamed, not buffered whole
  // The connection is still usable.
  REQUIRE(c.send(get("/hello")));
  CHECK(c.read_response().body == "hello");
}

TEST_CASE("http server: chunked request body", "[http]") {
  TestServer s;
  Client c(s.port());
  REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
  std::this_thread::sleep_for(20ms);  // the body arrives in pieces
  REQUIRE(c.send("6;ext=1\r\n world\r\n0\r\nTrailer-X: 1\r\n\r\n"));
  ClientResponse r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 200);
  CHECK(r.body == "hello world");

  REQUIRE(c.send(post("/info", "xyz")));
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.body.find("chunked=0 cl=3") != std::string::npos);
  CHECK(r.header("connection") == "keep-alive");

  // A chunked body the router declined is not drained: the reply closes.
  REQUIRE(
      c.send("POST /info HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.body.find("chunked=1 cl=none") != std::string::npos);
  CHECK(r.header("connection") == "close");
  CHECK(c.closed_within(3000));
}

TEST_CASE("http server: an asynchronous reply holds back the pipelined next request", "[http]") {
  TestServer s;
  Client c(s.port());
  REQUIRE(c.send(get("/slow") + get("/info?n=2")));
  ClientResponse r1 = c.read_response();
  ClientResponse r2 = c.read_response();
  REQUIRE(r1.ok);
  REQUIRE(r2.ok);
  CHECK(r1.body == "slow");
  CHECK(r2.body.find("query=n=2 ") != std::string::npos);
  std::vector<std::string> ev = s.journal().snapshot();
  std::vector<std::string> expected = {"route /slow", "alive yes /slow", "reply /slow", "route /info"};
  CHECK(ev == expected);
}

TEST_CASE("http server: Expect 100-continue", "[http]") {
  TestServer s;
  Client c(s.port());
  REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  ClientResponse interim = c.read_response();
  REQUIRE(interim.ok);
  CHECK(interim.status == 100);
  REQUIRE(c.send("body"));
  ClientResponse r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 200);
  CHECK(r.body == "body");
}

TEST_CASE("http server: 413 for a Content-Length over the limit", "[http]") {
  ServerOptions o;
  o.max_body_bytes = 1000;
  TestServer s(o);
  {
    Client c(s.port());
    c.send(post("/count", std::string(5000, 'x')));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 413);
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_within(3000));
    CHECK(s.journal().count("route /count") == 0);  // answered without routing
  }
  {
    Client c(s.port());  // exactly at the limit is fine
    REQUIRE(c.send(post("/count", std::string(1000, 'x'))));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 200);
  }
  {
    Client c(s.port());  // chunked: once the running total passes the limit
    std::string req = "POST /count HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) req += "200\r\n" + std::string(512, 'y') + "\r\n";
    req += "0\r\n\r\n";
    c.send(req);
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 413);
    CHECK(c.closed_within(3000));
  }
}

TEST_CASE("http server: 431 for oversized headers", "[http]") {
  ServerOptions o;
  o.max_header_bytes = 1024;
  TestServer s(o);
  {
    Client c(s.port());
    REQUIRE(c.send(get("/hello", "X-Big: " + std::string(700, 'b') + "\r\n")));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 200);
  }
  {
    Client c(s.port());
    c.send(get("/hello", "X-Big: " + std::string(4000, 'b') + "\r\n"));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 431);
    CHECK(c.closed_within(3000));
  }
  {
    Client c(s.port());  // many small headers, delivered in pieces
    for (int i = 0; i < 100; ++i) {
      if (!c.send(i == 0 ? std::string("GET /hello HTTP/1.1\r\n")
                         : "X-H" + std::to_string(i) + ": 0123456789\r\n")) {
        break;
      }
    }
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 431);
    CHECK(c.closed_within(3000));
  }
  {
    Client c(s.port());  // whitespace counts too
    c.send("GET /hello HTTP/1.1\r\nX-A:" + std::string(3000, ' '));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 431);
  }
  CHECK(s.journal().count("route /hello") == 1);
}

TEST_CASE("http server: 400 for malformed requests", "[http]") {
  TestServer s;
  {
    Client c(s.port());
    c.send("GARBAGE\r\n\r\n");
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 400);
    CHECK(r.body.rfind("bad request: ", 0) == 0);
    CHECK(r.body.find('\n') == r.body.size() - 1);  // one line
    CHECK(c.closed_within(3000));
  }
  {
    Client c(s.port());  // both Content-Length and chunked: smuggling guard
    c.send(
        "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 400);
  }
  {
    Client c(s.port());  // bad chunk size after routing: the handler had not replied
    c.send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 400);
    CHECK(c.closed_within(3000));
  }
  CHECK(s.stats().parse_errors == 3);
}

TEST_CASE("http server: router failures answer 500", "[http]") {
  TestServer s;
  Client c(s.port());
  REQUIRE(c.send(get("/throw")));
  ClientResponse r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 500);
  REQUIRE(c.send(get("/silent")));
  r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 500);
  REQUIRE(c.send(get("/hello")));  // the connection survives
  CHECK(c.read_response().body == "hello");
}

TEST_CASE("http server: header timeout answers 408", "[http]") {
  ServerOptions o;
  o.header_timeout_ms = 200;
  TestServer s(o);
  Client c(s.port());
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c.send("GET /hello HTTP/1.1\r\nHost: test\r\n"));
  std::this_thread::sleep_for(100ms);
  REQUIRE(c.send("X-Slow: 1\r\n"));  // trickling bytes does not extend the deadline
  ClientResponse r = c.read_response();
  auto elapsed = std::chrono::steady_clock::now() - t0;
  REQUIRE(r.ok);
  CHECK(r.status == 408);
  CHECK(elapsed >= 190ms);
  CHECK(elapsed < 2000ms);
  CHECK(c.closed_within(3000));
  CHECK(s.stats().timeouts == 1);
}

TEST_CASE("http server: body timeout answers 408", "[http]") {
  ServerOptions o;
  o.body_timeout_ms = 200;
  TestServer s(o);
  Client c(s.port());
  REQUIRE(c.send("POST /count HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc"));
  ClientResponse r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 408);
  CHECK(c.closed_within(3000));
  CHECK(s.stats().timeouts == 1);
}

TEST_CASE("http server: idle timeout closes a keep-alive connection", "[http]") {
  ServerOptions o;
  o.idle_timeout_ms = 200;
  TestServer s(o);
  Client c(s.port());
  REQUIRE(c.send(get("/hello")));
  REQUIRE(c.read_response().ok);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.closed_within(3000));
  CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
  CHECK(c.buffered().empty());  // closed silently
  CHECK(s.wait_stat([](const ServerStats& st) { return st.connections_active == 0; }));
  CHECK(s.stats().timeouts == 1);
}

TEST_CASE("http server: no timeout while the handler owns the request", "[http]") {
  ServerOptions o;
  o.idle_timeout_ms = 100;
  o.header_timeout_ms = 100;
  o.body_timeout_ms = 100;
  TestServer s(o);
  Client c(s.port());
  REQUIRE(c.send(get("/slower")));  // replies after 300 ms
  ClientResponse r = c.read_response();
  REQUIRE(r.ok);
  CHECK(r.body == "slow");
  CHECK(s.stats().timeouts == 0);
}

TEST_CASE("http server: max_connections closes extra connections", "[http]") {
  ServerOptions o;
  o.max_connections = 2;
  TestServer s(o);
  Client a(s.port());
  Client b(s.port());
  REQUIRE(a.send(get("/hello")));
  REQUIRE(a.read_response().ok);
  REQUIRE(b.send(get("/hello")));
  REQUIRE(b.read_response().ok);
  Client c(s.port());
  CHECK(c.closed_within(3000));
  ServerStats st = s.stats();
  CHECK(st.connections_rejected == 1);
  CHECK(st.connections_active == 2);
  REQUIRE(a.send(get("/hello")));  // the others still work
  CHECK(a.read_response().body == "hello");
}

TEST_CASE("http server: HTTP/1.0 and Connection: close", "[http]") {
  TestServer s;
  {
    Client c(s.port());
    REQUIRE(c.send("GET /info HTTP/1.0\r\n\r\n"));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.header("connection") == "close");
    CHECK(r.body.find("minor=0") != std::string::npos);
    CHECK(c.closed_within(3000));
  }
  {
    Client c(s.port());
    REQUIRE(c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.header("connection") == "keep-alive");
    REQUIRE(c.send("GET /hello HTTP/1.0\r\n\r\n"));
    r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_within(3000));
  }
  {
    Client c(s.port());
    REQUIRE(c.send(get("/hello", "Connection: close\r\n") + get("/hello")));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_within(3000));  // the pipelined second request is not answered
  }
  {
    Client c(s.port());  // upgrades are not supported: answered, then closed
    REQUIRE(c.send(get("/hello", "Connection: Upgrade\r\nUpgrade: websocket\r\n")));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.body == "hello");
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_within(3000));
  }
}

TEST_CASE("http server: early reply and declined bodies", "[http]") {
  TestServer s;
  {
    Client c(s.port());  // the handler answers 400 at the first chunk: reply, then close
    const std::string body(200000, 'z');
    std::thread sender([&] { c.send(post("/reject", body)); });
    ClientResponse r = c.read_response();
    sender.join();
    REQUIRE(r.ok);
    CHECK(r.status == 400);
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_within(5000));
  }
  {
    Client c(s.port());  // the router declines a small body: it is skipped, keep-alive
    REQUIRE(c.send(post("/hello", std::string(1000, 'q')) + get("/info?after")));
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.body == "hello");
    CHECK(r.header("connection") == "keep-alive");
    r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.body.find("query=after") != std::string::npos);
  }
  {
    Client c(s.port());  // a large declined body: close after the reply
    const std::string body(300000, 'q');
    std::thread sender([&] { c.send(post("/hello", body)); });
    ClientResponse r = c.read_response();
    sender.join();
    REQUIRE(r.ok);
    CHECK(r.body == "hello");
    CHECK(r.header("connection") == "close");
    CHECK(c.closed_within(5000));
  }
  CHECK(s.journal().count("on_body after reply") == 0);
  CHECK(s.journal().count("on_complete after reply") == 0);
}

TEST_CASE("http server: reply after the client went away is a no-op", "[http]") {
  TestServer s;
  {
    Client c(s.port());
    REQUIRE(c.send(get("/slow")));
    REQUIRE(s.journal().wait_for("route /slow"));
    c.abort();
  }
  REQUIRE(s.journal().wait_for("reply /slow"));
  CHECK(s.journal().count("alive no /slow") == 1);
  CHECK(s.wait_stat([](const ServerStats& st) { return st.connections_active == 0; }));
}

TEST_CASE("http server: a half-closed client still gets its replies", "[http]") {
  TestServer s;
  Client c(s.port());
  REQUIRE(c.send(get("/slow") + get("/info?second")));
  REQUIRE(s.journal().wait_for("route /slow"));
  c.shutdown_write();  // EOF while the first request awaits its reply
  ClientResponse r1 = c.read_response();
  ClientResponse r2 = c.read_response();
  REQUIRE(r1.ok);
  REQUIRE(r2.ok);
  CHECK(r1.body == "slow");
  CHECK(r2.body.find("query=second") != std::string::npos);
  CHECK(c.closed_within(3000));
}

TEST_CASE("http server: shutdown lets a busy connection finish its reply", "[http]") {
  TestServer s;
  Client idle(s.port());
  REQUIRE(idle.send(get("/hello")));
  REQUIRE(idle.read_response().ok);
  Client busy(s.port());
  REQUIRE(busy.send(get("/slower")));
  REQUIRE(s.journal().wait_for("route /slower"));
  auto done = s.shutdown();
  CHECK(idle.closed_within(3000));  // idle: closed at once
  ClientResponse r = busy.read_response();
  REQUIRE(r.ok);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  CHECK(r.header("connection") == "close");
  CHECK(busy.closed_within(3000));
  REQUIRE(done.wait_for(5s) == std::future_status::ready);
  std::vector<std::string> ev = s.journal().snapshot();
  REQUIRE(ev.size() >= 2);
  CHECK(ev[ev.size() - 2] == "reply /slower");
  CHECK(ev.back() == "done");
  Client late(s.port());  // the listener is gone
  CHECK_FALSE(late.connected());
}

TEST_CASE("http server: shutdown with no connections completes", "[http]") {
  TestServer s;
  auto done = s.shutdown();
  CHECK(done.wait_for(3s) == std::future_status::ready);
}

TEST_CASE("http server: IPv6 and listen errors", "[http]") {
  {
    TestServer s(ServerOptions{}, "::1");
    if (!s.listen_status().ok()) {
      WARN("IPv6 loopback unavailable: " << s.listen_status().message());
    } else {
      Client c(s.port(), "::1");
      REQUIRE(c.connected());
      REQUIRE(c.send(get("/info")));
      ClientResponse r = c.read_response();
      REQUIRE(r.ok);
      CHECK(r.body.find("peer=[::1]:") != std::string::npos);
    }
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    auto router = [](const std::shared_ptr<Exchange>& ex) -> std::unique_ptr<RequestHandler> {
      ex->reply(Response::text(200, "x"));
      return nullptr;
    };
    Server bad(&loop, ServerOptions{}, router);
    CHECK(bad.listen("not-an-ip", 0).code() == taba::Status::Code::kInvalid);

    ServerOptions reuse;
    reuse.reuse_port = true;
    Server a(&loop, reuse, router);
    REQUIRE(a.listen("127.0.0.1", 0).ok());
    Server b(&loop, reuse, router);
    CHECK(b.listen("127.0.0.1", a.port()).ok());  // SO_REUSEPORT on both
    CHECK(b.port() == a.port());
    Server c(&loop, ServerOptions{}, router);
    CHECK(c.listen("127.0.0.1", a.port()).code() == taba::Status::Code::kIoError);
    int pending = 3;
    for (Server* srv : {&a, &b, &c}) srv->shutdown([&pending] { --pending; });
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(pending == 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("http server: destroyed with open connections or from its shutdown callback", "[http]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::shared_ptr<Exchange> kept;  // an exchange that outlives its server
  auto router = [&kept](const std::shared_ptr<Exchange>& ex) -> std::unique_ptr<RequestHandler> {
    if (ex->request().path == "/keep") {
      kept = ex;
      return std::make_unique<SilentHandler>();  // the reply is left to `kept`
    }
    ex->reply(Response::text(200, "hello"));
    return nullptr;
  };
  auto pump_until = [&loop](const std::function<bool()>& pred) {
    for (int i = 0; i < 2000 && !pred(); ++i) {
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(1ms);
    }
    return pred();
  };

  // Destroyed while a connection is open and a request awaits its reply.
  auto srv = std::make_unique<Server>(&loop, ServerOptions{}, router);
  REQUIRE(srv->listen("127.0.0.1", 0).ok());
  {
    Client c(srv->port());
    REQUIRE(c.send(get("/hello") + get("/keep")));
    REQUIRE(pump_until([&] { return kept != nullptr; }));
    CHECK(kept->alive());
    srv.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_FALSE(kept->alive());
    kept->reply(Response::text(200, "late"));  // a no-op, not a crash
    CHECK(kept->replied());
    kept.reset();
    ClientResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.body == "hello");
    CHECK(c.closed_within(3000));
  }

  // Destroyed from its shutdown callback, with a connection to close.
  srv = std::make_unique<Server>(&loop, ServerOptions{}, router);
  REQUIRE(srv->listen("127.0.0.1", 0).ok());
  {
    Client c(srv->port());
    REQUIRE(c.send(get("/hello")));
    REQUIRE(pump_until([&] { return srv->stats().requests == 1; }));
    srv->shutdown([&srv] { srv.reset(); });
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(srv == nullptr);
  }

  // Destroyed from its shutdown callback, with no connection.
  srv = std::make_unique<Server>(&loop, ServerOptions{}, router);
  REQUIRE(srv->listen("127.0.0.1", 0).ok());
  bool called = false;
  srv->shutdown([&] {
    called = true;
    srv.reset();
  });
  CHECK_FALSE(called);  // not from inside shutdown()
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(called);
  CHECK(srv == nullptr);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("http server: an adopted socketpair end is served like an accepted connection", "[http]") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    Server server(&loop, ServerOptions{}, [](const std::shared_ptr<Exchange>& ex) -> std::unique_ptr<RequestHandler> {
      ex->reply(Response::text(200, "adopted " + ex->request().path + "\n"));
      return nullptr;
    });
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    REQUIRE(server.adopt(fds[0]).ok());
    CHECK(server.stats().connections_accepted == 1);
    const std::string request = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
    REQUIRE(::write(fds[1], request.data(), request.size()) == static_cast<ssize_t>(request.size()));
    for (int i = 0; i < 100 && server.stats().connections_active > 0; ++i) uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(server.stats().connections_active == 0);  // closed after "Connection: close"
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[1], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(fds[1]);
    CHECK(out.find("adopted /a\n") != std::string::npos);
    CHECK(out.find("adopted /b\n") != std::string::npos);
    CHECK(out.find("adopted /a\n") < out.find("adopted /b\n"));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
