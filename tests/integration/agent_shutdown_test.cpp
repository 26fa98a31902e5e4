// The agent's SIGTERM drain (docs/operations.md, "SIGTERM") against an fe
// that never answers: a request in flight must end with the grace, not
// with agent.forward_timeout_ms, and its batch must stay in the spool for
// the next start.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "agent_support.h"
#include "harness.h"

using namespace taba;
using namespace taba::test;

namespace {

// A loopback listener that accepts connections and never writes a byte:
// an fe hung in the middle of a request. Its connections stay open until
// it is destroyed.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(fd_ >= 0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          accepted_.push_back(c);
          ++connections_;
        }
      }
    });
  }
  ~SilentServer() {
    stop_ = true;
    thread_.join();
    for (int c : accepted_) ::close(c);
    ::close(fd_);
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::vector<int> accepted_;  // the accepting thread's
  std::thread thread_;
};

}  // namespace

TEST_CASE("agent: a forwarding request in flight at SIGTERM ends by the grace, not its timeout, and its batch "
          "arrives once after a restart",
          "[e2e][agent]") {
  TempDir dir("agent-silent");
  SilentServer silent;
  // A minute per request: without the cut at the grace, SIGTERM would wait
  // that long for the silent fe.
  TabadProcess agent;
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, silent.port(),
                                                   "forward_timeout_ms = 60000\nshutdown_grace_ms = 1000\n"
                                                   "forward_concurrency = 1\n")}));
  double t = now_s();
  REQUIRE(status_of(agent.post("/post", totals_body("sc", "silent.once", 6, 1.5, t))) == 200);
  AgentStatus s;
  REQUIRE(eventually(
      [&] {
        s = agent_status(agent);
        return s.ok && s.in_flight == 1 && silent.connections() >= 1;
      },
      10000));
  sleep_ms(300);  // well inside the request: the body was sent, no answer comes

  int64_t t0 = now_ms();
  REQUIRE_OK(agent.signal(SIGTERM));
  auto code = agent.wait_exit(10000);
  int64_t took = now_ms() - t0;
  INFO("exited " << took << " ms after SIGTERM");
  REQUIRE(code.ok());
  CHECK(code.value() == 0);
  // The grace (1 s) and a little for the drain timer and the process's exit.
  CHECK(took < 2500);
  CHECK(agent.log_text().find("1 batch(es) with 6 events stay spooled") != std::string::npos);

  // Restarted against a working fe: the batch goes once.
  TabadProcess fe;
  REQUIRE_OK(fe.start({"--config", fe_config(dir.path)}));
  REQUIRE_OK(agent.start({"--config", agent_config(dir.path, fe.port(), "forward_concurrency = 1\n")}));
  REQUIRE(wait_drained(agent, 15000));
  fe_flush(fe);
  auto got = tabs_json(fe, "name=silent.once");
  CHECK(got["silent.once"].count == 6);
  CHECK(got["silent.once"].total == Approx(9.0));
  CHECK(agent_status(agent).forwarded_events == 6);
}
