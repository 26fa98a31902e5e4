// client_record_bench: the cost of one recording call of the C++ client
// library (taba::Client::Counter), in ns per event, with 1 and 2 recording
// threads (more with --threads). No server is needed: the endpoint is
// unreachable, so the figures are the record path alone (shard lock, name
// lookup, store into the buffer).
//
//   client_record_bench [--events N] [--threads T] [--names K] [--rounds R]
//
// Each run records N events (split over the threads) in R rounds; between
// rounds, untimed, a Flush() encodes what was recorded and hands the buffers
// back, as the flush thread does every interval. So the figures are the
// steady state of a process that records N/R events per flush interval
// (default 4,000,000 in 20 rounds: 200,000 per interval). K distinct names
// are recorded round-robin (default 1: "the same counter in a loop").
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <taba/client.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct RunResult {
  double ns_per_event = 0;  // wall time / events per thread: the latency one thread sees
  taba::ClientStatus status;
};

RunResult run(int threads, long events, int names, int rounds) {
  taba::ClientOptions options;
  options.endpoint = "http://127.0.0.1:1";  // nothing listens: nothing is sent
  options.client_id = "bench";
  options.flush_interval = std::chrono::hours(1);  // only the Flush() calls below
  options.max_pending_events = static_cast<size_t>(events);
  options.max_retry_bytes = 1 << 20;  // keep the encoded (unsendable) bodies small
  options.stop_timeout = std::chrono::milliseconds(0);
  taba::Client client(options);

  std::vector<std::string> name_list;
  for (int i = 0; i < names; ++i) name_list.push_back("bench.counter." + std::to_string(i));
  const long per_round = events / threads / rounds;
  double worst_total = 0;  // per round, the slowest thread's time, summed
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::thread> workers;
    std::vector<double> elapsed(static_cast<size_t>(threads));
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        auto t0 = Clock::now();
        for (long i = 0; i < per_round; ++i) client.Counter(name_list[static_cast<size_t>(i % names)], 1.5);
        elapsed[static_cast<size_t>(t)] = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
      });
    }
    for (auto& w : workers) w.join();
    double worst = 0;
    for (double e : elapsed) worst = std::max(worst, e);
    worst_total += worst;
    client.Flush(std::chrono::milliseconds(0));
  }
  RunResult r;
  r.ns_per_event = worst_total / static_cast<double>(per_round * rounds);
  r.status = client.Status();
  client.Stop();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  long events = 4'000'000;
  int max_threads = 2;
  int names = 1;
  int rounds = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--events") == 0)
      events = std::atol(argv[i + 1]);
    else if (std::strcmp(argv[i], "--threads") == 0)
      max_threads = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--names") == 0)
      names = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--rounds") == 0)
      rounds = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--events N] [--threads T] [--names K] [--rounds R]\n", argv[0]);
      return 2;
    }
  }
  if (events <= 0 || max_threads <= 0 || names <= 0 || rounds <= 0) {
    std::fprintf(stderr, "--events, --threads, --names and --rounds must be positive\n");
    return 2;
  }
  run(1, std::min(events, 100'000L), names, 1);  // warm-up: the allocator and the code
  std::printf("%-8s %12s %12s %12s %12s %14s\n", "threads", "events", "ns/event", "Mevents/s", "recorded",
              "dropped_full");
  for (int t = 1; t <= max_threads; t = t < 2 ? t + 1 : t * 2) {
    RunResult r = run(t, events, names, rounds);
    double total_rate = 1e3 / r.ns_per_event * t;  // events per µs over all threads
    std::printf("%-8d %12ld %12.1f %12.1f %12llu %14llu\n", t, events, r.ns_per_event, total_rate,
                static_cast<unsigned long long>(r.status.recorded),
                static_cast<unsigned long long>(r.status.dropped_full));
  }
  return 0;
}
