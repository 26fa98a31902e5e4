// A real Prometheus server for integration tests: a `prometheus` child
// process listening on loopback only, scraping the tabad targets a test
// names, with its configuration, TSDB and log in one temporary directory.
// Tests ask it PromQL queries over its HTTP API and wait for answers, so that
// what they check is what a Prometheus user would see, not our own reading of
// the exposition format.
//
// The configuration scrapes and evaluates every second (scrape_timeout 1 s)
// and has no remote write, remote read, alerting or rules. Needs `prometheus`
// (and, for promtool_check_metrics, `promtool`) on PATH; $TABA_PROMETHEUS and
// $TABA_PROMTOOL override the programs (Debian package `prometheus`).
//
// Not thread-safe; use from the test's main thread. The child gets
// PR_SET_PDEATHSIG(SIGKILL), so it dies with the thread that started it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace taba::test {

// One scrape job: GET http://127.0.0.1:<port><metrics_path>?<params>.
struct ScrapeJob {
  std::string name;                                         // job_name, the `job` label
  std::string metrics_path = "/metrics";                    // metrics_path
  std::vector<std::pair<std::string, std::string>> params;  // URL parameters, in order
  int port = 0;                                             // target 127.0.0.1:<port>
};

// One sample of an instant query's answer.
struct PromSample {
  std::map<std::string, std::string> labels;  // __name__ included when the answer keeps it
  double value = 0;                           // NaN and ±Inf as Prometheus writes them
};

// One entry of /api/v1/targets' activeTargets.
struct PromTarget {
  std::string job;
  std::string scrape_url;
  std::string health;  // "up", "down" or "unknown" (not scraped yet)
  std::string last_error;
};

// Samples as one line each, `{k="v", ...} value`, for failure messages.
std::string describe(const std::vector<PromSample>& samples);

class PrometheusServer {
 public:
  PrometheusServer() = default;
  // stop(), then removes the directory (unless $TABA_TEST_KEEP_DIRS is set).
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  // Writes prometheus.yml for `jobs`, starts prometheus on 127.0.0.1:<free
  // port> with its TSDB in the temporary directory, and waits (20 s at most)
  // until GET /-/ready answers 200. A port taken meanwhile is retried with
  // another. The error carries the end of the log. Call once per object.
  Status start(const std::vector<ScrapeJob>& jobs);

  // SIGTERM, then SIGKILL if it has not exited after 5 s; reaps it. The log
  // stays (log_text()). No-op if not running.
  void stop();

  int port() const { return port_; }
  // "http://127.0.0.1:<port>"
  std::string url() const;
  const std::string& dir() const { return dir_; }
  // Everything prometheus wrote to stdout and stderr so far.
  std::string log_text() const;

  // GET /api/v1/query?query=<promql> (the instant query at now). A vector
  // answer gives one sample per series; a scalar answer one sample without
  // labels. Errors: the request failed, the status was not "success" (the
  // error names Prometheus's errorType and error), or the JSON did not parse.
  Result<std::vector<PromSample>> query(std::string_view promql) const;

  // Polls query(promql) every 250 ms until `accept` holds for an answer, and
  // returns that answer. After timeout_ms the error carries the last answer
  // (or the last query error), every target's health and lastError, and the
  // end of the log, so that a failing test says why.
  Result<std::vector<PromSample>> wait_for(std::string_view promql,
                                           const std::function<bool(const std::vector<PromSample>&)>& accept,
                                           int timeout_ms) const;

  // GET /api/v1/targets: the active targets.
  Result<std::vector<PromTarget>> targets() const;

  // Waits (polling every 250 ms) until every active target has been scraped
  // and is "up". The error lists every target's health and lastError.
  Status wait_targets_up(int timeout_ms) const;

  // Every target as "job <job> <url>: <health> (lastError ...)", one per
  // line, or the reason /api/v1/targets could not be read.
  std::string describe_targets() const;

 private:
  Status spawn();
  bool reap(bool block);  // true once the process has exited

  std::string dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  bool alive_ = false;
  int port_ = 0;
};

// Runs `promtool check metrics` on `exposition` (fed on its standard
// input): its exit code and everything it printed (lint problems go to
// stderr). Error if promtool cannot be found or run.
struct PromtoolResult {
  int exit_code = -1;
  std::string output;  // stdout then stderr
};
Result<PromtoolResult> promtool_check_metrics(std::string_view exposition);

}  // namespace taba::test
