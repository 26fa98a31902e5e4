// Fault injection against real tabad processes over real sockets: full
// disks under the WAL and the agent's spool, slow and idle clients, oversized
// and compressed-bomb requests, and kill -9 of the roles the other suites do
// not kill (client-proxy, an fe in Redis mode fed by an agent, the ctrl).
//
// Every test counts exactly what ends up stored: an acknowledged (200) post
// must be there once, a refused one not at all. Waits are bounded and say
// what they waited for; no assertion is about speed. Figures worth reading
// (which way the disk was filled, fds, RSS per connection, recovery times)
// are printed as warnings.
//
// A full disk is a small tmpfs when the test may mount one (root), else an
// RLIMIT_FSIZE on the tabad process; TABA_TEST_NO_TMPFS=1 forces the latter.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "http/client.h"
#include "redis_harness.h"

using namespace taba;
using namespace taba::test;

namespace {

// The number at a JSON pointer of GET `path` (JSON), or -1.
double json_at(const TabadProcess& p, const std::string& path, const char* pointer) {
  auto r = test::get(p.url(), path, "application/json", 5000);
  if (status_of(r) != 200) return -1;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(r->body).get(doc) != simdjson::SUCCESS) return -1;
  uint64_t u = 0;
  if (doc.at_pointer(pointer).get(u) == simdjson::SUCCESS) return static_cast<double>(u);
  double d = 0;
  if (doc.at_pointer(pointer).get(d) == simdjson::SUCCESS) return d;
  return -1;
}

// The agent's spool is empty and nothing is being forwarded.
bool agent_drained(const TabadProcess& agent) {
  return json_at(agent, "/status?format=json", "/spool/events") == 0 &&
         json_at(agent, "/status?format=json", "/forwarded/in_flight") == 0;
}

std::string write_config(const std::string& path, const std::string& text) {
  REQUIRE_OK(write_text_file(path, text));
  return path;
}

// A body of `events` TotalsCounter events of value 1 under one name.
std::string totals_body(const std::string& client, const std::string& name, int events, double t) {
  NameBlock nb{name, {}};
  for (int k = 0; k < events; ++k) nb.event_lines.push_back(event_line("TotalsCounter", t, "1"));
  return v1_body({{client, {nb}}});
}

// GET /tabs?name=<regex>&re=1 as JSON: name -> TotalsCounter "count" (or the
// number at `count_ptr`). Empty on any failure (the caller's checks then say so).
std::map<std::string, double> counts(const std::string& base_url, const std::string& regex,
                                     const char* count_ptr = "/count") {
  std::map<std::string, double> out;
  auto r = test::get(base_url, "/tabs?re=1&name=" + regex, "application/json", 10000);
  if (!r.ok() || r->status != 200) return out;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(r->body).get(obj) != simdjson::SUCCESS) return out;
  for (auto field : obj) {
    double v = -1;
    if (field.value.at_pointer(count_ptr).get(v) != simdjson::SUCCESS) v = -1;
    out.emplace(std::string(field.key), v);
  }
  return out;
}

// One post per name, each answered 200 or not.
struct Sent {
  std::string name;
  int events = 0;
  int status = 0;  // -1: no answer
};

// Checks that every acknowledged post is stored exactly (its name holds its
// events once) and that no other post left anything behind.
void check_exactly_acknowledged(const std::vector<Sent>& sent, const std::map<std::string, double>& got,
                                const std::string& where) {
  INFO(where);
  int acked = 0, refused = 0;
  for (const Sent& s : sent) {
    INFO(s.name << " answered " << s.status);
    auto it = got.find(s.name);
    if (s.status == 200) {
      ++acked;
      REQUIRE(it != got.end());
      CHECK(it->second == s.events);
    } else {
      ++refused;
      CHECK(it == got.end());
    }
  }
  CHECK(got.size() == static_cast<size_t>(acked));
  INFO(acked << " acknowledged, " << refused << " refused");
}

// ---------------------------------------------------------------------------
// A directory with little room. A small tmpfs is mounted on it when this
// process may mount (root) and $TABA_TEST_NO_TMPFS is not set; else the
// process writing there gets an RLIMIT_FSIZE, so that a file of the store
// cannot grow past `bytes`.
class SmallDisk {
 public:
  // A tmpfs of tmpfs_bytes, else a file size limit of limit_bytes.
  SmallDisk(std::string dir, uint64_t tmpfs_bytes, uint64_t limit_bytes)
      : dir_(std::move(dir)), bytes_(tmpfs_bytes), limit_bytes_(limit_bytes) {
    ::mkdir(dir_.c_str(), 0755);
    std::string options = fmt::format("size={},mode=0755", bytes_);
    if (const char* no = std::getenv("TABA_TEST_NO_TMPFS"); no != nullptr && *no != '\0') {
      mount_error_ = "not tried: $TABA_TEST_NO_TMPFS is set";
    } else if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      mount_error_ = std::strerror(errno);
    }
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  bool tmpfs() const { return mounted_; }
  const std::string& dir() const { return dir_; }
  bool mounted() const { return mounted_; }
  std::string method() const {
    if (mounted_) return fmt::format("a {} KiB tmpfs mounted at {}", bytes_ >> 10, dir_);
    return fmt::format("RLIMIT_FSIZE of {} KiB on the process (mount failed: {})", limit_bytes_ >> 10, mount_error_);
  }
  // The RLIMIT_FSIZE the process under test needs (0 with a tmpfs).
  uint64_t file_size_limit() const { return mounted_ ? 0 : limit_bytes_; }

  // tmpfs: takes every free byte with a filler file. No-op otherwise (the
  // process's own file fills up to the limit).
  void fill() {
    if (!mounted_) return;
    int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    std::string block(64 << 10, 'x');
    size_t unit = block.size();
    int err = 0;
    for (int i = 0; i < 100000 && unit > 0; ++i) {
      ssize_t n = ::write(fd, block.data(), unit);
      if (n < 0) {
        err = errno;
        if (err != ENOSPC) break;
        unit /= 2;  // fill the last pages too
        continue;
      }
    }
    ::close(fd);
    INFO("filling " << filler() << ": " << std::strerror(err));
    REQUIRE(err == ENOSPC);
  }

