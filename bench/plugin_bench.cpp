// plugin_bench: the cost of the built-in handlers for numeric payloads
// (CounterGroup, PercentileGroup, PercentileCounter, TotalsCounter) and of
// Gauge, measured through the plugin ABI exactly as tabad calls it.
//
// For each type it prints:
//   - fold throughput, in events per second of this thread's CPU time, when
//     ingesting blocks of 1, 10 and 100 events into 1,000 client states by
//     the host's ingest contract (handler.h, section 2): per block
//       delta = new_state(client); fold(delta); merge(client_state, delta);
//       merge(aggregate, delta); free_state(delta);
//     and, for a handler with the fold_many hook, the same blocks through
//       fold_many({client_state, aggregate}, 2, ...)
//     which the fe uses instead ("many" columns; "-" without the hook);
//   - the time (this thread's CPU time, in ms) to merge 10,000 client states
//     holding a day of data into one fresh aggregate, as a query-time
//     reduction does;
//   - serialized bytes per state and in-memory bytes per state (malloc'd
//     bytes in use, from mallinfo2 before and after creating 1,000 states),
//     for that same day of data: a client reporting 20 latency-like values
//     (lognormal, median 20 ms, rounded to 0.01) every 7 minutes for 24 h,
//     ingested by the same contract.
// Every figure is the median of several repetitions (--reps, at least 3;
// 5 for merges). The process pins itself to one CPU (--cpu, default 1);
// times are CPU times, so other load on that CPU inflates them only through
// caches.
//
//   plugin_bench [--cpu N] [--reps N] [--plugins DIR] [--type TYPE] [--quick]
#include <dirent.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_stats.h"
#include "taba/handler.h"

namespace {

using taba::bench::median_of;

struct Options {
  int cpu = 1;
  int reps = 3;
  std::string plugin_dir = TABA_BENCH_PLUGIN_DIR;
  bool quick = false;  // fewer events and states: a smoke run
  std::string only;    // --type: measure this type only
};

const char* const kTypes[] = {"CounterGroup", "PercentileGroup", "PercentileCounter", "TotalsCounter",
                              "Gauge"};

constexpr double kStart = 1400000000;  // the day of data starts here
constexpr size_t kFoldClients = 1000;
constexpr size_t kMemoryStates = 1000;
constexpr size_t kMergeStates = 10000;

void bench_log(int, const char*, size_t) {}
const taba_host kHost = {sizeof(taba_host), TABA_ABI_MAJOR, TABA_ABI_MINOR, bench_log, {}};

int discard(taba_output*, const char*, size_t) {
  return 0;
}
int count_bytes(taba_output* out, const char*, size_t len) {
  *static_cast<size_t*>(out->host_data) += len;
  return 0;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Loads every *.so of dir and returns the handlers of kTypes found there.
std::map<std::string, const taba_handler*> load_handlers(const std::string& dir) {
  std::map<std::string, const taba_handler*> found;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    std::fprintf(stderr, "plugin_bench: cannot open %s: %s\n", dir.c_str(), std::strerror(errno));
    return found;
  }
  std::vector<std::string> files;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0) files.push_back(name);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    const std::string path = dir + "/" + file;
    void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl == nullptr) {
      std::fprintf(stderr, "plugin_bench: %s\n", dlerror());
      continue;
    }
    auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
    const taba_plugin* plugin = entry != nullptr ? entry(&kHost) : nullptr;
    if (plugin == nullptr) continue;
    for (uint32_t i = 0; i < plugin->handler_count; ++i) {
      const taba_handler* h = plugin->handlers[i];
      for (const char* type : kTypes) {
        if (std::strcmp(h->type_name, type) == 0) found.emplace(type, h);
      }
    }
  }
  return found;
}

// A pool of numeric events: latency-like values (lognormal, median 20 ms,
// rounded to 0.01) with their JSON texts; timestamps are set when used.
class EventPool {
 public:
  explicit EventPool(size_t n, uint64_t seed) : texts_(n), events_(n) {
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> latency(std::log(20.0), 1.0);
    for (size_t i = 0; i < n; ++i) {
      const double v = std::round(latency(rng) * 100) / 100;
      char buf[32];
      const int len = std::snprintf(buf, sizeof buf, "%.2f", v);
      texts_[i].assign(buf, static_cast<size_t>(len));
      taba_event& e = events_[i];
      e = taba_event{};
      e.payload.kind = TABA_VALUE_NUMBER;
      e.payload.number = v;
      e.payload.json = texts_[i].data();
      e.payload.json_len = texts_[i].size();
    }
  }
  size_t size() const { return events_.size(); }
  // k consecutive events starting at `at` (wrapping is the caller's job),
  // stamped `ts`.
  taba_event* take(size_t at, size_t k, double ts) {
    for (size_t i = 0; i < k; ++i) events_[at + i].timestamp = ts;
    return events_.data() + at;
  }

 private:
  std::vector<std::string> texts_;
  std::vector<taba_event> events_;
};

