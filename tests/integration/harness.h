// Helpers for integration tests: real tabad processes on free loopback
// ports, HTTP shortcuts, and v1 body builders.
//
// Not thread-safe; use from the test's main thread. tabad children get
// PR_SET_PDEATHSIG(SIGKILL), so they die with the thread that started them.
#pragma once

#include <sys/types.h>

#include <csignal>  // the signal numbers TabadProcess::signal() takes
#include <cstdint>

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/client.h"

namespace taba::test {

// The tabad binary under test: $TABAD_PATH if set, else the build's
// (compile definition TABAD_PATH).
std::string tabad_path();

// Steady-clock milliseconds, a sleep, and a waitpid status as an exit code
// (the code, or 128 + signal number).
int64_t now_ms();
void sleep_ms(int ms);
int decode_wait_status(int status);

// Wall-clock seconds (time(nullptr)): the timestamps of posted events.
double now_s();

// Polls pred every step_ms until it holds or timeout_ms have passed, so
// that timed behaviour is not a race; pred's last answer.
template <typename F>
bool eventually(F pred, int timeout_ms, int step_ms = 50) {
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    if (pred()) return true;
    sleep_ms(step_ms);
  }
  return pred();
}

// The first executable `name` in the directories of $PATH (an empty entry
// is the current directory), or "" if there is none.
std::string find_on_path(std::string_view name);

// Starts argv[0] (a path) with its output appended to (or, with
// truncate_log, replacing) log_path and stdin from /dev/null; the child dies
// with the test process. Returns its pid. A file_size_limit > 0 becomes the
// child's RLIMIT_FSIZE soft limit (writes past it fail with EFBIG; SIGXFSZ
// is ignored): a stand-in for a full disk where mounting a small tmpfs is
// not allowed.
Result<pid_t> spawn_logged(const std::vector<std::string>& args, const std::string& log_path, bool truncate_log,
                           uint64_t file_size_limit = 0);

// Sets the RLIMIT_FSIZE soft limit of a running process (prlimit); 0 means
// unlimited (up to its hard limit).
Status set_file_size_limit(pid_t pid, uint64_t bytes);

// Raises this process's RLIMIT_NOFILE soft limit to `want` (at most the hard
// limit); children started afterwards inherit it. Returns the soft limit now
// in force.
Result<uint64_t> raise_fd_limit(uint64_t want);

// From /proc/<pid>: the resident set size in KiB (VmRSS), and the number of
// open file descriptors.
Result<int64_t> process_rss_kb(pid_t pid);
Result<int> process_fd_count(pid_t pid);

// A new, empty directory "$TMPDIR/<prefix>-XXXXXX" (TMPDIR defaults to /tmp).
// Aborts the test run (throws std::runtime_error) if it cannot be created.
std::string make_temp_dir(std::string_view prefix = "taba-test");

// Removes a directory tree, ignoring errors.
void remove_tree(const std::string& path);

// A loopback TCP port that was free a moment ago (bound to port 0, then
// released), or 0 if none could be had. Someone else may take it before use.
int free_port();

// The same for a loopback UDP port.
int free_udp_port();

// Sends one UDP datagram to 127.0.0.1:port.
Status send_udp(int port, std::string_view datagram);

// Sends one datagram to the unix datagram socket bound at `path`.
Status send_unix_datagram(const std::string& path, std::string_view datagram);

// Writes (replaces) a whole file. Error if it cannot be written.
Status write_text_file(const std::string& path, std::string_view text);

// A temporary directory removed at scope exit (kept with $TABA_TEST_KEEP_DIRS).
struct TempDir {
  explicit TempDir(std::string_view prefix) : path(make_temp_dir(prefix)) {}
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

// A whole file's bytes ("" when it cannot be read).
std::string read_file(const std::string& path);

// GET base_url + path. `accept` becomes the Accept header (none if empty).
Result<http::ClientResponse> get(const std::string& base_url, std::string_view path,
                                 std::string_view accept = "text/plain", int timeout_ms = 10000);

// POST body to base_url + path with extra headers.
Result<http::ClientResponse> post(const std::string& base_url, std::string_view path, std::string_view body,
                                  const std::vector<http::Header>& headers = {}, int timeout_ms = 10000);

// A reply's HTTP status, or -1 when the request failed.
int status_of(const Result<http::ClientResponse>& r);

// A reply's body, or the error's message when the request failed.
std::string body_text(const Result<http::ClientResponse>& r);

// The value of one series in a Prometheus exposition, or -1 if absent.
double metric(const std::string& text, const std::string& series);

// One tabad child process.
class TabadProcess {
 public:
  TabadProcess() = default;
  // Kills the process with SIGKILL if it is still running and reaps it;
  // removes a data directory this object created (unless
  // $TABA_TEST_KEEP_DIRS is set).
  ~TabadProcess();
  TabadProcess(const TabadProcess&) = delete;
  TabadProcess& operator=(const TabadProcess&) = delete;

