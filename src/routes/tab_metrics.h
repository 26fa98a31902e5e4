// GET /metrics/tabs[?name=…&client=…&re=1] of a server (fe, be, ctrl): the
// tabs as Prometheus families (docs/prometheus.md), in the text format 0.0.4
// or OpenMetrics as the Accept header asks. The process's own metrics stay
// on /metrics (routes/server_metrics.h), which also carries this route's
// counters (write_metrics), so no series is on both.
//
// A reply of 10,000 tabs takes hundreds of milliseconds to render, and
// the embedded store is read and written on the loop thread, so the export
// works in slices of at most kNamesPerSlice names and kSliceBudget of
// rendering: each slice is fetched from the store, rendered and added to
// the reply, and the next one waits for a later loop iteration, so posts
// arriving meanwhile are applied between slices instead of after the whole
// export. The reply is then assembled kWriteBytesPerStep at a time, each
// family's text freed as it is copied. Names created or deleted during an
// export are simply found or not by their slice; each series is a
// consistent reading of its own tab. The server's own tabs are left out
// (set_left_out_names): /metrics has their figures.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/config.h"
#include "core/defer_queue.h"
#include "core/latency.h"
#include "http/server.h"
#include "routes/metrics.h"
#include "store/store.h"

namespace taba::routes {

class TabMetrics {
 public:
  static constexpr size_t kNamesPerSlice = 256;
  static constexpr std::chrono::microseconds kSliceBudget{2000};  // a slice stops rendering after this long
  static constexpr size_t kWriteBytesPerStep = 256 << 10;  // the reply is assembled this much at a time
  static constexpr int kMaxExports = 4;  // exports in progress at once; more get 503

  TabMetrics(uv_loop_t* loop, store::Store* store, Config::Prometheus options);
  ~TabMetrics();
  TabMetrics(const TabMetrics&) = delete;
  TabMetrics& operator=(const TabMetrics&) = delete;

  // Names never exported: the server's own tabs, whose figures /metrics
  // already carries (two routes never hold one series).
  void set_left_out_names(std::vector<std::string> names) { left_out_names_ = std::move(names); }

  // SIGHUP: the next export uses these.
  void set_options(const Config::Prometheus& options) { options_ = options; }

  // Answers a request whose body is complete.
  void handle(const http::Request& request, std::function<void(http::Response)> done);

  // The taba_prometheus_* families of /metrics.
  void write_metrics(MetricsWriter* w) const;

 private:
  struct Export;
  void next_slice(const std::shared_ptr<Export>& ex);
  void finish(const std::shared_ptr<Export>& ex);
  void fail(const std::shared_ptr<Export>& ex, const Status& s);

  store::Store* store_;
  Config::Prometheus options_;
  std::vector<std::string> left_out_names_;
  DeferQueue defer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  int in_progress_ = 0;
  // What /metrics shows.
  uint64_t exports_ = 0;
  uint64_t exports_refused_ = 0;
  uint64_t exports_failed_ = 0;
  uint64_t samples_ = 0;
  uint64_t last_samples_ = 0;
  std::array<uint64_t, 4> left_out_{};
  LatencyWindow durations_;
};

}  // namespace taba::routes
