// prom_export_load: the client side of bench/prom_export_bench.sh. It fills
// a running tabad with many tabs, measures how long the Prometheus export of
// them (GET /metrics/tabs, docs/prometheus.md) takes, and how much a scrape
// stalls ingest while it renders. The script starts the tabad; this program
// only talks to it (--server) and reads its CPU time and memory (--pid).
//
// The tabs are --names names (10,000) x --clients clients (100): name i is
// of type 40 % CounterGroup, 30 % PercentileGroup, 20 % Gauge (numbers),
// 10 % TotalsCounter, in a fixed pattern; a quarter of the names are valid
// Prometheus names (pm_cg_12), the others dotted (pm.cg.13); a third carry
// the tags ";env=prod;region=us-N" and a sixth ";host=web-N".
//
//   --mode fill    posts --events (3) events for every (client, name), one
//                  client and 1,000 names a body, POST /flush, then checks
//                  that /names lists every name and that a TotalsCounter
//                  counts every event; prints VmRSS and VmHWM before/after.
//   --mode expose  --scrapes (7) sequential GETs of --path in the text
//                  format 0.0.4, then as many with Prometheus's own Accept
//                  header (OpenMetrics first); per GET the wall time, the
//                  route's own time from request to reply (the change of
//                  taba_prometheus_export_seconds_sum on /metrics; -1
//                  without it), bytes, sample lines and the server's CPU
//                  time (utime + stime of all its threads, /proc/<pid>/stat);
//                  then 3 GETs of the tabs of each type alone
//                  (?re=1&name=pm[._]cg[._].* ...), the cost per type. Before a GET it
//                  re-posts one event for every (client, name) when the last
//                  post is older than 30 s, so that the 1m windows (and so
//                  the number of samples) stay full.
//   --mode stall   a closed loop of small posts (--connections threads, each
//                  posting --events-per-post events, one for each of as many
//                  (client, name) pairs, walking over all of them, the next
//                  post as soon as the last is answered), recording every
//                  post's latency; phase A without scrapes, phase B with a
//                  Prometheus-like scraper (GET --path with Prometheus's
//                  Accept header on the ticks of --scrape-every-s; a tick
//                  missed while a scrape runs is skipped), --rounds times
//                  A, B, after --warmup-s of load. Between phases the load
//                  goes on while the last scrape of a B phase ends; posts
//                  sent then belong to no phase. Per phase: posts, events/s,
//                  post latency p50/p99/max, the largest latency of a post
//                  that overlapped a scrape, the scrapes' times, the
//                  server's CPU seconds per second and the store snapshots
//                  written (taba_wal_snapshots_written_total: a snapshot's
//                  fork pauses the loop too). Beside the posts, a GET
//                  /healthz every --probe-every-ms (5): answered on the
//                  loop's next turn, its latency is how long the loop went
//                  without reading a socket (a post needs more turns: read,
//                  then the WAL's completion).
// --path auto (the default) takes /metrics/tabs when it answers 200 on the
// empty server, else /metrics?tabs=1 (the tabs flattened into one gauge
// family, before issue 20). Lines starting "prom_export_load: " are the
// figures the script reads (key=value).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_options.h"
#include "bench_stats.h"
#include "bench_support.h"
#include "http/client.h"
#include "http/url.h"

