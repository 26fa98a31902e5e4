// query_bench: query latency of a tabad holding many (client, name) states,
// for the query targets of docs/performance.md (/tabs?name=X over 1,000 clients < 10 ms p99;
// merge of 10,000 client states < 50 ms), plus the server's memory per state.
//
// It starts the tabad built next to it (a fresh data directory, a free
// loopback port, pinned to --server-cpu; the benchmark pins itself to
// --bench-cpu), or attaches to a running one (--server, with --pid for memory
// and CPU figures). Then:
//   1. loads --clients (1,000) clients x --names (200) names of a mix of the
//      built-in types through POST /post, --events (5) events per (client,
//      name) with current timestamps, and POST /flush; checks that every
//      event arrived;
//   2. reads VmRSS/VmHWM of the server (/proc/<pid>/status) before and after
//      loading: RSS per (client, name) state;
//   3. measures request latency over one keep-alive connection, one request
//      at a time, --requests (1,000) requests per query kind after --warmup
//      (100) requests, for:
//        tabs_name     /tabs?name=X, X cycling over the names (all, or one type)
//                      - renders the stored aggregate of 1,000 clients
//        tabs_all      /tabs - every name's aggregate
//        tabs_re       /tabs?name=<regex matching every CounterGroup name>&re=1
//        tabs_client   /tabs?name=X&client=C - one client's state
//        merge_1k      /tabs?name=X&client=.*&re=1 - the query-time merge of
//                      the name's 1,000 client states (a client filter always
//                      merges per-client states; no filter renders the aggregate)
//   4. loads --merge-clients (10,000) clients x one name per numeric/gauge
//      type (the first 1,000 clients are the same as above) and measures
//        tabs_name_10k /tabs?name=X over 10,000 clients (the stored aggregate)
//        merge_10k     /tabs?name=X&client=.*&re=1: a merge of 10,000 client
//                      states per request (--merge-requests, default 200)
//      and the memory again.
// Everything in step 3 and 4 is repeated --runs (3) times; the tables and
// the `query_bench: ` lines give the median over runs of each per-run p50,
// p99, max and mean response size. srv_cpu_ms is the server's CPU time
// (all threads, /proc/<pid>/stat) per request.
//
// plugin_bench's "merge 10k states" is a different figure: the handler's
// merge alone, in-process, of 10,000 states each holding a day of data.
// merge_10k here is the whole request: parse, client selection, 10,000
// merges of states holding --events events each, render and HTTP.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
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

#include "bench_options.h"
#include "bench_stats.h"
#include "bench_support.h"
#include "http/client.h"
#include "http/url.h"

