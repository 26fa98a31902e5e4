// ingest_bench: how many events per second, and per server CPU-second, a
// tabad accepts over /post (or /post_zip) with agent-sized v1 bodies.
//
// It pre-builds a set of distinct multi-client bodies (CounterGroup events,
// or with --types the given numeric types, one per name in turn), then
// posts them over C keep-alive connections (one thread each) for D seconds,
// R times, and prints a table plus one machine-readable summary line. It
// either starts tabad itself (pinned to one CPU, the benchmark to another)
// or attaches to a running one (--server, with --pid for CPU accounting).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bench_options.h"
#include "bench_stats.h"
#include "bench_support.h"
#include "http/client.h"
#include "http/url.h"

namespace {

using namespace taba::bench;
using Clock = std::chrono::steady_clock;

// The shared options (bench_options.h) and ingest_bench's own.
struct Config : ServerOptions {
  double duration_s = 10;
  double warmup_s = 1;
  int runs = 3;
  int connections = 4;
  int events_per_body = 10'000;
  int names = 1'000;
  int clients = 10;
  int events_per_block = 10;
  int bodies = 200;
  bool zlib = false;
  std::vector<std::string> types = {"CounterGroup"};  // name n has types[n % size]
  bool batch_ids = false;  // a Taba-Batch-Id header on every post, as agents and clients send
};

struct Body {
  std::string bytes;  // as posted (zlib'd with --zlib)
  int64_t events = 0;
};

// What one connection's thread saw during a run.
struct WorkerStats {
  int64_t requests_ok = 0;
  int64_t events_ok = 0;
  int64_t errors = 0;                // transport failures
  std::map<int, int64_t> non200;     // status -> count
  std::string first_problem;         // first error or non-200 reason
  std::vector<double> latencies_ms;  // every completed request
};

struct RunResult {
  double seconds = 0;
  int64_t requests = 0;
  int64_t events = 0;
  double events_per_s = 0;
  std::optional<double> server_cpu_s;
  std::optional<double> events_per_cpu_s;
  double bench_cpu_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t non200 = 0;
  int64_t errors = 0;
};

// ---------------------------------------------------------------------------
// Bodies

// Appends "<whole>.<frac>" with `digits` fraction digits for value / 10^digits.
void append_fixed(std::string* out, int64_t scaled, int digits) {
  int64_t unit = digits == 3 ? 1000 : 100;
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, scaled / unit);
  out->append(buf, end);
  out->push_back('.');
  int64_t frac = scaled % unit;
  for (int64_t d = unit / 10; d > 0; d /= 10) out->push_back(static_cast<char>('0' + (frac / d) % 10));
}

