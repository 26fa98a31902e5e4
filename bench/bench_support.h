// Process helpers shared by the benchmark programs: CPU accounting from
// /proc, pinning (a started tabad, or the benchmark itself), free loopback
// ports, starting / stopping a tabad with a fresh data directory (pinned to
// a CPU, its output in a log file), and a keep-alive session to it.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "http/client.h"
#include "http/url.h"

namespace taba::bench {

// The fields of /proc/PID/stat after "(comm)": [0] is field 3 (state),
// [1] the parent pid, [11] utime, [12] stime, [13] cutime, [14] cstime;
// empty if unreadable.
inline std::vector<std::string> proc_stat_fields(long pid) {
  std::vector<std::string> f;
  if (pid <= 0) return f;
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return f;
  std::istringstream fields(stat.substr(paren + 1));
  for (std::string s; fields >> s;) f.push_back(s);
  return f;
}

// utime + stime of all threads of `pid`, in seconds; nullopt if unreadable.
inline std::optional<double> process_cpu_seconds(long pid) {
  std::vector<std::string> f = proc_stat_fields(pid);
  if (f.size() < 13) return std::nullopt;
  double ticks = std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// `pid` and every process below it (children, their children, ...), from
// the parent pids in /proc/*/stat; `pid` first. Empty if `pid` is gone.
inline std::vector<long> process_tree(long pid) {
  if (proc_stat_fields(pid).empty()) return {};
  std::vector<std::pair<long, long>> parent_of;  // (pid, parent pid)
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    long p = std::strtol(name.c_str(), nullptr, 10);
    std::vector<std::string> f = proc_stat_fields(p);
    if (f.size() > 1) parent_of.emplace_back(p, std::strtol(f[1].c_str(), nullptr, 10));
  }
  std::vector<long> tree{pid};
  for (size_t i = 0; i < tree.size(); ++i) {
    for (const auto& [p, parent] : parent_of) {
      if (parent == tree[i]) tree.push_back(p);
    }
  }
  return tree;
}

// CPU seconds of `pid` and all its descendants: utime + stime of each
// living process plus cutime + cstime (children that exited and were
// reaped), so a helper process that comes and goes is still counted once.
// nullopt if `pid` is gone.
inline std::optional<double> process_tree_cpu_seconds(long pid) {
  std::vector<long> tree = process_tree(pid);
  if (tree.empty()) return std::nullopt;
  double ticks = 0;
  for (long p : tree) {
    std::vector<std::string> f = proc_stat_fields(p);
    if (f.size() < 15) continue;  // exited meanwhile: its parent's cutime has it
    for (int i = 11; i <= 14; ++i) ticks += std::strtod(f[static_cast<size_t>(i)].c_str(), nullptr);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A "VmXXX:  1234 kB" figure of /proc/<pid>/status, in kB.
inline std::optional<long> proc_status_kb(long pid, const std::string& key) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  }
  return std::nullopt;
}

// Pins the calling thread (and threads it creates later) to `cpu`.
inline bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

inline bool cpu_available(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  return cpu >= 0 && cpu < CPU_SETSIZE && ::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_ISSET(cpu, &set);
}

// Pins the benchmark itself to `cpu` (-1: not pinned) and says so on
// stderr, or that the CPU is not available.
inline void pin_benchmark(const std::string& who, int cpu) {
  if (cpu < 0) return;
  if (cpu_available(cpu) && pin_to_cpu(cpu)) {
    std::cerr << who << ": benchmark pinned to CPU " << cpu << "\n";
  } else {
    std::cerr << who << ": CPU " << cpu << " is not available; benchmark not pinned\n";
  }
}

// Binds port 0 on loopback, reads the port the kernel chose, releases it.
inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  if (fd >= 0) ::close(fd);
  return port;
}

// The last 3,000 bytes of a file (a log tail for error messages).
inline std::string tail_of_file(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > 3000 ? "..." + text.substr(text.size() - 3000) : text;
}

// Pulls every "--server-arg X" / "--server-arg=X" out of args (cxxopts would
// split their values at commas, and they often hold some: --role=fe,be).
inline std::vector<std::string> take_server_args(std::vector<std::string>* args) {
  std::vector<std::string> taken, rest;
  for (size_t i = 0; i < args->size(); ++i) {
    const std::string& a = (*args)[i];
    if (a == "--server-arg" && i + 1 < args->size()) {
      taken.push_back((*args)[++i]);
    } else if (a.rfind("--server-arg=", 0) == 0) {
      taken.push_back(a.substr(13));
    } else {
      rest.push_back(a);
    }
  }
  *args = std::move(rest);
  return taken;
}

// A tabad a benchmark started.
struct OwnServer {
  pid_t pid = -1;
  int port = 0;
  std::string data_dir;  // a fresh temporary directory; the store's data is in data_dir/data
  std::string log_path;  // data_dir/tabad.log: the server's stdout and stderr
};

