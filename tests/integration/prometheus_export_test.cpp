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
#include <cmath>
#include <functional>
#include <map>
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

constexpr int kUpTimeoutMs = 15'000;     // both targets scraped once and up
constexpr int kQueryTimeoutMs = 10'000;  // a series showing up in Prometheus
constexpr int kChecksBudgetMs = 5'500;   // the checks while posting, before the rate checks (Asker)
constexpr int kFinalBudgetMs = 5'000;    // the checks after it

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
      : base_url_(std::move(base_url)),
        name_(std::move(name)),
        per_post_(per_post),
        period_ms_(period_ms),
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

bool one_sample(const std::vector<PromSample>& v) {
  return v.size() == 1;
}

// Questions to Prometheus as checks, sharing one time budget: each waits
// (wait_for) at most kQueryTimeoutMs and not past the budget's end, after
// which it asks once. So a run where many families are missing reports every
// one of them and still ends in bounded time.
class Asker {
 public:
  Asker(const PrometheusServer& prom, int budget_ms) : prom_(prom) { renew(budget_ms); }
  void renew(int budget_ms) { deadline_ms_ = now_ms() + budget_ms; }

  // The accepted answer, or (the check failed, with the last answer, the
  // targets and the log) an empty one. timeout_ms >= 0 replaces the budget.
  std::vector<PromSample> answer(const std::string& promql,
                                 const std::function<bool(const std::vector<PromSample>&)>& accept,
                                 int timeout_ms = -1) const {
    if (timeout_ms < 0)
      timeout_ms = static_cast<int>(std::clamp<int64_t>(deadline_ms_ - now_ms(), 0, kQueryTimeoutMs));
    auto r = prom_.wait_for(promql, accept, timeout_ms);
    INFO(r.status().message());
    CHECK(r.ok());
    return r.ok() ? r.value() : std::vector<PromSample>{};
  }
  // The value of the one series `promql` selects, NaN if it never shows up.
  double value_of(const std::string& promql) const {
    auto v = answer(promql, one_sample);
    return v.empty() ? std::nan("") : v[0].value;
  }
  // The labels of the one series `promql` selects ({} if it never shows up).
  std::map<std::string, std::string> labels_of(const std::string& promql) const {
    auto v = answer(promql, one_sample);
    return v.empty() ? std::map<std::string, std::string>{} : v[0].labels;
  }

 private:
  const PrometheusServer& prom_;
  int64_t deadline_ms_ = 0;
};

// The metric names a job's scrapes gave Prometheus, less the series
// Prometheus adds to every job itself (up, scrape_*).
std::set<std::string> names_of_job(const Asker& ask, const std::string& job) {
  std::set<std::string> out;
  for (PromSample& s :
       ask.answer(fmt::format("count by (__name__) ({{job=\"{}\", __name__!~\"up|scrape_.+\"}})", job),
                  [](const std::vector<PromSample>& v) { return !v.empty(); })) {
    out.insert(s.labels["__name__"]);
  }
  return out;
}

