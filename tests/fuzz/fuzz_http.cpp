// libFuzzer: HTTP request handling up to the router. The input bytes are
// written, in pieces, into one end of a socketpair whose other end the real
// server serves (Server::adopt): llhttp, the header and body limits,
// Content-Length and chunked bodies, pipelining, early and late replies.
// The router below takes the query through the real parsers and behaves
// by path, so that every way a handler may answer is exercised:
//   /echo...      reads the body and answers when it is complete
//   /early...     answers on the first body chunk, before the body ends
//   /later...     answers one loop turn after the body is complete
//   /big...       answers with a body larger than the socket buffer
//   /empty...     answers 204 (a status without a body)
//   /none...      neither answers nor gives a handler (the server's 500)
//   /throw...     the router throws; /throwbody... and /throwdone... the handler
//   anything else is declined with a 404 from the router itself
// Invariants checked on what the server wrote back: a sequence of whole,
// well-formed responses (status line, headers, one Connection header, a
// Content-Length exactly when the status has a body), nothing after a
// "Connection: close", and exactly the router's replies, in order (each
// carries an X-Fz sequence number). The connection must close by itself
// once the client half-closes and every reply is out.
//
// Input: byte 0 sets the size of the pieces written between loop turns
// (0: all at once); the rest is the client's byte stream.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/matcher.h"
#include "http/server.h"
#include "http/url.h"
#include "query/accept.h"
#include "query/params.h"

namespace {

using taba::http::Exchange;
using taba::http::Request;
using taba::http::RequestHandler;
using taba::http::Response;

// Larger than an AF_UNIX socket buffer, so the reply is written in parts.
constexpr size_t kBigBody = 512 * 1024;
// Loop turns allowed after the client half-closed, before it counts as a hang.
constexpr int kMaxTurns = 2000;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

struct Harness {
  uint64_t next_seq = 1;
  std::vector<uint64_t> sent;                  // X-Fz numbers of the replies made, in order
  std::vector<std::shared_ptr<Exchange>> later;  // to answer on the next loop turn

  void reply(const std::shared_ptr<Exchange>& ex, Response r) {
    if (ex->replied()) return;
    uint64_t seq = next_seq++;
    r.headers.push_back({"X-Fz", std::to_string(seq)});
    if (ex->alive()) sent.push_back(seq);
    ex->reply(std::move(r));
  }

  void answer_later() {
    auto pending = std::move(later);
    later.clear();
    for (auto& ex : pending) reply(ex, Response::text(200, "later\n"));
  }
};

Harness* g_harness = nullptr;

// The query goes through the parsers of the real routes, with their allowed keys.
void parse_query_like_the_routes(const Request& req) {
  std::string decoded;
  (void)taba::http::percent_decode(req.path, &decoded);
  (void)taba::http::parse_query(req.query);
  auto p = taba::query::parse_params(req.query, "", {"name", "client", "re"});
  if (p.ok()) {
    auto m = taba::Matcher::make(p->names, p->re, p->has_name);
    if (m.ok()) (void)m->matches(req.path);
  }
  (void)taba::query::parse_params(req.query, "", {"tabs", "name", "re"});
  (void)taba::query::parse_params(req.query, "", {});
  (void)taba::query::negotiate(req.header("accept"), {"text/plain", "application/json"});
}

class FuzzHandler final : public RequestHandler {
 public:
  enum class Mode { kEcho, kEarly, kLater, kBig, kEmpty, kThrowBody, kThrowDone };
  FuzzHandler(std::shared_ptr<Exchange> ex, Mode mode) : ex_(std::move(ex)), mode_(mode) {}

  void on_body(std::string_view chunk) override {
    check(!ex_->replied() && !completed_);  // no body after a reply or the end
    received_ += chunk.size();
    if (mode_ == Mode::kEarly) g_harness->reply(ex_, Response::text(400, "early\n"));
    if (mode_ == Mode::kThrowBody) throw std::runtime_error("fuzz: on_body");
  }

  void on_complete() override {
    check(!ex_->replied() && !completed_);
    completed_ = true;
    const Request& req = ex_->request();
    // A body of declared length arrives whole (a chunked one has none).
    if (req.content_length && !req.chunked) check(received_ == *req.content_length);
    switch (mode_) {
      case Mode::kLater:
        g_harness->later.push_back(ex_);
        return;
      case Mode::kBig:
        g_harness->reply(ex_, Response::text(200, std::string(kBigBody, 'x')));
        return;
      case Mode::kEmpty:
        g_harness->reply(ex_, Response::text(204, "dropped: 204 has no body\n"));
        return;
      case Mode::kThrowDone:
        throw std::runtime_error("fuzz: on_complete");
      default:
        g_harness->reply(ex_, Response::text(200, "received " + std::to_string(received_) + "\n"));
        return;
    }
  }

