// reshard_load: the client side of bench/reshard_bench.sh. It fills a
// cluster with (client, name) states, or holds a steady load on it while
// vbuckets move, and says what the load saw in each phase.
//
// The states are every pair of --clients clients (bench-client-C) and
// --names CounterGroup names (bench.name.N).
//   --fill   posts one event for every pair once (bodies of up to 10,000
//            events) and exits.
//   steady   (the default) three threads until SIGTERM or SIGINT:
//            - posts of v1 bodies to --fe at --rate events per second in
//              --posts-per-s posts a second, open loop (a late post is
//              sent as soon as the previous one ends), walking over the
//              pairs --events-per-pair events at a time, so every state
//              (those that move too) keeps changing;
//            - GET /tabs?name=bench.name.R (a random name) to --query at
//              --name-qps a second;
//            - GET /tabs?name=bench.name.R&client=bench-client-C (one
//              client's state) to --query at --client-qps a second.
//            Each SIGUSR1 starts the next phase: warmup until the first,
//            then before, during, after.
// Every post carries a Taba-Batch-Id and is resent with it after a 5xx or a
// transport error (as agents do) until it is acknowledged, so that every
// event is acknowledged once and a duplicate would show in the totals. A
// query answered 200 without the asked name counts as "missing": every
// pair exists from the fill on, so a name may never vanish from a query.
//
// Output, one line each (key=value, for the script): per phase
//   reshard_load: phase=P seconds=S acked_events=N events_per_s=R posts=N
//     resends=N post_p50_ms post_p99_ms post_max_ms name_n name_p50_ms
//     name_p99_ms name_max_ms name_errors name_missing client_n ...
// (a post or query belongs to the phase in which it was first sent; a
// post's latency runs from its first send to its acknowledgement), then
//   reshard_load: total acked_events=N unacked_events=N unacked_posts=N
// and the first problem (non-200 reply or transport error) on stderr.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
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
#include "http/client.h"
#include "http/url.h"

