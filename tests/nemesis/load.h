// The load of a nemesis run and the ledger of what it was promised.
//
// Three kinds of sender, all on loopback, all of TotalsCounter events (an
// all-time count and total, so a stepped clock cannot move an event out of a
// window) except StatsD:
//   - the C++ client library (include/taba/client.hpp), one Client per thread,
//     each through the client link of "its" agent. Its events count as
//     promised once its status says they were sent (answered 200).
//   - direct v1 posts with Taba-Batch-Ids: posters 0 and 1 through the client
//     links of agent 0 and 1 (a batch is retried through the agent that first
//     took it, docs/reliability.md), poster 2 to the fes themselves (any fe:
//     in Redis mode batch ids are remembered by the store, shared by all
//     fes). A batch is retried until it is answered 200; it counts from then.
//   - StatsD counter lines over UDP to the client-proxy: best effort by
//     nature. What arrives is checked against what was sent (never more),
//     and the loss is reported separately, not as a failure.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace taba::nemesis {

// Per (name, client): the events promised (acknowledged) and their total.
struct Expected {
  int64_t count = 0;
  int64_t total = 0;
  int64_t maybe_count = 0;  // in batches never answered: may or may not be stored
  int64_t maybe_total = 0;
};

class Ledger {
 public:
  using Key = std::pair<std::string, std::string>;  // (name, client)
  void add(const Key& key, int64_t count, int64_t total, bool maybe = false);
  std::map<Key, Expected> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<Key, Expected> map_;
};

// When a path last had a post acknowledged (steady ms), for recovery times.
struct PathClock {
  std::atomic<int64_t> agent_ack_ms[2] = {0, 0};
  std::atomic<int64_t> fe_ack_ms{0};
};

struct LoadOptions {
  std::string run_id;                  // in batch ids, unique per run
  std::vector<std::string> agent_urls;  // the client links, agent 0 and 1
  std::vector<std::string> fe_urls;     // the fes, for direct posts
  int statsd_port = 0;
  int lib_threads = 2;
  int events_per_ms = 2;  // per library thread
  // Posters 0 and 1 retry a batch through the other agent too, as a client
  // behind a load balancer without affinity would: outside the promise
  // (docs/reliability.md), a way to see what it costs.
  bool roaming_retries = false;
};

class Load {
 public:
  Load(LoadOptions options, Ledger* ledger, PathClock* clock);
  ~Load();

  void start();
  // Stops recording and posting new batches, then delivers what is left:
  // flushes the client libraries and retries unanswered batches until
  // acknowledged or until `drain_ms` pass (what is left then is "maybe").
  void finish(int drain_ms);

  // For the report.
  int64_t acknowledged_events() const;
  int64_t statsd_sent() const { return statsd_sent_.load(); }
  std::map<std::string, int64_t> statsd_sent_by_name() const;
  // Client library events recorded but neither sent nor dropped at the end,
  // and those it dropped (both make the run inconclusive for its names).
  std::string library_problems() const { return library_problems_; }
  int64_t batches_unanswered() const { return unanswered_.load(); }
  int64_t post_failures() const { return post_failures_.load(); }

 private:
  struct LibThread;
  void run_lib(int t);
  void run_poster(int p);
  void run_statsd();

  LoadOptions options_;
  Ledger* ledger_;
  PathClock* clock_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> drain_deadline_ms_{0};
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<LibThread>> libs_;
  std::atomic<int64_t> statsd_sent_{0};
  mutable std::mutex statsd_mu_;
  std::map<std::string, int64_t> statsd_by_name_;
  std::atomic<int64_t> unanswered_{0};
  std::atomic<int64_t> post_failures_{0};
  std::atomic<int64_t> acked_{0};
  std::string library_problems_;
};

}  // namespace taba::nemesis