 private:
  std::shared_ptr<Exchange> ex_;
  Mode mode_;
  uint64_t received_ = 0;
  bool completed_ = false;
};

std::unique_ptr<RequestHandler> route(const std::shared_ptr<Exchange>& ex) {
  const Request& req = ex->request();
  // What the server hands over is consistent with the request-target.
  check(req.path.find('?') == std::string::npos);
  check(req.target == (req.target.size() > req.path.size() ? req.path + "?" + req.query : req.path));
  for (const auto& h : req.headers) {
    for (char c : h.name) check(!(c >= 'A' && c <= 'Z'));
  }
  parse_query_like_the_routes(req);

  using Mode = FuzzHandler::Mode;
  std::string_view path = req.path;
  if (starts_with(path, "/throwbody")) return std::make_unique<FuzzHandler>(ex, Mode::kThrowBody);
  if (starts_with(path, "/throwdone")) return std::make_unique<FuzzHandler>(ex, Mode::kThrowDone);
  if (starts_with(path, "/throw")) throw std::runtime_error("fuzz: router");
  if (starts_with(path, "/none")) return nullptr;
  if (starts_with(path, "/echo")) return std::make_unique<FuzzHandler>(ex, Mode::kEcho);
  if (starts_with(path, "/early")) return std::make_unique<FuzzHandler>(ex, Mode::kEarly);
  if (starts_with(path, "/later")) return std::make_unique<FuzzHandler>(ex, Mode::kLater);
  if (starts_with(path, "/big")) return std::make_unique<FuzzHandler>(ex, Mode::kBig);
  if (starts_with(path, "/empty")) return std::make_unique<FuzzHandler>(ex, Mode::kEmpty);
  g_harness->reply(ex, Response::text(404, "no such route\n"));
  return nullptr;
}

bool status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

// Checks the bytes the server wrote: whole responses, and the X-Fz numbers
// in the order the router replied. A body may be missing only in answer to
// HEAD (then Content-Length still gives its size).
void check_responses(std::string_view out, bool saw_head, const std::vector<uint64_t>& sent) {
  size_t next_sent = 0;
  bool closed = false;
  while (!out.empty()) {
    check(!closed);  // nothing after "Connection: close"
    check(starts_with(out, "HTTP/1.1 ") && out.size() >= 13);
    int status = 0;
    for (size_t i = 9; i < 12; ++i) {
      check(out[i] >= '0' && out[i] <= '9');
      status = status * 10 + (out[i] - '0');
    }
    check(out[12] == ' ');
    size_t end = out.find("\r\n\r\n");
    check(end != std::string_view::npos);
    std::string_view head = out.substr(0, end + 2);
    out.remove_prefix(end + 4);
    size_t eol = head.find("\r\n");
    head.remove_prefix(eol + 2);  // the status line
    int connection_headers = 0;
    int length_headers = 0;
    uint64_t length = 0;
    bool has_seq = false;
    while (!head.empty()) {
      eol = head.find("\r\n");
      std::string_view line = head.substr(0, eol);
      head.remove_prefix(eol + 2);
      size_t colon = line.find(": ");
      check(colon != std::string_view::npos && colon > 0);
      check(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos);
      std::string_view name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 2);
      if (name == "Connection") {
        ++connection_headers;
        check(value == "keep-alive" || value == "close");
        closed = value == "close";
      } else if (name == "Content-Length") {
        ++length_headers;
        check(!value.empty() && value.size() < 20);
        for (char c : value) {
          check(c >= '0' && c <= '9');
          length = length * 10 + static_cast<uint64_t>(c - '0');
        }
      } else if (name == "X-Fz") {
        check(!has_seq && next_sent < sent.size() && value == std::to_string(sent[next_sent]));
        has_seq = true;
        ++next_sent;
      }
    }
    if (status == 100) {  // the interim "100 Continue": a bare status line
      check(connection_headers == 0 && length_headers == 0 && !has_seq);
      continue;
    }
    check(connection_headers == 1);
    check(length_headers == (status_has_body(status) ? 1 : 0));
    if (length == 0) continue;
    if (saw_head && (out.empty() || starts_with(out, "HTTP/1.1 "))) continue;  // answer to HEAD: no body
    check(out.size() >= length);
    out.remove_prefix(length);
  }
  check(next_sent == sent.size());  // every reply made on a live exchange went out
}

uv_loop_t* loop() {
  static uv_loop_t* l = [] {
    std::signal(SIGPIPE, SIG_IGN);
    taba::log::set_level(taba::log::Level::kError);
    auto* lp = new uv_loop_t;
    uv_loop_init(lp);
    return lp;
  }();
  return l;
}

// Reads what the server wrote so far; false once it closed its side.
bool drain(int fd, std::string* out) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uv_loop_t* lp = loop();
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  // At most 64 pieces, so that tiny pieces of a long input stay fast.
  size_t piece = data[0] == 0 ? input.size() : std::max<size_t>(data[0], input.size() / 64);
  if (piece == 0) piece = 1;

  Harness harness;
  g_harness = &harness;
  taba::http::ServerOptions options;
  options.max_header_bytes = 1024;
  options.max_body_bytes = 4096;
  auto server = std::make_unique<taba::http::Server>(lp, options, route);
  int fds[2];
  check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  check(server->adopt(fds[0]).ok());
  const int client = fds[1];

  std::string out;
  bool server_open = true;
  auto turn = [&] {
    uv_run(lp, UV_RUN_NOWAIT);
    harness.answer_later();
    uv_run(lp, UV_RUN_NOWAIT);
    if (server_open) server_open = drain(client, &out);
  };
  size_t pos = 0;
  int stalled = 0;  // turns in a row in which the server took nothing
  while (pos < input.size() && server_open && stalled < kMaxTurns) {
    size_t n = std::min(piece, input.size() - pos);
    ssize_t w = write(client, input.data() + pos, n);
    if (w > 0) pos += static_cast<size_t>(w);
    if (w < 0 && errno != EAGAIN) break;  // the server closed the connection
    stalled = w > 0 ? 0 : stalled + 1;
    turn();
  }
  shutdown(client, SHUT_WR);
  int turns = 0;
  while (server->stats().connections_active > 0 && turns++ < kMaxTurns) turn();
  check(server->stats().connections_active == 0);  // no connection left hanging
  while (server_open) server_open = drain(client, &out);
  close(client);
  server.reset();
  uv_run(lp, UV_RUN_NOWAIT);
  harness.later.clear();

  check_responses(out, input.find("HEAD") != std::string_view::npos, harness.sent);
  g_harness = nullptr;
  return 0;
}