// Starts `tabad --listen 127.0.0.1:<free port> --data-dir <fresh dir>/data
// <extra_args>` pinned to `cpu` (when it is available; -1: not pinned) and
// waits up to 15 s for /healthz. `who` prefixes the messages (the
// benchmark's name).
inline std::optional<OwnServer> start_tabad(const std::string& who, const std::string& tabad,
                                            const std::vector<std::string>& extra_args, int cpu) {
  using Clock = std::chrono::steady_clock;
  OwnServer s;
  std::string pattern = "/tmp/" + who + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::cerr << who << ": mkdtemp: " << std::strerror(errno) << "\n";
    return std::nullopt;
  }
  s.data_dir = pattern;
  s.log_path = s.data_dir + "/tabad.log";
  s.port = free_loopback_port();
  std::vector<std::string> args = {tabad, "--listen", fmt::format("127.0.0.1:{}", s.port), "--data-dir",
                                   s.data_dir + "/data"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int log_fd = ::open(s.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const bool pin = cpu >= 0 && cpu_available(cpu);
  std::cerr << who << ": starting";
  for (const std::string& a : args) std::cerr << ' ' << a;
  std::cerr << (pin ? fmt::format(" (pinned to CPU {})", cpu) : std::string(" (not pinned)")) << "\n";
  s.pid = ::fork();
  if (s.pid == 0) {
    // Like `taskset -c N tabad ...`; dies with the benchmark.
    if (pin) pin_to_cpu(cpu);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
  if (s.pid < 0) {
    std::cerr << who << ": fork: " << std::strerror(errno) << "\n";
    return std::nullopt;
  }
  for (auto deadline = Clock::now() + std::chrono::seconds(15); Clock::now() < deadline;) {
    if (::waitpid(s.pid, nullptr, WNOHANG) == s.pid) {
      std::cerr << who << ": tabad exited during startup; log:\n" << tail_of_file(s.log_path) << "\n";
      return std::nullopt;
    }
    auto r = taba::http::fetch("GET", fmt::format("http://127.0.0.1:{}/healthz", s.port), {}, "", 1000);
    if (r.ok() && r->status == 200) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::cerr << who << ": tabad did not answer /healthz within 15 s; log:\n" << tail_of_file(s.log_path) << "\n";
  ::kill(s.pid, SIGKILL);
  ::waitpid(s.pid, nullptr, 0);
  return std::nullopt;
}

// SIGTERM, then SIGKILL after 10 s; reports an unclean exit with the log's
// tail; removes the data directory unless keep_data.
inline void stop_tabad(const std::string& who, const OwnServer& s, bool keep_data) {
  using Clock = std::chrono::steady_clock;
  ::kill(s.pid, SIGTERM);
  int status = 0;
  bool exited = false;
  for (auto deadline = Clock::now() + std::chrono::seconds(10); Clock::now() < deadline;) {
    if (::waitpid(s.pid, &status, WNOHANG) == s.pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    std::cerr << who << ": tabad did not exit within 10 s of SIGTERM; killing it\n";
    ::kill(s.pid, SIGKILL);
    ::waitpid(s.pid, &status, 0);
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = WIFEXITED(status) ? fmt::format("exited with status {}", WEXITSTATUS(status))
                                        : fmt::format("was killed by signal {}", WTERMSIG(status));
    std::cerr << who << ": tabad " << how << " after SIGTERM; log tail:\n" << tail_of_file(s.log_path) << "\n";
  }
  if (keep_data) {
    std::cerr << who << ": data kept in " << s.data_dir << "\n";
  } else {
    std::error_code ec;
    std::filesystem::remove_all(s.data_dir, ec);
  }
}

// One keep-alive connection to a server, reopened after errors. Paths are
// appended to the target URL's path (a server mounted under a prefix).
class Session {
 public:
  Session(taba::http::Url target, int timeout_ms) : target_(std::move(target)), timeout_ms_(timeout_ms) {
    prefix_ = target_.target == "/" ? std::string() : target_.target;
    if (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  }

  taba::Result<taba::http::ClientResponse> request(const std::string& method, const std::string& path,
                                                   const std::vector<taba::http::Header>& headers,
                                                   const std::string& body) {
    if (!conn_) {
      auto c = taba::http::ClientConnection::connect(target_.host, target_.port, timeout_ms_);
      if (!c.ok()) return c.status();
      conn_.emplace(std::move(*c));
    }
    auto r = conn_->request(method, prefix_ + path, headers, body, timeout_ms_);
    if (!r.ok()) conn_.reset();
    return r;
  }

 private:
  taba::http::Url target_;
  int timeout_ms_;
  std::string prefix_;
  std::optional<taba::http::ClientConnection> conn_;
};

// The first sample of the unlabelled family `name` on the server's GET
// /metrics (taba_wal_snapshots_written_total, ...), or nullopt.
inline std::optional<double> metric_value(Session* s, const std::string& name) {
  auto r = s->request("GET", "/metrics", {}, "");
  if (!r.ok() || r->status != 200) return std::nullopt;
  const std::string key = "\n" + name + " ";
  size_t at = r->body.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(r->body.c_str() + at + key.size(), nullptr);
}

}  // namespace taba::bench
