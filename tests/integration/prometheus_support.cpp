// PrometheusServer: a prometheus child process for tests, and promtool.
#include "prometheus_support.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <simdjson.h>

#include "harness.h"
#include "http/url.h"

namespace taba::test {

namespace {

constexpr int kReadyTimeoutMs = 20'000;   // prometheus answering /-/ready after spawn
constexpr int kStopTimeoutMs = 5'000;     // SIGTERM taking effect before SIGKILL
constexpr int kRequestTimeoutMs = 5'000;  // one API request of the harness's own
constexpr int kPollStepMs = 250;
constexpr int kStartAttempts = 3;

// $env if set, else `name` found on PATH, else empty.
std::string find_program(const char* env, const char* name) {
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return v;
  return find_on_path(name);
}

std::string tail_of(const std::string& text, size_t max = 3000) {
  if (text.empty()) return "(log is empty)";
  return text.size() > max ? "..." + text.substr(text.size() - max) : text;
}

// prometheus.yml: one scrape job per entry of `jobs`. Strings are written as
// JSON string literals, which YAML reads as double-quoted scalars.
std::string config_text(const std::vector<ScrapeJob>& jobs) {
  std::string out =
      "global:\n"
      "  scrape_interval: 1s\n"
      "  scrape_timeout: 1s\n"
      "  evaluation_interval: 1s\n"
      "scrape_configs:\n";
  for (const ScrapeJob& job : jobs) {
    out += fmt::format("  - job_name: {}\n    metrics_path: {}\n", json_string(job.name),
                       json_string(job.metrics_path));
    if (!job.params.empty()) {
      // A parameter given twice is one key with two values.
      std::map<std::string, std::vector<std::string>> params;
      for (const auto& [key, value] : job.params) params[key].push_back(value);
      out += "    params:\n";
      for (const auto& [key, values] : params) {
        out += fmt::format("      {}: [", json_string(key));
        for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + json_string(values[i]);
        out += "]\n";
      }
    }
    out += fmt::format("    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n", job.port);
  }
  return out;
}

// A sample value as the API writes it: a string, "NaN", "+Inf", "-Inf".
bool parse_value(std::string_view text, double* out) {
  std::string s(text);
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

// The "data" of a successful API answer, or the error it reports.
Result<simdjson::dom::element> api_data(simdjson::dom::parser& parser, const Result<http::ClientResponse>& r,
                                        std::string_view what) {
  if (!r.ok()) return Status::Unavailable(fmt::format("{}: {}", what, r.status().message()));
  simdjson::dom::element doc;
  if (parser.parse(r.value().body).get(doc) != simdjson::SUCCESS) {
    return Status::Corruption(
        fmt::format("{}: HTTP {}, not JSON: {}", what, r.value().status, r.value().body.substr(0, 500)));
  }
  std::string_view status;
  if (doc["status"].get(status) != simdjson::SUCCESS || status != "success") {
    std::string_view type, error;
    if (doc["errorType"].get(type) != simdjson::SUCCESS) type = "?";
    if (doc["error"].get(error) != simdjson::SUCCESS) error = std::string_view(r.value().body).substr(0, 500);
    return Status::Invalid(
        fmt::format("{}: HTTP {}, status \"{}\": {}: {}", what, r.value().status, status, type, error));
  }
  simdjson::dom::element data;
  if (doc["data"].get(data) != simdjson::SUCCESS) {
    return Status::Corruption(fmt::format("{}: no \"data\" in {}", what, r.value().body.substr(0, 500)));
  }
  return data;
}

// One [time, "value"] pair.
bool parse_pair(simdjson::dom::element pair, double* out) {
  simdjson::dom::array a;
  std::string_view text;
  if (pair.get(a) != simdjson::SUCCESS || a.size() != 2 || a.at(1).get(text) != simdjson::SUCCESS)
    return false;
  return parse_value(text, out);
}

}  // namespace

std::string describe(const std::vector<PromSample>& samples) {
  if (samples.empty()) return "(no samples)";
  std::string out;
  for (const PromSample& s : samples) {
    out += "{";
    bool first = true;
    for (const auto& [k, v] : s.labels) {
      out += fmt::format("{}{}={}", first ? "" : ", ", k, json_string(v));
      first = false;
    }
    out += fmt::format("}} {}\n", s.value);
  }
  return out;
}

PrometheusServer::~PrometheusServer() {
  stop();
  const char* keep = std::getenv("TABA_TEST_KEEP_DIRS");
  if (!dir_.empty() && (keep == nullptr || *keep == '\0')) remove_tree(dir_);
}

std::string PrometheusServer::url() const {
  return fmt::format("http://127.0.0.1:{}", port_);
}

std::string PrometheusServer::log_text() const {
  return log_path_.empty() ? std::string() : read_file(log_path_);
}

bool PrometheusServer::reap(bool block) {
  if (!alive_) return true;
  int status = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r == pid_ || r < 0) alive_ = false;
  return !alive_;
}

void PrometheusServer::stop() {
  if (reap(false)) return;
  ::kill(pid_, SIGTERM);
  int64_t deadline = now_ms() + kStopTimeoutMs;
  while (now_ms() < deadline) {
    if (reap(false)) return;
    sleep_ms(50);
  }
  ::kill(pid_, SIGKILL);
  reap(true);
}

Status PrometheusServer::spawn() {
  std::string program = find_program("TABA_PROMETHEUS", "prometheus");
  if (program.empty()) {
    return Status::NotFound(
        "prometheus not found on PATH (Debian package prometheus; or set $TABA_PROMETHEUS)");
  }
  port_ = free_port();
  if (port_ == 0) return Status::Unavailable("no free loopback port for prometheus");
  std::vector<std::string> args = {
      program, "--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/data",
      fmt::format("--web.listen-address=127.0.0.1:{}", port_), "--log.level=info"};
  auto pid = spawn_logged(args, log_path_, /*truncate_log=*/false);
  if (!pid.ok()) return pid.status();
  pid_ = pid.value();
  alive_ = true;
  return Status::Ok();
}

Status PrometheusServer::start(const std::vector<ScrapeJob>& jobs) {
  if (!dir_.empty()) return Status::Invalid("PrometheusServer::start called twice");
  dir_ = make_temp_dir("taba-prometheus");
  log_path_ = dir_ + "/prometheus.log";
  if (Status s = write_text_file(dir_ + "/prometheus.yml", config_text(jobs)); !s.ok()) return s;
  std::string why;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    if (Status s = spawn(); !s.ok()) return s;
    int64_t deadline = now_ms() + kReadyTimeoutMs;
    while (now_ms() < deadline && !reap(false)) {
      if (status_of(get(url(), "/-/ready", "", 1000)) == 200) return Status::Ok();
      sleep_ms(100);
    }
    if (alive_) {
      why = fmt::format("prometheus on port {} not ready after {} ms", port_, kReadyTimeoutMs);
      stop();
      break;
    }
    why = fmt::format("prometheus on port {} exited before it was ready", port_);
    // Someone took the port between free_port() and the bind: try another.
    if (log_text().find("address already in use") == std::string::npos) break;
  }
  return Status::Unavailable(fmt::format("{}; log:\n{}", why, tail_of(log_text())));
}

