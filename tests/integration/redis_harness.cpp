// RedisCluster: redis-server and redis-sentinel child processes for tests.
#include "redis_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "harness.h"

namespace taba::test {

namespace {

constexpr int kPingTimeoutMs = 10'000;  // one process answering PING after spawn
constexpr int kConvergeTimeoutMs = 15'000;
constexpr int kFailoverTimeoutMs = 30'000;
constexpr int kQueryTimeoutMs = 1'000;   // one command of the harness's own
constexpr int kSignalTimeoutMs = 5'000;  // SIGSTOP / SIGCONT taking effect
constexpr int kStartAttempts = 3;


// $env if set, else `name` found on PATH, else empty.
std::string find_program(const char* env, const char* name) {
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return v;
  return find_on_path(name);
}

std::string read_tail(const std::string& path, size_t max = 3000) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("(no log at {})", path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  if (s.size() > max) s = "..." + s.substr(s.size() - max);
  return s.empty() ? "(log is empty)" : s;
}

bool parse_int(std::string_view text, int64_t* out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && p == text.data() + text.size();
}

// ---------------------------------------------------------------------------
// A minimal blocking RESP2 client: one connection per command, every step
// bounded by the deadline. Enough for PING, INFO, ROLE and SENTINEL queries.

struct Reply {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string str;  // string, status and error replies
  int64_t integer = 0;
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::kError; }
  // The reply as one line of text, for messages.
  std::string describe() const {
    switch (type) {
      case Type::kString:
      case Type::kStatus:
        return str;
      case Type::kError:
        return "(error) " + str;
      case Type::kInteger:
        return std::to_string(integer);
      case Type::kNil:
        return "(nil)";
      case Type::kArray: {
        std::string out = "[";
        for (size_t i = 0; i < elements.size(); ++i) out += (i ? ", " : "") + elements[i].describe();
        return out + "]";
      }
    }
    return {};
  }
  // The value after `key` in a flat key/value array (SENTINEL MASTER), or "".
  std::string field(std::string_view key) const {
    for (size_t i = 0; i + 1 < elements.size(); i += 2) {
      if (elements[i].str == key) return elements[i + 1].str;
    }
    return {};
  }
};

// 1: *out holds a complete reply ending before *pos; 0: need more bytes;
// -1: malformed.
int parse_reply(const std::string& buf, size_t* pos, Reply* out, int depth = 0) {
  if (depth > 8) return -1;
  size_t eol = buf.find("\r\n", *pos);
  if (eol == std::string::npos) return 0;
  if (eol == *pos) return -1;
  char kind = buf[*pos];
  std::string_view line(buf.data() + *pos + 1, eol - *pos - 1);
  size_t next = eol + 2;
  int64_t n = 0;
  switch (kind) {
    case '+':
    case '-':
      out->type = kind == '+' ? Reply::Type::kStatus : Reply::Type::kError;
      out->str = std::string(line);
      *pos = next;
      return 1;
    case ':':
      if (!parse_int(line, &n)) return -1;
      out->type = Reply::Type::kInteger;
      out->integer = n;
      *pos = next;
      return 1;
    case '$':
      if (!parse_int(line, &n)) return -1;
      if (n < 0) {
        out->type = Reply::Type::kNil;
        *pos = next;
        return 1;
      }
      if (buf.size() < next + static_cast<size_t>(n) + 2) return 0;
      out->type = Reply::Type::kString;
      out->str = buf.substr(next, static_cast<size_t>(n));
      *pos = next + static_cast<size_t>(n) + 2;
      return 1;
    case '*': {
      if (!parse_int(line, &n)) return -1;
      if (n < 0) {
        out->type = Reply::Type::kNil;
        *pos = next;
        return 1;
      }
      out->type = Reply::Type::kArray;
      out->elements.assign(static_cast<size_t>(n), Reply{});
      size_t p = next;
      for (Reply& e : out->elements) {
        int r = parse_reply(buf, &p, &e, depth + 1);
        if (r != 1) return r;
      }
      *pos = p;
      return 1;
    }
    default:
      return -1;
  }
}

// Sends one command to 127.0.0.1:port and reads its reply. An error reply is
// a successful Result (check is_error()); connection trouble and the
// deadline passing are errors.
Result<Reply> command(int port, const std::vector<std::string>& args, int timeout_ms = kQueryTimeoutMs) {
  const int64_t deadline = now_ms() + timeout_ms;
  const std::string what = fmt::format("127.0.0.1:{} {}", port, args.empty() ? "" : args[0]);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::IoError(fmt::format("{}: socket: {}", what, std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  // Waits for `events` on fd until the deadline.
  auto wait_for = [&](short events) -> Status {
    for (;;) {
      int64_t left = deadline - now_ms();
      if (left <= 0) return Status::Unavailable(fmt::format("{}: no answer within {} ms", what, timeout_ms));
      pollfd pfd{fd, events, 0};
      int n = ::poll(&pfd, 1, static_cast<int>(left));
      if (n > 0) return Status::Ok();
      if (n < 0 && errno != EINTR)
        return Status::IoError(fmt::format("{}: poll: {}", what, std::strerror(errno)));
    }
  };

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS)
      return Status::Unavailable(fmt::format("{}: connect: {}", what, std::strerror(errno)));
    if (Status s = wait_for(POLLOUT); !s.ok()) return s;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Status::Unavailable(fmt::format("{}: connect: {}", what, std::strerror(err)));
  }

  std::string out = fmt::format("*{}\r\n", args.size());
  for (const std::string& a : args) out += fmt::format("${}\r\n{}\r\n", a.size(), a);
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (Status s = wait_for(POLLOUT); !s.ok()) return s;
    } else {
      return Status::Unavailable(fmt::format("{}: send: {}", what, std::strerror(errno)));
    }
  }

  std::string in;
  for (;;) {
    Reply reply;
    size_t pos = 0;
    int r = parse_reply(in, &pos, &reply);
    if (r == 1) return reply;
    if (r < 0) return Status::Corruption(fmt::format("{}: malformed reply \"{}\"", what, in.substr(0, 200)));
    if (Status s = wait_for(POLLIN); !s.ok()) return s;
    char buf[16384];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return Status::Unavailable(fmt::format("{}: connection closed before a reply", what));
    } else if (errno != EAGAIN && errno != EINTR) {
      return Status::Unavailable(fmt::format("{}: recv: {}", what, std::strerror(errno)));
    }
  }
}

