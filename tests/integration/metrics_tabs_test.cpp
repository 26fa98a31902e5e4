// GET /metrics/tabs through a real tabad (embedded store): an export of more
// names than one slice holds misses none and repeats none, the client filter
// reduces as /tabs does, the two formats, the route's errors, the limits
// counted on /metrics, and posts applied while an export runs.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <ctime>
#include <set>
#include <string>

#include "harness.h"

using namespace taba::test;

namespace {

// The lines of an exposition that start with `prefix`.
std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (line.starts_with(prefix)) out.push_back(line);
    at = end + 1;
  }
  return out;
}

// n TotalsCounter names job.0 .. job.(n-1), each with `value` from c1 and
// 2 * value from c2.
std::string jobs_body(int n, int value) {
  const double now = static_cast<double>(std::time(nullptr));
  std::vector<ClientBlock> clients;
  for (int c = 1; c <= 2; ++c) {
    ClientBlock cb{fmt::format("c{}", c), {}};
    for (int i = 0; i < n; ++i) {
      cb.names.push_back({fmt::format("job_{:04}", i), {event_line("TotalsCounter", now, std::to_string(value * c))}});
    }
    clients.push_back(std::move(cb));
  }
  return v1_body(clients);
}

}  // namespace

TEST_CASE("metrics/tabs: an export of many slices has every tab once, and the client filter reduces",
          "[e2e][prometheus]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  const int kNames = 700;  // three slices of 256
  REQUIRE(status_of(p.post("/post", jobs_body(kNames, 5))) == 200);

  const std::string all = body_text(p.get("/metrics/tabs"));
  const auto totals = lines_with(all, "job_");
  std::set<std::string> distinct(totals.begin(), totals.end());
  CHECK(distinct.size() == totals.size());
  CHECK(lines_with(all, "# TYPE job_").size() == 2 * kNames);
  CHECK(metric(all, "job_0000_total") == 15);
  CHECK(metric(all, "job_0699_total") == 15);
  CHECK(metric(all, "job_0350_events_total") == 2);
  size_t counters = 0;
  for (const std::string& l : totals) counters += l.find("_events_total 2") != std::string::npos;
  CHECK(counters == kNames);

  const std::string c2 = body_text(p.get("/metrics/tabs?client=c2&name=job_0001,job_0002"));
  CHECK(metric(c2, "job_0001_total") == 10);
  CHECK(metric(c2, "job_0002_events_total") == 1);
  CHECK(metric(c2, "job_0003_total") == -1);

  // Counters grow: posts applied between two exports show in the second.
  REQUIRE(status_of(p.post("/post", jobs_body(kNames, 1))) == 200);
  const std::string after = body_text(p.get("/metrics/tabs?name=job_0000"));
  CHECK(metric(after, "job_0000_total") == 18);
  CHECK(metric(after, "job_0000_events_total") == 4);

  const std::string metrics = body_text(p.get("/metrics"));
  CHECK(metric(metrics, "taba_prometheus_exports_total{outcome=\"ok\"}") == 3);
  CHECK(metric(metrics, "taba_prometheus_series_left_out_total{reason=\"invalid\"}") == 0);
  CHECK(metrics.find("job_") == std::string::npos);  // no tab on /metrics
}

TEST_CASE("metrics/tabs: formats, errors and the per-tab limit", "[e2e][prometheus]") {
  TempDir dir("metrics-tabs");
  REQUIRE(write_text_file(dir.path + "/taba.toml", "[prometheus]\nmax_series_per_tab = 3\nprefix = \"app_\"\n").ok());
  TabadProcess p;
  REQUIRE(p.start({"--config", dir.path + "/taba.toml"}).ok());
  const double now = static_cast<double>(std::time(nullptr));
  std::vector<ClientBlock> clients;
  for (int c = 0; c < 4; ++c) {
    clients.push_back({fmt::format("w{}", c), {{"queue_depth", {event_line("Gauge", now, std::to_string(10 + c))}}}});
  }
  REQUIRE(status_of(p.post("/post", v1_body(clients))) == 200);

  auto text = p.get("/metrics/tabs");
  REQUIRE(status_of(text) == 200);
  CHECK(text.value().header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  // _clients, _min, _max first; the clients and the rest are past the limit.
  CHECK(metric(text.value().body, "app_queue_depth_clients") == 4);
  CHECK(metric(text.value().body, "app_queue_depth_max") == 13);
  CHECK(metric(text.value().body, "app_queue_depth{client=\"w0\"}") == -1);

  auto om = p.get("/metrics/tabs", "application/openmetrics-text; version=1.0.0");
  REQUIRE(status_of(om) == 200);
  CHECK(om.value().header("content-type") == "application/openmetrics-text; version=1.0.0; charset=utf-8");
  CHECK(om.value().body.ends_with("# EOF\n"));
  CHECK(om.value().body.find("# TYPE app_queue_depth_clients gauge\n") != std::string::npos);

  const std::string metrics = body_text(p.get("/metrics"));
  CHECK(metric(metrics, "taba_prometheus_series_left_out_total{reason=\"tab_limit\"}") == 2 * 5);

  CHECK(status_of(p.post("/metrics/tabs", "")) == 405);
  CHECK(status_of(p.get("/metrics/tabs?bogus=1")) == 400);
  CHECK(status_of(p.get("/metrics/tabs?name=(&re=1")) == 400);
  CHECK(body_text(p.get("/metrics?tabs=1")).find("/metrics/tabs") != std::string::npos);
}
