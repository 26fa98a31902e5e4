// Integration-test helpers: tabad child processes, HTTP, v1 bodies.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace taba::test {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

double now_s() { return static_cast<double>(std::time(nullptr)); }

std::string find_on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

TempDir::~TempDir() {
  const char* keep = std::getenv("TABA_TEST_KEEP_DIRS");
  if (keep == nullptr || *keep == '\0') remove_tree(path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

namespace {

constexpr int kStartTimeoutMs = 10'000;
constexpr int kStartAttempts = 3;


// argv as the NUL-terminated char* array execv wants; built before fork()
// because the child may only make async-signal-safe calls.
std::vector<char*> exec_argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// In the child after fork(): die with the parent, exec, or report and exit 127.
// A file_size_limit > 0 is set as RLIMIT_FSIZE first, with SIGXFSZ ignored
// (an ignored signal stays ignored across exec), so that a write past it
// fails with EFBIG instead of killing the process.
[[noreturn]] void exec_child(const std::vector<char*>& argv, uint64_t file_size_limit = 0) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (file_size_limit > 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{};
    if (::getrlimit(RLIMIT_FSIZE, &lim) == 0) {
      lim.rlim_cur = static_cast<rlim_t>(file_size_limit);
      if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < lim.rlim_cur) lim.rlim_cur = lim.rlim_max;
      (void)::setrlimit(RLIMIT_FSIZE, &lim);
    }
  }
  ::execv(argv[0], argv.data());
  const char* msg = "exec failed: ";
  (void)!::write(2, msg, std::strlen(msg));
  (void)!::write(2, argv[0], std::strlen(argv[0]));
  (void)!::write(2, "\n", 1);
  ::_exit(127);
}

}  // namespace

Result<pid_t> spawn_logged(const std::vector<std::string>& args, const std::string& log_path, bool truncate_log,
                           uint64_t file_size_limit) {
  std::vector<char*> argv = exec_argv(args);
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate_log ? O_TRUNC : 0);
  int log_fd = ::open(log_path.c_str(), flags, 0644);
  if (log_fd < 0) return Status::IoError(fmt::format("cannot create {}: {}", log_path, std::strerror(errno)));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Status::IoError(fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    exec_child(argv, file_size_limit);
  }
  ::close(log_fd);
  if (null_fd >= 0) ::close(null_fd);
  return pid;
}

Status set_file_size_limit(pid_t pid, uint64_t bytes) {
  rlimit lim{};
  if (::prlimit(pid, RLIMIT_FSIZE, nullptr, &lim) != 0) {
    return Status::IoError(fmt::format("prlimit({}, RLIMIT_FSIZE): {}", pid, std::strerror(errno)));
  }
  lim.rlim_cur = bytes == 0 ? lim.rlim_max : std::min<rlim_t>(static_cast<rlim_t>(bytes), lim.rlim_max);
  if (::prlimit(pid, RLIMIT_FSIZE, &lim, nullptr) != 0) {
    return Status::IoError(fmt::format("prlimit({}, RLIMIT_FSIZE, {}): {}", pid, bytes, std::strerror(errno)));
  }
  return Status::Ok();
}

Result<uint64_t> raise_fd_limit(uint64_t want) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return Status::IoError(fmt::format("getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno)));
  }
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want) return static_cast<uint64_t>(lim.rlim_cur);
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? static_cast<rlim_t>(want) : std::min<rlim_t>(want, lim.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return Status::IoError(fmt::format("setrlimit(RLIMIT_NOFILE, {}): {}", want, std::strerror(errno)));
  }
  return static_cast<uint64_t>(lim.rlim_cur);
}

Result<int64_t> process_rss_kb(pid_t pid) {
  std::string path = fmt::format("/proc/{}/status", pid);
  std::ifstream in(path);
  if (!in) return Status::IoError(fmt::format("cannot read {}", path));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return Status::IoError(fmt::format("{} has no VmRSS line", path));
}

Result<int> process_fd_count(pid_t pid) {
  std::string path = fmt::format("/proc/{}/fd", pid);
  std::error_code ec;
  int n = 0;
  for (std::filesystem::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) ++n;
  if (ec) return Status::IoError(fmt::format("cannot list {}: {}", path, ec.message()));
  return n;
}

std::string tabad_path() {
  if (const char* env = std::getenv("TABAD_PATH"); env != nullptr && *env != '\0') return env;
#ifdef TABAD_PATH
  return TABAD_PATH;
#else
  return "tabad";
#endif
}

std::string make_temp_dir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = fmt::format("{}/{}-XXXXXX", tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", prefix);
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(fmt::format("mkdtemp {}: {}", pattern, std::strerror(errno)));
  }
  return pattern;
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

