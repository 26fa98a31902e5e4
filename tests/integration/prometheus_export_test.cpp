// The Prometheus export read by a real Prometheus (docs/prometheus.md): a
// tabad fe+be on the embedded store, scraped every second by a `prometheus`
// process (prometheus_support.h) as the job `tabad` (GET /metrics), while a
// client posts at a known steady rate; the test asks Prometheus PromQL
// questions and checks its answers, and lints the exposition with promtool.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "harness.h"
#include "prometheus_support.h"

using namespace taba;
using namespace taba::test;

namespace {

constexpr int kUpTimeoutMs = 15'000;    // both targets scraped once and up
constexpr int kQueryTimeoutMs = 10'000;  // a series showing up in Prometheus

// Wall-clock epoch seconds with the fraction: the timestamps of the events.
double now_epoch_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Posts `per_post` events of `name` (each the CounterGroup value 1, with the
// real time as timestamp) every `period_ms` for `posts` posts, on its own
// thread. The posts follow a fixed schedule (post k at start + k * period),
// so a late one is caught up and the average rate stays per_post / period.
// Only counters are touched on the thread; the test checks them after join().
class SteadyPoster {
 public:
  SteadyPoster(std::string base_url, std::string name, int per_post, int period_ms, int posts)
      : base_url_(std::move(base_url)), name_(std::move(name)), per_post_(per_post), period_ms_(period_ms),
        posts_(posts) {}
  ~SteadyPoster() { join(); }

  void start() {
    start_ms_ = now_ms();
    thread_ = std::thread([this] { run(); });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // Steady-clock ms when the last post is due.
  int64_t end_ms() const { return start_ms_ + int64_t{period_ms_} * (posts_ - 1); }
  int accepted() const { return accepted_.load(); }
  int failed() const { return failed_.load(); }
  double events_per_second() const { return per_post_ * 1000.0 / period_ms_; }

 private:
  void run() {
    for (int k = 0; k < posts_; ++k) {
      int64_t due = start_ms_ + int64_t{period_ms_} * k;
      if (int64_t wait = due - now_ms(); wait > 0) sleep_ms(static_cast<int>(wait));
      std::vector<std::string> events;
      double t = now_epoch_s();
      for (int i = 0; i < per_post_; ++i) events.push_back(event_line("CounterGroup", t, "1"));
      auto r = post(base_url_, "/post", v1_body({{"poster", {{name_, events}}}}));
      (status_of(r) == 200 && r.value().body.empty() ? accepted_ : failed_) += 1;
    }
  }

  std::string base_url_, name_;
  int per_post_, period_ms_, posts_;
  int64_t start_ms_ = 0;
  std::thread thread_;
  std::atomic<int> accepted_{0}, failed_{0};
};

// A wait_for() that must succeed; its answer.
std::vector<PromSample> require_answer(const PrometheusServer& prom, const std::string& promql,
                                       const std::function<bool(const std::vector<PromSample>&)>& accept,
                                       int timeout_ms = kQueryTimeoutMs) {
  auto r = prom.wait_for(promql, accept, timeout_ms);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return r.value();
}

bool one_sample(const std::vector<PromSample>& v) { return v.size() == 1; }

}  // namespace

TEST_CASE("a real Prometheus scrapes /metrics: targets up, rate() follows a steady post rate, promtool lints clean",
          "[prometheus]") {
  TabadProcess tabad;
  REQUIRE_OK(tabad.start({"--role", "fe,be"}));

  PrometheusServer prom;
  REQUIRE_OK(prom.start({{"tabad", "/metrics", {}, tabad.port()}}));
  REQUIRE_OK(prom.wait_targets_up(kUpTimeoutMs));
  auto targets = prom.targets();
  REQUIRE(targets.ok());
  REQUIRE(targets.value().size() == 1);
  CHECK(targets.value()[0].scrape_url == tabad.url() + "/metrics");
  CHECK(targets.value()[0].last_error.empty());

  // The process's own metrics reach Prometheus under the job's labels.
  auto build = require_answer(prom, "taba_build_info", one_sample);
  CHECK(build[0].labels["job"] == "tabad");
  CHECK(build[0].labels["instance"] == fmt::format("127.0.0.1:{}", tabad.port()));
  CHECK(build[0].value == 1);

  // 20 events per second (5 every 250 ms) for 10 s. Once Prometheus holds
  // more than 5 s of scrapes taken while posting, rate() over 5 s must read
  // 20 within the window's precision (a scrape every second: one post more
  // or less in the window is 6 %).
  SteadyPoster poster(tabad.url(), "req.count;env=prod;region=us", 5, 250, 40);
  poster.start();
  const std::string rate_query = "rate(taba_events_received_total{job=\"tabad\"}[5s])";
  const double want = poster.events_per_second();
  auto steady = [&](const std::vector<PromSample>& v) {
    return v.size() == 1 && v[0].value > want * 0.75 && v[0].value < want * 1.25;
  };
  sleep_ms(6'000);
  // Until the posting ends: after it the rate falls away from 20.
  auto rate = prom.wait_for(rate_query, steady, static_cast<int>(std::max<int64_t>(0, poster.end_ms() - now_ms())));
  poster.join();
  CHECK(poster.failed() == 0);
  CHECK(poster.accepted() == 40);
  INFO(rate.status().message());
  REQUIRE(rate.ok());
  CHECK(rate.value()[0].value > 0);

  // Everything accepted is in the counter Prometheus reads.
  require_answer(prom, "taba_events_received_total{job=\"tabad\"}",
                 [](const std::vector<PromSample>& v) { return v.size() == 1 && v[0].value == 200; });

  // promtool's lint has nothing to say about the exposition.
  auto metrics = tabad.get("/metrics");
  REQUIRE(status_of(metrics) == 200);
  auto lint = promtool_check_metrics(metrics.value().body);
  INFO(lint.status().message());
  REQUIRE(lint.ok());
  INFO(lint.value().output);
  CHECK(lint.value().exit_code == 0);
  CHECK(lint.value().output.empty());
}
