#include "routes/tab_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/clock.h"
#include "query/params.h"
#include "query/query_service.h"
#include "routes/tab_exposition.h"

namespace taba::routes {

// One export in progress.
struct TabMetrics::Export {
  Export(const Config::Prometheus& o)
      : expo({o.prefix, o.max_series_per_tab, o.max_series}) {}
  Matcher names, clients;
  bool by_client = false;  // a client filter: reduce the matching clients' states
  Exposition format = Exposition::kText;
  std::vector<std::string> sorted_names;  // the matching names, sorted
  size_t next = 0;
  TabExposition expo;
  std::string render;  // reused
  std::string body;    // the reply, written a part at a time
  int64_t started_ms = 0;
  std::function<void(http::Response)> done;
};

TabMetrics::TabMetrics(uv_loop_t* loop, store::Store* store, Config::Prometheus options)
    : store_(store), options_(std::move(options)), defer_(loop) {}

TabMetrics::~TabMetrics() { *alive_ = false; }

void TabMetrics::handle(const http::Request& req, std::function<void(http::Response)> done) {
  if (req.method != "GET") {
    http::Response r = http::Response::text(405, "/metrics/tabs accepts only GET\n");
    r.headers.push_back({"Allow", "GET"});
    return done(std::move(r));
  }
  auto params = query::parse_params(req.query, "", {"name", "client", "re"});
  if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
  auto names = Matcher::make(params->names, params->re, params->has_name);
  if (!names.ok()) return done(http::Response::text(400, names.status().message() + "\n"));
  auto clients = Matcher::make(params->clients, params->re, params->has_client);
  if (!clients.ok()) return done(http::Response::text(400, clients.status().message() + "\n"));
  if (in_progress_ >= kMaxExports) {
    ++exports_refused_;
    http::Response r = http::Response::text(
        503, fmt::format("{} exports of /metrics/tabs are in progress; try again\n", in_progress_));
    r.headers.push_back({"Retry-After", "1"});
    return done(std::move(r));
  }
  ++in_progress_;
  auto ex = std::make_shared<Export>(options_);
  ex->names = std::move(names.value());
  ex->clients = std::move(clients.value());
  ex->by_client = !ex->clients.any();
  ex->format = exposition_for(req.header("accept"));
  ex->started_ms = steady_ms();
  ex->done = std::move(done);
  store::QueryNeed need;
  need.names = &ex->names;
  need.clients = &ex->clients;
  std::weak_ptr<bool> alive = alive_;
  store_->fetch(need, [this, alive, ex](const Status& s, const store::ReadView* view) {
    if (alive.expired()) return;
    if (!s.ok()) return fail(ex, s);
    for (const store::NameEntry* e : query::matching_names(*view, ex->names)) {
      if (std::find(left_out_names_.begin(), left_out_names_.end(), e->name) != left_out_names_.end()) continue;
      ex->sorted_names.push_back(e->name);
    }
    ex->expo.expect(ex->sorted_names.size());
    defer_.post([this, ex] { next_slice(ex); });
  });
}

void TabMetrics::next_slice(const std::shared_ptr<Export>& ex) {
  if (ex->next >= ex->sorted_names.size()) return finish(ex);
  const size_t end = std::min(ex->sorted_names.size(), ex->next + kNamesPerSlice);
  std::vector<std::string> slice(ex->sorted_names.begin() + static_cast<ptrdiff_t>(ex->next),
                                 ex->sorted_names.begin() + static_cast<ptrdiff_t>(end));
  auto names = std::make_shared<Matcher>(Matcher::make(slice, false, true).value());
  store::QueryNeed need;
  need.names = names.get();
  need.clients = &ex->clients;
  need.aggregates = !ex->by_client;
  need.states = ex->by_client;
  need.client_list = ex->by_client;
  std::weak_ptr<bool> alive = alive_;
  store_->fetch(need, [this, alive, ex, names, end](const Status& s, const store::ReadView* view) {
    if (alive.expired()) return;
    if (!s.ok()) return fail(ex, s);
    const double now = wall_now() - store_->pipeline_latency_s();
    std::vector<store::ClientIndex> clients;
    if (ex->by_client) {
      const auto& all = view->clients();
      for (store::ClientIndex i = 0; i < all.size(); ++i) {
        if (ex->clients.matches(all[i])) clients.push_back(i);
      }
    }
    // The slice's names in order, until the time budget is spent; the rest
    // go to the next slice (fetched again: a Redis view ends with this call).
    const auto deadline = std::chrono::steady_clock::now() + kSliceBudget;
    for (size_t taken = 0; ex->next < end; ++taken) {
      if (taken > 0 && std::chrono::steady_clock::now() > deadline) break;  // one name at least: progress
      const store::NameEntry* e = view->find_name(ex->sorted_names[ex->next++]);
      if (!e) continue;  // deleted since the export began
      const plugin::Handler* h = e->handler;
      taba_state* reduced = nullptr;
      const taba_state* state = e->aggregate.get();
      if (ex->by_client) {
        if (!query::reduce_states(*e, clients, now, &reduced)) continue;
        state = reduced;
      }
      // What /tabs leaves out (nothing left as of now) is left out here too.
      if (state && !h->prunable(state, now)) {
        Status r = h->render(state, TABA_FORMAT_METRICS, now, &ex->render);
        const bool from_json = r.code() == Status::Code::kNotFound;
        if (from_json) r = h->render(state, TABA_FORMAT_JSON_EXACT, now, &ex->render);
        if (r.ok()) ex->expo.add(e->name, h->type_name, ex->render, from_json);
      }
      if (reduced) h->free_state(reduced);
    }
    defer_.post([this, ex] { next_slice(ex); });
  });
}

void TabMetrics::finish(const std::shared_ptr<Export>& ex) {
  // The reply is written in parts too: 25 MB at once would hold the loop.
  if (!ex->expo.write_some(ex->format, &ex->body, kWriteBytesPerStep)) {
    defer_.post([this, ex] { finish(ex); });
    return;
  }
  --in_progress_;
  ++exports_;
  samples_ += ex->expo.samples();
  last_samples_ = ex->expo.samples();
  for (size_t i = 0; i < left_out_.size(); ++i) left_out_[i] += ex->expo.left_out()[i];
  http::Response r = http::Response::text(200, std::move(ex->body));
  r.content_type = std::string(content_type(ex->format));
  durations_.add(wall_now(), static_cast<double>(steady_ms() - ex->started_ms) / 1000);
  ex->done(std::move(r));
}

void TabMetrics::fail(const std::shared_ptr<Export>& ex, const Status& s) {
  --in_progress_;
  ++exports_failed_;
  http::Response r = http::Response::text(503, fmt::format("the store did not answer: {}\n", s.message()));
  r.headers.push_back({"Retry-After", "1"});
  ex->done(std::move(r));
}

void TabMetrics::write_metrics(MetricsWriter* w) const {
  w->family("taba_prometheus_exports_total", "counter", "Replies of /metrics/tabs by outcome.");
  w->sample("taba_prometheus_exports_total", static_cast<double>(exports_), {{"outcome", "ok"}});
  w->sample("taba_prometheus_exports_total", static_cast<double>(exports_failed_), {{"outcome", "store_error"}});
  w->sample("taba_prometheus_exports_total", static_cast<double>(exports_refused_), {{"outcome", "busy"}});
  w->counter("taba_prometheus_series_total", "Samples written by /metrics/tabs.", static_cast<double>(samples_));
  w->gauge("taba_prometheus_last_export_series", "Samples of the last /metrics/tabs reply.",
           static_cast<double>(last_samples_));
  w->family("taba_prometheus_series_left_out_total", "counter",
            "Samples /metrics/tabs left out: over max_series_per_tab (tab_limit) or max_series (reply_limit), "
            "a family name taken by another tab (conflict), or not in the form (invalid).");
  for (size_t i = 0; i < left_out_.size(); ++i) {
    w->sample("taba_prometheus_series_left_out_total", static_cast<double>(left_out_[i]),
              {{"reason", std::string(kLeftOutReasons[i])}});
  }
  w->histogram("taba_prometheus_export_seconds", "Time from request to reply of /metrics/tabs.", durations_);
}

}  // namespace taba::routes
