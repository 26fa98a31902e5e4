#include "cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "harness.h"

namespace taba::nemesis {

namespace {

constexpr const char* kFaketimeLibs[] = {"/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                         "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"};

constexpr uint64_t kNoLimit = 1ull << 40;

std::string quoted_list(const std::vector<int>& ports) {
  std::string out = "[";
  for (size_t i = 0; i < ports.size(); ++i) out += fmt::format("{}\"127.0.0.1:{}\"", i ? ", " : "", ports[i]);
  return out + "]";
}

}  // namespace

// This program is built with the same flags as the tabad it runs. Under
// AddressSanitizer, libfaketime hangs the process at start-up (the sanitizer's
// runtime reads the clock before libfaketime is initialised), so a sanitized
// run has no clock steps.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

Cluster::Cluster(StoreMode mode, std::string tabad, std::string dir)
    : mode_(mode), tabad_(std::move(tabad)), dir_(std::move(dir)) {
  if (kSanitized) return;
  for (const char* lib : kFaketimeLibs) {
    if (::access(lib, R_OK) == 0) {
      faketime_lib_ = lib;
      break;
    }
  }
}

Cluster::~Cluster() {
  for (auto& n : nodes_) {
    if (n->pid > 0) {
      ::kill(n->pid, SIGKILL);
      ::waitpid(n->pid, nullptr, 0);
    }
  }
  for (auto& l : links_) l->stop();
}

Node* Cluster::add(const std::string& name, const std::string& roles) {
  auto n = std::make_unique<Node>();
  n->name = name;
  n->roles = roles;
  n->port = test::free_port();
  n->dir = dir_ + "/" + name;
  std::filesystem::create_directories(n->dir);
  n->clock_file = n->dir + "/clock";
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

std::string Cluster::write_config(Node* n, const std::string& text) {
  n->config = n->dir + "/taba.toml";
  (void)test::write_text_file(n->config, "[server]\nself_tabs_interval_s = 0\n" + text);
  return n->config;
}

Status Cluster::start() {
  std::string redis_toml;
  if (mode_ == StoreMode::kRedis) {
    redis_ = std::make_unique<RedisCluster>();
    RedisCluster::Options o;
    o.shards = 2;
    o.replicas_per_shard = 1;
    o.sentinels = 3;
    o.down_after_ms = 1000;
    o.failover_timeout_ms = 3000;
    TABA_RETURN_IF_ERROR(redis_->start(o));
    // An acknowledged post is on the replica too, so a failover loses none.
    redis_toml = redis_->toml(1024, {"min_replica_acks = 1", "claim_idle_ms = 3000"});
    for (const char* name : {"fe0", "fe1"}) add(name, "fe");
    for (const char* name : {"be0", "be1"}) add(name, "be");
    add("ctrl", "ctrl");
  } else {
    add("server", "fe,be");
  }
  std::vector<Node*> fes = this->fes();
  for (int i = 0; i < 2; ++i) add(fmt::format("agent{}", i), "agent");
  Node* proxy = add("proxy", "client-proxy");
  statsd_port_ = test::free_udp_port();

  std::string error;
  auto link = [&](const std::string& name, int target) -> Link* {
    links_.push_back(std::make_unique<Link>(name, target));
    if (!links_.back()->start(&error)) return nullptr;
    return links_.back().get();
  };
  for (Node* fe : fes) {
    write_config(fe, mode_ == StoreMode::kRedis ? redis_toml : "[store]\ndedup_ttl_s = 3600\n");
  }
  for (Node* n : nodes()) {
    if (n->roles == "be" || n->roles == "ctrl") write_config(n, redis_toml);
  }
  for (int i = 0; i < 2; ++i) {
    Node* agent = node(fmt::format("agent{}", i));
    std::vector<int> endpoints;
    for (size_t j = 0; j < fes.size(); ++j) {
      Link* l = link(fmt::format("agent{}->{}", i, fes[j]->name), fes[j]->port);
      if (l == nullptr) return Status::IoError("link: " + error);
      endpoints.push_back(l->port());
    }
    Link* l = link(fmt::format("client{}->agent{}", i, i), agent->port);
    if (l == nullptr) return Status::IoError("link: " + error);
    client_links_[i] = l;
    write_config(agent, fmt::format("[agent]\nlisten = \"127.0.0.1:{}\"\nendpoints = {}\nforward_timeout_ms = 3000\n"
                                    "backoff_initial_ms = 100\nbackoff_max_ms = 1000\nshutdown_grace_ms = 2000\n",
                                    agent->port, quoted_list(endpoints)));
  }
  Link* pl = link("proxy->agent0", node("agent0")->port);
  if (pl == nullptr) return Status::IoError("link: " + error);
  write_config(proxy, fmt::format("[client_proxy]\nlisten = \"127.0.0.1:{}\"\nstatsd_udp = \"127.0.0.1:{}\"\n"
                                  "agent = \"http://127.0.0.1:{}\"\nclient_id = \"statsd\"\nforward_timeout_ms = 3000\n",
                                  proxy->port, statsd_port_, pl->port()));

  for (Node* n : nodes()) {
    (void)test::write_text_file(n->clock_file, "+0\n");
    TABA_RETURN_IF_ERROR(spawn(n));
  }
  for (Node* n : nodes()) TABA_RETURN_IF_ERROR(wait_healthy(n, 20'000));
  for (Node* fe : fes) {
    if (!test::eventually([&] { return test::status_of(test::get(fe->url(), "/readyz", "", 1000)) == 200; },
                          20'000, 100)) {
      return Status::Internal(fmt::format("{} never became ready:\n{}", fe->name, log_tail(fe)));
    }
  }
  return Status::Ok();
}

Status Cluster::spawn(Node* n) {
  std::vector<std::string> args{"/usr/bin/env"};
  if (!faketime_lib_.empty()) {
    args.push_back("LD_PRELOAD=" + faketime_lib_);
    args.push_back("FAKETIME_TIMESTAMP_FILE=" + n->clock_file);
    args.push_back("FAKETIME_CACHE_DURATION=1");
    // Only the wall clock steps, as an NTP step does: the monotonic clock
    // (timers, timeouts) and file times stay real.
    args.push_back("FAKETIME_DONT_FAKE_MONOTONIC=1");
    args.push_back("NO_FAKE_STAT=1");
  }
  args.push_back(tabad_);
  args.insert(args.end(), {"--role", n->roles, "--config", n->config, "--data-dir", n->dir + "/data"});
  if (n->roles == "fe" || n->roles == "be" || n->roles == "ctrl" || n->roles == "fe,be") {
    args.insert(args.end(), {"--listen", fmt::format("127.0.0.1:{}", n->port)});
  }
  // An agent's disk can fill (limit_file_size): SIGXFSZ is ignored from the
  // start, through a file size limit nothing reaches.
  auto pid = test::spawn_logged(args, n->dir + "/tabad.log", false, n->is_agent() ? kNoLimit : 0);
  TABA_RETURN_IF_ERROR(pid.status());
  n->pid = pid.value();
  n->paused = false;
  return Status::Ok();
}

Status Cluster::wait_healthy(Node* n, int timeout_ms) {
  bool ok = test::eventually(
      [&] {
        if (!alive(n)) return false;
        return test::status_of(test::get(n->url(), "/healthz", "", 1000)) == 200;
      },
      timeout_ms, 50);
  if (ok) return Status::Ok();
  return Status::Internal(fmt::format("{} is not healthy after {} ms:\n{}", n->name, timeout_ms, log_tail(n)));
}

std::vector<Node*> Cluster::nodes() {
  std::vector<Node*> out;
  for (auto& n : nodes_) out.push_back(n.get());
  return out;
}

Node* Cluster::node(const std::string& name) {
  for (auto& n : nodes_) {
    if (n->name == name) return n.get();
  }
  return nullptr;
}

std::vector<Node*> Cluster::fes() {
  std::vector<Node*> out;
  for (auto& n : nodes_) {
    if (n->roles == "fe" || n->roles == "fe,be") out.push_back(n.get());
  }
  return out;
}

std::vector<Node*> Cluster::agents() { return {node("agent0"), node("agent1")}; }

Node* Cluster::query_node() { return mode_ == StoreMode::kRedis ? node("ctrl") : node("server"); }

Link* Cluster::client_link(int agent) { return client_links_.at(agent); }

std::vector<Link*> Cluster::links() {
  std::vector<Link*> out;
  for (auto& l : links_) out.push_back(l.get());
  return out;
}

void Cluster::kill9(Node* n) {
  if (n->pid <= 0) return;
  ::kill(n->pid, SIGKILL);
  ::waitpid(n->pid, nullptr, 0);
  n->pid = -1;
  n->paused = false;
}

bool Cluster::alive(Node* n) {
  if (n->pid <= 0) return false;
  if (::waitpid(n->pid, nullptr, WNOHANG) == n->pid) {
    n->pid = -1;
    return false;
  }
  return true;
}

Status Cluster::restart(Node* n) {
  if (alive(n)) return Status::Ok();
  TABA_RETURN_IF_ERROR(spawn(n));
  return wait_healthy(n, 20'000);
}

void Cluster::pause(Node* n) {
  if (n->pid > 0 && !n->paused) {
    ::kill(n->pid, SIGSTOP);
    n->paused = true;
  }
}

void Cluster::resume(Node* n) {
  if (n->pid > 0 && n->paused) ::kill(n->pid, SIGCONT);
  n->paused = false;
}

void Cluster::step_clock(Node* n, int seconds) {
  n->clock_step_s = seconds;
  (void)test::write_text_file(n->clock_file, fmt::format("{:+d}s\n", seconds));
}

void Cluster::limit_file_size(Node* n, uint64_t bytes) {
  if (n->pid > 0) (void)test::set_file_size_limit(n->pid, bytes == 0 ? kNoLimit : bytes);
}

std::string Cluster::log_tail(const Node* n, size_t bytes) const {
  std::string text = test::read_file(n->dir + "/tabad.log");
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace taba::nemesis