// promtool check metrics passes and has nothing to say.
void check_lint_clean(const std::string& what, const Result<http::ClientResponse>& reply) {
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

TEST_CASE(
    "a real Prometheus scrapes /metrics and /metrics/tabs: labels, rate(), percentiles, gauges, promtool",
    "[prometheus]") {
  // Self-instrumentation (docs/api.md, section 13) every second rather than
  // every 10 s, so that the server's own tabs (taba_events_received, ...)
  // are there from the first scrapes on: /metrics/tabs exports them as it
  // exports any tab.
  TempDir config_dir("taba-prometheus-config");
  const std::string config = config_dir.path + "/taba.toml";
  REQUIRE_OK(write_text_file(config, "[server]\nself_tabs_interval_s = 1\n"));
  TabadProcess tabad;
  REQUIRE_OK(tabad.start({"--config", config, "--role", "fe,be"}));

  // Tabs with known values, before the scrapes begin: a PercentileGroup of
  // 100 latencies (1 ms ... 100 ms), and a Gauge that clients a and b set
  // to numbers and c to a string.
  double t = now_epoch_s();
  std::vector<std::string> latencies;
  for (int i = 1; i <= 100; ++i)
    latencies.push_back(event_line("PercentileGroup", t, fmt::format("{}", i / 1000.0)));
  auto seeded = tabad.post(
      "/post",
      v1_body(
          {{"a", {{"request_latency_seconds", latencies}, {"queue_depth", {event_line("Gauge", t, "44")}}}},
           {"b", {{"queue_depth", {event_line("Gauge", t, "7")}}}},
           {"c", {{"queue_depth", {event_line("Gauge", t, "\"full\"")}}}}}));
  {
    INFO(body_text(seeded));
    REQUIRE(status_of(seeded) == 200);
    REQUIRE(seeded.value().body.empty());
  }
  const int seeded_events = 103;
  auto self_tabs_there = [&] {
    std::string names = body_text(tabad.get("/names"));
    return names.find("taba_events_received\n") != std::string::npos &&
           names.find("taba_ingest_latency_ms\n") != std::string::npos;
  };
  REQUIRE(eventually(self_tabs_there, kQueryTimeoutMs));

  PrometheusServer prom;
  REQUIRE_OK(
      prom.start({{"tabad", "/metrics", {}, tabad.port()}, {"tabs", "/metrics/tabs", {}, tabad.port()}}));
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
  // CounterGroup with two tags. The checks below run meanwhile.
  SteadyPoster poster(tabad.url(), "req.count;env=prod;region=us", 5, 250, 40);
  poster.start();
  // The checks up to the rate checks share the posting's first 5.5 s, so
  // that a missing family cannot delay the rate checks past the posting.
  Asker ask(prom, static_cast<int>(std::max<int64_t>(0, poster.start_ms() + kChecksBudgetMs - now_ms())));

  // The Gauge: each client's value, the aggregates, the string as a label.
  auto client_a = ask.labels_of("queue_depth{client=\"a\"}");
  CHECK(client_a["job"] == "tabs");
  CHECK(ask.value_of("queue_depth{client=\"a\"}") == 44);
  CHECK(ask.value_of("queue_depth{client=\"b\"}") == 7);
  CHECK(ask.value_of("queue_depth_max") == 44);
  CHECK(ask.value_of("queue_depth_min") == 7);
  CHECK(ask.value_of("queue_depth_clients") == 3);
  CHECK(ask.value_of("queue_depth_value_info{client=\"c\",value=\"full\"}") == 1);

  // The PercentileGroup: the 1m window's p99 is what GET /tabs answers, and
  // each window has its seven quantiles as labels of one family.
  const double want_p99 = json_p99_1m(tabad, "request_latency_seconds");
  CHECK(want_p99 > 0.09);  // 1 % sketch accuracy around the 99th of 1..100 ms
  double p99 = ask.value_of("request_latency_seconds_quantiles{quantile=\"0.99\",window=\"1m\"}");
  CHECK(p99 == Approx(want_p99).epsilon(1e-9).margin(0));
  CHECK(ask.answer("request_latency_seconds_quantiles{window=\"1m\"}",
                   [](const std::vector<PromSample>& v) { return v.size() == 7; })
            .size() == 7);
  CHECK(ask.value_of("request_latency_seconds_events_in_window{window=\"1m\"}") == 100);
  CHECK(ask.value_of("request_latency_seconds_events_total") == 100);
  CHECK(ask.value_of("request_latency_seconds_total") == Approx(5.05).epsilon(1e-9));

  // The CounterGroup: tags are labels, and the dotted base name carries tab.
  auto series = ask.labels_of("req_count_total{env=\"prod\",region=\"us\"}");
  CHECK(series["tab"] == "req.count");
  CHECK(series["job"] == "tabs");
  CHECK(series.size() == 6);  // __name__ env instance job region tab

  // The two jobs carry no series of the same name.
  std::set<std::string> tabs_names = names_of_job(ask, "tabs");
  std::set<std::string> own_names = names_of_job(ask, "tabad");
  {
    std::string in_both;
    for (const std::string& name : tabs_names) {
      if (own_names.count(name) != 0) in_both += " " + name;
    }
    INFO("names in both jobs:" << in_both);
    CHECK(in_both.empty());
  }
  CHECK(tabs_names.count("req_count_total") == 1);
  CHECK(own_names.count("taba_events_received_total") == 1);

  // promtool's lint has nothing to say about either exposition.
  check_lint_clean("/metrics", tabad.get("/metrics"));
  check_lint_clean("/metrics/tabs", tabad.get("/metrics/tabs"));

  // OpenMetrics when asked for, as Prometheus's scraper asks; the text
  // format otherwise.
  auto om = tabad.get("/metrics/tabs", "application/openmetrics-text; version=1.0.0");
  REQUIRE(status_of(om) == 200);
  CHECK(om.value().header("content-type") == "application/openmetrics-text; version=1.0.0; charset=utf-8");
  const std::string& om_body = om.value().body;
  CHECK(om_body.size() > 6);
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
  auto tab_rate = ask.answer("rate(req_count_total{env=\"prod\",region=\"us\"}[5s])", steady, until_end());
  auto own_rate = ask.answer("rate(taba_events_received_total{job=\"tabad\"}[5s])", steady, until_end());
  poster.join();
  CHECK(poster.failed() == 0);
  CHECK(poster.accepted() == 40);
  if (!tab_rate.empty()) {
    CHECK(tab_rate[0].value > 0);
    CHECK(tab_rate[0].labels["env"] == "prod");
    CHECK(tab_rate[0].labels["region"] == "us");
    CHECK(tab_rate[0].labels["tab"] == "req.count");
  }

  // Everything accepted is in the counters Prometheus reads: 200 events of
  // the value 1.
  ask.renew(kFinalBudgetMs);
  auto equals = [](double want_value) {
    return
        [want_value](const std::vector<PromSample>& v) { return v.size() == 1 && v[0].value == want_value; };
  };
  CHECK(ask.answer("req_count_total{env=\"prod\",region=\"us\"}", equals(200)).size() == 1);
  CHECK(ask.answer("req_count_events_total{env=\"prod\",region=\"us\"}", equals(200)).size() == 1);
  CHECK(ask.answer("taba_events_received_total{job=\"tabad\"}", equals(200 + seeded_events)).size() == 1);
  // Nothing of the tabs above was left out of the export.
  CHECK(ask.answer("sum(taba_prometheus_series_left_out_total{job=\"tabad\"})", equals(0)).size() == 1);
}
