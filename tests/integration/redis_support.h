// What the Redis-mode integration tests share (redis_store_test.cpp,
// reshard_test.cpp): a RedisCluster with the tabad configuration file that
// points at it, waiting until a process is ready, and a thread that posts
// batches with Taba-Batch-Ids and retries each one with the same id until it
// is acknowledged, as the agent does, keeping what was acknowledged so that
// a test can compute the exact totals it expects.
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "redis_harness.h"

namespace taba::test {

// A RedisCluster and tabad configuration files for it, in a temporary
// directory removed at the end.
struct RedisDeployment {
  RedisCluster cluster;
  TempDir dir{"tabad-redis"};
  std::string config;  // every process's, unless given another

  // Starts the cluster and writes `config`: `preamble` (TOML sections
  // before [redis], e.g. "[server]\n...") then cluster.toml() with
  // extra_redis and placed_shards.
  void start(RedisCluster::Options options, const std::vector<std::string>& extra_redis,
             const std::string& preamble = {}, int placed_shards = 0) {
    REQUIRE_OK(cluster.start(options));
    preamble_ = preamble;
    placed_shards_ = placed_shards;
    config = write_config("taba.toml", extra_redis);
  }

  // Another configuration file like `config`, with other [redis] lines.
  std::string write_config(const std::string& file, const std::vector<std::string>& extra_redis) {
    std::string path = dir.path + "/" + file;
    std::ofstream(path) << preamble_ << cluster.toml(1024, extra_redis, placed_shards_);
    return path;
  }

  // Starts a tabad with `roles` and `config_path` (default `config`).
  void run(TabadProcess* p, const std::string& roles, const std::string& config_path = {}) {
    REQUIRE_OK(p->start({"--config", config_path.empty() ? config : config_path, "--role", roles}));
  }

  // The current master's port of shard index s (0 = shard1), per Sentinel.
  int master(int s) const {
    auto port = cluster.master_port(s);
    INFO(port.status().message());
    REQUIRE(port.ok());
    return port.value();
  }

 private:
  std::string preamble_;
  int placed_shards_ = 0;
};

// Waits until /readyz answers 200 (every shard reachable): posted to before
// that, an fe answers 503 "no reachable master".
inline void wait_ready(const TabadProcess& p, int timeout_ms = 15'000) {
  if (eventually([&] { return status_of(p.get("/readyz")) == 200; }, timeout_ms)) return;
  FAIL("tabad never became ready:\n" << p.log_text());
}

// One batch a Loader posts: its id (unique), its v1 body, and how many
// events it holds (and, where a test checks them one by one, how many per
// key of its choosing, e.g. "name\tclient").
struct LoadBatch {
  std::string id;
  std::string body;
  int64_t events = 0;
  std::map<std::string, int64_t> counts;
};

// Posts make(0), make(1), ... until stopped, each batch to the fes in turn;
// a batch that does not get 200 is retried with the same id through the next
// fe (pause 100 ms) until it does or retry_s pass. Counts the events
// acknowledged and keeps the acknowledged batches.
class Loader {
 public:
  Loader() = default;
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;
  ~Loader() { finish(); }

  std::atomic<int64_t> acked_events{0};
  std::atomic<int64_t> bodies{0};          // batches finished (acknowledged or given up)
  std::atomic<int64_t> non_200{0};         // replies other than 200, and failed requests
  std::atomic<int64_t> unacked_bodies{0};  // batches given up after retry_s
  std::atomic<int64_t> max_reply_ms{0};

  // pause_ms: the wait between two batches.
  void start(std::vector<const TabadProcess*> fes, std::function<LoadBatch(int)> make, int pause_ms = 0,
             int retry_s = 40) {
    thread_ = std::thread([this, fes, make, pause_ms, retry_s] {
      using Clock = std::chrono::steady_clock;
      for (int i = 0; !stop_.load(); ++i) {
        LoadBatch batch = make(i);
        auto deadline = Clock::now() + std::chrono::seconds(retry_s);
        bool acked = false;
        for (int attempt = 0; Clock::now() < deadline; ++attempt) {
          const TabadProcess* fe = fes[static_cast<size_t>(i + attempt) % fes.size()];
          auto t0 = Clock::now();
          auto r = fe->post("/post", batch.body, {{"Taba-Batch-Id", batch.id}});
          int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
          if (ms > max_reply_ms.load()) max_reply_ms = ms;
          if (r.ok() && r.value().status == 200) {
            acked = true;
            break;
          }
          ++non_200;
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (acked) {
          acked_events += batch.events;
          std::lock_guard<std::mutex> lock(mu_);
          acked_.push_back(std::move(batch));
        } else {
          ++unacked_bodies;
        }
        ++bodies;
        if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      }
    });
  }

  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // The batches acknowledged so far, in the order they were.
  std::vector<LoadBatch> acked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<LoadBatch> acked_;
};

}  // namespace taba::test