  // Gives the room back: deletes the filler (tmpfs) or lifts the limit of `pid`.
  void free_room(pid_t pid) {
    if (mounted_) {
      REQUIRE(::unlink(filler().c_str()) == 0);
    } else {
      REQUIRE_OK(set_file_size_limit(pid, 0));
    }
  }

 private:
  std::string filler() const { return dir_ + "/filler"; }
  std::string dir_;
  uint64_t bytes_;
  uint64_t limit_bytes_;
  bool mounted_ = false;
  std::string mount_error_;
};

// Posts bodies of `events` events, one name each ("<prefix><5 digits>"),
// and records the answers.
struct Poster {
  std::string url, path, client, prefix;
  int events = 10;
  double t = now_s();
  std::vector<Sent> sent;

  Sent post_next(std::string* reason = nullptr, std::string* retry_after = nullptr) {
    Sent s{fmt::format("{}{:05}", prefix, sent.size()), events, 0};
    auto r = test::post(url, path, totals_body(client, s.name, events, t), {}, 10000);
    s.status = status_of(r);
    if (r.ok()) {
      if (reason) *reason = r->body;
      if (retry_after) *retry_after = std::string(r->header("retry-after"));
    } else if (reason) {
      *reason = r.status().message();
    }
    sent.push_back(s);
    return s;
  }
};

// The common part of the two full-disk tests: posts until the disk refuses,
// checks the refusals, frees the room and checks that ingest resumes.
// `alive` is checked while the disk is full (queries, status).
struct FullDiskRun {
  int first_refused = -1;
  int64_t recovered_ms = -1;
};

FullDiskRun run_full_disk(SmallDisk& disk, TabadProcess& p, Poster& poster, const std::function<void()>& alive) {
  FullDiskRun run;
  // Room: every post is acknowledged.
  for (int i = 0; i < 10; ++i) REQUIRE(poster.post_next().status == 200);

  disk.fill();
  std::string reason, retry_after;
  for (int i = 0; i < 4000; ++i) {
    Sent s = poster.post_next(&reason, &retry_after);
    INFO(s.name << ": " << reason);
    REQUIRE((s.status == 200 || s.status == 503));
    if (s.status == 503) {
      run.first_refused = static_cast<int>(poster.sent.size()) - 1;
      break;
    }
  }
  INFO("last reason: " << reason);
  REQUIRE(run.first_refused >= 0);
  CHECK(retry_after == "1");
  CHECK((reason.find("No space left on device") != std::string::npos ||
         reason.find("File too large") != std::string::npos));

  // While full: every post is refused (never a 200 for something not
  // written), and the process stays up and answers.
  for (int i = 0; i < 10; ++i) {
    Sent s = poster.post_next(&reason, &retry_after);
    INFO(s.name << ": " << reason);
    CHECK(s.status == 503);
    CHECK(retry_after == "1");
  }
  REQUIRE(p.running());
  alive();

  // Room again: ingest resumes by itself, no restart.
  disk.free_room(p.pid());
  int64_t freed_at = now_ms();
  bool resumed = false;
  while (now_ms() - freed_at < 15000) {
    if (poster.post_next(&reason).status == 200) {
      resumed = true;
      break;
    }
    sleep_ms(50);
  }
  INFO("last answer: " << reason);
  REQUIRE(resumed);
  run.recovered_ms = now_ms() - freed_at;
  for (int i = 0; i < 10; ++i) CHECK(poster.post_next().status == 200);
  return run;
}

// ---------------------------------------------------------------------------
// Raw sockets, for what an HTTP client library will not send.

int connect_raw(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval send_timeout{5, 0};  // a server that stops reading fails send_all instead of blocking it
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct ReadResult {
  bool closed = false;  // the peer closed (EOF or reset)
  std::string data;
};

// Reads what arrives until the peer closes or timeout_ms passes.
ReadResult read_until_closed(int fd, int timeout_ms) {
  ReadResult r;
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return r;
    pollfd pfd{fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left));
    if (n <= 0) continue;
    char buf[16384];
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got > 0) {
      r.data.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      r.closed = true;
      return r;
    }
  }
}

// Reads without waiting; true once the peer closed.
bool drain_nonblocking(int fd, std::string* data) {
  for (;;) {
    char buf[4096];
    ssize_t got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got > 0) {
      data->append(buf, static_cast<size_t>(got));
      continue;
    }
    if (got == 0) return true;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }
}

// The status code of a raw HTTP/1.1 response, or 0.
int raw_status(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

// The body of a raw response (after the blank line).
std::string raw_body(const std::string& response) {
  size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : response.substr(at + 4);
}

struct FdCloser {
  std::vector<int> fds;
  ~FdCloser() { close_all(); }
  void close_all() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
    fds.clear();
  }
};

// Opens `n` idle connections to the process in batches, each batch only
// after the process holds the previous one (so the listen backlog never
// overflows into SYN retries). Returns how many connected.
int open_idle(TabadProcess& p, int n, int base_fds, FdCloser* out, int max_held) {
  int opened = 0;
  while (opened < n) {
    int batch = std::min(500, n - opened);
    for (int i = 0; i < batch; ++i) {
      int fd = connect_raw(p.port());
      if (fd < 0) return opened;
      out->fds.push_back(fd);
      ++opened;
    }
    // (Paces the opening; a few fds of slack for ones the baseline still
    // counted that have closed since.)
    int want = base_fds + std::min(opened, max_held) - 4;
    bool held = eventually(
        [&] {
          auto fds = process_fd_count(p.pid());
          return fds.ok() && fds.value() >= want;
        },
        10000, 5);
    if (!held) return opened;
  }
  return opened;
}

}  // namespace

// ---------------------------------------------------------------------------
// Full disks