namespace {
// A port the kernel picks for a socket of `type` on 127.0.0.1, then frees.
// A port below the kernel's ephemeral range (32768 and up here): a port
// the kernel hands out itself could, once a test stops its process, be taken
// by any outgoing connection (tests open thousands) before the process is
// started again on it. Random, checked free by binding; port 0 as the last
// resort.
int free_loopback_port(int type) {
  static std::mt19937 rng(static_cast<uint32_t>(::getpid()) * 2654435761u ^
                          static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  static std::mutex mu;
  for (int attempt = 0; attempt < 60; ++attempt) {
    int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (attempt < 50) {
      std::lock_guard<std::mutex> lock(mu);
      addr.sin_port = htons(static_cast<uint16_t>(20000 + rng() % 12000));
    }
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    if (port != 0) return port;
  }
  return 0;
}
}  // namespace

int free_port() { return free_loopback_port(SOCK_STREAM); }

int free_udp_port() { return free_loopback_port(SOCK_DGRAM); }

Status send_udp(int port, std::string_view datagram) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(fmt::format("socket(AF_INET, SOCK_DGRAM): {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ssize_t n = ::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(datagram.size())) {
    return Status::IoError(fmt::format("sendto 127.0.0.1:{}: {}", port, n < 0 ? std::strerror(err) : "short write"));
  }
  return Status::Ok();
}

Status send_unix_datagram(const std::string& path, std::string_view datagram) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return Status::Invalid(fmt::format("unix socket path too long: {}", path));
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(fmt::format("socket(AF_UNIX, SOCK_DGRAM): {}", std::strerror(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ssize_t n = ::sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(datagram.size())) {
    return Status::IoError(fmt::format("sendto {}: {}", path, n < 0 ? std::strerror(err) : "short write"));
  }
  return Status::Ok();
}

Status write_text_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return Status::IoError(fmt::format("cannot write {}", path));
  return Status::Ok();
}

Result<http::ClientResponse> get(const std::string& base_url, std::string_view path, std::string_view accept,
                                 int timeout_ms) {
  std::vector<http::Header> headers;
  if (!accept.empty()) headers.push_back(http::Header{"Accept", std::string(accept)});
  return http::fetch("GET", base_url + std::string(path), headers, "", timeout_ms);
}

Result<http::ClientResponse> post(const std::string& base_url, std::string_view path, std::string_view body,
                                  const std::vector<http::Header>& headers, int timeout_ms) {
  return http::fetch("POST", base_url + std::string(path), headers, body, timeout_ms);
}

int status_of(const Result<http::ClientResponse>& r) { return r.ok() ? r.value().status : -1; }

std::string body_text(const Result<http::ClientResponse>& r) { return r.ok() ? r.value().body : r.status().message(); }

double metric(const std::string& text, const std::string& series) {
  std::string key = "\n" + series + " ";
  size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size() - 1));
}

// ---------------------------------------------------------------------------
// TabadProcess

TabadProcess::~TabadProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exited_ = true;
  }
  const char* keep = std::getenv("TABA_TEST_KEEP_DIRS");
  if (owns_dir_ && (keep == nullptr || *keep == '\0')) remove_tree(data_dir_);
}

std::string TabadProcess::url() const {
  return fmt::format("http://127.0.0.1:{}", port_);
}

std::string TabadProcess::log_path() const {
  return log_path_.empty() ? data_dir_ + "/tabad.log" : log_path_;
}