namespace {

using namespace taba::bench;
using Clock = std::chrono::steady_clock;

struct Config {
  taba::http::Url fe;
  taba::http::Url query;
  int clients = 100;
  int names = 1000;
  bool fill = false;
  double rate = 5000;
  double posts_per_s = 10;
  int events_per_pair = 10;
  double name_qps = 20;
  double client_qps = 5;
  int timeout_ms = 10'000;
};

// One request as the load saw it.
struct Sample {
  double sent = 0;  // wall-clock seconds of its first send
  double ms = 0;    // until the final answer (posts: the acknowledgement)
  int64_t events = 0;
  int resends = 0;
  bool ok = false;       // 200 (posts: acknowledged)
  bool missing = false;  // queries: 200 without the asked name
};

std::atomic<bool> stopping{false};
std::mutex problem_mutex;
std::string first_problem;

void note_problem(std::string what) {
  while (!what.empty() && (what.back() == '\n' || what.back() == '\r')) what.pop_back();
  std::lock_guard<std::mutex> lock(problem_mutex);
  if (first_problem.empty()) first_problem = std::move(what);
}

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string name_of(int n) { return fmt::format("bench.name.{}", n); }
std::string client_of(int c) { return fmt::format("bench-client-{}", c); }

// A v1 body of `events_per_pair` CounterGroup events for each of `pairs`
// pairs from pair index `first` on (pair p: client p / names, name
// p % names; wrapping), timestamps within the last second.
std::string build_body(const Config& cfg, int64_t first, int64_t pairs, int events_per_pair, int64_t* events) {
  const int64_t total = static_cast<int64_t>(cfg.clients) * cfg.names;
  const int64_t now_ms = static_cast<int64_t>(wall_now() * 1000);
  std::string text = "1\n\n";
  int current_client = -1;
  for (int64_t i = 0; i < pairs; ++i) {
    int64_t p = (first + i) % total;
    int client = static_cast<int>(p / cfg.names);
    if (client != current_client) {
      if (current_client >= 0) text += '\n';
      text += client_of(client) + "\n\n";
      current_client = client;
    }
    text += name_of(static_cast<int>(p % cfg.names)) + "\n";
    for (int e = 0; e < events_per_pair; ++e) {
      int64_t ts = now_ms - (p * 7 + e) % 1000;
      int64_t value = (p * 31 + e * 17) % 100'000;
      text += fmt::format("[\"CounterGroup\", {}.{:03}, \"{}.{:02}\"]\n", ts / 1000, ts % 1000, value / 100,
                          value % 100);
    }
    text += '\n';
  }
  if (current_client >= 0) text += '\n';
  *events += pairs * events_per_pair;
  return text;
}

// Posts `body` under batch id `id` until it is acknowledged, resending after
// a 5xx or a transport error (100 ms apart); gives up on another status, 60 s
// after the first send, or 10 s after the load was told to stop.
Sample post_body(const Config& cfg, std::optional<taba::http::ClientConnection>* conn, const std::string& id,
                 const std::string& body, int64_t events) {
  Sample s;
  s.sent = wall_now();
  s.events = events;
  auto t0 = Clock::now();
  Clock::time_point give_up = t0 + std::chrono::seconds(60);
  bool stop_seen = false;
  for (;;) {
    std::string problem;
    bool retry = true;
    if (!*conn) {
      auto c = taba::http::ClientConnection::connect(cfg.fe.host, cfg.fe.port, cfg.timeout_ms);
      if (c.ok()) conn->emplace(std::move(*c));
      else problem = c.status().message();
    }
    if (*conn) {
      auto r = (*conn)->request("POST", "/post", {{"Taba-Batch-Id", id}}, body, cfg.timeout_ms);
      if (r.ok() && r->status == 200) {
        s.ok = true;
        break;
      }
      if (r.ok()) {
        problem = fmt::format("POST /post: {} {}: {}", r->status, r->reason, r->body.substr(0, 200));
        retry = r->status >= 500;
      } else {
        problem = "POST /post: " + r.status().message();
        conn->reset();
      }
    }
    note_problem(problem);
    if (stopping && !stop_seen) {
      stop_seen = true;
      give_up = std::min(give_up, Clock::now() + std::chrono::seconds(10));
    }
    if (!retry || Clock::now() > give_up) break;
    ++s.resends;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  s.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return s;
}

std::string batch_prefix() {
  return fmt::format("reshard-load-{:x}-{}", std::random_device()(), ::getpid());
}

// --fill: one event for every pair, 10,000 pairs a body.
int fill(const Config& cfg) {
  const int64_t total = static_cast<int64_t>(cfg.clients) * cfg.names;
  const std::string prefix = batch_prefix();
  std::optional<taba::http::ClientConnection> conn;
  int64_t acked = 0, unacked = 0, posts = 0;
  auto t0 = Clock::now();
  for (int64_t first = 0; first < total; first += 10'000) {
    int64_t events = 0;
    std::string body = build_body(cfg, first, std::min<int64_t>(10'000, total - first), 1, &events);
    Sample s = post_body(cfg, &conn, fmt::format("{}-fill-{}", prefix, posts++), body, events);
    (s.ok ? acked : unacked) += events;
  }
  std::cout << fmt::format("reshard_load: fill acked_events={} unacked_events={} posts={} seconds={:.2f}\n", acked,
                           unacked, posts, std::chrono::duration<double>(Clock::now() - t0).count());
  if (unacked > 0) std::cerr << "reshard_load: fill: " << first_problem << "\n";
  return unacked == 0 ? 0 : 1;
}

// Sleeps until `next`, then moves it one period on (or to now, when the
// load fell more than a second behind: a query load does not burst).
bool pace(Clock::time_point* next, Clock::duration period, bool catch_up) {
  while (!stopping && Clock::now() < *next) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (stopping) return false;
  *next += period;
  if (!catch_up && Clock::now() - *next > std::chrono::seconds(1)) *next = Clock::now();
  return true;
}

Clock::duration period_of(double per_s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / per_s));
}

void post_loop(const Config& cfg, std::vector<Sample>* out) {
  const int64_t total = static_cast<int64_t>(cfg.clients) * cfg.names;
  const int64_t pairs = std::max<int64_t>(1, static_cast<int64_t>(cfg.rate / cfg.posts_per_s) / cfg.events_per_pair);
  const std::string prefix = batch_prefix();
  std::optional<taba::http::ClientConnection> conn;
  int64_t cursor = 0, seq = 0;
  for (Clock::time_point next = Clock::now(); pace(&next, period_of(cfg.posts_per_s), true);) {
    int64_t events = 0;
    std::string body = build_body(cfg, cursor, pairs, cfg.events_per_pair, &events);
    cursor = (cursor + pairs) % total;
    out->push_back(post_body(cfg, &conn, fmt::format("{}-{}", prefix, seq++), body, events));
  }
}

// GET /tabs for random names (and with `with_client`, one random client's
// state of it) at `qps`.
void query_loop(const Config& cfg, double qps, bool with_client, uint64_t seed, std::vector<Sample>* out) {
  std::mt19937_64 rng(seed);
  std::optional<taba::http::ClientConnection> conn;
  for (Clock::time_point next = Clock::now(); pace(&next, period_of(qps), false);) {
    const std::string name = name_of(static_cast<int>(rng() % static_cast<uint64_t>(cfg.names)));
    std::string target = "/tabs?name=" + name;
    if (with_client) target += "&client=" + client_of(static_cast<int>(rng() % static_cast<uint64_t>(cfg.clients)));
    Sample s;
    s.sent = wall_now();
    auto t0 = Clock::now();
    if (!conn) {
      auto c = taba::http::ClientConnection::connect(cfg.query.host, cfg.query.port, cfg.timeout_ms);
      if (c.ok()) conn.emplace(std::move(*c));
      else note_problem(c.status().message());
    }
    if (conn) {
      auto r = conn->request("GET", target, {}, "", cfg.timeout_ms);
      if (!r.ok()) {
        note_problem("GET " + target + ": " + r.status().message());
        conn.reset();
      } else if (r->status != 200) {
        note_problem(fmt::format("GET {}: {} {}: {}", target, r->status, r->reason, r->body.substr(0, 200)));
      } else {
        s.ok = true;
        s.missing = r->body.rfind(name + ": ", 0) != 0;
        if (s.missing) note_problem(fmt::format("GET {}: 200 without the name: {}", target, r->body.substr(0, 200)));
      }
    }
    s.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    out->push_back(s);
  }
}

// key=value figures of the queries in [from, to): PREFIX_n, _p50_ms,
// _p99_ms, _max_ms, _errors (non-200 or no answer), _missing.
std::string query_figures(const std::string& prefix, const std::vector<Sample>& samples, double from, double to) {
  std::vector<double> ms;
  int64_t errors = 0, missing = 0;
  for (const Sample& s : samples) {
    if (s.sent < from || s.sent >= to) continue;
    ms.push_back(s.ms);
    errors += s.ok ? 0 : 1;
    missing += s.missing ? 1 : 0;
  }
  double max = ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end());
  return fmt::format(" {0}_n={1} {0}_p50_ms={2:.2f} {0}_p99_ms={3:.2f} {0}_max_ms={4:.2f} {0}_errors={5} {0}_missing={6}",
                     prefix, ms.size(), percentile(ms, 0.50), percentile(ms, 0.99), max, errors, missing);
}

int steady(const Config& cfg) {
  // Only the main thread takes the signals (sigwait below).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  std::vector<Sample> posts, names, clients;
  std::vector<std::thread> threads;
  std::vector<double> marks = {wall_now()};
  threads.emplace_back(post_loop, std::cref(cfg), &posts);
  if (cfg.name_qps > 0) threads.emplace_back(query_loop, std::cref(cfg), cfg.name_qps, false, 1, &names);
  if (cfg.client_qps > 0) threads.emplace_back(query_loop, std::cref(cfg), cfg.client_qps, true, 2, &clients);
  for (int sig = 0; sig != SIGTERM && sig != SIGINT;) {
    if (sigwait(&set, &sig) != 0) break;
    if (sig == SIGUSR1) marks.push_back(wall_now());
  }
  marks.push_back(wall_now());
  stopping = true;
  for (std::thread& t : threads) t.join();

  static const char* const kPhases[] = {"warmup", "before", "during", "after"};
  for (size_t p = 0; p + 1 < marks.size(); ++p) {
    const double from = marks[p], to = marks[p + 1];
    std::vector<double> ms;
    int64_t acked = 0, resends = 0, n = 0;
    for (const Sample& s : posts) {
      if (s.sent < from || s.sent >= to) continue;
      ++n;
      resends += s.resends;
      if (s.ok) {
        acked += s.events;
        ms.push_back(s.ms);
      }
    }
    double max = ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end());
    std::string phase = p < std::size(kPhases) ? kPhases[p] : fmt::format("phase{}", p);
    std::cout << fmt::format(
        "reshard_load: phase={} seconds={:.2f} acked_events={} events_per_s={:.0f} posts={} resends={} "
        "post_p50_ms={:.2f} post_p99_ms={:.2f} post_max_ms={:.2f}{}{}\n",
        phase, to - from, acked, static_cast<double>(acked) / (to - from), n, resends, percentile(ms, 0.50),
        percentile(ms, 0.99), max, query_figures("name", names, from, to), query_figures("client", clients, from, to));
  }
  int64_t acked = 0, unacked = 0, unacked_posts = 0;
  for (const Sample& s : posts) {
    (s.ok ? acked : unacked) += s.events;
    unacked_posts += s.ok ? 0 : 1;
  }
  std::cout << fmt::format("reshard_load: total acked_events={} unacked_events={} unacked_posts={}\n", acked,
                           unacked, unacked_posts);
  if (!first_problem.empty()) std::cerr << "reshard_load: first problem: " << first_problem << "\n";
  return 0;
}

