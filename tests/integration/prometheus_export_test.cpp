// The Prometheus export read by a real Prometheus (docs/prometheus.md): a
// tabad fe+be on the embedded store, scraped every second by a `prometheus`
// process (prometheus_support.h) as two jobs, `tabad` (GET /metrics, the
// process's own metrics) and `tabs` (GET /metrics/tabs, the tabs), while a
// client posts at a known steady rate. The test asks Prometheus PromQL
// questions and checks its answers against what was posted and against
// GET /tabs, and lints both expositions with promtool.
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
#include <simdjson.h>

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
  int64_t start_ms() const { return start_ms_; }
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

// The metric names a job's scrapes gave Prometheus, less the series
// Prometheus adds to every job itself (up, scrape_*).
std::set<std::string> names_of_job(const PrometheusServer& prom, const std::string& job) {
  auto names = require_answer(
      prom, fmt::format("count by (__name__) ({{job=\"{}\", __name__!~\"up|scrape_.+\"}})", job),
      [](const std::vector<PromSample>& v) { return !v.empty(); });
  std::set<std::string> out;
  for (PromSample& s : names) out.insert(s.labels["__name__"]);
  return out;
}

// promtool check metrics passes and has nothing to say.
void require_lint_clean(const std::string& what, const Result<http::ClientResponse>& reply) {
  INFO(what << ": " << body_text(reply));
  REQUIRE(status_of(reply) == 200);
  auto lint = promtool_check_metrics(reply.value().body);
  INFO(lint.status().message());
  REQUIRE(lint.ok());
  INFO("promtool on " << what << " said:\n" << lint.value().output);
  CHECK(lint.value().exit_code == 0);
  CHECK(lint.value().output.empty());
}

// The p99 of a PercentileGroup tab's 1m window as GET /tabs?name=<name>
// answers it in JSON (full precision): the 6th of "pct" of "1m".
double json_p99_1m(const TabadProcess& tabad, const std::string& name) {
  auto r = tabad.get("/tabs?name=" + name, "application/json");
  INFO(body_text(r));
  REQUIRE(status_of(r) == 200);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(r.value().body).get(doc) == simdjson::SUCCESS);
  double p99 = 0;
  REQUIRE(doc.at_pointer("/" + name + "/1m/pct/5").get(p99) == simdjson::SUCCESS);
  return p99;
}

}  // namespace