// The exact v1 format of the Python encoder (original-taba.md §2): one
// client block per client, `events_per_block` events per name (of the
// name's type: cfg.types in turn), timestamps within the last second,
// values 0.00..999.99.
std::vector<Body> build_bodies(const Config& cfg) {
  std::vector<Body> bodies;
  bodies.reserve(static_cast<size_t>(cfg.bodies));
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  for (int b = 0; b < cfg.bodies; ++b) {
    std::mt19937_64 rng(static_cast<uint64_t>(b) * 0x9E3779B97F4A7C15ull + 1);
    std::string text = "1\n\n";
    text.reserve(static_cast<size_t>(cfg.events_per_body) * 48 + 1024);
    int64_t events = 0;
    for (int c = 0; c < cfg.clients; ++c) {
      int client_events = cfg.events_per_body / cfg.clients + (c < cfg.events_per_body % cfg.clients ? 1 : 0);
      if (client_events == 0) continue;
      text += "bench-client-" + std::to_string(c) + "\n\n";
      int name = static_cast<int>(rng() % static_cast<uint64_t>(cfg.names));
      while (client_events > 0) {
        int block = std::min(client_events, cfg.events_per_block);
        text += "bench.name." + std::to_string(name) + "\n";
        for (int e = 0; e < block; ++e) {
          uint64_t r = rng();
          text += "[\"";
          text += cfg.types[static_cast<size_t>(name) % cfg.types.size()];
          text += "\", ";
          append_fixed(&text, now_ms - static_cast<int64_t>(r % 1000), 3);
          text += ", \"";
          append_fixed(&text, static_cast<int64_t>((r >> 20) % 100'000), 2);
          text += "\"]\n";
        }
        text += '\n';
        client_events -= block;
        events += block;
        name = (name + 1) % cfg.names;
      }
      text += '\n';
    }
    bodies.push_back(Body{cfg.zlib ? taba::http::zlib_compress(text) : std::move(text), events});
  }
  return bodies;
}

// ---------------------------------------------------------------------------
// Processes and CPU accounting

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

// ---------------------------------------------------------------------------
// Load

// Batch ids: unique within this process (the counter) and across processes
// posting to one server (the prefix).
std::atomic<uint64_t> batch_ids_sent{0};
const std::string& batch_id_prefix() {
  static const std::string prefix = fmt::format("bench-{:x}-{}", std::random_device()(), ::getpid());
  return prefix;
}

void post_until(const Config& cfg, const taba::http::Url& target, const std::string& path,
                const std::vector<Body>& bodies, int worker, Clock::time_point start, Clock::time_point end,
                WorkerStats* stats) {
  std::optional<taba::http::ClientConnection> conn;
  size_t next = static_cast<size_t>(worker) * bodies.size() / static_cast<size_t>(cfg.connections);
  std::this_thread::sleep_until(start);
  while (Clock::now() < end) {
    if (!conn) {
      auto c = taba::http::ClientConnection::connect(target.host, target.port, cfg.timeout_ms);
      if (!c.ok()) {
        ++stats->errors;
        if (stats->first_problem.empty()) stats->first_problem = c.status().message();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      conn.emplace(std::move(*c));
    }
    const Body& body = bodies[next];
    next = (next + 1) % bodies.size();
    std::vector<taba::http::Header> headers;
    if (cfg.batch_ids) headers.push_back({"Taba-Batch-Id", fmt::format("{}-{}", batch_id_prefix(), ++batch_ids_sent)});
    auto t0 = Clock::now();
    auto r = conn->request("POST", path, headers, body.bytes, cfg.timeout_ms);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r.ok()) {
      ++stats->errors;
      if (stats->first_problem.empty()) stats->first_problem = r.status().message();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    stats->latencies_ms.push_back(ms);
    if (r->status == 200) {
      ++stats->requests_ok;
      stats->events_ok += body.events;
    } else {
      ++stats->non200[r->status];
      if (stats->first_problem.empty()) {
        stats->first_problem = fmt::format("{} {}: {}", r->status, r->reason, r->body.substr(0, 200));
      }
      if (r->status == 503) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

RunResult run_once(const Config& cfg, const taba::http::Url& target, const std::string& path, long server_pid,
                   const std::vector<Body>& bodies, double seconds, bool report_problems) {
  std::vector<WorkerStats> stats(static_cast<size_t>(cfg.connections));
  std::vector<std::thread> threads;
  auto start = Clock::now() + std::chrono::milliseconds(50);
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int w = 0; w < cfg.connections; ++w) {
    threads.emplace_back(post_until, std::cref(cfg), std::cref(target), std::cref(path), std::cref(bodies), w,
                         start, end, &stats[static_cast<size_t>(w)]);
  }
  std::this_thread::sleep_until(start);
  std::optional<double> cpu0 = server_pid > 0 ? process_cpu_seconds(server_pid) : std::nullopt;
  double self0 = self_cpu_seconds();
  for (std::thread& t : threads) t.join();
  auto finished = Clock::now();
  std::optional<double> cpu1 = server_pid > 0 ? process_cpu_seconds(server_pid) : std::nullopt;

  RunResult r;
  r.seconds = std::chrono::duration<double>(finished - start).count();
  r.bench_cpu_s = self_cpu_seconds() - self0;
  std::vector<double> latencies;
  std::map<int, int64_t> non200;
  std::string problem;
  for (WorkerStats& s : stats) {
    r.requests += s.requests_ok;
    r.events += s.events_ok;
    r.errors += s.errors;
    for (auto [status, n] : s.non200) {
      non200[status] += n;
      r.non200 += n;
    }
    if (problem.empty()) problem = s.first_problem;
    latencies.insert(latencies.end(), s.latencies_ms.begin(), s.latencies_ms.end());
  }
  r.events_per_s = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  if (cpu0 && cpu1) {
    r.server_cpu_s = *cpu1 - *cpu0;
    if (*r.server_cpu_s > 0) r.events_per_cpu_s = static_cast<double>(r.events) / *r.server_cpu_s;
  }
  r.p50_ms = percentile(latencies, 0.50);
  r.p99_ms = percentile(latencies, 0.99);
  if (report_problems && (r.non200 > 0 || r.errors > 0)) {
    std::string codes;
    for (auto [status, n] : non200) codes += fmt::format(" {}x{}", n, status);
    std::cerr << fmt::format("ingest_bench: {} non-200 replies{}, {} transport errors; first: {}\n", r.non200,
                             codes, r.errors, problem);
  }
  return r;
}

// ---------------------------------------------------------------------------
// Output

std::string opt_number(const std::optional<double>& v, const char* format) {
  return v ? fmt::format(fmt::runtime(format), *v) : std::string("n/a");
}

void print_header() {
  std::cout << fmt::format("{:<7}{:>8}{:>10}{:>14}{:>11}{:>15}{:>10}{:>9}{:>9}{:>8}{:>8}\n", "run", "secs",
                           "requests", "events/s", "srv_cpu_s", "events/cpu_s", "bench_cpu", "p50_ms",
                           "p99_ms", "non200", "errors");
}

void print_row(const std::string& label, const RunResult& r) {
  std::cout << fmt::format("{:<7}{:>8.2f}{:>10}{:>14.0f}{:>11}{:>15}{:>10.2f}{:>9.2f}{:>9.2f}{:>8}{:>8}\n",
                           label, r.seconds, r.requests, r.events_per_s, opt_number(r.server_cpu_s, "{:.2f}"),
                           opt_number(r.events_per_cpu_s, "{:.0f}"), r.bench_cpu_s, r.p50_ms, r.p99_ms,
                           r.non200, r.errors);
}

// Per-column medians (over runs) of the run results.
RunResult median_result(const std::vector<RunResult>& runs) {
  auto column = [&](auto get) {
    std::vector<double> v;
    for (const RunResult& r : runs) v.push_back(static_cast<double>(get(r)));
    return median_of(v);
  };
  RunResult m;
  m.seconds = column([](const RunResult& r) { return r.seconds; });
  m.requests = static_cast<int64_t>(column([](const RunResult& r) { return r.requests; }));
  m.events = static_cast<int64_t>(column([](const RunResult& r) { return r.events; }));
  m.events_per_s = column([](const RunResult& r) { return r.events_per_s; });
  m.bench_cpu_s = column([](const RunResult& r) { return r.bench_cpu_s; });
  m.p50_ms = column([](const RunResult& r) { return r.p50_ms; });
  m.p99_ms = column([](const RunResult& r) { return r.p99_ms; });
  m.non200 = static_cast<int64_t>(column([](const RunResult& r) { return r.non200; }));
  m.errors = static_cast<int64_t>(column([](const RunResult& r) { return r.errors; }));
  if (std::all_of(runs.begin(), runs.end(), [](const RunResult& r) { return r.server_cpu_s.has_value(); })) {
    m.server_cpu_s = column([](const RunResult& r) { return *r.server_cpu_s; });
  }
  if (std::all_of(runs.begin(), runs.end(),
                  [](const RunResult& r) { return r.events_per_cpu_s.has_value(); })) {
    m.events_per_cpu_s = column([](const RunResult& r) { return *r.events_per_cpu_s; });
  }
  return m;
}

// ---------------------------------------------------------------------------
// Command line

std::optional<Config> parse_config(int argc, char** argv, int* exit_code) {
  cxxopts::Options options("ingest_bench", "Ingest throughput of tabad with agent-sized v1 bodies.");
  add_server_options(options, "with --server: the server's pid, to measure its CPU time", TABA_BENCH_TABAD);
  options.add_options()("duration", "seconds per run", cxxopts::value<double>()->default_value("10"))(
      "warmup", "seconds of load before the first run", cxxopts::value<double>()->default_value("1"))(
      "runs", "number of runs (the median is reported)", cxxopts::value<int>()->default_value("3"))(
      "connections", "keep-alive connections, one thread each", cxxopts::value<int>()->default_value("4"))(
      "events-per-body", "events in each posted body", cxxopts::value<int>()->default_value("10000"))(
      "names", "distinct tab names", cxxopts::value<int>()->default_value("1000"))(
      "clients", "client blocks per body", cxxopts::value<int>()->default_value("10"))(
      "events-per-block", "events per (client, name) block", cxxopts::value<int>()->default_value("10"))(
      "bodies", "distinct pre-built bodies", cxxopts::value<int>()->default_value("200"))(
      "zlib", "zlib the bodies and POST them to /post_zip")(
      "types", "comma-separated numeric types, one per name in turn",
      cxxopts::value<std::string>()->default_value("CounterGroup"))(
      "batch-ids", "send a Taba-Batch-Id header with every post (as agents and clients do)");
  add_run_options(options, "10000");
  auto read_own = [](const cxxopts::ParseResult& r, Config* cfg) {
    cfg->duration_s = r["duration"].as<double>();
    cfg->warmup_s = r["warmup"].as<double>();
    cfg->runs = r["runs"].as<int>();
    cfg->connections = r["connections"].as<int>();
    cfg->events_per_body = r["events-per-body"].as<int>();
    cfg->names = r["names"].as<int>();
    cfg->clients = r["clients"].as<int>();
    cfg->events_per_block = r["events-per-block"].as<int>();
    cfg->bodies = r["bodies"].as<int>();
    cfg->zlib = r.count("zlib") != 0;
    cfg->batch_ids = r.count("batch-ids") != 0;
    cfg->types.clear();
    std::stringstream list(r["types"].as<std::string>());
    for (std::string type; std::getline(list, type, ',');) {
      if (!type.empty()) cfg->types.push_back(type);
    }
    if (cfg->duration_s <= 0 || cfg->warmup_s < 0 || cfg->runs < 1 || cfg->connections < 1 ||
        cfg->events_per_body < 1 || cfg->names < 1 || cfg->clients < 1 || cfg->events_per_block < 1 ||
        cfg->bodies < 1 || cfg->timeout_ms < 1 || cfg->types.empty()) {
      throw std::invalid_argument("counts and durations must be positive");
    }
  };
  return parse_command_line<Config>("ingest_bench", options, argc, argv, read_own, exit_code);
}

int run_benchmark(const Config& cfg) {
  int exit_code = 0;
  std::optional<ServerUnderTest> server =
      open_server("ingest_bench", cfg, "server CPU time is not measured", &exit_code);
  if (!server) return exit_code;
  const taba::http::Url& target = server->url;
  const long server_pid = server->pid;

  auto build_start = Clock::now();
  std::vector<Body> bodies = build_bodies(cfg);
  size_t bytes = 0;
  for (const Body& b : bodies) bytes += b.bytes.size();
  std::cerr << fmt::format(
      "ingest_bench: built {} bodies ({} events each, {:.0f} KB average{}) in {:.1f} s\n", bodies.size(),
      bodies.front().events, static_cast<double>(bytes) / static_cast<double>(bodies.size()) / 1024,
      cfg.zlib ? " zlib'd" : "", std::chrono::duration<double>(Clock::now() - build_start).count());

  const std::string path =
      (target.target == "/" ? std::string() : target.target) + (cfg.zlib ? "/post_zip" : "/post");
  if (cfg.warmup_s > 0) run_once(cfg, target, path, server_pid, bodies, cfg.warmup_s, true);

  std::vector<RunResult> results;
  print_header();
  for (int i = 0; i < cfg.runs; ++i) {
    results.push_back(run_once(cfg, target, path, server_pid, bodies, cfg.duration_s, true));
    print_row(std::to_string(i + 1), results.back());
    std::cout.flush();
  }
  RunResult m = median_result(results);
  print_row("median", m);
  std::cout << fmt::format(
      "ingest_bench: events_per_s={:.0f} server_cpu_s={} events_per_server_cpu_s={} p50_ms={:.3f} "
      "p99_ms={:.3f} "
      "non200={} errors={} bench_cpu_s={:.2f} runs={} duration_s={} connections={} events_per_body={} "
      "names={} "
      "clients={} events_per_block={} zlib={} types={} batch_ids={}\n",
      m.events_per_s, opt_number(m.server_cpu_s, "{:.2f}"), opt_number(m.events_per_cpu_s, "{:.0f}"),
      m.p50_ms, m.p99_ms, m.non200, m.errors, m.bench_cpu_s, cfg.runs, cfg.duration_s, cfg.connections,
      cfg.events_per_body, cfg.names, cfg.clients, cfg.events_per_block, cfg.zlib ? 1 : 0,
      fmt::join(cfg.types, ","), cfg.batch_ids ? 1 : 0);

  // Peak resident memory of the server over the whole benchmark.
  if (auto hwm = proc_status_kb(server_pid, "VmHWM")) std::cout << "ingest_bench: server_peak_rss_kb=" << *hwm << "\n";
  if (server->own) stop_tabad("ingest_bench", *server->own, cfg.keep_data);
  bool clean = std::all_of(results.begin(), results.end(),
                           [](const RunResult& r) { return r.non200 == 0 && r.errors == 0; });
  return clean ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Config> cfg = parse_config(argc, argv, &exit_code);
  if (!cfg) return exit_code;
  return run_benchmark(*cfg);
}