TEST_CASE("fault: a full disk under the WAL answers 503, keeps serving queries, resumes when room returns, and a kill -9 keeps every acknowledged post once",
          "[fault][durability]") {
  TempDir dir("fault-wal");
  SmallDisk disk(dir.path + "/wal", 1 << 20, 64 << 10);
  WARN("WAL disk full by " << disk.method());
  std::string config = write_config(dir.path + "/taba.toml",
                                    "[server]\nself_tabs_interval_s = 0\n"
                                    "[store]\nfsync = \"always\"\nsnapshot_interval_s = 3600\n");
  TabadProcess p;
  p.set_log_path(dir.path + "/tabad.log");  // not on the small disk
  p.set_file_size_limit(disk.file_size_limit());
  REQUIRE_OK(p.start({"--config", config}, disk.dir()));

  Poster poster{p.url(), "/post", "walc", "w", 10, now_s(), {}};
  FullDiskRun run = run_full_disk(disk, p, poster, [&] {
    CHECK(status_of(p.get("/healthz")) == 200);
    auto got = counts(p.url(), "w.*");
    check_exactly_acknowledged(poster.sent, got, "queries while the disk is full");
    std::string m = body_text(p.get("/metrics"));
    CHECK(metric(m, "taba_store_batches_failed_total") >= 11);
    CHECK(metric(m, "taba_wal_out_of_room") == 1);
    // A full file system (not a size limit statvfs cannot see) also takes
    // the fe out of rotation.
    auto ready = p.get("/readyz");
    if (disk.mounted()) {
      CHECK(status_of(ready) == 503);
      CHECK(body_text(ready).find("is full") != std::string::npos);
    } else {
      CHECK(status_of(ready) == 200);
    }
  });
  CHECK(status_of(p.get("/readyz")) == 200);
  CHECK(metric(body_text(p.get("/metrics")), "taba_wal_out_of_room") == 0);
  WARN("WAL: first refusal at post " << run.first_refused << ", ingest resumed " << run.recovered_ms
                                     << " ms after room returned");
  check_exactly_acknowledged(poster.sent, counts(p.url(), "w.*"), "after room returned");

  p.kill9();
  REQUIRE(p.wait_exit(5000).ok());
  p.set_file_size_limit(0);
  REQUIRE_OK(p.start({"--config", config}, disk.dir()));
  check_exactly_acknowledged(poster.sent, counts(p.url(), "w.*"), "after kill -9 and a restart");
  CHECK(status_of(p.post("/post", totals_body("walc", "after_restart", 1, now_s()))) == 200);
}

TEST_CASE("fault: a full disk under the agent spool answers 503, and everything the agent acknowledged arrives at the fe once after room returns and a kill -9",
          "[fault][agent]") {
  TempDir dir("fault-spool");
  SmallDisk disk(dir.path + "/spool", 1 << 20, 64 << 10);
  WARN("agent spool disk full by " << disk.method());
  int fe_port = free_port();
  REQUIRE(fe_port != 0);
  // Segments stay open (unsealed) while the disk fills: with RLIMIT_FSIZE
  // it is the open segment that hits the limit.
  auto agent_toml = [&](const std::string& name, int flush_ms) {
    return write_config(dir.path + "/" + name,
                        fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                    "[agent]\nendpoints = [\"127.0.0.1:{}\"]\nbackoff_max_ms = 500\n"
                                    "spool_dir = \"{}\"\nfsync = \"always\"\nflush_interval_ms = {}\n",
                                    fe_port, disk.dir(), flush_ms));
  };
  std::string filling = agent_toml("agent-fill.toml", 60000);
  std::string draining = agent_toml("agent.toml", 100);
  TabadProcess agent;
  agent.set_file_size_limit(disk.file_size_limit());
  REQUIRE_OK(agent.start({"--config", filling}));

  Poster poster{agent.url(), "/post", "spc", "s", 10, now_s(), {}};
  FullDiskRun run = run_full_disk(disk, agent, poster, [&] {
    CHECK(json_at(agent, "/status?format=json", "/spool/write_errors") >= 11);
    CHECK(status_of(agent.get("/healthz")) == 200);
  });
  WARN("spool: first refusal at post " << run.first_refused << ", ingest resumed " << run.recovered_ms
                                       << " ms after room returned");

  // A crash, then the fe comes up: every acknowledged post arrives once.
  agent.kill9();
  REQUIRE(agent.wait_exit(5000).ok());
  agent.set_file_size_limit(0);
  REQUIRE_OK(agent.start({"--config", draining}));
  TabadProcess fe;
  REQUIRE_OK(fe.start_on_port(fe_port, {"--config", write_config(dir.path + "/fe.toml",
                                                                   "[server]\nself_tabs_interval_s = 0\n")}));
  bool drained = eventually([&] { return agent_drained(agent); }, 20000);
  INFO(body_text(agent.get("/status?format=json")));
  REQUIRE(drained);
  REQUIRE(status_of(fe.post("/flush", "")) == 200);
  check_exactly_acknowledged(poster.sent, counts(fe.url(), "s.*"), "at the fe");
  CHECK(json_at(agent, "/status?format=json", "/dead_letters/batches") == 0);
}

// ---------------------------------------------------------------------------
// Slow clients