TEST_CASE("a real Prometheus scrapes /metrics and /metrics/tabs: labels, rate(), percentiles, gauges, promtool",
          "[prometheus]") {
  TabadProcess tabad;
  REQUIRE_OK(tabad.start({"--role", "fe,be"}));

  // Tabs with known values, before the scrapes begin: a PercentileGroup of
  // 100 latencies (1 ms ... 100 ms), and a Gauge two clients set.
  double t = now_epoch_s();
  std::vector<std::string> latencies;
  for (int i = 1; i <= 100; ++i) latencies.push_back(event_line("PercentileGroup", t, fmt::format("{}", i / 1000.0)));
  auto seeded = tabad.post("/post", v1_body({{"a", {{"request_latency_seconds", latencies},
                                                    {"queue_depth", {event_line("Gauge", t, "44")}}}},
                                             {"b", {{"queue_depth", {event_line("Gauge", t, "7")}}}}}));
  {
    INFO(body_text(seeded));
    REQUIRE(status_of(seeded) == 200);
    REQUIRE(seeded.value().body.empty());
  }

  PrometheusServer prom;
  REQUIRE_OK(prom.start({{"tabad", "/metrics", {}, tabad.port()}, {"tabs", "/metrics/tabs", {}, tabad.port()}}));
  REQUIRE_OK(prom.wait_targets_up(kUpTimeoutMs));
  auto targets = prom.targets();
  REQUIRE(targets.ok());
  REQUIRE(targets.value().size() == 2);
  for (const PromTarget& target : targets.value()) {
    INFO(target.job << " " << target.scrape_url);
    CHECK(target.scrape_url == tabad.url() + (target.job == "tabs" ? "/metrics/tabs" : "/metrics"));
    CHECK(target.last_error.empty());
  }

  // 20 events of the value 1 per second (5 every 250 ms) for 10 s to a
  // CounterGroup with two tags.
  SteadyPoster poster(tabad.url(), "req.count;env=prod;region=us", 5, 250, 40);
  poster.start();

  // The Gauge: each client's value, the aggregates.
  auto client_a = require_answer(prom, "queue_depth{client=\"a\"}", one_sample);
  CHECK(client_a[0].value == 44);
  CHECK(client_a[0].labels["job"] == "tabs");
  CHECK(require_answer(prom, "queue_depth{client=\"b\"}", one_sample)[0].value == 7);
  CHECK(require_answer(prom, "queue_depth_max", one_sample)[0].value == 44);
  CHECK(require_answer(prom, "queue_depth_min", one_sample)[0].value == 7);
  CHECK(require_answer(prom, "queue_depth_clients", one_sample)[0].value == 2);

  // The PercentileGroup: the 1m window's p99 is what GET /tabs answers.
  auto p99 = require_answer(prom, "request_latency_seconds{quantile=\"0.99\",window=\"1m\"}", one_sample);
  const double want_p99 = json_p99_1m(tabad, "request_latency_seconds");
  CHECK(want_p99 > 0.09);  // 1 % sketch accuracy around the 99th of 1..100 ms
  CHECK(p99[0].value == Approx(want_p99).epsilon(1e-9).margin(0));
  CHECK(require_answer(prom, "request_latency_seconds_events_in_window{window=\"1m\"}", one_sample)[0].value == 100);
  CHECK(require_answer(prom, "request_latency_seconds_events_total", one_sample)[0].value == 100);
  // Seven quantiles per window, as labels of one family.
  CHECK(require_answer(prom, "request_latency_seconds{window=\"1m\"}",
                       [](const std::vector<PromSample>& v) { return v.size() == 7; })
            .size() == 7);

  // The CounterGroup: tags are labels, and the dotted base name carries tab.
  auto series = require_answer(prom, "req_count_total{env=\"prod\",region=\"us\"}", one_sample);
  CHECK(series[0].labels["tab"] == "req.count");
  CHECK(series[0].labels["job"] == "tabs");
  CHECK(series[0].labels.size() == 6);  // __name__ env instance job region tab

  // The two jobs carry no series of the same name (each job only gets
  // going once both targets are up, and the tabs above were all seen).
  std::set<std::string> tabs_names = names_of_job(prom, "tabs");
  std::set<std::string> own_names = names_of_job(prom, "tabad");
  for (const std::string& name : tabs_names) {
    INFO(name);
    CHECK(own_names.count(name) == 0);
    CHECK(name.rfind("taba_", 0) != 0);
  }
  CHECK(tabs_names.count("req_count_total") == 1);
  CHECK(own_names.count("taba_events_received_total") == 1);

  // promtool's lint has nothing to say about either exposition.
  require_lint_clean("/metrics", tabad.get("/metrics"));
  require_lint_clean("/metrics/tabs", tabad.get("/metrics/tabs"));

  // OpenMetrics when asked for, as Prometheus's scraper asks.
  auto om = tabad.get("/metrics/tabs", "application/openmetrics-text; version=1.0.0");
  REQUIRE(status_of(om) == 200);
  CHECK(om.value().header("content-type") == "application/openmetrics-text; version=1.0.0; charset=utf-8");
  const std::string& om_body = om.value().body;
  CHECK(om_body.size() >= 6);
  CHECK(om_body.substr(om_body.size() - std::min<size_t>(om_body.size(), 6)) == "# EOF\n");
  auto text = tabad.get("/metrics/tabs", "");
  REQUIRE(status_of(text) == 200);
  CHECK(text.value().header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(text.value().body.find("# EOF") == std::string::npos);

  // rate() over the counters: once Prometheus holds more than 5 s of scrapes
  // taken while posting, rate() over 5 s reads 20 within the window's
  // precision (a scrape a second: one post more or less in the window is
  // 6 %). Until the posting ends: after it the rate falls away from 20.
  const double want = poster.events_per_second();
  auto steady = [&](const std::vector<PromSample>& v) {
    return v.size() == 1 && v[0].value > want * 0.75 && v[0].value < want * 1.25;
  };
  if (int64_t wait = poster.start_ms() + 6'000 - now_ms(); wait > 0) sleep_ms(static_cast<int>(wait));
  auto until_end = [&] { return static_cast<int>(std::max<int64_t>(0, poster.end_ms() - now_ms())); };
  auto tab_rate = prom.wait_for("rate(req_count_total{env=\"prod\",region=\"us\"}[5s])", steady, until_end());
  auto own_rate = prom.wait_for("rate(taba_events_received_total{job=\"tabad\"}[5s])", steady, until_end());
  poster.join();
  CHECK(poster.failed() == 0);
  CHECK(poster.accepted() == 40);
  {
    INFO(tab_rate.status().message());
    REQUIRE(tab_rate.ok());
    CHECK(tab_rate.value()[0].value > 0);
    CHECK(tab_rate.value()[0].labels["env"] == "prod");
    CHECK(tab_rate.value()[0].labels["region"] == "us");
    CHECK(tab_rate.value()[0].labels["tab"] == "req.count");
  }
  {
    INFO(own_rate.status().message());
    CHECK(own_rate.ok());
  }

  // Everything accepted is in the counters Prometheus reads: 200 events of
  // the value 1.
  auto is_200 = [](const std::vector<PromSample>& v) { return v.size() == 1 && v[0].value == 200; };
  require_answer(prom, "req_count_total{env=\"prod\",region=\"us\"}", is_200);
  require_answer(prom, "req_count_events_total{env=\"prod\",region=\"us\"}", is_200);
  require_answer(prom, "taba_events_received_total{job=\"tabad\"}",
                 [](const std::vector<PromSample>& v) { return v.size() == 1 && v[0].value == 200 + 102; });
}
