// The C++ client library retries a batch only through the address that first
// (possibly) received it: an agent deduplicates the batch ids it took, not
// those another agent took (docs/client.md, "Batches, retries and
// exactly-once").
//
// The endpoint is http://localhost:PORT with `localhost` resolving to
// 127.0.0.1 and ::1, a real tabad agent on each, on the same port. The first
// address (in getaddrinfo's order) is the "first agent": a relay there that
// loses replies, in front of a real agent. Where /etc/hosts gives localhost
// one address only, each test runs again (this binary, that test alone) in a
// private mount namespace (unshare -rm) whose /etc/hosts gives it both: the
// system's resolver, real listeners.
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "agent_support.h"
#include "harness.h"
#include "http/client.h"
#include "lossy_relay.h"
#include "taba/client.hpp"

using taba::test::AgentStatus;
using taba::test::LossyRelay;
using taba::test::TabadProcess;

namespace {

constexpr const char* kInNamespace = "TABA_TEST_IN_HOSTS_NAMESPACE";

// The IP addresses of `localhost` in the order the client tries them (the
// same getaddrinfo hints as src/http/client.cpp).
std::vector<std::string> localhost_addresses(int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  std::string port_text = std::to_string(port);
  int rc = ::getaddrinfo("localhost", port_text.c_str(), &hints, &list);
  if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME) {
    hints.ai_flags = AI_NUMERICSERV;
    rc = ::getaddrinfo("localhost", port_text.c_str(), &hints, &list);
  }
  std::vector<std::string> out;
  if (rc != 0) return out;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    char host[NI_MAXHOST] = {};
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0) {
      out.emplace_back(host);
    }
  }
  ::freeaddrinfo(list);
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string host_port(const std::string& ip, int port) {
  return ip.find(':') != std::string::npos ? "[" + ip + "]:" + std::to_string(port) : ip + ":" + std::to_string(port);
}

// True when localhost has both addresses here. Else runs the current test
// again in a private mount namespace where it has, requires that it passed,
// and returns false.
bool runs_here() {
  std::vector<std::string> addrs = localhost_addresses(80);
  bool v4 = std::find(addrs.begin(), addrs.end(), "127.0.0.1") != addrs.end();
  bool v6 = std::find(addrs.begin(), addrs.end(), "::1") != addrs.end();
  if (v4 && v6) return true;
  INFO("localhost resolves to " << joined(addrs));
  REQUIRE(std::getenv(kInNamespace) == nullptr);  // the namespace's /etc/hosts did not do it
  std::string unshare = taba::test::find_on_path("unshare");
  if (unshare.empty()) FAIL("no unshare(1) to run this test where localhost resolves to 127.0.0.1 and ::1");
  char exe[PATH_MAX] = {};
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  taba::test::TempDir dir("client-pin-hosts");
  std::string hosts = dir.path + "/hosts";
  REQUIRE(taba::test::write_text_file(hosts, "127.0.0.1 localhost\n::1 localhost\n").ok());
  const std::string test_name = Catch::getResultCapture().getCurrentTestName();
  auto run = taba::test::run_process(
      {unshare, "-rm", "/bin/sh", "-c", std::string("mount --bind \"$0\" /etc/hosts && ") + kInNamespace + "=1 exec \"$@\"",
       hosts, exe, test_name},
      {}, 110000);
  REQUIRE(run.ok());
  INFO("in a private mount namespace:\n" << run->out << run->err);
  REQUIRE(run->exit_code == 0);
  return false;
}

// A port free on both 127.0.0.1 and ::1 a moment ago.
int port_free_on_both() {
  for (int i = 0; i < 50; ++i) {
    int port = taba::test::free_port();
    REQUIRE(port != 0);
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (free) return port;
  }
  FAIL("no port free on both 127.0.0.1 and ::1");
  return 0;
}

// An agent listening on ip:port (TabadProcess listens on 127.0.0.1 only),
// killed at scope exit.
class AgentAt {
 public:
  AgentAt(const std::string& ip, int port, const std::string& config, const std::string& dir)
      : url_("http://" + host_port(ip, port)) {
    auto pid = taba::test::spawn_logged({taba::test::tabad_path(), "--listen", host_port(ip, port), "--data-dir", dir,
                                         "--config", config},
                                        dir + "/tabad.log", true);
    REQUIRE(pid.ok());
    pid_ = pid.value();
    bool up = taba::test::eventually(
        [&] {
          auto r = taba::test::get(url_, "/healthz", "text/plain", 1000);
          return r.ok() && r->status == 200;
        },
        20000);
    INFO(taba::test::read_file(dir + "/tabad.log"));
    REQUIRE(up);
  }
  ~AgentAt() {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  AgentAt(const AgentAt&) = delete;
  AgentAt& operator=(const AgentAt&) = delete;
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  pid_t pid_ = -1;
};

// An fe; agent A (127.0.0.1, a free port) behind a relay at the first
// address of localhost:port that loses every reply; agent B at the second
// address, same port.
struct TwoAgents {
  taba::test::TempDir dir{"client-pin"};
  taba::test::TempDir b_dir{"client-pin-b"};
  TabadProcess fe;
  TabadProcess agent_a;
  std::string a_config;
  std::optional<LossyRelay> relay;
  std::optional<AgentAt> agent_b;
  int port = 0;
  std::string first;