namespace {

using namespace taba::bench;
using Clock = std::chrono::steady_clock;

// What Prometheus 2.x sends by default: OpenMetrics preferred, text 0.0.4 as
// the fallback.
constexpr const char* kPrometheusAccept =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
constexpr const char* kTextAccept = "text/plain;version=0.0.4";

struct Config {
  std::string mode;
  taba::http::Url server;
  long pid = 0;
  std::string path = "auto";
  int names = 10'000;
  int clients = 100;
  int events = 3;
  int scrapes = 7;
  int rounds = 3;
  double phase_s = 10;
  double warmup_s = 3;
  int connections = 2;
  int events_per_post = 50;
  double scrape_every_s = 1;
  std::string scrape_format = "openmetrics";
  int probe_every_ms = 5;
  int timeout_ms = 120'000;
};

// ---------------------------------------------------------------------------
// Tabs

enum Type { kCounterGroup, kPercentileGroup, kGauge, kTotalsCounter };
constexpr const char* kTypeNames[] = {"CounterGroup", "PercentileGroup", "Gauge", "TotalsCounter"};
constexpr const char* kTypeTags[] = {"cg", "pg", "gauge", "tc"};
// 4 CounterGroup, 3 PercentileGroup, 2 Gauge, 1 TotalsCounter in every 10.
constexpr Type kPattern[10] = {
    kCounterGroup, kPercentileGroup, kCounterGroup,    kGauge,        kPercentileGroup,
    kCounterGroup, kTotalsCounter,   kPercentileGroup, kCounterGroup, kGauge};

Type type_of(int i) {
  return kPattern[i % 10];
}

std::string name_of(int i) {
  const char* tag = kTypeTags[type_of(i)];
  std::string n = i % 4 == 0 ? fmt::format("pm_{}_{}", tag, i) : fmt::format("pm.{}.{}", tag, i);
  if (i % 3 == 0) {
    n += fmt::format(";env=prod;region=us-{}", i % 4);
  } else if (i % 6 == 1) {
    n += fmt::format(";host=web-{}", i % 7);
  }
  return n;
}

std::string client_of(int c) {
  return fmt::format("pm-client-{}", c);
}

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One event line of name i's type for client c, stamped `ts`.
void append_event(std::string* out, int i, int c, double ts, std::mt19937_64& rng) {
  std::lognormal_distribution<double> latency(std::log(20.0), 1.0);
  std::string value;
  switch (type_of(i)) {
    case kCounterGroup:
    case kPercentileGroup:
      value = fmt::format("{:.2f}", latency(rng));
      break;
    case kGauge:
      value = fmt::format("{:.1f}",
                          static_cast<double>((c * 37 + i) % 1000) / 10 + static_cast<double>(rng() % 10));
      break;
    case kTotalsCounter:
      value = std::to_string(1 + rng() % 100);
      break;
  }
  fmt::format_to(std::back_inserter(*out), "[\"{}\", {:.3f}, \"{}\"]\n", kTypeNames[type_of(i)], ts, value);
}

// A v1 body of `per_pair` events for each of `pairs` (client, name) pairs
// from pair index `first` on (pair p: client p / names, name p % names;
// wrapping), stamped within the last second.
std::string build_body(const Config& cfg, int64_t first, int64_t pairs, int per_pair, std::mt19937_64& rng) {
  const int64_t total = int64_t{cfg.clients} * cfg.names;
  const double now = wall_now();
  std::string text = "1\n\n";
  int current = -1;
  for (int64_t k = 0; k < pairs; ++k) {
    int64_t p = (first + k) % total;
    int c = static_cast<int>(p / cfg.names);
    int i = static_cast<int>(p % cfg.names);
    if (c != current) {
      if (current >= 0) text += '\n';
      text += client_of(c) + "\n\n";
      current = c;
    }
    text += name_of(i) + "\n";
    for (int e = 0; e < per_pair; ++e)
      append_event(&text, i, c, now - static_cast<double>(rng() % 1000) / 1000, rng);
    text += '\n';
  }
  if (current >= 0) text += '\n';
  return text;
}

// ---------------------------------------------------------------------------
// Requests

std::string describe(const taba::Result<taba::http::ClientResponse>& r) {
  if (!r.ok()) return r.status().message();
  const taba::http::ClientResponse& v = r.value();
  return fmt::format("{} {}: {}", v.status, v.reason, v.body.substr(0, 200));
}

// POST /post, resent after a 503 or a transport error (100 ms apart, 50
// times at most).
bool post(Session* conn, const std::string& body) {
  for (int attempt = 0;; ++attempt) {
    auto r = conn->request("POST", "/post", {}, body);
    if (r.ok() && r->status == 200) return true;
    if (attempt >= 50 || (r.ok() && r->status != 503)) {
      std::cerr << "prom_export_load: POST /post: " << describe(r) << "\n";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::optional<std::string> get(Session* conn, const std::string& target,
                               const std::string& accept = "text/plain") {
  auto r = conn->request("GET", target, {{"Accept", accept}}, "");
  if (!r.ok() || r->status != 200) {
    std::cerr << "prom_export_load: GET " << target << ": " << describe(r) << "\n";
    return std::nullopt;
  }
  return std::move(r->body);
}

bool flush(Session* conn) {
  auto r = conn->request("POST", "/flush", {}, "");
  if (r.ok() && r->status == 200) return true;
  std::cerr << "prom_export_load: POST /flush: " << describe(r) << "\n";
  return false;
}

// Lines of an exposition that are samples (not comments, not empty).
int64_t sample_lines(const std::string& text) {
  int64_t n = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (end > at && text[at] != '#') ++n;
    at = end + 1;
  }
  return n;
}

std::string kb(std::optional<long> v) {
  return v ? std::to_string(*v) : std::string("n/a");
}

void print_memory(const Config& cfg, const std::string& when) {
  std::cout << fmt::format("prom_export_load: memory when={} vm_rss_kb={} vm_hwm_kb={}\n", when,
                           kb(proc_status_kb(cfg.pid, "VmRSS")), kb(proc_status_kb(cfg.pid, "VmHWM")));
}

// ---------------------------------------------------------------------------
// Modes

// Posts `per_pair` events for every (client, name): one client and 1,000
// names a body.
bool post_all(const Config& cfg, Session* conn, int per_pair, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t total = int64_t{cfg.clients} * cfg.names;
  const int64_t chunk = std::min(1'000, cfg.names);
  auto t0 = Clock::now();
  size_t bytes = 0;
  for (int64_t first = 0; first < total; first += chunk) {
    std::string body = build_body(cfg, first, std::min(chunk, total - first), per_pair, rng);
    bytes += body.size();
    if (!post(conn, body)) return false;
  }
  if (!flush(conn)) return false;
  std::cerr << fmt::format("prom_export_load: posted {} events ({:.1f} MB) in {:.1f} s\n", total * per_pair,
                           static_cast<double>(bytes) / 1e6,
                           std::chrono::duration<double>(Clock::now() - t0).count());
  return true;
}

int fill(const Config& cfg) {
  Session conn(cfg.server, cfg.timeout_ms);
  print_memory(cfg, "empty");
  auto t0 = Clock::now();
  if (!post_all(cfg, &conn, cfg.events, 1)) return 1;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  auto names = get(&conn, "/names");
  if (!names) return 1;
  const auto listed = std::count(names->begin(), names->end(), '\n');
  // The first TotalsCounter name without tags (URL-safe as it is).
  int check = 0;
  while (type_of(check) != kTotalsCounter || name_of(check).find(';') != std::string::npos) ++check;
  auto tab = get(&conn, "/tabs?name=" + name_of(check), "application/json");
  if (!tab) return 1;
  size_t at = tab->find("\"count\": ");
  const int64_t count = at == std::string::npos ? -1 : std::strtoll(tab->c_str() + at + 9, nullptr, 10);
  const int64_t want = int64_t{cfg.clients} * cfg.events;
  std::cout << fmt::format(
      "prom_export_load: fill names={} clients={} events={} seconds={:.1f} names_listed={} check_name={} "
      "check_count={} check_expected={}\n",
      cfg.names, cfg.clients, int64_t{cfg.names} * cfg.clients * cfg.events, seconds, listed, name_of(check),
      count, want);
  print_memory(cfg, "filled");
  if (listed != cfg.names || count != want) {
    std::cerr << "prom_export_load: the fill did not arrive whole (names listed or events counted differ)\n";
    return 1;
  }
  return 0;
}

// The path to scrape: --path, or for "auto" /metrics/tabs if it answers
// 200, else /metrics?tabs=1.
std::string scrape_path(const Config& cfg, Session* conn) {
  if (cfg.path != "auto") return cfg.path;
  auto r = conn->request("GET", "/metrics/tabs?name=pm-no-such-name", {{"Accept", kTextAccept}}, "");
  std::string p = r.ok() && r->status == 200 ? "/metrics/tabs" : "/metrics?tabs=1";
  std::cerr << "prom_export_load: scraping " << p << " (GET /metrics/tabs answered "
            << (r.ok() ? std::to_string(r->status) : r.status().message()) << ")\n";
  return p;
}

struct Scrape {
  double ms = 0;
  double server_ms = -1;  // request to reply as the route measured it; < 0: not known
  double cpu_ms = -1;
  int64_t bytes = 0;
  int64_t samples = 0;
  std::string content_type;
};

// One timed GET of `target`; nullopt (the reason printed) unless 200.
std::optional<Scrape> scrape_once(const Config& cfg, Session* conn, const std::string& target,
                                  const std::string& accept) {
  Scrape s;
  auto sum0 = metric_value(conn, "taba_prometheus_export_seconds_sum");
  auto count0 = metric_value(conn, "taba_prometheus_export_seconds_count");
  auto cpu0 = process_cpu_seconds(cfg.pid);
  auto t0 = Clock::now();
  auto r = conn->request("GET", target, {{"Accept", accept}}, "");
  s.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  auto cpu1 = process_cpu_seconds(cfg.pid);
  if (!r.ok() || r->status != 200) {
    std::cerr << "prom_export_load: GET " << target << ": " << describe(r) << "\n";
    return std::nullopt;
  }
  if (cpu0 && cpu1) s.cpu_ms = (*cpu1 - *cpu0) * 1e3;
  auto sum1 = metric_value(conn, "taba_prometheus_export_seconds_sum");
  auto count1 = metric_value(conn, "taba_prometheus_export_seconds_count");
  if (sum0 && sum1 && count0 && count1 && *count1 - *count0 == 1) s.server_ms = (*sum1 - *sum0) * 1e3;
  s.bytes = static_cast<int64_t>(r->body.size());
  s.samples = sample_lines(r->body);
  s.content_type = std::string(r->header("content-type"));
  return s;
}

// Posts one event for every (client, name) when the last post is older
// than 30 s (the 1m windows stay full); false when a post failed.
bool keep_fresh(const Config& cfg, Session* conn, Clock::time_point* last_post, uint64_t seed) {
  if (Clock::now() - *last_post <= std::chrono::seconds(30)) return true;
  if (!post_all(cfg, conn, 1, seed)) return false;
  *last_post = Clock::now();
  return true;
}

int expose(const Config& cfg) {
  Session conn(cfg.server, cfg.timeout_ms);
  const std::string path = scrape_path(cfg, &conn);
  auto last_post = Clock::now();
  uint64_t seed = 100;
  for (const auto& [format, accept] :
       {std::pair{"text", kTextAccept}, std::pair{"openmetrics", kPrometheusAccept}}) {
    std::vector<Scrape> runs;
    for (int n = 0; n < cfg.scrapes; ++n) {
      if (!keep_fresh(cfg, &conn, &last_post, seed++)) return 1;
      std::optional<Scrape> s = scrape_once(cfg, &conn, path, accept);
      if (!s) return 1;
      std::cout << fmt::format(
          "scrape format={} n={} ms={:.1f} server_ms={:.1f} server_cpu_ms={:.0f} bytes={} samples={}\n",
          format, n + 1, s->ms, s->server_ms, s->cpu_ms, s->bytes, s->samples);
      std::cout.flush();
      runs.push_back(std::move(*s));
    }
    std::vector<double> ms, server_ms, cpu, bytes, samples;
    for (const Scrape& s : runs) {
      ms.push_back(s.ms);
      server_ms.push_back(s.server_ms);
      cpu.push_back(s.cpu_ms);
      bytes.push_back(static_cast<double>(s.bytes));
      samples.push_back(static_cast<double>(s.samples));
    }
    std::cout << fmt::format(
        "prom_export_load: expose path={} format={} scrapes={} median_ms={:.1f} min_ms={:.1f} max_ms={:.1f} "
        "server_ms={:.1f} server_cpu_ms={:.0f} bytes={:.0f} samples={:.0f} samples_min={:.0f} "
        "samples_max={:.0f} content_type=\"{}\"\n",
        path, format, runs.size(), median_of(ms), *std::min_element(ms.begin(), ms.end()),
        *std::max_element(ms.begin(), ms.end()), median_of(server_ms), median_of(cpu), median_of(bytes),
        median_of(samples), *std::min_element(samples.begin(), samples.end()),
        *std::max_element(samples.begin(), samples.end()), runs.back().content_type);
    print_memory(cfg, std::string("after_") + format);
  }
  // The tabs of one type at a time (?name=<regex>&re=1; /metrics/tabs only):
  // what the tabs of each type cost, per 256 of them (a slice of names
  // before slices were also bounded by time).
  if (path != "/metrics/tabs") return 0;
  for (int t = 0; t < 4; ++t) {
    const std::string target = fmt::format("{}?re=1&name=pm[._]{}[._].*", path, kTypeTags[t]);
    int64_t tabs = 0;
    for (int i = 0; i < cfg.names; ++i) tabs += type_of(i) == t ? 1 : 0;
    std::vector<double> ms, server_ms, cpu;
    Scrape last;
    for (int n = 0; n < 3; ++n) {
      if (!keep_fresh(cfg, &conn, &last_post, seed++)) return 1;
      std::optional<Scrape> s = scrape_once(cfg, &conn, target, kTextAccept);
      if (!s) return 1;
      ms.push_back(s->ms);
      server_ms.push_back(s->server_ms);
      cpu.push_back(s->cpu_ms);
      last = *s;
    }
    std::cout << fmt::format(
        "prom_export_load: expose_type type={} tabs={} median_ms={:.1f} server_ms={:.1f} "
        "server_cpu_ms={:.0f} "
        "bytes={} samples={} server_ms_per_256_tabs={:.1f} server_cpu_ms_per_256_tabs={:.1f}\n",
        kTypeNames[t], tabs, median_of(ms), median_of(server_ms), median_of(cpu), last.bytes, last.samples,
        median_of(server_ms) * 256 / static_cast<double>(tabs),
        median_of(cpu) * 256 / static_cast<double>(tabs));
  }
  return 0;
}

// --- stall -----------------------------------------------------------------

struct Span {
  double start = 0, end = 0;  // seconds on the steady clock
};

double steady_s() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

struct PostSample {
  Span span;
  int64_t events = 0;
  bool ok = false;
};

struct ScrapeSample {
  Span span;
  int64_t bytes = 0;
  bool ok = false;
};

std::atomic<bool> stopping{false};
// scraping: phase B is on; scrape_running: a scrape is in flight. The
// scraper starts a scrape only under scrape_mutex with scraping set, so once
// the main thread has cleared scraping under it, no new scrape begins.
std::mutex scrape_mutex;
bool scraping = false;
std::atomic<bool> scrape_running{false};

void set_scraping(bool on) {
  std::lock_guard<std::mutex> lock(scrape_mutex);
  scraping = on;
}
std::mutex problem_mutex;
std::string first_problem;

void note_problem(const std::string& what) {
  std::lock_guard<std::mutex> lock(problem_mutex);
  if (first_problem.empty()) first_problem = what;
}

void post_loop(const Config& cfg, int thread, std::vector<PostSample>* out) {
  Session conn(cfg.server, cfg.timeout_ms);
  std::mt19937_64 rng(1000 + static_cast<uint64_t>(thread));
  const int64_t total = int64_t{cfg.clients} * cfg.names;
  int64_t cursor = total / cfg.connections * thread;
  while (!stopping) {
    std::string body = build_body(cfg, cursor, cfg.events_per_post, 1, rng);
    cursor = (cursor + cfg.events_per_post) % total;
    PostSample s;
    s.events = cfg.events_per_post;
    s.span.start = steady_s();
    auto r = conn.request("POST", "/post", {}, body);
    s.span.end = steady_s();
    s.ok = r.ok() && r->status == 200;
    if (!s.ok) {
      note_problem("POST /post: " + describe(r));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    out->push_back(s);
  }
}

// GET /healthz every --probe-every-ms, one at a time.
void probe_loop(const Config& cfg, std::vector<PostSample>* out) {
  Session conn(cfg.server, cfg.timeout_ms);
  while (!stopping) {
    PostSample s;
    s.span.start = steady_s();
    auto r = conn.request("GET", "/healthz", {}, "");
    s.span.end = steady_s();
    s.ok = r.ok() && r->status == 200;
    if (!s.ok) note_problem("GET /healthz: " + describe(r));
    out->push_back(s);
    std::this_thread::sleep_for(std::chrono::milliseconds(cfg.probe_every_ms));
  }
}

void scrape_loop(const Config& cfg, const std::string& path, std::vector<ScrapeSample>* out) {
  Session conn(cfg.server, cfg.timeout_ms);
  const double every = cfg.scrape_every_s;
  const std::string accept = cfg.scrape_format == "text" ? kTextAccept : kPrometheusAccept;
  double next = 0;
  while (!stopping) {
    {
      std::unique_lock<std::mutex> lock(scrape_mutex);
      const double now = steady_s();
      if (scraping && next == 0) next = now;
      if (scraping && now >= next) {
        scrape_running = true;
      } else {
        if (!scraping) next = 0;
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        continue;
      }
    }
    ScrapeSample s;
    s.span.start = steady_s();
    auto r = conn.request("GET", path, {{"Accept", accept}}, "");
    s.span.end = steady_s();
    scrape_running = false;
    s.ok = r.ok() && r->status == 200;
    if (s.ok)
      s.bytes = static_cast<int64_t>(r->body.size());
    else
      note_problem("GET " + path + ": " + describe(r));
    out->push_back(s);
    // Ticks missed while the scrape ran are skipped, as Prometheus does.
    while (next <= s.span.end) next += every;
  }
}

struct Phase {
  char kind = 'A';
  int round = 0;
  Span span;
  double cpu_s = -1;      // server CPU seconds during the phase
  double snapshots = -1;  // store snapshots written during the phase
};

struct PhaseFigures {
  double seconds = 0, events_per_s = 0, p50 = 0, p99 = 0, max = 0;
  int64_t posts = 0, failed = 0;
  int64_t overlapping = 0;
  double overlap_max = 0, overlap_p99 = 0, clear_max = 0;  // posts overlapping a scrape / not
  int64_t scrapes = 0;
  double scrape_median_ms = 0, scrape_max_ms = 0, scrape_busy = 0;  // busy: share of the phase scraping
  double cpu_per_s = -1, snapshots = -1;
  // GET /healthz probes: answered at the loop's next turn, so their
  // latency is the longest the loop went without reading a socket.
  double probe_overlap_max = 0, probe_overlap_p99 = 0, probe_clear_max = 0;
};

bool overlaps(const Span& a, const Span& b) {
  return a.start < b.end && b.start < a.end;
}

PhaseFigures figures_of(const Phase& ph, const std::vector<std::vector<PostSample>>& posts,
                        const std::vector<PostSample>& probes, const std::vector<ScrapeSample>& scrapes) {
  PhaseFigures f;
  f.seconds = ph.span.end - ph.span.start;
  std::vector<Span> in_phase;
  std::vector<double> scrape_ms;
  double busy = 0;
  for (const ScrapeSample& s : scrapes) {
    if (!overlaps(s.span, ph.span)) continue;
    in_phase.push_back(s.span);
    if (s.span.start >= ph.span.start) {
      scrape_ms.push_back((s.span.end - s.span.start) * 1e3);
    }
    busy += std::min(s.span.end, ph.span.end) - std::max(s.span.start, ph.span.start);
  }
  std::vector<double> all, overlapping;
  int64_t events = 0;
  for (const auto& list : posts) {
    for (const PostSample& p : list) {
      if (p.span.start < ph.span.start || p.span.start >= ph.span.end) continue;
      ++f.posts;
      if (!p.ok) {
        ++f.failed;
        continue;
      }
      events += p.events;
      double ms = (p.span.end - p.span.start) * 1e3;
      all.push_back(ms);
      bool over =
          std::any_of(in_phase.begin(), in_phase.end(), [&](const Span& s) { return overlaps(p.span, s); });
      if (over)
        overlapping.push_back(ms);
      else
        f.clear_max = std::max(f.clear_max, ms);
    }
  }
  std::vector<double> probe_overlapping;
  for (const PostSample& p : probes) {
    if (!p.ok || p.span.start < ph.span.start || p.span.start >= ph.span.end) continue;
    const double ms = (p.span.end - p.span.start) * 1e3;
    if (std::any_of(in_phase.begin(), in_phase.end(), [&](const Span& s) { return overlaps(p.span, s); })) {
      probe_overlapping.push_back(ms);
    } else {
      f.probe_clear_max = std::max(f.probe_clear_max, ms);
    }
  }
  f.probe_overlap_p99 = percentile(probe_overlapping, 0.99);
  f.probe_overlap_max =
      probe_overlapping.empty() ? 0 : *std::max_element(probe_overlapping.begin(), probe_overlapping.end());
  f.events_per_s = static_cast<double>(events) / f.seconds;
  f.p50 = percentile(all, 0.50);
  f.p99 = percentile(all, 0.99);
  f.max = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  f.overlapping = static_cast<int64_t>(overlapping.size());
  f.overlap_max = overlapping.empty() ? 0 : *std::max_element(overlapping.begin(), overlapping.end());
  f.overlap_p99 = percentile(overlapping, 0.99);
  f.scrapes = static_cast<int64_t>(scrape_ms.size());
  f.scrape_median_ms = median_of(scrape_ms);
  f.scrape_max_ms = scrape_ms.empty() ? 0 : *std::max_element(scrape_ms.begin(), scrape_ms.end());
  f.scrape_busy = busy / f.seconds;
  if (ph.cpu_s >= 0) f.cpu_per_s = ph.cpu_s / f.seconds;
  f.snapshots = ph.snapshots;
  return f;
}

void print_phase(const std::string& label, const PhaseFigures& f) {
  std::cout << fmt::format(
      "prom_export_load: stall phase={} seconds={:.1f} posts={} failed={} events_per_s={:.0f} p50_ms={:.2f} "
      "p99_ms={:.2f} max_ms={:.2f} overlapping_posts={} overlap_p99_ms={:.2f} overlap_max_ms={:.2f} "
      "clear_max_ms={:.2f} scrapes={} scrape_median_ms={:.0f} scrape_max_ms={:.0f} scrape_busy={:.2f} "
      "server_cpu_per_s={:.2f} snapshots={:.0f} probe_overlap_p99_ms={:.2f} probe_overlap_max_ms={:.2f} "
      "probe_clear_max_ms={:.2f}\n",
      label, f.seconds, f.posts, f.failed, f.events_per_s, f.p50, f.p99, f.max, f.overlapping, f.overlap_p99,
      f.overlap_max, f.clear_max, f.scrapes, f.scrape_median_ms, f.scrape_max_ms, f.scrape_busy, f.cpu_per_s,
      f.snapshots, f.probe_overlap_p99, f.probe_overlap_max, f.probe_clear_max);
}

// Where in a scrape the requests (`what`: posts, or the /healthz probes)
// that overlap it wait: by the tenth of the scrape in which each one was
// answered (slow ones at the end point at the reply's assembly, slow ones
// all along at the slices), then the five slowest with their place in their
// scrape.
void print_stall_positions(const std::string& what, const std::vector<Phase>& phases,
                           const std::vector<std::vector<PostSample>>& posts,
                           const std::vector<ScrapeSample>& scrapes) {
  struct Wait {
    double ms, from_start_ms, to_end_ms, scrape_ms;
  };
  std::vector<std::vector<double>> by_tenth(10);
  std::vector<Wait> waits;
  for (const ScrapeSample& sc : scrapes) {
    const bool in_b = std::any_of(phases.begin(), phases.end(), [&](const Phase& ph) {
      return ph.kind == 'B' && sc.span.start >= ph.span.start && sc.span.start < ph.span.end;
    });
    const double length = sc.span.end - sc.span.start;
    if (!in_b || !sc.ok || length <= 0) continue;
    for (const auto& list : posts) {
      for (const PostSample& p : list) {
        if (!p.ok || !overlaps(p.span, sc.span)) continue;
        const double ms = (p.span.end - p.span.start) * 1e3;
        const double at = std::clamp((p.span.end - sc.span.start) / length, 0.0, 0.999);
        by_tenth[static_cast<size_t>(at * 10)].push_back(ms);
        waits.push_back(
            Wait{ms, (p.span.start - sc.span.start) * 1e3, (sc.span.end - p.span.end) * 1e3, length * 1e3});
      }
    }
  }
  for (size_t t = 0; t < by_tenth.size(); ++t) {
    const auto& v = by_tenth[t];
    std::cout << fmt::format(
        "prom_export_load: stall_position what={} tenth={} requests={} p50_ms={:.2f} p99_ms={:.2f} "
        "max_ms={:.2f}\n",
        what, t, v.size(), percentile(v, 0.5), percentile(v, 0.99),
        v.empty() ? 0 : *std::max_element(v.begin(), v.end()));
  }
  std::sort(waits.begin(), waits.end(), [](const Wait& x, const Wait& y) { return x.ms > y.ms; });
  for (size_t i = 0; i < std::min<size_t>(5, waits.size()); ++i) {
    std::cout << fmt::format(
        "prom_export_load: stall_slowest what={} rank={} ms={:.1f} sent_after_scrape_start_ms={:.1f} "
        "answered_before_scrape_end_ms={:.1f} scrape_ms={:.0f}\n",
        what, i + 1, waits[i].ms, waits[i].from_start_ms, waits[i].to_end_ms, waits[i].scrape_ms);
  }
}

int stall(const Config& cfg) {
  Session conn(cfg.server, cfg.timeout_ms);
  const std::string path = scrape_path(cfg, &conn);
  std::vector<std::vector<PostSample>> posts(static_cast<size_t>(cfg.connections));
  std::vector<ScrapeSample> scrapes;
  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.connections; ++t) {
    threads.emplace_back(post_loop, std::cref(cfg), t, &posts[static_cast<size_t>(t)]);
  }
  threads.emplace_back(scrape_loop, std::cref(cfg), std::cref(path), &scrapes);
  std::vector<PostSample> probes;
  if (cfg.probe_every_ms > 0) threads.emplace_back(probe_loop, std::cref(cfg), &probes);
  auto sleep_s = [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); };
  sleep_s(cfg.warmup_s);
  std::vector<Phase> phases;
  for (int round = 1; round <= cfg.rounds; ++round) {
    for (char kind : {'A', 'B'}) {
      Phase ph;
      ph.kind = kind;
      ph.round = round;
      auto snap0 = metric_value(&conn, "taba_wal_snapshots_written_total");
      auto cpu0 = process_cpu_seconds(cfg.pid);
      ph.span.start = steady_s();
      set_scraping(kind == 'B');
      sleep_s(cfg.phase_s);
      set_scraping(false);
      ph.span.end = steady_s();
      auto cpu1 = process_cpu_seconds(cfg.pid);
      // The last scrape ends before the next phase starts (its posts go
      // uncounted meanwhile).
      while (scrape_running) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      auto snap1 = metric_value(&conn, "taba_wal_snapshots_written_total");
      if (cpu0 && cpu1) ph.cpu_s = *cpu1 - *cpu0;
      if (snap0 && snap1) ph.snapshots = *snap1 - *snap0;
      phases.push_back(ph);
      std::cerr << fmt::format("prom_export_load: phase {}{} done\n", kind, round);
    }
  }
  stopping = true;
  for (std::thread& t : threads) t.join();

  std::cout << "prom_export_load: stall path=" << path << " scrape_format=" << cfg.scrape_format
            << " connections=" << cfg.connections << " events_per_post=" << cfg.events_per_post
            << " scrape_every_s=" << cfg.scrape_every_s << "\n";
  std::vector<PhaseFigures> a, b;
  for (const Phase& ph : phases) {
    PhaseFigures f = figures_of(ph, posts, probes, scrapes);
    print_phase(fmt::format("{}{}", ph.kind, ph.round), f);
    (ph.kind == 'A' ? a : b).push_back(f);
  }
  for (const auto& [label, list] : {std::pair{"A", &a}, std::pair{"B", &b}}) {
    auto col = [&](double PhaseFigures::*m) {
      std::vector<double> v;
      for (const PhaseFigures& f : *list) v.push_back(f.*m);
      return median_of(v);
    };
    PhaseFigures m;
    m.seconds = col(&PhaseFigures::seconds);
    m.events_per_s = col(&PhaseFigures::events_per_s);
    m.p50 = col(&PhaseFigures::p50);
    m.p99 = col(&PhaseFigures::p99);
    m.max = col(&PhaseFigures::max);
    m.overlap_p99 = col(&PhaseFigures::overlap_p99);
    m.overlap_max = col(&PhaseFigures::overlap_max);
    m.clear_max = col(&PhaseFigures::clear_max);
    m.scrape_median_ms = col(&PhaseFigures::scrape_median_ms);
    m.scrape_max_ms = col(&PhaseFigures::scrape_max_ms);
    m.scrape_busy = col(&PhaseFigures::scrape_busy);
    m.cpu_per_s = col(&PhaseFigures::cpu_per_s);
    m.snapshots = col(&PhaseFigures::snapshots);
    m.probe_overlap_p99 = col(&PhaseFigures::probe_overlap_p99);
    m.probe_overlap_max = col(&PhaseFigures::probe_overlap_max);
    m.probe_clear_max = col(&PhaseFigures::probe_clear_max);
    for (const PhaseFigures& f : *list) {
      m.posts += f.posts;
      m.failed += f.failed;
      m.overlapping += f.overlapping;
      m.scrapes += f.scrapes;
    }
    print_phase(std::string(label) + "_median", m);
  }
  print_stall_positions("post", phases, posts, scrapes);
  print_stall_positions("healthz", phases, {probes}, scrapes);
  int64_t failed = 0;
  for (const auto& list : posts) {
    for (const PostSample& p : list) failed += p.ok ? 0 : 1;
  }
  for (const ScrapeSample& s : scrapes) failed += s.ok ? 0 : 1;
  if (!first_problem.empty()) std::cerr << "prom_export_load: first problem: " << first_problem << "\n";
  return failed == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// Command line

std::optional<Config> parse(int argc, char** argv, int* exit_code) {
  cxxopts::Options options(
      "prom_export_load",
      "Fill a tabad with tabs, time its Prometheus export, and measure how a scrape stalls ingest.");
  options.add_options()("mode", "fill, expose or stall", cxxopts::value<std::string>())(
      "server", "the tabad's URL", cxxopts::value<std::string>())("pid", "the tabad's pid (CPU time, memory)",
                                                                  cxxopts::value<long>()->default_value("0"))(
      "path", "what to scrape; auto: /metrics/tabs if it answers, else /metrics?tabs=1",
      cxxopts::value<std::string>()->default_value("auto"))("names", "tab names",
                                                            cxxopts::value<int>()->default_value("10000"))(
      "clients", "clients posting every name", cxxopts::value<int>()->default_value("100"))(
      "events", "fill: events per (client, name)", cxxopts::value<int>()->default_value("3"))(
      "scrapes", "expose: GETs per format", cxxopts::value<int>()->default_value("7"))(
      "rounds", "stall: rounds of phase A (no scrapes) then B (scrapes)",
      cxxopts::value<int>()->default_value("3"))("phase-s", "stall: seconds per phase",
                                                 cxxopts::value<double>()->default_value("10"))(
      "warmup-s", "stall: seconds of load before the first phase",
      cxxopts::value<double>()->default_value("3"))("connections",
                                                    "stall: posting connections (one thread each)",
                                                    cxxopts::value<int>()->default_value("2"))(
      "events-per-post", "stall: events per post", cxxopts::value<int>()->default_value("50"))(
      "scrape-every-s", "stall: scrape interval in phase B", cxxopts::value<double>()->default_value("1"))(
      "scrape-format", "stall: openmetrics (Prometheus's Accept) or text",
      cxxopts::value<std::string>()->default_value("openmetrics"))(
      "probe-every-ms", "stall: GET /healthz this often, one at a time (0: no probe)",
      cxxopts::value<int>()->default_value("5"))(
      "timeout-ms", "per request", cxxopts::value<int>()->default_value("120000"))("h,help",
                                                                                   "show this help");
  try {
    auto r = options.parse(argc, argv);
    if (r.count("help") != 0) {
      std::cout << options.help();
      *exit_code = 0;
      return std::nullopt;
    }
    if (!r.unmatched().empty()) throw std::invalid_argument("unexpected argument '" + r.unmatched()[0] + "'");
    if (r.count("mode") == 0 || r.count("server") == 0)
      throw std::invalid_argument("--mode and --server are required");
    Config cfg;
    cfg.mode = r["mode"].as<std::string>();
    if (cfg.mode != "fill" && cfg.mode != "expose" && cfg.mode != "stall") {
      throw std::invalid_argument("--mode must be fill, expose or stall, not '" + cfg.mode + "'");
    }
    auto url = taba::http::parse_url(r["server"].as<std::string>());
    if (!url.ok()) throw std::invalid_argument("--server: " + url.status().message());
    cfg.server = *url;
    cfg.pid = r["pid"].as<long>();
    cfg.path = r["path"].as<std::string>();
    cfg.names = r["names"].as<int>();
    cfg.clients = r["clients"].as<int>();
    cfg.events = r["events"].as<int>();
    cfg.scrapes = r["scrapes"].as<int>();
    cfg.rounds = r["rounds"].as<int>();
    cfg.phase_s = r["phase-s"].as<double>();
    cfg.warmup_s = r["warmup-s"].as<double>();
    cfg.connections = r["connections"].as<int>();
    cfg.events_per_post = r["events-per-post"].as<int>();
    cfg.scrape_every_s = r["scrape-every-s"].as<double>();
    cfg.scrape_format = r["scrape-format"].as<std::string>();
    cfg.timeout_ms = r["timeout-ms"].as<int>();
    cfg.probe_every_ms = r["probe-every-ms"].as<int>();
    if (cfg.probe_every_ms < 0) throw std::invalid_argument("--probe-every-ms must be 0 or more");
    if (cfg.names < 10 || cfg.clients < 1 || cfg.events < 1 || cfg.scrapes < 1 || cfg.rounds < 1 ||
        cfg.phase_s <= 0 || cfg.warmup_s < 0 || cfg.connections < 1 || cfg.events_per_post < 1 ||
        cfg.scrape_every_s <= 0 || cfg.timeout_ms < 1) {
      throw std::invalid_argument("counts and times must be positive (--names at least 10)");
    }
    if (cfg.scrape_format != "openmetrics" && cfg.scrape_format != "text") {
      throw std::invalid_argument("--scrape-format must be openmetrics or text");
    }
    return cfg;
  } catch (const std::exception& e) {
    std::cerr << "prom_export_load: " << e.what() << "\nRun 'prom_export_load --help' for usage.\n";
    *exit_code = 2;
    return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Config> cfg = parse(argc, argv, &exit_code);
  if (!cfg) return exit_code;
  if (cfg->mode == "fill") return fill(*cfg);
  if (cfg->mode == "expose") return expose(*cfg);
  return stall(*cfg);
}