std::vector<std::string> client_ids(size_t n) {
  std::vector<std::string> ids(n);
  for (size_t i = 0; i < n; ++i)
    ids[i] = "host-" + std::to_string(i) + ".example.com:pid" + std::to_string(1000 + i);
  return ids;
}

// One block of the ingest contract.
void ingest(const taba_handler& h, taba_state* client_state, taba_state* aggregate, const std::string& client,
            const taba_event* events, size_t n, double now) {
  taba_state* delta = h.new_state(client.data(), client.size(), now);
  if (delta == nullptr) return;
  h.fold(delta, events, n, now);
  if (client_state != nullptr) h.merge(client_state, delta, now);
  if (aggregate != nullptr) h.merge(aggregate, delta, now);
  h.free_state(delta);
}

// Fold throughput (events per CPU second) with blocks of k events, over
// kFoldClients client states and one aggregate, by the ingest contract or
// (many) by fold_many; time advances so that the run covers an hour of
// event time.
double fold_rate(const taba_handler& h, size_t k, size_t blocks, EventPool& pool,
                 const std::vector<std::string>& ids, bool many) {
  std::vector<taba_state*> clients(kFoldClients);
  for (size_t c = 0; c < kFoldClients; ++c) clients[c] = h.new_state(ids[c].data(), ids[c].size(), kStart);
  taba_state* aggregate = h.new_state("", 0, kStart);
  const double step = 3600.0 / static_cast<double>(blocks);
  size_t at = 0;
  const double t0 = thread_cpu_seconds();
  for (size_t b = 0; b < blocks; ++b) {
    const double now = kStart + static_cast<double>(b) * step;
    if (at + k > pool.size()) at = 0;
    const taba_event* ev = pool.take(at, k, now - static_cast<double>(b % 3));
    at += k;
    const size_t c = (b * 7919) % kFoldClients;  // a fixed scatter over the clients
    if (many) {
      taba_state* const targets[2] = {clients[c], aggregate};
      h.fold_many(targets, 2, ids[c].data(), ids[c].size(), ev, k, now);
    } else {
      ingest(h, clients[c], aggregate, ids[c], ev, k, now);
    }
  }
  const double cpu = thread_cpu_seconds() - t0;
  for (taba_state* s : clients) h.free_state(s);
  h.free_state(aggregate);
  return static_cast<double>(blocks * k) / cpu;
}

// A client state holding a day of data (see the header comment), built by
// the ingest contract; `phase` staggers the clients' reporting times.
taba_state* day_state(const taba_handler& h, const std::string& id, EventPool& pool, size_t* at,
                      size_t phase) {
  constexpr size_t kPerFold = 20;
  constexpr double kEvery = 7 * 60;
  taba_state* s = h.new_state(id.data(), id.size(), kStart);
  const double offset = static_cast<double>(phase % 420);
  for (double t = kStart + offset; t < kStart + 86400; t += kEvery) {
    if (*at + kPerFold > pool.size()) *at = 0;
    taba_event* ev = pool.take(*at, kPerFold, t);
    for (size_t i = 0; i < kPerFold; ++i) ev[i].timestamp = t + static_cast<double>(i);  // spread over 20 s
    *at += kPerFold;
    ingest(h, s, nullptr, id, ev, kPerFold, t + kPerFold);
  }
  return s;
}

struct Row {
  double fold[3] = {};  // events/s per core for 1, 10, 100 events per block
  double many[3] = {};  // the same through fold_many (0: no fold_many)
  double merge_ms = 0;
  double serialized = 0;
  double memory = 0;
};

Row measure(const taba_handler& h, const Options& opt) {
  Row row;
  EventPool pool(1 << 16, 7);
  const std::vector<std::string> ids =
      client_ids(std::max(kFoldClients, opt.quick ? size_t{1000} : kMergeStates));
  const size_t scale = opt.quick ? 10 : 1;
  const size_t block_sizes[3] = {1, 10, 100};
  const size_t blocks[3] = {200000 / scale, 100000 / scale, 20000 / scale};
  for (int i = 0; i < 3; ++i) {
    std::vector<double> rates;
    for (int r = 0; r < opt.reps; ++r)
      rates.push_back(fold_rate(h, block_sizes[i], blocks[i], pool, ids, false));
    row.fold[i] = median_of(rates);
    if (h.fold_many == nullptr) continue;  // (the built-in plugins are ABI 1.1 or later)
    std::vector<double> many_rates;
    for (int r = 0; r < opt.reps; ++r)
      many_rates.push_back(fold_rate(h, block_sizes[i], blocks[i], pool, ids, true));
    row.many[i] = median_of(many_rates);
  }

  // Memory and serialized size of kMemoryStates day-of-data states.
  std::vector<double> memory;
  std::vector<double> serialized;
  for (int r = 0; r < opt.reps; ++r) {
    size_t at = 0;
    std::vector<taba_state*> states;
    states.reserve(kMemoryStates);
    const size_t before = mallinfo2().uordblks;
    for (size_t c = 0; c < kMemoryStates; ++c) states.push_back(day_state(h, ids[c], pool, &at, c * 37));
    const size_t after = mallinfo2().uordblks;
    memory.push_back(static_cast<double>(after - before) / kMemoryStates);
    size_t bytes = 0;
    taba_output out{&bytes, count_bytes};
    for (taba_state* s : states) h.serialize(s, &out);
    serialized.push_back(static_cast<double>(bytes) / kMemoryStates);
    for (taba_state* s : states) h.free_state(s);
  }
  row.memory = median_of(memory);
  row.serialized = median_of(serialized);

  // Merge of kMergeStates day-of-data client states into a fresh aggregate,
  // as of the end of the day.
  const size_t merge_states = opt.quick ? kMergeStates / 10 : kMergeStates;
  std::vector<taba_state*> states;
  size_t at = 0;
  for (size_t c = 0; c < merge_states; ++c) states.push_back(day_state(h, ids[c], pool, &at, c * 37));
  const double now = kStart + 86400;
  std::vector<double> times;
  for (int r = 0; r < std::max(opt.reps, 5); ++r) {
    taba_state* aggregate = h.new_state("", 0, now);
    const double t0 = thread_cpu_seconds();
    for (taba_state* s : states) h.merge(aggregate, s, now);
    times.push_back((thread_cpu_seconds() - t0) * 1e3);
    taba_output out{nullptr, discard};
    h.render(aggregate, TABA_FORMAT_JSON, now, &out);
    h.free_state(aggregate);
  }
  row.merge_ms = median_of(times);
  for (taba_state* s : states) h.free_state(s);
  return row;
}