Result<std::vector<PromSample>> PrometheusServer::query(std::string_view promql) const {
  std::string what = fmt::format("query {}", promql);
  auto r = get(url(), "/api/v1/query?query=" + http::percent_encode(promql), "application/json",
               kRequestTimeoutMs);
  simdjson::dom::parser parser;
  auto data = api_data(parser, r, what);
  if (!data.ok()) return data.status();
  std::string_view type;
  simdjson::dom::element result;
  if (data.value()["resultType"].get(type) != simdjson::SUCCESS ||
      data.value()["result"].get(result) != simdjson::SUCCESS) {
    return Status::Corruption(
        fmt::format("{}: no resultType/result in {}", what, r.value().body.substr(0, 500)));
  }
  std::vector<PromSample> out;
  if (type == "scalar") {
    PromSample s;
    if (!parse_pair(result, &s.value)) return Status::Corruption(fmt::format("{}: bad scalar", what));
    out.push_back(std::move(s));
    return out;
  }
  if (type != "vector") return Status::Invalid(fmt::format("{}: a {} answer, not a vector", what, type));
  simdjson::dom::array series;
  if (result.get(series) != simdjson::SUCCESS)
    return Status::Corruption(fmt::format("{}: result not an array", what));
  for (simdjson::dom::element one : series) {
    PromSample s;
    simdjson::dom::object metric;
    simdjson::dom::element value;
    if (one["metric"].get(metric) != simdjson::SUCCESS || one["value"].get(value) != simdjson::SUCCESS ||
        !parse_pair(value, &s.value)) {
      return Status::Corruption(fmt::format("{}: bad sample {}", what, simdjson::minify(one)));
    }
    for (auto field : metric) {
      std::string_view v;
      if (field.value.get(v) != simdjson::SUCCESS)
        return Status::Corruption(fmt::format("{}: bad label", what));
      s.labels.emplace(std::string(field.key), std::string(v));
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<PromSample>> PrometheusServer::wait_for(
    std::string_view promql, const std::function<bool(const std::vector<PromSample>&)>& accept,
    int timeout_ms) const {
  int64_t deadline = now_ms() + timeout_ms;
  std::string last;
  for (;;) {
    auto r = query(promql);
    if (r.ok() && accept(r.value())) return r;
    last = r.ok() ? describe(r.value()) : r.status().message();
    if (now_ms() >= deadline) break;
    sleep_ms(kPollStepMs);
  }
  return Status::Unavailable(
      fmt::format("query {}: no accepted answer within {} ms; last answer:\n{}\ntargets:\n{}\n"
                  "prometheus log:\n{}",
                  promql, timeout_ms, last, describe_targets(), tail_of(log_text(), 1500)));
}

Result<std::vector<PromTarget>> PrometheusServer::targets() const {
  auto r = get(url(), "/api/v1/targets?state=active", "application/json", kRequestTimeoutMs);
  simdjson::dom::parser parser;
  auto data = api_data(parser, r, "targets");
  if (!data.ok()) return data.status();
  simdjson::dom::array active;
  if (data.value()["activeTargets"].get(active) != simdjson::SUCCESS) {
    return Status::Corruption(fmt::format("targets: no activeTargets in {}", r.value().body.substr(0, 500)));
  }
  std::vector<PromTarget> out;
  for (simdjson::dom::element t : active) {
    PromTarget target;
    std::string_view job, scrape_url, health, last_error;
    if (t["labels"]["job"].get(job) != simdjson::SUCCESS ||
        t["scrapeUrl"].get(scrape_url) != simdjson::SUCCESS || t["health"].get(health) != simdjson::SUCCESS ||
        t["lastError"].get(last_error) != simdjson::SUCCESS) {
      return Status::Corruption(fmt::format("targets: bad target {}", simdjson::minify(t)));
    }
    out.push_back({std::string(job), std::string(scrape_url), std::string(health), std::string(last_error)});
  }
  return out;
}

std::string PrometheusServer::describe_targets() const {
  auto r = targets();
  if (!r.ok()) return r.status().message();
  if (r.value().empty()) return "(no active targets)";
  std::string out;
  for (const PromTarget& t : r.value()) {
    out += fmt::format("job {} {}: {} (lastError {})\n", t.job, t.scrape_url, t.health,
                       json_string(t.last_error));
  }
  return out;
}

Status PrometheusServer::wait_targets_up(int timeout_ms) const {
  auto all_up = [&] {
    auto r = targets();
    if (!r.ok() || r.value().empty()) return false;
    for (const PromTarget& t : r.value()) {
      if (t.health != "up") return false;
    }
    return true;
  };
  if (eventually(all_up, timeout_ms, kPollStepMs)) return Status::Ok();
  return Status::Unavailable(
      fmt::format("not every target up within {} ms:\n{}", timeout_ms, describe_targets()));
}

Result<PromtoolResult> promtool_check_metrics(std::string_view exposition) {
  std::string program = find_program("TABA_PROMTOOL", "promtool");
  if (program.empty()) {
    return Status::NotFound("promtool not found on PATH (Debian package prometheus; or set $TABA_PROMTOOL)");
  }
  auto r = run_process({program, "check", "metrics"}, exposition, 30'000);
  if (!r.ok()) return r.status();
  return PromtoolResult{r.value().exit_code, r.value().out + r.value().err};
}

}  // namespace taba::test