// The value of `key` in INFO output ("key:value" lines), or "".
std::string info_field(const std::string& info, std::string_view key) {
  size_t pos = 0;
  while (pos < info.size()) {
    size_t eol = info.find('\n', pos);
    if (eol == std::string::npos) eol = info.size();
    std::string_view line(info.data() + pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      return std::string(line.substr(key.size() + 1));
    }
    pos = eol + 1;
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// Processes

RedisCluster::~RedisCluster() {
  for (Proc& p : procs_) {
    if (p.alive) ::kill(p.pid, SIGKILL);  // a stopped process dies of SIGKILL too
  }
  for (Proc& p : procs_) (void)reap(&p, true);
  const char* keep = std::getenv("TABA_TEST_KEEP_DIRS");
  if (!dir_.empty() && (keep == nullptr || *keep == '\0')) remove_tree(dir_);
}

bool RedisCluster::reap(Proc* p, bool block) {
  if (!p->alive) return true;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(p->pid, &status, block ? 0 : WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
      p->alive = false;
      p->paused = false;
      return true;
    }
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

RedisCluster::Proc* RedisCluster::find(int port) {
  for (Proc& p : procs_) {
    if (p.port == port) return &p;
  }
  return nullptr;
}

const RedisCluster::Proc* RedisCluster::find(int port) const {
  for (const Proc& p : procs_) {
    if (p.port == port) return &p;
  }
  return nullptr;
}

Status RedisCluster::spawn(Proc* p) {
  Result<pid_t> pid = spawn_logged(p->args, p->log, /*truncate_log=*/false);
  TABA_RETURN_IF_ERROR(pid);
  p->pid = pid.value();
  p->alive = true;
  p->paused = false;
  return Status::Ok();
}

void RedisCluster::prepare(Proc* p, int master_port) {
  if (p->kind == Proc::Kind::kServer) {
    p->log = fmt::format("{}/redis-{}.log", dir_, p->port);
    // clang-format off
    p->args = {server_bin_,
               "--port", std::to_string(p->port),
               "--bind", "127.0.0.1",
               "--save", "",
               "--appendonly", "no",
               "--dir", dir_,
               // Replicas load a full sync through this file: one per server,
               // or replicas sharing the directory could load each other's.
               "--dbfilename", fmt::format("dump-{}.rdb", p->port),
               "--daemonize", "no",
               "--logfile", p->log,
               "--repl-diskless-sync", "yes",
               "--repl-diskless-sync-delay", "0"};
    // clang-format on
    if (master_port != 0) {
      p->args.insert(p->args.end(), {"--replicaof", "127.0.0.1", std::to_string(master_port)});
    }
    return;
  }
  p->log = fmt::format("{}/sentinel-{}.log", dir_, p->port);
  p->conf = fmt::format("{}/sentinel-{}.conf", dir_, p->port);
  const int quorum = std::clamp(options_.quorum, 1, options_.sentinels);
  std::string text = fmt::format(
      "port {0}\n"
      "bind 127.0.0.1\n"
      "daemonize no\n"
      "dir \"{1}\"\n"
      "logfile \"{2}\"\n"
      "sentinel resolve-hostnames no\n"
      "sentinel announce-hostnames no\n"
      "sentinel announce-ip 127.0.0.1\n"
      "sentinel announce-port {0}\n",
      p->port, dir_, p->log);
  for (int s = 0; s < shards(); ++s) {
    const std::string name = shard_name(s);
    text += fmt::format(
        "sentinel monitor {0} 127.0.0.1 {1} {2}\n"
        "sentinel down-after-milliseconds {0} {3}\n"
        "sentinel failover-timeout {0} {4}\n"
        "sentinel parallel-syncs {0} 1\n",
        name, shard_ports_[static_cast<size_t>(s)][0], quorum, options_.down_after_ms,
        options_.failover_timeout_ms);
  }
  std::ofstream(p->conf, std::ios::trunc) << text;
  if (sentinel_via_server_) {
    p->args = {server_bin_, p->conf, "--sentinel"};
  } else {
    p->args = {sentinel_bin_, p->conf};
  }
}

Status RedisCluster::wait_ping(Proc* p, int timeout_ms) {
  const char* kind = p->kind == Proc::Kind::kServer ? "redis-server" : "redis-sentinel";
  const int64_t deadline = now_ms() + timeout_ms;
  std::string last = "no answer yet";
  for (;;) {
    if (reap(p, false)) {
      return Status::Unavailable(fmt::format("{} on port {} exited before answering PING\n--- {} ---\n{}",
                                             kind, p->port, p->log, read_tail(p->log)));
    }
    auto r = command(p->port, {"PING"}, 500);
    if (r.ok() && r->type == Reply::Type::kStatus && r->str == "PONG") return Status::Ok();
    last = r.ok() ? r->describe() : r.status().message();
    if (now_ms() >= deadline) {
      return Status::Unavailable(
          fmt::format("{} on port {} did not answer PING within {} ms (last: {})\n--- {} ---\n{}", kind,
                      p->port, timeout_ms, last, p->log, read_tail(p->log)));
    }
    sleep_ms(10);
  }
}

Status RedisCluster::start_proc(Proc* p, int master_port) {
  Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    p->port = free_port();
    if (p->port == 0) return Status::Unavailable("no free loopback port");
    prepare(p, master_port);
    if (Status s = spawn(p); !s.ok()) return s;
    last = wait_ping(p, kPingTimeoutMs);
    if (last.ok()) return last;
    if (p->alive) {
      ::kill(p->pid, SIGKILL);
      reap(p, true);
    }
    // Someone took the port between free_port() and bind: try another.
    if (read_tail(p->log).find("Address already in use") == std::string::npos) break;
  }
  return last;
}

Status RedisCluster::start(Options options) {
  if (!procs_.empty()) return Status::Invalid("RedisCluster::start: already started");
  if (options.shards < 1 || options.replicas_per_shard < 0 || options.sentinels < 1) {
    return Status::Invalid(
        fmt::format("RedisCluster::start: need shards >= 1, replicas_per_shard >= 0, sentinels >= 1 "
                    "(got {}, {}, {})",
                    options.shards, options.replicas_per_shard, options.sentinels));
  }
  options_ = options;
  server_bin_ = find_program("TABA_REDIS_SERVER", "redis-server");
  if (server_bin_.empty())
    return Status::NotFound("redis-server not found on PATH (apt-get install redis-server)");
  sentinel_bin_ = find_program("TABA_REDIS_SENTINEL", "redis-sentinel");
  sentinel_via_server_ = sentinel_bin_.empty();
  cli_bin_ = find_program("TABA_REDIS_CLI", "redis-cli");
  if (cli_bin_.empty()) return Status::NotFound("redis-cli not found on PATH (apt-get install redis-tools)");
  dir_ = make_temp_dir("redis-cluster");

  shard_ports_.assign(static_cast<size_t>(options.shards), {});
  // Masters first, then their replicas: a replica's arguments name its master's port.
  for (int s = 0; s < options.shards; ++s) {
    Proc& m = procs_.emplace_back();
    m.kind = Proc::Kind::kServer;
    m.shard = s;
    if (Status st = start_proc(&m, 0); !st.ok()) {
      return Status::Unavailable(fmt::format("starting the master of {}: {}", shard_name(s), st.message()));
    }
    shard_ports_[static_cast<size_t>(s)].push_back(m.port);
  }
  for (int s = 0; s < options.shards; ++s) {
    for (int r = 0; r < options.replicas_per_shard; ++r) {
      Proc& p = procs_.emplace_back();
      p.kind = Proc::Kind::kServer;
      p.shard = s;
      if (Status st = start_proc(&p, shard_ports_[static_cast<size_t>(s)][0]); !st.ok()) {
        return Status::Unavailable(
            fmt::format("starting replica {} of {}: {}", r + 1, shard_name(s), st.message()));
      }
      shard_ports_[static_cast<size_t>(s)].push_back(p.port);
    }
  }
  for (int i = 0; i < options.sentinels; ++i) {
    Proc& p = procs_.emplace_back();
    p.kind = Proc::Kind::kSentinel;
    if (Status st = start_proc(&p, 0); !st.ok()) {
      return Status::Unavailable(fmt::format("starting sentinel {}: {}", i + 1, st.message()));
    }
  }
  return wait_converged(now_ms() + kConvergeTimeoutMs);
}

// Every replica in sync, every sentinel seeing every master with all its
// replicas and all the other sentinels.
Status RedisCluster::wait_converged(int64_t deadline_ms) const {
  std::string problem;
  const Proc* culprit = nullptr;
  const auto check = [&]() -> bool {
    for (const Proc& p : procs_) {
      if (p.kind != Proc::Kind::kServer || p.port == shard_ports_[static_cast<size_t>(p.shard)][0]) continue;
      auto info = command(p.port, {"INFO", "replication"});
      culprit = &p;
      if (!info.ok()) {
        problem = info.status().message();
        return false;
      }
      std::string link = info_field(info->str, "master_link_status");
      if (link != "up") {
        problem = fmt::format("replica 127.0.0.1:{} of {}: master_link_status:{}", p.port,
                              shard_name(p.shard), link.empty() ? "(none)" : link);
        return false;
      }
    }
    for (const Proc& p : procs_) {
      if (p.kind != Proc::Kind::kSentinel) continue;
      culprit = &p;
      for (int s = 0; s < shards(); ++s) {
        const std::string name = shard_name(s);
        const std::string who = fmt::format("sentinel 127.0.0.1:{} on {}", p.port, name);
        auto master = command(p.port, {"SENTINEL", "MASTER", name});
        if (!master.ok() || master->type != Reply::Type::kArray) {
          problem = fmt::format("{}: {}", who, master.ok() ? master->describe() : master.status().message());
          return false;
        }
        const std::string flags = master->field("flags");
        const std::string replicas = master->field("num-slaves");
        const std::string others = master->field("num-other-sentinels");
        if (flags != "master" || replicas != std::to_string(options_.replicas_per_shard) ||
            others != std::to_string(options_.sentinels - 1)) {
          problem = fmt::format("{}: flags={} num-slaves={} (want {}) num-other-sentinels={} (want {})", who,
                                flags, replicas, options_.replicas_per_shard, others, options_.sentinels - 1);
          return false;
        }
        auto list = command(p.port, {"SENTINEL", "REPLICAS", name});
        if (!list.ok() || list->type != Reply::Type::kArray) {
          problem = fmt::format("{}: {}", who, list.ok() ? list->describe() : list.status().message());
          return false;
        }
        for (const Reply& r : list->elements) {
          if (r.field("flags") != "slave" || r.field("master-link-status") != "ok") {
            problem = fmt::format("{}: replica {}:{} flags={} master-link-status={}", who, r.field("ip"),
                                  r.field("port"), r.field("flags"), r.field("master-link-status"));
            return false;
          }
        }
      }
    }
    return true;
  };
  const int64_t started = now_ms();
  for (;;) {
    if (check()) return Status::Ok();
    if (now_ms() >= deadline_ms) break;
    sleep_ms(50);
  }
  std::string msg = fmt::format("redis cluster not ready after {} ms: {}", now_ms() - started, problem);
  if (culprit != nullptr) msg += fmt::format("\n--- {} ---\n{}", culprit->log, read_tail(culprit->log));
  return Status::Unavailable(std::move(msg));
}

// ---------------------------------------------------------------------------
// Queries

std::vector<std::string> RedisCluster::sentinel_addrs() const {
  std::vector<std::string> out;
  for (int port : sentinel_ports()) out.push_back(fmt::format("127.0.0.1:{}", port));
  return out;
}

std::vector<int> RedisCluster::sentinel_ports() const {
  std::vector<int> out;
  for (const Proc& p : procs_) {
    if (p.kind == Proc::Kind::kSentinel) out.push_back(p.port);
  }
  return out;
}

std::string RedisCluster::shard_name(int shard) const {
  return fmt::format("shard{}", shard + 1);
}

std::vector<int> RedisCluster::node_ports(int shard) const {
  if (shard < 0 || shard >= shards()) return {};
  return shard_ports_[static_cast<size_t>(shard)];
}

pid_t RedisCluster::pid_of(int port) const {
  const Proc* p = find(port);
  return p != nullptr && p->alive ? p->pid : -1;
}

std::string RedisCluster::log_tail(int port) const {
  const Proc* p = find(port);
  return p != nullptr ? read_tail(p->log) : fmt::format("(no process at port {})", port);
}

Result<int> RedisCluster::master_port(int shard) const {
  if (shard < 0 || shard >= shards()) return Status::Invalid(fmt::format("no shard index {}", shard));
  const std::string name = shard_name(shard);
  std::string errors;
  for (const Proc& p : procs_) {
    if (p.kind != Proc::Kind::kSentinel || !usable(p)) continue;
    auto r = command(p.port, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", name});
    int64_t port = 0;
    if (r.ok() && r->type == Reply::Type::kArray && r->elements.size() == 2 &&
        parse_int(r->elements[1].str, &port)) {
      return static_cast<int>(port);
    }
    errors +=
        fmt::format("\n  sentinel 127.0.0.1:{}: {}", p.port, r.ok() ? r->describe() : r.status().message());
  }
  return Status::Unavailable(fmt::format("no sentinel reported the master of {}{}", name,
                                         errors.empty() ? " (none is running)" : errors));
}

Result<std::string> RedisCluster::cli(int port, const std::vector<std::string>& args, int timeout_ms) const {
  if (cli_bin_.empty()) return Status::Invalid("RedisCluster::cli: not started");
  std::vector<std::string> argv = {cli_bin_, "-e", "-h", "127.0.0.1", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string what = fmt::format("redis-cli -p {}", port);
  for (const std::string& a : args) what += " " + a;
  auto r = run_process(argv, {}, timeout_ms);
  if (!r.ok()) return Status::Unavailable(fmt::format("{}: {}", what, r.status().message()));
  std::string out = std::move(r->out);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (r->exit_code != 0) {
    std::string err = r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return Status::Unavailable(fmt::format("{}: exit status {}: {}{}{}", what, r->exit_code, out,
                                           out.empty() || err.empty() ? "" : " / ", err));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Failover and faults

Result<int> RedisCluster::failover(int shard) {
  auto before = master_port(shard);
  TABA_RETURN_IF_ERROR(before);
  const int old_port = *before;
  const std::string name = shard_name(shard);
  const int64_t deadline = now_ms() + kFailoverTimeoutMs;

  // Ask the first live sentinel; NOGOODSLAVE (replicas not yet judged fit,
  // e.g. just restarted) and INPROG (one already running) clear by themselves.
  const Proc* asked = nullptr;
  for (;;) {
    asked = nullptr;
    for (const Proc& p : procs_) {
      if (p.kind == Proc::Kind::kSentinel && usable(p)) {
        asked = &p;
        break;
      }
    }
    if (asked == nullptr)
      return Status::Unavailable(fmt::format("failover {}: no sentinel is running", name));
    auto r = command(asked->port, {"SENTINEL", "FAILOVER", name}, 2000);
    if (r.ok() && !r->is_error()) break;
    const std::string said = r.ok() ? r->describe() : r.status().message();
    // A shard with no other live node never gets a good replica.
    bool candidates = false;
    for (int port : shard_ports_[static_cast<size_t>(shard)]) {
      const Proc* n = find(port);
      if (port != old_port && n != nullptr && n->alive) candidates = true;
    }
    const bool transient =
        r.ok() && ((candidates && r->str.rfind("NOGOODSLAVE", 0) == 0) || r->str.rfind("INPROG", 0) == 0);
    if (!transient || now_ms() >= deadline) {
      return Status::Unavailable(fmt::format("SENTINEL FAILOVER {} at 127.0.0.1:{}: {}\n--- {} ---\n{}", name,
                                             asked->port, said, asked->log, read_tail(asked->log)));
    }
    sleep_ms(200);
  }

  std::string state;
  for (;;) {
    // Every live sentinel must name the same new master, and it must say so itself.
    int agreed = 0;
    bool all = true;
    state.clear();
    for (const Proc& p : procs_) {
      if (p.kind != Proc::Kind::kSentinel || !usable(p)) continue;
      auto r = command(p.port, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", name});
      int64_t port = 0;
      if (!r.ok() || r->type != Reply::Type::kArray || r->elements.size() != 2 ||
          !parse_int(r->elements[1].str, &port)) {
        all = false;
        state += fmt::format(" sentinel {}: {};", p.port, r.ok() ? r->describe() : r.status().message());
        continue;
      }
      state += fmt::format(" sentinel {}: {};", p.port, port);
      if (port == old_port || (agreed != 0 && port != agreed)) all = false;
      if (agreed == 0) agreed = static_cast<int>(port);
    }
    if (all && agreed != 0 && agreed != old_port) {
      auto role = command(agreed, {"ROLE"});
      if (role.ok() && role->type == Reply::Type::kArray && !role->elements.empty() &&
          role->elements[0].str == "master") {
        return agreed;
      }
      state += fmt::format(" ROLE at {}: {}", agreed, role.ok() ? role->describe() : role.status().message());
    }
    if (now_ms() >= deadline) break;
    sleep_ms(50);
  }
  return Status::Unavailable(
      fmt::format("failover of {} (master was 127.0.0.1:{}) not done within {} ms:{}\n--- {} ---\n{}", name,
                  old_port, kFailoverTimeoutMs, state, asked->log, read_tail(asked->log)));
}

Status RedisCluster::wait_synced(int shard, int timeout_ms) const {
  if (shard < 0 || shard >= shards()) return Status::Invalid(fmt::format("no shard index {}", shard));
  const int64_t deadline = now_ms() + timeout_ms;
  std::string problem;
  int culprit = 0;
  for (;;) {
    auto master = master_port(shard);
    bool ok = master.ok();
    if (!ok) problem = master.status().message();
    for (int port : shard_ports_[static_cast<size_t>(shard)]) {
      const Proc* p = find(port);
      if (!ok || p == nullptr || !usable(*p)) continue;
      auto info = command(port, {"INFO", "replication"});
      culprit = port;
      if (!info.ok()) {
        problem = info.status().message();
        ok = false;
        break;
      }
      const std::string role = info_field(info->str, "role");
      if (port == *master) {
        if (role != "master") {
          problem = fmt::format("127.0.0.1:{} (master per sentinel): role:{}", port, role);
          ok = false;
        }
        continue;
      }
      const std::string of = info_field(info->str, "master_port");
      const std::string link = info_field(info->str, "master_link_status");
      if (role != "slave" || of != std::to_string(*master) || link != "up") {
        problem = fmt::format("127.0.0.1:{}: role:{} master_port:{} master_link_status:{} (master is {})",
                              port, role, of, link, *master);
        ok = false;
      }
    }
    if (ok) return Status::Ok();
    if (now_ms() >= deadline) break;
    sleep_ms(50);
  }
  std::string msg = fmt::format("{} not in sync within {} ms: {}", shard_name(shard), timeout_ms, problem);
  if (culprit != 0) msg += fmt::format("\n--- 127.0.0.1:{} ---\n{}", culprit, log_tail(culprit));
  return Status::Unavailable(std::move(msg));
}

Status RedisCluster::pause(int port) {
  Proc* p = find(port);
  if (p == nullptr || !p->alive)
    return Status::Invalid(fmt::format("pause: no running process at port {}", port));
  if (p->paused) return Status::Ok();
  if (::kill(p->pid, SIGSTOP) != 0)
    return Status::IoError(fmt::format("kill -STOP {}: {}", p->pid, std::strerror(errno)));
  const int64_t deadline = now_ms() + kSignalTimeoutMs;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(p->pid, &status, WUNTRACED | WNOHANG);
    if (r == p->pid && WIFSTOPPED(status)) break;
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
      p->alive = false;
      return Status::Unavailable(
          fmt::format("pause: process at port {} exited with status {}", port, decode_wait_status(status)));
    }
    if (now_ms() >= deadline) return Status::Unavailable(fmt::format("pause: port {} did not stop", port));
    sleep_ms(1);
  }
  p->paused = true;
  return Status::Ok();
}

Status RedisCluster::resume(int port) {
  Proc* p = find(port);
  if (p == nullptr || !p->alive)
    return Status::Invalid(fmt::format("resume: no running process at port {}", port));
  if (!p->paused) return Status::Ok();
  if (::kill(p->pid, SIGCONT) != 0)
    return Status::IoError(fmt::format("kill -CONT {}: {}", p->pid, std::strerror(errno)));
  const int64_t deadline = now_ms() + kSignalTimeoutMs;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(p->pid, &status, WCONTINUED | WNOHANG);
    if (r == p->pid && WIFCONTINUED(status)) break;
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
      p->alive = false;
      p->paused = false;
      return Status::Unavailable(
          fmt::format("resume: process at port {} exited with status {}", port, decode_wait_status(status)));
    }
    if (now_ms() >= deadline)
      return Status::Unavailable(fmt::format("resume: port {} did not continue", port));
    sleep_ms(1);
  }
  p->paused = false;
  return Status::Ok();
}

Status RedisCluster::kill9(int port) {
  Proc* p = find(port);
  if (p == nullptr || !p->alive)
    return Status::Invalid(fmt::format("kill9: no running process at port {}", port));
  if (::kill(p->pid, SIGKILL) != 0)
    return Status::IoError(fmt::format("kill -KILL {}: {}", p->pid, std::strerror(errno)));
  reap(p, true);
  return Status::Ok();
}

Status RedisCluster::restart(int port) {
  Proc* p = find(port);
  if (p == nullptr) return Status::Invalid(fmt::format("restart: no process was started at port {}", port));
  if (reap(p, false) == false) return Status::Invalid(fmt::format("restart: port {} is still running", port));
  if (Status s = spawn(p); !s.ok()) return s;
  return wait_ping(p, kPingTimeoutMs);
}

// ---------------------------------------------------------------------------
// tabad configuration

std::string RedisCluster::toml(int vbuckets, const std::vector<std::string>& extra_redis_lines,
                               int placed_shards) const {
  std::string out = "[redis]\nsentinels = [";
  std::vector<std::string> addrs = sentinel_addrs();
  for (size_t i = 0; i < addrs.size(); ++i) out += fmt::format("{}\"{}\"", i ? ", " : "", addrs[i]);
  out += fmt::format("]\nvbuckets = {}\n", vbuckets);
  for (const std::string& line : extra_redis_lines) out += line + "\n";
  const int64_t n = placed_shards > 0 ? std::min(placed_shards, shards()) : shards();
  for (int64_t s = 0; s < n; ++s) {
    const int64_t lo = s * vbuckets / n;
    const int64_t hi = (s + 1) * vbuckets / n - 1;
    out += fmt::format("\n[[redis.shards]]\nname = \"{}\"\nvbuckets = [{}, {}]\n",
                       shard_name(static_cast<int>(s)), lo, hi);
  }
  return out;
}

}  // namespace taba::test