bool parse_options(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "plugin_bench: %s needs a value\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    if (arg == "--cpu" || arg == "--reps") {
      const char* v = value(arg.c_str());
      if (v == nullptr) return false;
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (*end != '\0' || n < 0 || n > 4096) {
        std::fprintf(stderr, "plugin_bench: bad %s value %s\n", arg.c_str(), v);
        return false;
      }
      (arg == "--cpu" ? opt->cpu : opt->reps) = static_cast<int>(n);
    } else if (arg == "--plugins") {
      const char* v = value("--plugins");
      if (v == nullptr) return false;
      opt->plugin_dir = v;
    } else if (arg == "--type") {
      const char* v = value("--type");
      if (v == nullptr) return false;
      opt->only = v;
    } else if (arg == "--quick") {
      opt->quick = true;
    } else {
      std::fprintf(stderr,
                   "usage: plugin_bench [--cpu N (default 1)] [--reps N (default 3, min 3)] [--plugins DIR] "
                   "[--type TYPE] [--quick]\n");
      return false;
    }
  }
  opt->reps = std::max(opt->reps, 3);
  return true;
}

std::string human_rate(double r) {
  char buf[32];
  if (r == 0) return "-";
  if (r >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M", r / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f k", r / 1e3);
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_options(argc, argv, &opt)) return 2;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(opt.cpu, &set);
  const bool pinned = opt.cpu < CPU_SETSIZE && sched_setaffinity(0, sizeof set, &set) == 0;
  if (!pinned) std::fprintf(stderr, "plugin_bench: could not pin to CPU %d; running unpinned\n", opt.cpu);

  const std::map<std::string, const taba_handler*> handlers = load_handlers(opt.plugin_dir);
  std::printf("plugin_bench: plugins from %s; %s CPU %d; medians of %d runs (merges: %d)%s\n",
              opt.plugin_dir.c_str(), pinned ? "pinned to" : "NOT pinned to", opt.cpu, opt.reps,
              std::max(opt.reps, 5), opt.quick ? "; --quick (smaller runs)" : "");
  std::printf(
      "fold: events/s per core through the ingest contract over %zu client states, by events per block\n",
      kFoldClients);
  std::printf("merge: %zu day-of-data client states into one aggregate; sizes: per day-of-data state\n\n",
              opt.quick ? kMergeStates / 10 : kMergeStates);
  std::printf("%-18s %12s %12s %12s %12s %12s %12s %14s %12s %12s\n", "type", "fold 1/blk", "fold 10/blk",
              "fold 100/blk", "many 1/blk", "many 10/blk", "many 100/blk", "merge (ms)", "serialized",
              "memory");
  std::printf("%-18s %12s %12s %12s %12s %12s %12s %14s %12s %12s\n", "", "ev/s", "ev/s", "ev/s", "ev/s",
              "ev/s", "ev/s", "", "B/state", "B/state");
  for (const char* type : kTypes) {
    if (!opt.only.empty() && opt.only != type) continue;
    const auto it = handlers.find(type);
    if (it == handlers.end()) {
      std::printf("%-18s (not found in %s)\n", type, opt.plugin_dir.c_str());
      continue;
    }
    const Row row = measure(*it->second, opt);
    std::printf("%-18s %12s %12s %12s %12s %12s %12s %14.1f %12.0f %12.0f\n", type,
                human_rate(row.fold[0]).c_str(), human_rate(row.fold[1]).c_str(),
                human_rate(row.fold[2]).c_str(), human_rate(row.many[0]).c_str(),
                human_rate(row.many[1]).c_str(), human_rate(row.many[2]).c_str(), row.merge_ms,
                row.serialized, row.memory);
    std::fflush(stdout);
  }
  return 0;
}