namespace {

using namespace taba::bench;
using Clock = std::chrono::steady_clock;

// The shared options (bench_options.h) and query_bench's own.
struct Config : ServerOptions {
  int clients = 1'000;
  int names = 200;
  int events = 5;              // per (client, name)
  int clients_per_body = 10;   // client blocks per posted body
  double spread_s = 60;        // event timestamps: now minus up to this
  int requests = 1'000;        // measured requests per query kind and run
  int warmup = 100;            // unmeasured requests before them
  int merge_clients = 10'000;  // 0: no 10,000-client scenario
  int merge_requests = 200;
  int merge_warmup = 10;
  int runs = 3;
  double snapshot_probe_s = 70;  // 0: no snapshot-stall probe
  std::string only;            // --only: run the query kinds whose label contains this
};

// ---------------------------------------------------------------------------
// Types and bodies

enum class Payload { kNumber, kGaugeValue, kExpiryGauge, kSetMember, kBufferValue };

struct TypeInfo {
  const char* type;
  const char* tag;  // in names: qb.<tag>.<i>
  Payload payload;
};

constexpr TypeInfo kTypes[] = {
    {"CounterGroup", "cg", Payload::kNumber},     {"PercentileGroup", "pg", Payload::kNumber},
    {"Gauge", "gauge", Payload::kGaugeValue},     {"TotalsCounter", "tc", Payload::kNumber},
    {"PercentileCounter", "pc", Payload::kNumber}, {"ExpiryGauge", "eg", Payload::kExpiryGauge},
    {"Set", "set", Payload::kSetMember},          {"Buffer", "buf", Payload::kBufferValue},
};
constexpr size_t kTypeCount = sizeof kTypes / sizeof kTypes[0];

// Name i's type: 40 % CounterGroup, 25 % PercentileGroup, 15 % Gauge, 7.5 %
// each TotalsCounter and PercentileCounter, 5 % ExpiryGauge, 2.5 % each Set
// and Buffer (200 names: 70, 50, 30, 15, 15, 10, 5, 5).
constexpr int kMixPattern[40] = {0, 1, 0, 2, 0, 1, 3, 0, 1, 4, 0, 2, 1, 0, 5, 0, 1, 2, 0, 6,
                                 0, 1, 0, 2, 1, 3, 0, 1, 4, 0, 2, 1, 0, 5, 1, 0, 2, 1, 7, 0};

// The types of the 10,000-client scenario: one name each.
constexpr int kMergeTypes[] = {0, 1, 2, 3, 4};

struct Name {
  std::string name;
  int type = 0;  // index into kTypes
};

std::vector<Name> main_names(int n) {
  std::vector<Name> out;
  for (int i = 0; i < n; ++i) {
    int t = kMixPattern[i % 40];
    out.push_back(Name{fmt::format("qb.{}.{}", kTypes[t].tag, i), t});
  }
  return out;
}

std::vector<Name> merge_names() {
  std::vector<Name> out;
  for (int t : kMergeTypes) out.push_back(Name{fmt::format("qb10k.{}", kTypes[t].tag), t});
  return out;
}

std::string client_id(int c) { return fmt::format("qb-client-{}", c); }

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One event line in the v1 form: ["Type", ts, "<payload JSON, as a JSON string>"].
void append_event(std::string* out, const TypeInfo& t, double ts, int client, int event, std::mt19937_64& rng,
                  std::lognormal_distribution<double>& latency) {
  fmt::format_to(std::back_inserter(*out), "[\"{}\", {:.3f}, \"", t.type, ts);
  switch (t.payload) {
    case Payload::kNumber:
      fmt::format_to(std::back_inserter(*out), "{:.2f}", latency(rng));
      break;
    case Payload::kGaugeValue:
      fmt::format_to(std::back_inserter(*out), "\\\"v{}\\\"", (client + event) % 8);
      break;
    case Payload::kExpiryGauge:
      fmt::format_to(std::back_inserter(*out), "[\\\"v{}\\\", {:.0f}]", (client + event) % 8, ts + 3600);
      break;
    case Payload::kSetMember:
      fmt::format_to(std::back_inserter(*out), "\\\"m{}\\\"", client * 16 + event);
      break;
    case Payload::kBufferValue:
      fmt::format_to(std::back_inserter(*out), "\\\"event {} of client {}\\\"", event, client);
      break;
  }
  *out += "\"]\n";
}

// Bodies covering clients [0, clients) x names, `clients_per_body` client
// blocks each, `events` events per (client, name), timestamps within
// spread_s before now.
std::vector<std::string> build_bodies(const Config& cfg, int clients, const std::vector<Name>& names,
                                      uint64_t seed) {
  std::vector<std::string> bodies;
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> latency(std::log(20.0), 1.0);
  std::uniform_real_distribution<double> age(0, cfg.spread_s);
  const double now = wall_seconds();
  for (int first = 0; first < clients; first += cfg.clients_per_body) {
    std::string text = "1\n\n";
    for (int c = first; c < std::min(clients, first + cfg.clients_per_body); ++c) {
      text += client_id(c);
      text += "\n\n";
      for (const Name& n : names) {
        text += n.name;
        text += '\n';
        for (int e = 0; e < cfg.events; ++e) append_event(&text, kTypes[n.type], now - age(rng), c, e, rng, latency);
        text += '\n';
      }
      text += '\n';
    }
    bodies.push_back(std::move(text));
  }
  return bodies;
}

// ---------------------------------------------------------------------------
// Requests

bool post_bodies(Session* s, const std::vector<std::string>& bodies) {
  for (const std::string& body : bodies) {
    for (int attempt = 0;; ++attempt) {
      auto r = s->request("POST", "/post", {}, body);
      if (r.ok() && r->status == 200) break;
      std::string why = r.ok() ? fmt::format("{} {}", r->status, r->body.substr(0, 300)) : r.status().message();
      bool retry = attempt < 50 && (!r.ok() || r->status == 503);
      if (!retry) {
        std::cerr << "query_bench: POST /post failed: " << why << "\n";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return true;
}

std::optional<std::string> get_text(Session* s, const std::string& method, const std::string& path,
                                    const std::string& accept = "text/plain") {
  auto r = s->request(method, path, {{"Accept", accept}}, "");
  if (!r.ok() || r->status != 200) {
    std::cerr << "query_bench: " << method << " " << path << ": "
              << (r.ok() ? fmt::format("{} {}", r->status, r->body.substr(0, 300)) : r.status().message()) << "\n";
    return std::nullopt;
  }
  return std::move(r->body);
}

// Percent-encodes what a query value must not carry raw.
std::string url_escape(const std::string& v) {
  std::string out;
  for (char ch : v) {
    auto u = static_cast<unsigned char>(ch);
    if (std::isalnum(u) || ch == '.' || ch == '-' || ch == '_' || ch == '~' || ch == '*') {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

// An RE2 pattern matching exactly `name`.
std::string exact_regex(const std::string& name) {
  std::string out;
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') out += '\\';
    out += ch;
  }
  return out;
}

// Loads bodies, flushes, and checks that every event of `check` (a
// TotalsCounter name) and every client arrived.
bool load(Session* s, const std::vector<std::string>& bodies, const std::string& check, int64_t expect_count,
          size_t expect_clients) {
  auto t0 = Clock::now();
  size_t bytes = 0;
  for (const std::string& b : bodies) bytes += b.size();
  if (!post_bodies(s, bodies)) return false;
  if (!get_text(s, "POST", "/flush")) return false;
  std::cerr << fmt::format("query_bench: posted {} bodies ({:.1f} MB) in {:.1f} s\n", bodies.size(),
                           static_cast<double>(bytes) / 1e6,
                           std::chrono::duration<double>(Clock::now() - t0).count());
  auto tab = get_text(s, "GET", "/tabs?name=" + url_escape(check), "application/json");
  if (!tab) return false;
  size_t at = tab->find("\"count\": ");
  int64_t count = at == std::string::npos ? -1 : std::strtoll(tab->c_str() + at + 9, nullptr, 10);
  if (count != expect_count) {
    std::cerr << fmt::format("query_bench: {} counts {} events, expected {}: {}\n", check, count, expect_count,
                             tab->substr(0, 300));
    return false;
  }
  auto clients = get_text(s, "GET", "/clients");
  if (!clients) return false;
  size_t n = static_cast<size_t>(std::count(clients->begin(), clients->end(), '\n'));
  if (n < expect_clients) {
    std::cerr << fmt::format("query_bench: /clients lists {} clients, expected at least {}\n", n, expect_clients);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Measurements

struct Kind {
  std::string label;   // tabs_name, tabs_all, ...
  std::string type;    // "mix" or a type name
  std::string accept;  // text, json, json-detailed
  int clients = 0;     // states per name behind the query
  std::vector<std::string> targets;  // cycled
  int requests = 0;
  int warmup = 0;
};

struct Figures {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double bytes = 0;  // mean response body size
  double srv_cpu_ms = -1;  // server CPU per request; < 0: not measured
  int requests = 0;
  int failures = 0;
};

std::string accept_header(const std::string& accept) {
  if (accept == "json") return "application/json";
  if (accept == "json-detailed") return "application/json-detailed";
  return "text/plain";
}

Figures measure(Session* s, const Kind& k, long pid) {
  std::vector<taba::http::Header> headers = {{"Accept", accept_header(k.accept)}};
  Figures f;
  std::string problem;
  size_t next = 0;
  auto one = [&](std::vector<double>* ms, double* bytes) {
    const std::string& target = k.targets[next++ % k.targets.size()];
    auto t0 = Clock::now();
    auto r = s->request("GET", target, headers, "");
    double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r.ok() || r->status != 200) {
      ++f.failures;
      if (problem.empty()) {
        problem = target + ": " +
                  (r.ok() ? fmt::format("{} {}", r->status, r->body.substr(0, 200)) : r.status().message());
      }
      return;
    }
    if (ms) ms->push_back(elapsed);
    if (bytes) *bytes += static_cast<double>(r->body.size());
  };
  for (int i = 0; i < k.warmup; ++i) one(nullptr, nullptr);
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(k.requests));
  double bytes = 0;
  auto cpu0 = process_cpu_seconds(pid);
  for (int i = 0; i < k.requests; ++i) one(&ms, &bytes);
  auto cpu1 = process_cpu_seconds(pid);
  f.requests = static_cast<int>(ms.size());
  f.p50_ms = percentile(ms, 0.50);
  f.p99_ms = percentile(ms, 0.99);
  f.max_ms = ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end());
  f.bytes = ms.empty() ? 0 : bytes / static_cast<double>(ms.size());
  if (cpu0 && cpu1 && !ms.empty()) f.srv_cpu_ms = (*cpu1 - *cpu0) * 1e3 / static_cast<double>(ms.size());
  if (f.failures > 0) std::cerr << fmt::format("query_bench: {} failed requests; first: {}\n", f.failures, problem);
  return f;
}

Figures median_figures(const std::vector<Figures>& runs) {
  auto col = [&](double Figures::*m) {
    std::vector<double> v;
    for (const Figures& f : runs) v.push_back(f.*m);
    return median_of(v);
  };
  Figures m;
  m.p50_ms = col(&Figures::p50_ms);
  m.p99_ms = col(&Figures::p99_ms);
  m.max_ms = col(&Figures::max_ms);
  m.bytes = col(&Figures::bytes);
  m.srv_cpu_ms = col(&Figures::srv_cpu_ms);
  for (const Figures& f : runs) {
    m.requests += f.requests;
    m.failures += f.failures;
  }
  return m;
}

void print_header() {
  std::cout << fmt::format("{:<14}{:<18}{:<14}{:>7}{:>8}{:>10}{:>10}{:>10}{:>12}{:>12}\n", "kind", "type", "accept",
                           "states", "reqs", "p50_ms", "p99_ms", "max_ms", "bytes", "srv_cpu_ms");
}

std::string srv_cpu_text(double v) { return v < 0 ? std::string("n/a") : fmt::format("{:.3f}", v); }

void print_row(const Kind& k, const Figures& f) {
  std::cout << fmt::format("{:<14}{:<18}{:<14}{:>7}{:>8}{:>10.3f}{:>10.3f}{:>10.3f}{:>12.0f}{:>12}\n", k.label, k.type,
                           k.accept, k.clients, f.requests, f.p50_ms, f.p99_ms, f.max_ms, f.bytes,
                           srv_cpu_text(f.srv_cpu_ms));
}

// taba_wal_snapshots_written_total from /metrics, or nullopt.
std::optional<double> snapshots_written(Session* s) { return metric_value(s, "taba_wal_snapshots_written_total"); }

// The embedded store writes a snapshot of every state every
// snapshot_interval_s (60 s) while anything changed (the server's own
// taba_* tabs change every 10 s). A forked child serializes it; the loop
// thread pauses for the fork itself (and, before that change, paused for
// the whole serialization, about 1 s per 200,000 states). This polls a
// cheap query back to back until a snapshot has been written (or `limit_s`
// passed) and reports the slowest request: the stall a query sees when it
// arrives as a snapshot starts.
void snapshot_probe(Session* s, const std::string& phase, const std::string& target, double limit_s) {
  auto before = snapshots_written(s);
  if (!before) {
    std::cout << fmt::format("query_bench: snapshot phase={} probed=0 (no taba_wal_snapshots_written_total)\n", phase);
    return;
  }
  std::vector<double> ms;
  auto start = Clock::now();
  auto last_check = start;
  bool seen = false;
  while (std::chrono::duration<double>(Clock::now() - start).count() < limit_s) {
    auto t0 = Clock::now();
    auto r = s->request("GET", target, {}, "");
    if (!r.ok() || r->status != 200) {
      std::cerr << "query_bench: snapshot probe: " << (r.ok() ? std::to_string(r->status) : r.status().message())
                << "\n";
      break;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (Clock::now() - last_check > std::chrono::milliseconds(250)) {
      last_check = Clock::now();
      auto now = snapshots_written(s);
      if (now && *now > *before) {
        seen = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  double max = ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end());
  auto over = std::count_if(ms.begin(), ms.end(), [](double v) { return v > 10; });
  std::cout << fmt::format(
      "query_bench: snapshot phase={} snapshot_seen={} waited_s={:.1f} probe_requests={} probe_p50_ms={:.3f} "
      "max_ms={:.1f} over_10ms={}\n",
      phase, seen ? 1 : 0, std::chrono::duration<double>(Clock::now() - start).count(), ms.size(),
      percentile(ms, 0.5), max, over);
}

// ---------------------------------------------------------------------------
// Query kinds

std::vector<Kind> main_kinds(const Config& cfg, const std::vector<Name>& names) {
  std::vector<Kind> kinds;
  auto base = [&](std::string label, std::string type, std::string accept) {
    Kind k;
    k.label = std::move(label);
    k.type = std::move(type);
    k.accept = std::move(accept);
    k.clients = cfg.clients;
    k.requests = cfg.requests;
    k.warmup = cfg.warmup;
    return k;
  };
  std::vector<std::string> all_name_targets;
  for (const Name& n : names) all_name_targets.push_back("/tabs?name=" + url_escape(n.name));
  for (const char* accept : {"text", "json", "json-detailed"}) {
    Kind k = base("tabs_name", "mix", accept);
    k.targets = all_name_targets;
    kinds.push_back(std::move(k));
  }
  for (size_t t = 0; t < kTypeCount; ++t) {
    Kind k = base("tabs_name", kTypes[t].type, "text");
    for (const Name& n : names) {
      if (n.type == static_cast<int>(t)) k.targets.push_back("/tabs?name=" + url_escape(n.name));
    }
    if (!k.targets.empty()) kinds.push_back(std::move(k));
  }
  for (const char* accept : {"text", "json"}) {
    Kind k = base("tabs_all", "mix", accept);
    k.targets = {"/tabs"};
    kinds.push_back(std::move(k));
  }
  {
    Kind k = base("tabs_re", "CounterGroup", "text");
    k.targets = {"/tabs?re=1&name=" + url_escape("qb\\.cg\\..*")};
    kinds.push_back(std::move(k));
  }
  {
    Kind k = base("tabs_client", "mix", "text");
    k.clients = 1;
    for (size_t i = 0; i < names.size(); ++i) {
      k.targets.push_back("/tabs?name=" + url_escape(names[i].name) + "&client=" +
                          url_escape(client_id(static_cast<int>((i * 7919) % static_cast<size_t>(cfg.clients)))));
    }
    kinds.push_back(std::move(k));
  }
  for (size_t t = 0; t < kTypeCount; ++t) {
    Kind k = base("merge_1k", kTypes[t].type, "text");
    for (const Name& n : names) {
      if (n.type == static_cast<int>(t)) {
        k.targets.push_back("/tabs?re=1&client=.*&name=" + url_escape(exact_regex(n.name)));
      }
    }
    if (!k.targets.empty()) kinds.push_back(std::move(k));
  }
  return kinds;
}

std::vector<Kind> merge_kinds(const Config& cfg, const std::vector<Name>& names) {
  std::vector<Kind> kinds;
  for (const Name& n : names) {
    Kind k;
    k.label = "tabs_name_10k";
    k.type = kTypes[n.type].type;
    k.accept = "text";
    k.clients = cfg.merge_clients;
    k.requests = cfg.requests;
    k.warmup = cfg.warmup;
    k.targets = {"/tabs?name=" + url_escape(n.name)};
    kinds.push_back(k);
    k.label = "merge_10k";
    k.requests = cfg.merge_requests;
    k.warmup = cfg.merge_warmup;
    k.targets = {"/tabs?re=1&client=.*&name=" + url_escape(exact_regex(n.name))};
    kinds.push_back(std::move(k));
  }
  return kinds;
}

struct Memory {
  std::optional<long> rss_before_kb, rss_after_kb, hwm_kb;
};

Memory read_memory_after(long pid, std::optional<long> before) {
  Memory m;
  m.rss_before_kb = before;
  m.rss_after_kb = proc_status_kb(pid, "VmRSS");
  m.hwm_kb = proc_status_kb(pid, "VmHWM");
  return m;
}

std::string kb_text(const std::optional<long>& v) { return v ? std::to_string(*v) : std::string("n/a"); }

// RSS per state is (RSS after loading - RSS before) / states; it is only
// meaningful for the first load into a fresh server (`per_state`): later,
// memory freed by earlier work is reused first.
void print_memory(const std::string& phase, const Memory& m, int64_t states, bool per_state_valid) {
  std::string per_state = "n/a";
  if (per_state_valid && m.rss_before_kb && m.rss_after_kb && states > 0) {
    per_state = fmt::format("{:.0f}", static_cast<double>(*m.rss_after_kb - *m.rss_before_kb) * 1024.0 /
                                          static_cast<double>(states));
  }
  std::cout << fmt::format(
      "query_bench: memory phase={} states={} vm_rss_before_kb={} vm_rss_after_kb={} vm_hwm_kb={} "
      "rss_bytes_per_state={}\n",
      phase, states, kb_text(m.rss_before_kb), kb_text(m.rss_after_kb), kb_text(m.hwm_kb), per_state);
}

// Runs every kind cfg.runs times (round-robin over kinds within a run) and
// prints per-run rows and the medians.
void run_kinds(const Config& cfg, Session* s, long pid, const std::vector<Kind>& kinds) {
  std::vector<std::vector<Figures>> results(kinds.size());
  for (int run = 1; run <= cfg.runs; ++run) {
    std::cout << fmt::format("\nrun {} of {}\n", run, cfg.runs);
    print_header();
    for (size_t i = 0; i < kinds.size(); ++i) {
      results[i].push_back(measure(s, kinds[i], pid));
      print_row(kinds[i], results[i].back());
      std::cout.flush();
    }
  }
  std::cout << fmt::format("\nmedian of {} runs (p50, p99, max, bytes, srv_cpu_ms: medians of the per-run figures)\n",
                           cfg.runs);
  print_header();
  std::vector<Figures> medians;
  for (size_t i = 0; i < kinds.size(); ++i) {
    medians.push_back(median_figures(results[i]));
    print_row(kinds[i], medians.back());
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    const Kind& k = kinds[i];
    const Figures& m = medians[i];
    std::cout << fmt::format(
        "query_bench: kind={} type={} accept={} states_per_name={} p50_ms={:.3f} p99_ms={:.3f} max_ms={:.3f} "
        "bytes={:.0f} srv_cpu_ms={} requests={} failures={} runs={}\n",
        k.label, k.type, k.accept, k.clients, m.p50_ms, m.p99_ms, m.max_ms, m.bytes, srv_cpu_text(m.srv_cpu_ms),
        m.requests, m.failures, cfg.runs);
  }
}

std::vector<Kind> filtered(const Config& cfg, std::vector<Kind> kinds) {
  if (cfg.only.empty()) return kinds;
  std::vector<Kind> out;
  for (Kind& k : kinds) {
    if ((k.label + " " + k.type + " " + k.accept).find(cfg.only) != std::string::npos) out.push_back(std::move(k));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Command line

std::optional<Config> parse_config(int argc, char** argv, int* exit_code) {
  cxxopts::Options options("query_bench", "Query latency, query-time merges and memory per state of tabad.");
  add_server_options(options, "with --server: the server's pid, for memory and CPU figures", TABA_BENCH_TABAD);
  options.add_options()("clients", "clients posting every name", cxxopts::value<int>()->default_value("1000"))(
      "names", "names (a mix of types)", cxxopts::value<int>()->default_value("200"))(
      "events", "events per (client, name)", cxxopts::value<int>()->default_value("5"))(
      "clients-per-body", "client blocks per posted body", cxxopts::value<int>()->default_value("10"))(
      "spread", "event timestamps lie within this many seconds before now",
      cxxopts::value<double>()->default_value("60"))(
      "requests", "measured requests per query kind and run", cxxopts::value<int>()->default_value("1000"))(
      "warmup", "unmeasured requests before them", cxxopts::value<int>()->default_value("100"))(
      "merge-clients", "clients of the merge scenario (0: skip it)", cxxopts::value<int>()->default_value("10000"))(
      "merge-requests", "measured requests per merge_10k kind and run", cxxopts::value<int>()->default_value("200"))(
      "merge-warmup", "unmeasured merge_10k requests before them", cxxopts::value<int>()->default_value("10"))(
      "runs", "runs (medians of the per-run figures are reported)", cxxopts::value<int>()->default_value("3"))(
      "snapshot-probe", "after each load, poll a cheap query until a store snapshot is written, at most this many "
      "seconds, and report the slowest request (0: skip)", cxxopts::value<double>()->default_value("70"))(
      "only", "run only the query kinds whose 'label type accept' contains this", cxxopts::value<std::string>());
  add_run_options(options, "60000");
  auto read_own = [](const cxxopts::ParseResult& r, Config* cfg) {
    if (r.count("only") != 0) cfg->only = r["only"].as<std::string>();
    cfg->clients = r["clients"].as<int>();
    cfg->names = r["names"].as<int>();
    cfg->events = r["events"].as<int>();
    cfg->clients_per_body = r["clients-per-body"].as<int>();
    cfg->spread_s = r["spread"].as<double>();
    cfg->requests = r["requests"].as<int>();
    cfg->warmup = r["warmup"].as<int>();
    cfg->merge_clients = r["merge-clients"].as<int>();
    cfg->merge_requests = r["merge-requests"].as<int>();
    cfg->merge_warmup = r["merge-warmup"].as<int>();
    cfg->runs = r["runs"].as<int>();
    cfg->snapshot_probe_s = r["snapshot-probe"].as<double>();
    if (cfg->clients < 1 || cfg->names < 1 || cfg->events < 1 || cfg->clients_per_body < 1 || cfg->spread_s < 0 ||
        cfg->requests < 1 || cfg->warmup < 0 || cfg->merge_clients < 0 || cfg->merge_requests < 1 ||
        cfg->merge_warmup < 0 || cfg->runs < 1 || cfg->timeout_ms < 1 || cfg->snapshot_probe_s < 0) {
      throw std::invalid_argument("counts must be positive");
    }
    if (cfg->merge_clients > 0 && cfg->merge_clients < cfg->clients) {
      throw std::invalid_argument("--merge-clients must be 0 or at least --clients");
    }
  };
  return parse_command_line<Config>("query_bench", options, argc, argv, read_own, exit_code);
}

int run_benchmark(const Config& cfg) {
  int rc = 0;
  std::optional<ServerUnderTest> server =
      open_server("query_bench", cfg, "memory and server CPU are not measured", &rc);
  if (!server) return rc;
  const long pid = server->pid;
  Session session(server->url, cfg.timeout_ms);
  [&] {
    // Main scenario.
    std::vector<Name> names = main_names(cfg.names);
    auto check = std::find_if(names.begin(), names.end(), [](const Name& n) { return n.type == 3; });
    if (check == names.end()) {
      std::cerr << "query_bench: --names must be at least 7 (the first TotalsCounter name checks the load)\n";
      rc = 2;
      return;
    }
    std::vector<std::string> bodies = build_bodies(cfg, cfg.clients, names, 1);
    std::optional<long> rss0 = proc_status_kb(pid, "VmRSS");
    if (!load(&session, bodies, check->name, int64_t{cfg.clients} * cfg.events, static_cast<size_t>(cfg.clients))) {
      rc = 1;
      return;
    }
    bodies.clear();
    bodies.shrink_to_fit();
    Memory mem = read_memory_after(pid, rss0);
    std::cout << fmt::format(
        "query_bench: {} clients x {} names ({} states), {} events per state, timestamps within {} s\n",
        cfg.clients, cfg.names, int64_t{cfg.clients} * cfg.names, cfg.events, cfg.spread_s);
    print_memory("main", mem, int64_t{cfg.clients} * cfg.names, server->own.has_value());
    if (cfg.snapshot_probe_s > 0) {
      snapshot_probe(&session, "main", "/tabs?name=" + url_escape(names[0].name), cfg.snapshot_probe_s);
    }
    run_kinds(cfg, &session, pid, filtered(cfg, main_kinds(cfg, names)));

    // Merge scenario: the first cfg.clients clients are already there.
    if (cfg.merge_clients == 0) return;
    std::vector<Name> mnames = merge_names();
    bodies = build_bodies(cfg, cfg.merge_clients, mnames, 2);
    rss0 = proc_status_kb(pid, "VmRSS");
    if (!load(&session, bodies, mnames[3].name, int64_t{cfg.merge_clients} * cfg.events,
              static_cast<size_t>(cfg.merge_clients))) {
      rc = 1;
      return;
    }
    bodies.clear();
    bodies.shrink_to_fit();
    mem = read_memory_after(pid, rss0);
    std::cout << fmt::format("\nquery_bench: {} clients x {} names ({} states), {} events per state\n",
                             cfg.merge_clients, mnames.size(), int64_t{cfg.merge_clients} * int64_t(mnames.size()),
                             cfg.events);
    print_memory("merge", mem, int64_t{cfg.merge_clients} * int64_t(mnames.size()), false);
    if (cfg.snapshot_probe_s > 0) {
      snapshot_probe(&session, "merge", "/tabs?name=" + url_escape(mnames[0].name), cfg.snapshot_probe_s);
    }
    run_kinds(cfg, &session, pid, filtered(cfg, merge_kinds(cfg, mnames)));
  }();
  if (server->own) stop_tabad("query_bench", *server->own, cfg.keep_data);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<Config> cfg = parse_config(argc, argv, &exit_code);
  if (!cfg) return exit_code;
  return run_benchmark(*cfg);
}