  // Starts `tabad --listen 127.0.0.1:<free port> --data-dir <dir> <extra_args>`
  // with stdout and stderr going to <dir>/tabad.log, and waits (10 s at most)
  // until GET /healthz answers 200. An empty data_dir means this object's
  // own directory: a fresh temporary one on the first start, the same one on
  // a restart after the process exited (so kill9() + wait_exit() + start()
  // recovers from the same store). Retries with another port if the first
  // was taken meanwhile. The error carries the end of the log.
  Status start(std::vector<std::string> extra_args = {}, std::string data_dir = {});

  // For the next start()s: where stdout and stderr go ("" = <data dir>/tabad.log;
  // e.g. outside a data directory that is a small tmpfs), and an
  // RLIMIT_FSIZE for the process (0 = none; see spawn_logged).
  void set_log_path(std::string path) { log_path_ = std::move(path); }
  void set_file_size_limit(uint64_t bytes) { file_size_limit_ = bytes; }

  // Like start(), but listening on the given port, which the caller chose
  // (e.g. told to an agent before this process existed); no retry with
  // another port.
  Status start_on_port(int port, std::vector<std::string> extra_args = {}, std::string data_dir = {});

  int port() const { return port_; }
  // "http://127.0.0.1:<port>"
  std::string url() const;
  pid_t pid() const { return pid_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string log_path() const;
  // Everything the process wrote to stdout and stderr so far.
  std::string log_text() const;

  // True while the process has not exited (reaps it once it has).
  bool running();
  // Sends `signo` (e.g. SIGTERM, SIGHUP). Error if the process is not running.
  Status signal(int signo);
  // SIGKILL, no waiting. No-op if not running.
  void kill9();
  // Waits for the process to exit: its exit code, or 128 + signal number if
  // a signal ended it. Error if it is still running after timeout_ms (it is
  // left running).
  Result<int> wait_exit(int timeout_ms);

  // Waits until GET /healthz answers 200. Error if the process exits first
  // or the time runs out.
  Status wait_healthy(int timeout_ms);

  Result<http::ClientResponse> get(std::string_view path, std::string_view accept = "text/plain") const;
  Result<http::ClientResponse> post(std::string_view path, std::string_view body,
                                    const std::vector<http::Header>& headers = {}) const;

 private:
  Status start_impl(const std::vector<std::string>& extra_args, std::string data_dir, int fixed_port);
  // fixed_port 0: a free port.
  Status spawn(const std::vector<std::string>& extra_args, int fixed_port);
  std::string log_tail() const;

  pid_t pid_ = -1;
  bool exited_ = true;  // no live child
  int exit_code_ = -1;  // as wait_exit() reports it, once exited
  int port_ = 0;
  std::string data_dir_;
  bool owns_dir_ = false;
  std::string log_path_;          // "" = <data_dir_>/tabad.log
  uint64_t file_size_limit_ = 0;  // RLIMIT_FSIZE of the child; 0 = none
};

// ---------------------------------------------------------------------------
// v1 bodies (docs/api.md §4.1).

struct NameBlock {
  std::string name;
  std::vector<std::string> event_lines;  // from event_line(), or hand-made
};

struct ClientBlock {
  std::string client;
  std::vector<NameBlock> names;
};

// "1\n\n" then per client "<client>\n\n", per name "<name>\n<event>\n...\n",
// a blank line ending each client: exactly what the Python encoder sends.
std::string v1_body(const std::vector<ClientBlock>& clients);

// A JSON string literal for `text` (quotes and escapes added).
std::string json_string(std::string_view text);

// `[type, ts, payload]` as the Python client writes it: ", " separators, the
// timestamp as Python repr (1400000002.0, 1400000000.25) and the payload's
// JSON text encoded again as a JSON string:
//   event_line("CounterGroup", 1400000000.25, "12.5") == R"(["CounterGroup", 1400000000.25, "12.5"])"
//   event_line("Gauge", 1400000002.0, "\"red\"")      == R"(["Gauge", 1400000002.0, "\"red\""])"
std::string event_line(std::string_view type, double ts, std::string_view payload_json);

// ---------------------------------------------------------------------------
// Other processes (e.g. taba-cli at TABA_CLI_PATH).

struct ProcessOutput {
  int exit_code = -1;  // or 128 + signal number
  std::string out;
  std::string err;
};

// Runs argv[0] (a path) with argv, feeding stdin_data on its standard input,
// and collects its output. Error if it cannot start or runs past timeout_ms
// (it is then killed).
Result<ProcessOutput> run_process(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                                  int timeout_ms = 30000);

}  // namespace taba::test

// In a Catch2 test: a Status that must be OK; its message (for a start, the
// end of the log) is shown if not.
#define REQUIRE_OK(expr)           \
  do {                             \
    ::taba::Status _status = expr; \
    INFO(_status.message());       \
    REQUIRE(_status.ok());         \
  } while (0)