std::string TabadProcess::log_text() const {
  std::ifstream in(log_path(), std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string TabadProcess::log_tail() const {
  std::string text = log_text();
  constexpr size_t kMax = 4000;
  if (text.size() > kMax) text = "..." + text.substr(text.size() - kMax);
  return text.empty() ? "(log is empty)" : text;
}

Status TabadProcess::start(std::vector<std::string> extra_args, std::string data_dir) {
  return start_impl(extra_args, std::move(data_dir), 0);
}

Status TabadProcess::start_on_port(int port, std::vector<std::string> extra_args, std::string data_dir) {
  if (port <= 0) return Status::Invalid(fmt::format("start_on_port: bad port {}", port));
  return start_impl(extra_args, std::move(data_dir), port);
}

Status TabadProcess::start_impl(const std::vector<std::string>& extra_args, std::string data_dir, int fixed_port) {
  if (running()) return Status::Invalid(fmt::format("tabad (pid {}) is already running", pid_));
  if (!data_dir.empty()) {
    if (owns_dir_) remove_tree(data_dir_);
    data_dir_ = std::move(data_dir);
    owns_dir_ = false;
  } else if (data_dir_.empty()) {
    data_dir_ = make_temp_dir("tabad");
    owns_dir_ = true;
  }
  std::error_code ec;
  std::filesystem::create_directories(data_dir_, ec);

  Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    last = spawn(extra_args, fixed_port);
    TABA_RETURN_IF_ERROR(last);
    last = wait_healthy(kStartTimeoutMs);
    if (last.ok()) return last;
    bool port_taken = !running() && log_text().find("in use") != std::string::npos;
    if (running()) {
      kill9();
      (void)wait_exit(kStartTimeoutMs);  // just killed: only reaping it; the loop decides what next
    }
    if (!port_taken || fixed_port != 0) break;
  }
  return Status::Unavailable(fmt::format("{}\n--- {} ---\n{}", last.message(), log_path(), log_tail()));
}

Status TabadProcess::spawn(const std::vector<std::string>& extra_args, int fixed_port) {
  port_ = fixed_port != 0 ? fixed_port : free_port();
  if (port_ == 0) return Status::Unavailable("no free loopback port");
  std::vector<std::string> args = {tabad_path(), "--listen", fmt::format("127.0.0.1:{}", port_), "--data-dir",
                                   data_dir_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  Result<pid_t> pid = spawn_logged(args, log_path(), /*truncate_log=*/true, file_size_limit_);
  TABA_RETURN_IF_ERROR(pid);
  pid_ = pid.value();
  exited_ = false;
  exit_code_ = -1;
  return Status::Ok();
}

bool TabadProcess::running() {
  if (exited_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    exit_code_ = decode_wait_status(status);
    return false;
  }
  if (r < 0 && errno == ECHILD) {
    exited_ = true;
    return false;
  }
  return true;
}

Status TabadProcess::signal(int signo) {
  if (!running()) return Status::Invalid(fmt::format("tabad (pid {}) is not running", pid_));
  if (::kill(pid_, signo) != 0)
    return Status::IoError(fmt::format("kill {}: {}", pid_, std::strerror(errno)));
  return Status::Ok();
}

void TabadProcess::kill9() {
  if (running()) ::kill(pid_, SIGKILL);
}

Result<int> TabadProcess::wait_exit(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (running()) {
    if (now_ms() >= deadline) {
      return Status::Unavailable(fmt::format("tabad (pid {}) still running after {} ms", pid_, timeout_ms));
    }
    sleep_ms(5);
  }
  if (pid_ < 0) return Status::Invalid("tabad was never started");
  return exit_code_;
}

Status TabadProcess::wait_healthy(int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  std::string last_error = "no answer yet";
  for (;;) {
    if (!running()) {
      return Status::Unavailable(
          fmt::format("tabad exited with status {} before answering /healthz", exit_code_));
    }
    auto r = test::get(url(), "/healthz", "", 1000);
    if (r.ok() && r->status == 200) return Status::Ok();
    last_error = r.ok() ? fmt::format("status {}", r->status) : r.status().message();
    if (now_ms() >= deadline) {
      return Status::Unavailable(fmt::format(
          "tabad did not answer GET /healthz with 200 within {} ms (last: {})", timeout_ms, last_error));
    }
    sleep_ms(20);
  }
}

Result<http::ClientResponse> TabadProcess::get(std::string_view path, std::string_view accept) const {
  return test::get(url(), path, accept);
}

Result<http::ClientResponse> TabadProcess::post(std::string_view path, std::string_view body,
                                                const std::vector<http::Header>& headers) const {
  return test::post(url(), path, body, headers);
}

// ---------------------------------------------------------------------------
// v1 bodies

std::string v1_body(const std::vector<ClientBlock>& clients) {
  std::string body = "1\n\n";
  for (const ClientBlock& c : clients) {
    body += c.client;
    body += "\n\n";
    for (const NameBlock& n : c.names) {
      body += n.name;
      body += '\n';
      for (const std::string& line : n.event_lines) {
        body += line;
        body += '\n';
      }
      body += '\n';
    }
    body += '\n';
  }
  return body;
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string event_line(std::string_view type, double ts, std::string_view payload_json) {
  // Python's repr of a float: shortest round-trip digits, always with a
  // '.' or an exponent.
  std::string ts_text = fmt::format("{}", ts);
  if (ts_text.find_first_of(".eEn") == std::string::npos) ts_text += ".0";
  return fmt::format("[{}, {}, {}]", json_string(type), ts_text, json_string(payload_json));
}

// ---------------------------------------------------------------------------
// run_process

Result<ProcessOutput> run_process(const std::vector<std::string>& argv_strings, std::string_view stdin_data,
                                  int timeout_ms) {
  if (argv_strings.empty()) return Status::Invalid("run_process: empty argv");
  ::signal(SIGPIPE, SIG_IGN);  // a child that ignores its stdin must not kill the test
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return Status::IoError("pipe failed");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return Status::IoError("pipe failed");
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return Status::IoError("pipe failed");
  }
  std::vector<char*> argv = exec_argv(argv_strings);
  pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return Status::IoError(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    exec_child(argv);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  int in_fd = in_pipe[1], out_fd = out_pipe[0], err_fd = err_pipe[0];
  ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  if (stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }

  ProcessOutput result;
  size_t written = 0;
  int64_t deadline = now_ms() + timeout_ms;
  bool timed_out = false;
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds, 3, static_cast<int>(left));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      if (fd < 0 || fds[i].revents == 0) continue;
      char buf[8192];
      ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fd);
        fd = -1;
      }
    }
    if (in_fd >= 0 && fds[2].revents != 0) {
      ssize_t put = ::write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_data.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) ::close(fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return Status::Unavailable(
        fmt::format("{} still running after {} ms; killed", argv_strings[0], timeout_ms));
  }
  result.exit_code = decode_wait_status(status);
  return result;
}

}  // namespace taba::test