TEST_CASE("fault: slowloris - trickled headers are cut at header_timeout_ms, a paused body at body_timeout_ms, and other clients are served meanwhile",
          "[fault][http]") {
  TempDir dir("fault-slow");
  std::string config = write_config(dir.path + "/taba.toml",
                                    "[server]\nself_tabs_interval_s = 0\n"
                                    "[http]\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000\n"
                                    "idle_timeout_ms = 60000\n");
  TabadProcess p;
  REQUIRE_OK(p.start({"--config", config}));
  const double t = now_s();

  // A well-behaved client posting and querying all along.
  std::atomic<bool> stop{false};
  std::atomic<int> good_ok{0}, good_bad{0};
  std::atomic<int64_t> good_max_ms{0};
  std::string url = p.url();
  std::thread good([&] {
    for (int i = 0; !stop.load(); ++i) {
      int64_t t0 = now_ms();
      auto r = i % 2 ? test::get(url, "/tabs?name=slow.good", "text/plain", 5000)
                     : test::post(url, "/post", totals_body("good", "slow.good", 1, t), {}, 5000);
      int64_t ms = now_ms() - t0;
      if (ms > good_max_ms.load()) good_max_ms = ms;
      if (status_of(r) == 200) {
        ++good_ok;
      } else {
        ++good_bad;
      }
      sleep_ms(20);
    }
  });

  // 200 connections sending their headers one byte every 100 ms.
  constexpr int kSlow = 200;
  FdCloser slow;
  std::vector<int64_t> started(kSlow), closed_at(kSlow, -1);
  std::vector<std::string> got(kSlow);
  for (int i = 0; i < kSlow; ++i) {
    int fd = connect_raw(p.port());
    REQUIRE(fd >= 0);
    slow.fds.push_back(fd);
    started[i] = now_ms();
    REQUIRE(send_all(fd, "POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  }
  int open = kSlow;
  int64_t deadline = now_ms() + 15000;
  while (open > 0 && now_ms() < deadline) {
    for (int i = 0; i < kSlow; ++i) {
      if (closed_at[i] >= 0) continue;
      bool gone = drain_nonblocking(slow.fds[i], &got[i]) || !send_all(slow.fds[i], "X");
      if (gone) {
        closed_at[i] = now_ms();
        --open;
      }
    }
    sleep_ms(100);
  }
  stop = true;
  good.join();
  CHECK(open == 0);
  int got_408 = 0;
  int64_t first_close = INT64_MAX, last_close = 0;
  for (int i = 0; i < kSlow; ++i) {
    if (closed_at[i] < 0) continue;
    int64_t lived = closed_at[i] - started[i];
    first_close = std::min(first_close, lived);
    last_close = std::max(last_close, lived);
    INFO("connection " << i << " lived " << lived << " ms and read: " << got[i]);
    CHECK(lived >= 900);  // the header timer runs from the first byte; trickling does not restart it
    if (raw_status(got[i]) == 408) ++got_408;
  }
  CHECK(got_408 == kSlow);
  WARN("slowloris: " << kSlow << " trickling connections closed after " << first_close << "-" << last_close
                     << " ms (header_timeout_ms = 1000); meanwhile " << good_ok << " good requests answered 200, "
                     << good_bad << " not, slowest " << good_max_ms << " ms");
  CHECK(good_ok > 0);
  CHECK(good_bad == 0);

  // A body that starts, goes on a little, then pauses: cut body_timeout_ms
  // after its last byte (the timer restarts on every read).
  int fd = connect_raw(p.port());
  REQUIRE(fd >= 0);
  slow.fds.push_back(fd);
  std::string head = "POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n";
  REQUIRE(send_all(fd, head));
  // A valid start, then the inside of a long string: the decoder waits for
  // the line's end.
  const std::string body_start = "1\n\nslow\n\nslow.body\n[\"Gauge\", 1400000000, \"\\\"";
  REQUIRE(send_all(fd, body_start));
  for (int i = 0; i < 5; ++i) {
    sleep_ms(100);
    REQUIRE(send_all(fd, std::string(200, 'x')));
  }
  int64_t last_byte = now_ms();
  ReadResult body_cut = read_until_closed(fd, 10000);
  int64_t paused = now_ms() - last_byte;
  INFO("read: " << body_cut.data);
  CHECK(body_cut.closed);
  CHECK(raw_status(body_cut.data) == 408);
  CHECK(raw_body(body_cut.data) == "request body timeout\n");
  CHECK(paused >= 900);
  WARN("a body paused for " << paused << " ms was cut (body_timeout_ms = 1000)");

  // A body that never pauses long but drips (a byte every 300 ms): cut once
  // body_timeout_ms has passed, for averaging under http.min_body_rate.
  int drip = connect_raw(p.port());
  REQUIRE(drip >= 0);
  slow.fds.push_back(drip);
  REQUIRE(send_all(drip, head));
  REQUIRE(send_all(drip, body_start));
  int64_t drip_start = now_ms();
  bool drip_refused = false;
  for (int i = 0; i < 20 && !drip_refused; ++i) {
    sleep_ms(300);
    drip_refused = !send_all(drip, "x");
    std::string reply;
    drain_nonblocking(drip, &reply);
    drip_refused = drip_refused || !reply.empty();
    if (!reply.empty()) {
      INFO("drip read: " << reply);
      CHECK(raw_status(reply) == 408);
      CHECK(raw_body(reply).find("under the minimum of 1024 bytes/s") != std::string::npos);
    }
  }
  int64_t dripped = now_ms() - drip_start;
  CHECK(drip_refused);
  CHECK(dripped >= 1000);
  CHECK(dripped < 4000);
  WARN("a body dripping a byte every 300 ms was cut after " << dripped << " ms (min_body_rate = 1024)");

  slow.close_all();  // the server lingers on a closed request until the client closes too
  std::string m;
  bool only_this = eventually(
      [&] {
        m = body_text(p.get("/metrics"));
        return metric(m, "taba_http_connections_active") == 1;  // the /metrics request
      },
      5000);
  CHECK(only_this);
  CHECK(metric(m, "taba_http_timeouts_total") >= kSlow + 2);
  auto good_tabs = counts(p.url(), "slow.good");
  CHECK(good_tabs["slow.good"] > 0);
  CHECK(counts(p.url(), ".*").size() == 1);  // nothing of the slow posts was stored
}

TEST_CASE("fault: http.max_connections refuses the excess at once, counts it, and bounds the file descriptors",
          "[fault][http]") {
  REQUIRE(raise_fd_limit(4096).ok());
  TempDir dir("fault-maxconn");
  std::string config = write_config(dir.path + "/taba.toml",
                                    "[server]\nself_tabs_interval_s = 0\n"
                                    "[http]\nmax_connections = 1000\nidle_timeout_ms = 60000\n");
  TabadProcess p;
  REQUIRE_OK(p.start({"--config", config}));
  REQUIRE(status_of(p.post("/post", totals_body("mc", "mc.before", 3, now_s()))) == 200);
  sleep_ms(200);  // the client's connections are gone
  auto base = process_fd_count(p.pid());
  REQUIRE(base.ok());

  constexpr int kConns = 1500;
  FdCloser conns;
  int opened = open_idle(p, kConns, base.value(), &conns, 1000);
  REQUIRE(opened == kConns);
  // The 500 beyond the limit are closed by the server, the others stay open.
  int closed = 0;
  std::vector<bool> gone(kConns, false);
  eventually(
      [&] {
        for (int i = 0; i < kConns; ++i) {
          std::string ignored;
          if (!gone[i] && drain_nonblocking(conns.fds[i], &ignored)) {
            gone[i] = true;
            ++closed;
          }
        }
        return closed >= kConns - 1000;
      },
      10000);
  sleep_ms(200);
  for (int i = 0; i < kConns; ++i) {
    std::string ignored;
    if (!gone[i] && drain_nonblocking(conns.fds[i], &ignored)) {
      gone[i] = true;
      ++closed;
    }
  }
  CHECK(closed == kConns - 1000);
  auto fds = process_fd_count(p.pid());
  REQUIRE(fds.ok());
  WARN("max_connections = 1000: tabad holds " << fds.value() << " fds (" << base.value() << " before) with "
                                              << kConns << " connections offered, " << closed << " closed");
  CHECK(fds.value() <= 1000 + 64);
  CHECK(fds.value() >= 1000);

  // While full, a new connection is closed too; once some go, it is served.
  CHECK(status_of(test::get(p.url(), "/healthz", "", 2000)) != 200);
  for (int i = 0; i < 10; ++i) {
    ::close(conns.fds[i]);
    conns.fds[i] = -1;
  }
  std::string m;
  REQUIRE(eventually(
      [&] {
        auto r = test::get(p.url(), "/metrics", "text/plain", 2000);
        if (status_of(r) != 200) return false;
        m = r->body;
        return true;
      },
      10000));
  CHECK(metric(m, "taba_http_connections_rejected_total") >= kConns - 1000 + 1);
  CHECK(metric(m, "taba_http_connections_active") <= 1000);
  conns.close_all();
  CHECK(eventually([&] { return status_of(p.post("/post", totals_body("mc", "mc.after", 2, now_s()))) == 200; },
                   10000));
  auto got = counts(p.url(), "mc.*");
  CHECK(got["mc.before"] == 3);
  CHECK(got["mc.after"] == 2);
}

TEST_CASE("fault: 10000 idle connections - tabad keeps serving, fds and memory stay bounded, idle_timeout_ms closes them",
          "[fault][http]") {
  constexpr int kWanted = 10000;
  auto limit = raise_fd_limit(kWanted + 1000);
  REQUIRE(limit.ok());
  int conns_n = kWanted;
  if (limit.value() < static_cast<uint64_t>(kWanted + 1000)) {
    conns_n = static_cast<int>(limit.value()) - 1000;
    WARN("RLIMIT_NOFILE allows only " << limit.value() << " fds: opening " << conns_n << " connections");
  }
  REQUIRE(conns_n >= 1000);
  TempDir dir("fault-idle");
  constexpr int kIdleTimeoutMs = 10000;  // longer than opening them all takes, even under ASan
  std::string config = write_config(dir.path + "/taba.toml",
                                    fmt::format("[server]\nself_tabs_interval_s = 0\n"
                                                "[http]\nmax_connections = {}\nidle_timeout_ms = {}\n",
                                                kWanted + 100, kIdleTimeoutMs));
  TabadProcess p;
  REQUIRE_OK(p.start({"--config", config}));
  // Warm up (the first requests allocate what every later one reuses).
  for (int i = 0; i < 20; ++i) REQUIRE(status_of(p.post("/post", totals_body("ic", "idle.before", 1, now_s()))) == 200);
  sleep_ms(200);
  auto base_fds = process_fd_count(p.pid());
  auto base_rss = process_rss_kb(p.pid());
  REQUIRE(base_fds.ok());
  REQUIRE(base_rss.ok());

  int64_t t0 = now_ms();
  FdCloser conns;
  int opened = open_idle(p, conns_n, base_fds.value(), &conns, conns_n);
  int64_t open_ms = now_ms() - t0;
  REQUIRE(opened == conns_n);
  auto fds = process_fd_count(p.pid());
  auto rss = process_rss_kb(p.pid());
  REQUIRE(fds.ok());
  REQUIRE(rss.ok());

  // Still serving, with every idle connection open.
  auto health = test::get(p.url(), "/healthz", "", 5000);
  CHECK(status_of(health) == 200);
  CHECK(status_of(p.post("/post", totals_body("ic", "idle.during", 4, now_s()))) == 200);
  std::string m = body_text(test::get(p.url(), "/metrics", "text/plain", 5000));
  double active = metric(m, "taba_http_connections_active") - 1;  // less this request
  INFO(m.substr(0, 2000));
  REQUIRE(active > 0);
  double per_conn_kb = static_cast<double>(rss.value() - base_rss.value()) / active;
  WARN(opened << " idle connections opened in " << open_ms << " ms: tabad fds " << base_fds.value() << " -> "
              << fds.value() << ", RSS " << base_rss.value() << " -> " << rss.value() << " KiB ("
              << fmt::format("{:.2f}", per_conn_kb) << " KiB per connection, " << active << " active)");
  CHECK(fds.value() <= base_fds.value() + opened + 16);
  CHECK(fds.value() <= kWanted + 100 + 64);
  CHECK(per_conn_kb < 64);

  // idle_timeout_ms closes every one of them.
  int64_t wait_from = now_ms();
  bool closed_all = eventually(
      [&] {
        auto now_fds = process_fd_count(p.pid());
        return now_fds.ok() && now_fds.value() <= base_fds.value() + 16;
      },
      kIdleTimeoutMs + 15000, 100);
  auto after = process_fd_count(p.pid());
  INFO("fds now " << (after.ok() ? after.value() : -1));
  CHECK(closed_all);
  int seen_closed = 0;
  for (int fd : conns.fds) {
    std::string ignored;
    if (drain_nonblocking(fd, &ignored)) ++seen_closed;
  }
  CHECK(seen_closed == opened);
  WARN("idle_timeout_ms = " << kIdleTimeoutMs << ": all closed " << now_ms() - wait_from
                            << " ms after the last was opened");
  conns.close_all();
  m = body_text(p.get("/metrics"));
  CHECK(metric(m, "taba_http_timeouts_total") >= opened);
  auto got = counts(p.url(), "idle.*");
  CHECK(got["idle.before"] == 20);
  CHECK(got["idle.during"] == 4);
}

// ---------------------------------------------------------------------------
// Oversized and compressed-bomb requests

TEST_CASE("fault: oversized headers get 431, oversized bodies 413, compression bombs 400 naming the limit, and nothing accepted is lost",
          "[fault][http][ingest]") {
  TempDir dir("fault-big");
  constexpr int kMaxBody = 1 << 20;
  constexpr int kMaxInflated = 2 << 20;
  constexpr int kMaxRatio = 100;
  std::string config = write_config(dir.path + "/taba.toml",
                                    fmt::format("[server]\nself_tabs_interval_s = 0\n"
                                                "[http]\nmax_body_bytes = {}\nmax_header_bytes = 8192\n"
                                                "[ingest]\nmax_inflated_bytes = {}\nmax_inflate_ratio = {}\n",
                                                kMaxBody, kMaxInflated, kMaxRatio));
  TabadProcess p;
  REQUIRE_OK(p.start({"--config", config}));
  const double t = now_s();
  int good_posts = 0;
  // After each refusal: the server takes a good post, and has every earlier one.
  auto still_good = [&](const std::string& after) {
    INFO("after " << after);
    REQUIRE(p.running());
    REQUIRE(status_of(p.post("/post", totals_body("big", "big.good", 2, t))) == 200);
    ++good_posts;
    auto got = counts(p.url(), ".*");
    CHECK(got.size() == 1);
    CHECK(got["big.good"] == 2 * good_posts);
  };
  still_good("start");

  auto raw = [&](const std::string& request, int timeout_ms = 5000) {
    int fd = connect_raw(p.port());
    REQUIRE(fd >= 0);
    send_all(fd, request);  // may be cut short by the server's answer
    ReadResult r = read_until_closed(fd, timeout_ms);
    ::close(fd);
    INFO(r.data);
    CHECK(r.closed);
    return r.data;
  };
  auto one_line = [](const std::string& body) {
    return !body.empty() && body.find('\n') == body.size() - 1;
  };

  SECTION("headers") {
    // One huge header, many headers, a huge request target.
    std::string big = "POST /post HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n";
    std::string r = raw(big);
    CHECK(raw_status(r) == 431);
    CHECK(raw_body(r) == "request header fields too large\n");
    still_good("one huge header");

    std::string many = "GET /tabs HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 300; ++i) many += fmt::format("X-H{}: {}\r\n", i, std::string(40, 'b'));
    r = raw(many + "\r\n");
    CHECK(raw_status(r) == 431);
    CHECK(one_line(raw_body(r)));
    still_good("many headers");

    r = raw("GET /tabs?name=" + std::string(10000, 'n') + " HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(raw_status(r) == 431);
    CHECK(one_line(raw_body(r)));
    still_good("a huge request target");
  }

  SECTION("bodies") {
    // Declared too long: refused before any body byte is sent.
    std::string r = raw(fmt::format("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 2 * kMaxBody));
    CHECK(raw_status(r) == 413);
    CHECK(raw_body(r) == fmt::format("request body of {} bytes exceeds the limit of {} bytes\n", 2 * kMaxBody, kMaxBody));
    still_good("a Content-Length over the limit");

    // Chunked, valid events, streaming past the limit.
    int fd = connect_raw(p.port());
    REQUIRE(fd >= 0);
    FdCloser closer{{fd}};
    REQUIRE(send_all(fd, "POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string piece = "1\n\nbig\n\nbig.chunked\n";
    std::string line = event_line("TotalsCounter", t, "1") + "\n";
    while (piece.size() < 60000) piece += line;
    std::string response;
    bool peer_closed = false;
    size_t sent = 0;
    for (int i = 0; i < 40 && !peer_closed && response.empty(); ++i) {
      std::string chunk = fmt::format("{:x}\r\n{}\r\n", piece.size(), piece);
      if (!send_all(fd, chunk)) break;
      sent += piece.size();
      piece = line;
      while (piece.size() < 60000) piece += line;
      peer_closed = drain_nonblocking(fd, &response);
    }
    ReadResult rest = read_until_closed(fd, 5000);
    response += rest.data;
    INFO("sent " << sent << " body bytes; read: " << response);
    CHECK(raw_status(response) == 413);
    CHECK(raw_body(response) == fmt::format("request body exceeds the limit of {} bytes\n", kMaxBody));
    still_good("a chunked body over the limit");
  }

  SECTION("compression bombs") {
    // Valid events, so that only the limits can refuse them. A ratio bomb:
    // one line repeated, 4 MiB decompressed.
    std::string line = event_line("TotalsCounter", t, "1") + "\n";
    std::string repeated = "1\n\nbig\n\nbig.bomb\n";
    while (repeated.size() < (4u << 20)) repeated += line;
    repeated += "\n\n";
    // A size bomb: varied values, compressing well but under the ratio limit.
    std::string varied = "1\n\nbig\n\nbig.bomb\n";
    for (int i = 0; varied.size() < (3u << 20); ++i) {
      varied += event_line("TotalsCounter", t, fmt::format("{}", (i * 7919) % 100003)) + "\n";
    }
    varied += "\n\n";

    for (bool gzip : {false, true}) {
      std::string path = gzip ? "/post" : "/post_zip";
      std::vector<http::Header> headers;
      if (gzip) headers.push_back({"Content-Encoding", "gzip"});
      auto compress = [&](const std::string& s) { return gzip ? http::gzip_compress(s, 9) : http::zlib_compress(s, 9); };

      std::string ratio_bomb = compress(repeated);
      INFO((gzip ? "gzip" : "zlib") << " ratio bomb: " << repeated.size() << " -> " << ratio_bomb.size());
      REQUIRE(repeated.size() / ratio_bomb.size() > 2 * kMaxRatio);
      auto r = p.post(path, ratio_bomb, headers);
      REQUIRE(r.ok());
      CHECK(r->status == 400);
      CHECK(r->body == fmt::format("compression ratio exceeds {}:1 (ingest.max_inflate_ratio)\n", kMaxRatio));
      still_good("a ratio bomb");

      std::string size_bomb = compress(varied);
      INFO((gzip ? "gzip" : "zlib") << " size bomb: " << varied.size() << " -> " << size_bomb.size());
      REQUIRE(varied.size() / size_bomb.size() < kMaxRatio);
      REQUIRE(size_bomb.size() < static_cast<size_t>(kMaxBody));
      r = p.post(path, size_bomb, headers);
      REQUIRE(r.ok());
      CHECK(r->status == 400);
      CHECK(r->body == fmt::format("decompressed body exceeds {} bytes (ingest.max_inflated_bytes)\n", kMaxInflated));
      still_good("a size bomb");
    }
    // The classic bomb, zeros: refused too (by the decoder, before any limit).
    std::string zeros(8u << 20, '\0');
    auto r = p.post("/post_zip", http::zlib_compress(zeros, 9));
    CHECK(status_of(r) == 400);
    still_good("a bomb of zeros");
  }
  CHECK(body_text(p.get("/names")) == "big.good\n");
}

// ---------------------------------------------------------------------------
// kill -9 of the roles other suites do not kill

TEST_CASE("fault: kill -9 of the client-proxy under load - what the agent acknowledged arrives once, and a restart on the same ports works",
          "[fault][client-proxy]") {
  TempDir dir("fault-proxy");
  TabadProcess fe, agent, proxy;
  REQUIRE_OK(fe.start({"--config", write_config(dir.path + "/fe.toml", "[server]\nself_tabs_interval_s = 0\n")}));
  REQUIRE_OK(agent.start({"--config", write_config(dir.path + "/agent.toml",
                                                   fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                                               "[agent]\nendpoints = [\"127.0.0.1:{}\"]\n"
                                                               "backoff_max_ms = 500\nflush_interval_ms = 50\n",
                                                               fe.port()))}));
  int udp_port = free_udp_port();
  REQUIRE(udp_port != 0);
  std::string proxy_toml = write_config(dir.path + "/proxy.toml",
                                        fmt::format("[server]\nroles = [\"client-proxy\"]\nself_tabs_interval_s = 0\n"
                                                    "[client_proxy]\nstatsd_udp = \"127.0.0.1:{}\"\n"
                                                    "agent = \"127.0.0.1:{}\"\nclient_id = \"proxyhost\"\n"
                                                    "flush_interval_ms = 50\n",
                                                    udp_port, agent.port()));
  REQUIRE_OK(proxy.start({"--config", proxy_toml}));
  const int proxy_port = proxy.port();
  const double t = now_s();

  // StatsD counters over UDP and Taba posts over HTTP, until the kill.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> udp_lines{0}, posted_events{0};
  std::thread udp([&] {
    while (!stop.load()) {
      std::string d;
      for (int i = 0; i < 20; ++i) d += "px.udp:1|c\n";
      if (send_udp(udp_port, d).ok()) udp_lines += 20;
      sleep_ms(2);
    }
  });
  std::string proxy_url = proxy.url();
  std::thread http_load([&] {
    while (!stop.load()) {
      auto r = test::post(proxy_url, "/post", totals_body("app", "px.post", 5, t), {}, 2000);
      if (!r.ok()) sleep_ms(20);
      posted_events += 5;  // offered (an answered or unanswered post may still be lost by the proxy)
    }
  });
  bool flowing = eventually([&] { return counts(fe.url(), "px.udp", "/pct/count")["px.udp"] > 200; }, 10000);
  proxy.kill9();
  sleep_ms(300);
  stop = true;
  udp.join();
  http_load.join();
  REQUIRE(flowing);
  auto code = proxy.wait_exit(5000);
  REQUIRE(code.ok());
  CHECK(code.value() == 128 + SIGKILL);

  // Everything the agent acknowledged reaches the fe, once.
  auto agent_events = [&](const char* ptr) { return json_at(agent, "/status?format=json", ptr); };
  double spooled = -1, fe_total = -1;
  bool settled = eventually(
      [&] {
        spooled = agent_events("/posts/events_spooled");
        if (fe.post("/flush", "").ok()) {
          auto udp_now = counts(fe.url(), "px.udp", "/pct/count");
          auto post_now = counts(fe.url(), "px.post");
          fe_total = udp_now["px.udp"] + post_now["px.post"];
        }
        return spooled > 0 && agent_drained(agent) && fe_total == spooled;
      },
      15000, 100);
  INFO("agent spooled " << spooled << " events, the fe has " << fe_total << "; offered " << udp_lines
                        << " UDP lines and " << posted_events << " posted events");
  CHECK(settled);
  CHECK(agent_events("/forwarded/events") == spooled);
  CHECK(agent_events("/posts/duplicates") == 0);
  auto before = counts(fe.url(), "px.udp", "/pct/count")["px.udp"];
  CHECK(before <= udp_lines.load());
  CHECK(counts(fe.url(), "px.post")["px.post"] <= posted_events.load());

  // The proxy restarts on the same ports and forwards again, exactly.
  REQUIRE_OK(proxy.start_on_port(proxy_port, {"--config", proxy_toml}));
  for (int i = 0; i < 50; ++i) {
    REQUIRE_OK(send_udp(udp_port, "px.after:2|c\npx.after:3|c\n"));
    sleep_ms(2);
  }
  REQUIRE(status_of(proxy.post("/post", totals_body("app", "px.after_post", 7, t))) == 200);
  std::map<std::string, double> after, after_post;
  bool arrived = eventually(
      [&] {
        if (!fe.post("/flush", "").ok()) return false;
        after = counts(fe.url(), "px.after", "/pct/total");
        after_post = counts(fe.url(), "px.after_post");
        return after["px.after"] == 250 && after_post["px.after_post"] == 7;
      },
      15000, 100);
  INFO("px.after total " << after["px.after"] << ", px.after_post count " << after_post["px.after_post"]);
  CHECK(arrived);
  CHECK(counts(fe.url(), "px.udp", "/pct/count")["px.udp"] == before);  // nothing old came back twice
  WARN("client-proxy kill -9: the agent had acknowledged " << spooled << " events (of " << udp_lines
                                                            << " UDP lines and " << posted_events
                                                            << " posted events offered); the fe has exactly those");
}

TEST_CASE("fault: redis - kill -9 of the fe an agent forwards to and of the ctrl under load, every acknowledged event arrives once",
          "[fault][redis]") {
  RedisCluster cluster;
  RedisCluster::Options o;
  o.shards = 1;
  o.replicas_per_shard = 0;
  o.sentinels = 1;
  o.quorum = 1;
  REQUIRE_OK(cluster.start(o));
  TempDir dir("fault-redis");
  std::string redis_toml = write_config(dir.path + "/taba.toml",
                                        "[server]\nself_tabs_interval_s = 0\n" + cluster.toml(1024, {}));
  TabadProcess fe, be, ctrl, agent;
  REQUIRE_OK(fe.start({"--config", redis_toml, "--role", "fe"}));
  const int fe_port = fe.port();
  REQUIRE_OK(be.start({"--config", redis_toml, "--role", "be"}));
  REQUIRE_OK(ctrl.start({"--config", redis_toml, "--role", "ctrl"}));
  const int ctrl_port = ctrl.port();
  REQUIRE_OK(agent.start({"--config", write_config(dir.path + "/agent.toml",
                                                   fmt::format("[server]\nroles = [\"agent\"]\nself_tabs_interval_s = 0\n"
                                                               "[agent]\nendpoints = [\"127.0.0.1:{}\"]\n"
                                                               "backoff_initial_ms = 50\nbackoff_max_ms = 500\n"
                                                               "flush_interval_ms = 50\nforward_timeout_ms = 3000\n",
                                                               fe_port))}));

  // Posts to the agent (each 3 clients x 4 names x 2 events) and queries to
  // the ctrl, until stopped.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acked_events{0}, refused_posts{0}, queries_ok{0}, queries_failed{0};
  const double t = now_s();
  std::string agent_url = agent.url(), ctrl_url = ctrl.url();
  std::thread load([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::vector<ClientBlock> blocks;
      for (int c = 0; c < 3; ++c) {
        ClientBlock cb{fmt::format("rc{}", (i + c) % 5), {}};
        for (int n = 0; n < 4; ++n) {
          cb.names.push_back({fmt::format("rk.n{}", n), {event_line("TotalsCounter", t, "1"), event_line("TotalsCounter", t, "1")}});
        }
        blocks.push_back(std::move(cb));
      }
      auto r = test::post(agent_url, "/post", v1_body(blocks), {}, 5000);
      if (status_of(r) == 200) {
        acked_events += 24;
      } else {
        ++refused_posts;
      }
      sleep_ms(5);
    }
  });
  std::thread queries([&] {
    while (!stop.load()) {
      auto r = test::get(ctrl_url, "/supertabs?name=rk%5C.n.*&re=1", "application/json", 3000);
      if (status_of(r) == 200) {
        ++queries_ok;
      } else {
        ++queries_failed;
      }
      sleep_ms(20);
    }
  });
  auto forwarded_to_fe = [&] {
    return static_cast<int64_t>(json_at(agent, "/status?format=json", "/forwarded/events"));
  };

  // The fe dies mid-forward and comes back on its port; the agent retries.
  REQUIRE(eventually([&] { return forwarded_to_fe() > 2000; }, 15000));
  fe.kill9();
  REQUIRE(fe.wait_exit(5000).ok());
  int64_t at_kill = forwarded_to_fe();
  sleep_ms(1000);
  REQUIRE_OK(fe.start_on_port(fe_port, {"--config", redis_toml, "--role", "fe"}));
  int64_t restarted = now_ms();
  bool resumed = eventually([&] { return forwarded_to_fe() > at_kill + 1000; }, 15000);
  int64_t resumed_ms = now_ms() - restarted;
  CHECK(resumed);

  // The ctrl dies while queried and comes back.
  int64_t ok_before = queries_ok.load();
  CHECK(ok_before > 0);
  ctrl.kill9();
  REQUIRE(ctrl.wait_exit(5000).ok());
  sleep_ms(500);
  REQUIRE_OK(ctrl.start_on_port(ctrl_port, {"--config", redis_toml, "--role", "ctrl"}));
  int64_t ok_at_restart = queries_ok.load();
  CHECK(eventually([&] { return queries_ok.load() > ok_at_restart + 5; }, 10000));
  sleep_ms(500);
  stop = true;
  load.join();
  queries.join();
  CHECK(refused_posts == 0);  // the agent stays up: it takes every post

  // Drained: the agent forwarded all, the be applied all, once.
  bool drained = eventually([&] { return agent_drained(agent); }, 20000, 100);
  INFO(body_text(agent.get("/status?format=json")));
  REQUIRE(drained);
  REQUIRE(status_of(ctrl.post("/flush", "")) == 200);
  auto r = ctrl.get("/supertabs?name=rk%5C.n.*&re=1", "application/json");
  REQUIRE(status_of(r) == 200);
  INFO(r->body);
  size_t at = r->body.find("\"count\": ");
  REQUIRE(at != std::string::npos);
  int64_t stored = std::stoll(r->body.substr(at + 9));
  CHECK(forwarded_to_fe() == acked_events.load());
  CHECK(stored == acked_events.load());
  CHECK(json_at(agent, "/status?format=json", "/forwarded/retries") > 0);  // the kill cost retries, not events
  WARN("redis: " << acked_events << " events acknowledged by the agent, " << stored
                 << " stored; forwarding resumed " << resumed_ms << " ms after the fe restarted; queries to the ctrl: "
                 << queries_ok << " answered, " << queries_failed << " failed (while it was down)");
}
