#include "routes/server_metrics.h"

#include <fmt/format.h>


#include "core/clock.h"
#include "query/params.h"
#include "routes/metrics.h"
#include "taba/version.h"

namespace taba::routes {

void ServerMetrics::handle(const http::Request& req, std::function<void(http::Response)> done) {
  if (req.method != "GET") {
    http::Response r = http::Response::text(405, "/metrics accepts only GET\n");
    r.headers.push_back({"Allow", "GET"});
    return done(std::move(r));
  }
  auto params = query::parse_params(req.query, "", {"tabs"});
  if (!params.ok()) {
    return done(http::Response::text(400, params.status().message() + " (the tabs are on /metrics/tabs)\n"));
  }
  if (!params->extra.empty()) {
    return done(http::Response::text(
        400, "tabs: the tabs moved to GET /metrics/tabs, as Prometheus families (docs/prometheus.md)\n"));
  }
  store::Store* store = sources_.store;
  const plugin::Registry& registry = *sources_.registry;
  MetricsWriter w(exposition_for(req.header("accept")));
  w.gauge("taba_build_info", "tabad version.", 1, {{"version", TABA_VERSION_STRING}});
  w.gauge("taba_start_time_seconds", "When this process started (epoch seconds).", sources_.started_at);
  w.family("taba_role", "gauge", "Roles this process runs.");
  for (Role role : sources_.roles) w.sample("taba_role", 1, {{"role", std::string(role_name(role))}});
  const IngestStats& in = sources_.ingest->stats();
  w.counter("taba_events_received_total", "Events in accepted bodies.", static_cast<double>(in.events_received));
  w.counter("taba_events_clamped_total", "Events whose future timestamps were clamped to now.",
            static_cast<double>(in.events_clamped));
  w.counter("taba_ingest_bytes_total", "Ingest body bytes received on the wire.", static_cast<double>(in.bytes_received));
  w.family("taba_bodies_total", "counter", "Ingest bodies by outcome.");
  w.sample("taba_bodies_total", static_cast<double>(in.bodies_ok), {{"outcome", "ok"}});
  w.sample("taba_bodies_total", static_cast<double>(in.bodies_rejected), {{"outcome", "rejected"}});
  w.sample("taba_bodies_total", static_cast<double>(in.bodies_unavailable), {{"outcome", "unavailable"}});
  w.counter("taba_bodies_over_limit_total",
            "Bodies refused by a configured limit (ingest.max_events_per_body: 413; ingest.max_names or "
            "max_names_per_client: 422); also counted as rejected.",
            static_cast<double>(in.bodies_over_limit));
  sources_.ingest->write_refusal_metrics(&w, "taba");
  w.counter("taba_batches_past_dedup_window_total",
            "Ingest bodies marked Taba-Batch-Age by an agent: a batch sent again close to or past the dedup window "
            "this fe states (Taba-Dedup-Window); applied twice if it was applied before and its id is forgotten.",
            static_cast<double>(in.batches_past_dedup_window));
  const http::ServerStats& hs = sources_.server->stats();
  w.counter("taba_http_requests_total", "HTTP requests received.", static_cast<double>(hs.requests));
  w.counter("taba_http_connections_accepted_total", "Connections accepted.", static_cast<double>(hs.connections_accepted));
  w.counter("taba_http_connections_rejected_total", "Connections refused over http.max_connections.",
            static_cast<double>(hs.connections_rejected));
  w.gauge("taba_http_connections_active", "Open connections.", static_cast<double>(hs.connections_active));
  w.counter("taba_http_timeouts_total", "Connections closed by a header, body or idle timeout.", static_cast<double>(hs.timeouts));
  w.counter("taba_http_parse_errors_total", "Malformed HTTP requests.", static_cast<double>(hs.parse_errors));
  w.counter("taba_http_oversized_total", "Requests refused for headers (431) or a body (413) over the limit.",
            static_cast<double>(hs.oversized));
  int64_t loaded = 0, refused = 0;
  for (const auto& r : registry.reports()) (r.loaded ? loaded : refused) += 1;
  w.family("taba_plugins", "gauge", "Plugin files by load result.");
  w.sample("taba_plugins", static_cast<double>(loaded), {{"result", "loaded"}});
  w.sample("taba_plugins", static_cast<double>(refused), {{"result", "refused"}});
  w.gauge("taba_handler_types", "Type names served by loaded handlers.", static_cast<double>(registry.handlers().size()));
  w.histogram("taba_pipeline_latency_seconds", "Enqueue to applied latency of batches applied by this process.",
              store->local_latency_window());
  std::vector<store::Metric> sm;
  store->metrics(&sm);
  std::string last;
  for (const auto& m : sm) {
    if (m.name != last) w.family(m.name, m.type, m.help);
    last = m.name;
    w.sample(m.name, m.value, m.labels);
  }
  if (sources_.tab_metrics) sources_.tab_metrics->write_metrics(&w);
  const Exposition format = w.format();
  http::Response r = http::Response::text(200, w.take());
  r.content_type = std::string(content_type(format));
  done(std::move(r));
}

}  // namespace taba::routes