std::optional<Config> parse(int argc, char** argv, int* exit_code) {
  cxxopts::Options options("reshard_load", "Fill, or load steadily, the cluster of bench/reshard_bench.sh.");
  options.add_options()("fe", "fe URL to post to", cxxopts::value<std::string>())(
      "query", "URL of the server to query (default: --fe)", cxxopts::value<std::string>())(
      "clients", "clients", cxxopts::value<int>()->default_value("100"))(
      "names", "CounterGroup names", cxxopts::value<int>()->default_value("1000"))(
      "fill", "post one event for every (client, name) pair, then exit")(
      "rate", "events per second posted", cxxopts::value<double>()->default_value("5000"))(
      "posts-per-s", "posts per second (the events split evenly)", cxxopts::value<double>()->default_value("10"))(
      "events-per-pair", "events per (client, name) in a post", cxxopts::value<int>()->default_value("10"))(
      "name-qps", "GET /tabs?name=X per second (0: none)", cxxopts::value<double>()->default_value("20"))(
      "client-qps", "GET /tabs?name=X&client=C per second (0: none)", cxxopts::value<double>()->default_value("5"))(
      "timeout-ms", "per request", cxxopts::value<int>()->default_value("10000"))("h,help", "show this help");
  try {
    auto r = options.parse(argc, argv);
    if (r.count("help") != 0) {
      std::cout << options.help();
      *exit_code = 0;
      return std::nullopt;
    }
    if (!r.unmatched().empty()) throw std::invalid_argument("unexpected argument '" + r.unmatched()[0] + "'");
    if (r.count("fe") == 0) throw std::invalid_argument("--fe is required");
    Config cfg;
    auto url = [](const std::string& opt, const std::string& text) {
      auto u = taba::http::parse_url(text);
      if (!u.ok()) throw std::invalid_argument("--" + opt + ": " + u.status().message());
      return *u;
    };
    cfg.fe = url("fe", r["fe"].as<std::string>());
    cfg.query = r.count("query") != 0 ? url("query", r["query"].as<std::string>()) : cfg.fe;
    cfg.clients = r["clients"].as<int>();
    cfg.names = r["names"].as<int>();
    cfg.fill = r.count("fill") != 0;
    cfg.rate = r["rate"].as<double>();
    cfg.posts_per_s = r["posts-per-s"].as<double>();
    cfg.events_per_pair = r["events-per-pair"].as<int>();
    cfg.name_qps = r["name-qps"].as<double>();
    cfg.client_qps = r["client-qps"].as<double>();
    cfg.timeout_ms = r["timeout-ms"].as<int>();
    if (cfg.clients < 1 || cfg.names < 1 || cfg.rate <= 0 || cfg.posts_per_s <= 0 || cfg.events_per_pair < 1 ||
        cfg.name_qps < 0 || cfg.client_qps < 0 || cfg.timeout_ms < 1) {
      throw std::invalid_argument("counts and rates must be positive (query rates may be 0)");
    }
    return cfg;
  } catch (const std::exception& e) {
    std::cerr << "reshard_load: " << e.what() << "\nRun 'reshard_load --help' for usage.\n";
    *exit_code = 2;
    return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Config> cfg = parse(argc, argv, &exit_code);
  if (!cfg) return exit_code;
  return cfg->fill ? fill(*cfg) : steady(*cfg);
}