  TwoAgents() {
    REQUIRE_OK(fe.start({"--config", taba::test::fe_config(dir.path)}));
    port = port_free_on_both();
    std::vector<std::string> addrs = localhost_addresses(port);
    INFO(joined(addrs));
    REQUIRE(addrs.size() >= 2);
    first = addrs[0];
    a_config = taba::test::agent_config(dir.path, fe.port());
    REQUIRE_OK(agent_a.start({"--config", a_config}));
    relay.emplace(agent_a.url(), 1'000'000, first, port);
    agent_b.emplace(addrs[1], port, a_config, b_dir.path);
  }

  // The fe's 1d count and total of `name`, after the agents forwarded.
  taba::test::Agg day(const std::string& name) {
    REQUIRE(taba::test::wait_drained(agent_b->url(), 15000));
    if (agent_a.running()) REQUIRE(taba::test::wait_drained(agent_a, 15000));
    taba::test::fe_flush(fe);
    return taba::test::tabs_json(fe, "name=" + name, "/1d/count", "/1d/total")[name];
  }
};

taba::ClientOptions pin_options(int port, const std::string& client_id) {
  taba::ClientOptions o;
  o.endpoint = "http://localhost:" + std::to_string(port);
  o.client_id = client_id;
  o.flush_interval = std::chrono::hours(1);  // sent by Flush() only
  o.timeout_ms = 1000;
  return o;
}

// Records 100 events and posts them once: agent A spools them, the relay
// loses its 200.
void lose_first_reply(taba::Client& client, TwoAgents& t) {
  for (int i = 0; i < 100; ++i) client.Counter("pin.count");
  CHECK_FALSE(client.Flush(std::chrono::milliseconds(300)));
  REQUIRE(taba::test::eventually([&] { return taba::test::agent_status(t.agent_a).events_spooled == 100; }, 10000));
  REQUIRE(client.Status().posts_failed >= 1);
}

}  // namespace

TEST_CASE("client library: a client retries a batch only through the agent that first received it", "[client]") {
  if (!runs_here()) return;
  TwoAgents t;
  taba::Client client(pin_options(t.port, "lib-pin"));
  // The first agent takes the body and dies before answering: its address
  // refuses connections from then on, also to the HTTP layer's immediate
  // second try on a new connection. The retries go there only, never to
  // the other agent.
  t.relay->die_with_lost_replies();
  lose_first_reply(client, t);
  // (Killed after forwarding what it spooled, so that the batch id is in its
  // journal when it comes back.)
  REQUIRE(taba::test::wait_drained(t.agent_a, 15000));
  t.relay.reset();
  t.agent_a.kill9();
  REQUIRE(t.agent_a.wait_exit(10000).ok());
  uint64_t failed_before = client.Status().posts_failed;
  CHECK_FALSE(client.Flush(std::chrono::milliseconds(1500)));
  taba::ClientStatus s = client.Status();
  INFO(s.last_error);
  CHECK(s.posts_failed >= failed_before + 3);
  CHECK_THAT(s.last_error, Catch::Contains("connection refused") &&
                               Catch::Contains(" at " + host_port(t.first, t.port)));
  CHECK(s.repinned == 0);
  AgentStatus b = taba::test::agent_status(t.agent_b->url());
  REQUIRE(b.ok);
  CHECK(b.accepted == 0);

  // It comes back: the retry reaches it, and it knows the batch id.
  REQUIRE_OK(t.agent_a.start({"--config", t.a_config}));
  t.relay.emplace(t.agent_a.url(), 0, t.first, t.port);
  CHECK(client.Flush(std::chrono::seconds(10)));
  s = client.Status();
  CHECK(s.sent == 100);
  CHECK(s.retry_events == 0);
  CHECK(s.repinned == 0);
  CHECK(taba::test::agent_status(t.agent_a).duplicates == 1);
  CHECK(taba::test::agent_status(t.agent_b->url()).accepted == 0);
  taba::test::Agg day = t.day("pin.count");
  CHECK(day.count == 100);
  CHECK(day.total == 100);
  client.Stop();
}

TEST_CASE("client library: past retry_pin_timeout a batch goes to another agent and counts in repinned",
          "[client]") {
  if (!runs_here()) return;
  TwoAgents t;
  auto o = pin_options(t.port, "lib-repin");
  o.retry_pin_timeout = std::chrono::milliseconds(1000);
  taba::Client client(o);
  lose_first_reply(client, t);
  t.relay.reset();  // the first agent's address refuses; the agent forwards what it took

  CHECK(client.Flush(std::chrono::seconds(10)));
  taba::ClientStatus s = client.Status();
  INFO(s.last_error);
  CHECK(s.sent == 100);
  CHECK(s.retry_events == 0);
  CHECK(s.repinned == 1);
  CHECK_THAT(s.last_error, Catch::Contains("may be counted twice") &&
                               Catch::Contains("pinned to " + host_port(t.first, t.port)));
  CHECK(taba::test::agent_status(t.agent_b->url()).accepted == 1);
  // The duplicate the counter warns of: both agents forwarded the body.
  taba::test::Agg day = t.day("pin.count");
  CHECK(day.count == 200);
  CHECK(day.total == 200);
  client.Stop();
}
