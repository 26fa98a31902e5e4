#include "roles/agent.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "http/url.h"
#include "protocol/delta_batch.h"
#include "roles/server_options.h"
#include "routes/auth.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

bool wants_json(const http::Request& req) {
  if (auto params = http::parse_query(req.query); params.ok()) {
    for (const auto& p : params.value()) {
      if (p.key == "format" && p.value == "json") return true;
    }
  }
  return req.header("accept").find("application/json") != std::string_view::npos;
}

}  // namespace

AgentRole::AgentRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry)
    : loop_(loop), config_(config), registry_(registry) {
  spool_dir_ = config_.agent.spool_dir.empty() ? config_.server.data_dir + "/spool" : config_.agent.spool_dir;
  dead_letter_dir_ =
      config_.agent.dead_letter_dir.empty() ? config_.server.data_dir + "/dead-letters" : config_.agent.dead_letter_dir;
}

AgentRole::~AgentRole() {
  if (forwarder_) {
    forwarder_->stop_at(0);
    forwarder_->join();
  }
  if (spool_) spool_->close();
}

Status AgentRole::start() {
  started_at_ = wall_now();
  agent::ForwarderOptions fo;
  fo.endpoints = config_.agent.endpoints;
  fo.concurrency = static_cast<int>(config_.agent.forward_concurrency);
  fo.timeout_ms = static_cast<int>(config_.agent.forward_timeout_ms);
  fo.backoff_initial_ms = static_cast<int>(config_.agent.backoff_initial_ms);
  fo.backoff_max_ms = static_cast<int>(config_.agent.backoff_max_ms);
  fo.token = config_.agent.forward_token;
  fo.dead_letter_dir = dead_letter_dir_;
  fo.max_dead_letter_bytes = static_cast<uint64_t>(config_.agent.max_dead_letter_bytes);
  fo.handlers = std::make_shared<const agent::HandlerMap>(agent::handler_map(*registry_));
  fo.compress_deltas = config_.agent.compress_deltas;
  fo.max_deltas = static_cast<size_t>(config_.agent.max_deltas_per_batch);
  fo.dead_letter_after_errors = static_cast<uint32_t>(config_.agent.dead_letter_after_errors);
  fo.dead_letter_after_ms = config_.agent.dead_letter_after_s * 1000;
  double ttl = static_cast<double>(config_.agent.dedup_ttl_s);
  if (ttl > 0) {
    std::error_code ec;
    std::filesystem::create_directories(spool_dir_, ec);
    Status js = journal_.open(spool_dir_, ttl, wall_now(),
                              [this](std::string_view id, double expires) { remember(std::string(id), expires); });
    TABA_RETURN_IF_ERROR(js);
    fo.on_settled = [this, ttl](const std::vector<std::string>& ids) {
      // Best effort: the batches are already delivered, and a lost journal
      // line costs at most a duplicate spooling after a restart (append logs
      // its write failures itself).
      (void)journal_.append(ids, wall_now() + ttl, wall_now());
    };
  }
  // The forwarder exists before the spool so that the segments the spool
  // recovers are queued as it finds them; its workers start after.
  forwarder_ = std::make_unique<agent::Forwarder>(nullptr, fo);

  agent::SpoolOptions so;
  so.dir = spool_dir_;
  so.fsync_always = config_.agent.fsync == FsyncPolicy::kAlways;
  so.max_bytes = static_cast<uint64_t>(config_.agent.spool_max_bytes);
  so.segment_bytes = static_cast<uint64_t>(config_.agent.batch_max_bytes);
  so.seal_after_ms = static_cast<uint32_t>(config_.agent.flush_interval_ms);
  agent::Forwarder* fw = forwarder_.get();
  double expires = wall_now() + static_cast<double>(config_.agent.dedup_ttl_s);
  auto spool = agent::Spool::open(
      loop_, so, [fw](agent::Segment seg) { fw->enqueue(std::move(seg)); },
      [this, expires](std::string_view id) { remember(std::string(id), expires); });
  TABA_RETURN_IF_ERROR(spool);
  spool_ = std::move(spool.value());
  forwarder_->set_spool(spool_.get());
  Status s = forwarder_->start();
  TABA_RETURN_IF_ERROR(s);
  agent::SpoolStats ss = spool_->stats();
  if (ss.segments > 0) {
    log::info("agent: spool {} holds {} batch(es), {} events, {} bytes to forward", spool_dir_, ss.segments, ss.events,
              ss.bytes);
  }

  ingest_ = std::make_unique<routes::Ingest>(this, registry_, config_.ingest);
  http::ServerOptions ho = server_options(config_.http);
  server_ = std::make_unique<http::Server>(loop_, ho, [this](const std::shared_ptr<http::Exchange>& ex) {
    return route(ex);
  });
  std::string host;
  int port = 0;
  if (!http::split_host_port(config_.agent.listen, &host, &port)) {
    return Status::Invalid(fmt::format("agent.listen: \"{}\" is not HOST:PORT", config_.agent.listen));
  }
  s = server_->listen(host, port);
  if (!s.ok()) return Status::IoError(fmt::format("agent: cannot listen on {}: {}", config_.agent.listen, s.message()));
  log::info("agent: listening on {}:{}, spool {} (max {} bytes, fsync {}), forwarding to {}", host, server_->port(),
            spool_dir_, config_.agent.spool_max_bytes, fsync_policy_name(config_.agent.fsync), fmt::join(config_.agent.endpoints, ", "));
  drain_timer_ = std::make_unique<UvTimer>(loop_, [this] { on_drain_timer(this); });
  return Status::Ok();
}

void AgentRole::release_handles() {
  if (forwarder_) {
    forwarder_->stop_at(0);
    forwarder_->join();
  }
  if (spool_) spool_->close();
  if (drain_timer_) drain_timer_->close();
}

int AgentRole::port() const { return server_ ? server_->port() : 0; }

void AgentRole::remember(const std::string& id, double expires) {
  auto [it, inserted] = seen_ids_.emplace(id, expires);
  if (!inserted) {
    it->second = expires;
  }
  seen_order_.emplace_back(expires, id);
  double now = wall_now();
  while (!seen_order_.empty() && seen_order_.front().first <= now) {
    auto found = seen_ids_.find(seen_order_.front().second);
    if (found != seen_ids_.end() && found->second <= now) seen_ids_.erase(found);
    seen_order_.pop_front();
  }
}

bool AgentRole::seen(const std::string& id) {
  auto it = seen_ids_.find(id);
  return it != seen_ids_.end() && it->second > wall_now();
}

void AgentRole::submit(std::string batch, store::BatchId batch_id, store::Bindings, uint64_t events,
                       std::function<void(const Status&)> done) {
  if (stopping_) return done(Status::Unavailable("the agent is shutting down"));
  bool dedup = batch_id.from_client && config_.agent.dedup_ttl_s > 0;
  if (dedup) {
    if (seen(batch_id.value)) {
      ++duplicate_posts_;
      return done(Status::Ok());  // already spooled: the client's retry after a lost 200
    }
    if (!in_flight_ids_.insert(batch_id.value).second) {
      return done(Status::Unavailable("a post with this Taba-Batch-Id is still being written; retry"));
    }
  }
  // The record is its head and the batch, handed to the spool as they are:
  // the batch (moved here from the decoder) is written from where it is.
  std::string head =
      agent::encode_spool_record_head(dedup ? batch_id.value : std::string_view(), static_cast<uint32_t>(events));
  std::string id = dedup ? std::move(batch_id.value) : std::string();
  auto written = [this, id, dedup, events, done](const Status& st) {
    if (st.ok()) events_spooled_ += events;
    if (dedup) {
      in_flight_ids_.erase(id);
      if (st.ok()) remember(id, wall_now() + static_cast<double>(config_.agent.dedup_ttl_s));
    }
    done(st.ok() ? st : Status::Unavailable(st.message()));
  };
  Status s = spool_->append(std::move(head), std::move(batch), events, std::move(written));
  if (!s.ok()) {
    if (dedup) in_flight_ids_.erase(id);
    done(s.code() == Status::Code::kInvalid ? s : Status::Unavailable(s.message()));
  }
}

namespace {

// The dead-letter id of a post's refused blocks: named after the post's
// batch id, so that a client's retry finds the dead letter written and does
// not write another; a client's id may hold any printable byte ('/' too),
// so the file name keeps only the safe ones and adds a hash of the whole id.
std::string refused_letter_id(const std::string& batch_id) {
  std::string id = "refused-";
  for (char c : batch_id.substr(0, 64)) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    id.push_back(safe ? c : '_');
  }
  id += fmt::format("-{:016x}", fnv1a64(batch_id));
  return id;
}

}  // namespace

void AgentRole::refused(const std::string& v1_text, const std::string& batch_id, uint64_t events,
                        const std::string& reasons) {
  if (v1_text.empty()) return;
  forwarder_->dead_letter(refused_letter_id(batch_id), v1_text, events,
                          fmt::format("post {} refused by the agent: {} events in refused blocks: {}", batch_id, events,
                                      reasons));
}

void AgentRole::refused_deltas(const std::string& delta_batch, const std::string& batch_id, uint64_t events,
                               const std::string& reasons) {
  if (delta_batch.empty()) return;
  // The refused blocks in their wire envelope, as POST /post_delta takes
  // them: dl-<id>.delta.
  forwarder_->dead_letter(refused_letter_id(batch_id), protocol::wrap_delta_body(delta_batch), events,
                          fmt::format("post {} refused by the agent: {} events in refused blocks: {}", batch_id, events,
                                      reasons),
                          ".delta");
}

std::unique_ptr<http::RequestHandler> AgentRole::route(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  if (auto denied = routes::check_access(config_.auth, routes::access_of(req.method, req.path), req)) {
    ex->reply(std::move(*denied));
    return nullptr;
  }
  if (routes::Ingest::handles(req.path)) {
    if (stopping_) {
      http::Response r = http::Response::text(503, "the agent is shutting down\n");
      r.headers.push_back({"Retry-After", "1"});
      ex->reply(std::move(r));
      return nullptr;
    }
    return ingest_->start(ex);
  }
  if (req.method != "GET") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only GET\n", req.path));
    r.headers.push_back({"Allow", "GET"});
    ex->reply(std::move(r));
    return nullptr;
  }
  if (req.path == "/status") {
    ex->reply(wants_json(req) ? http::Response::json(200, status_json()) : http::Response::text(200, status_text()));
  } else if (req.path == "/metrics") {
    routes::MetricsWriter w;
    write_metrics(&w);
    http::Response r = http::Response::text(200, w.take());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    ex->reply(std::move(r));
  } else if (req.path == "/healthz") {
    ex->reply(http::Response::text(200, "ok\n"));
  } else if (req.path == "/readyz") {
    agent::SpoolStats ss = spool_->stats();
    if (stopping_) {
      ex->reply(http::Response::text(503, "shutting down\n"));
    } else if (ss.bytes >= static_cast<uint64_t>(config_.agent.spool_max_bytes) * 95 / 100) {
      ex->reply(http::Response::text(503, fmt::format("the spool is nearly full ({} of {} bytes)\n", ss.bytes,
                                                      config_.agent.spool_max_bytes)));
    } else {
      ex->reply(http::Response::text(200, "ready\n"));
    }
  } else {
    ex->reply(http::Response::text(404, fmt::format("no such route: {} (the agent serves /post /post_zip /post_delta "
                                                    "/status /metrics /healthz /readyz)\n",
                                                    req.path)));
  }
  return nullptr;
}

void AgentRole::write_metrics(routes::MetricsWriter* w) const {
  agent::SpoolStats ss = spool_->stats();
  agent::ForwarderStats fs = forwarder_->stats();
  const routes::IngestStats& in = ingest_->stats();
  w->gauge("taba_build_info", "tabad version.", 1, {{"version", TABA_VERSION_STRING}});
  w->family("taba_agent_bodies_total", "counter", "Posts to the agent by outcome.");
  w->sample("taba_agent_bodies_total", static_cast<double>(in.bodies_ok), {{"outcome", "ok"}});
  w->sample("taba_agent_bodies_total", static_cast<double>(in.bodies_rejected), {{"outcome", "rejected"}});
  w->sample("taba_agent_bodies_total", static_cast<double>(in.bodies_unavailable), {{"outcome", "unavailable"}});
  w->counter("taba_agent_events_received_total", "Events in posts the agent accepted.",
             static_cast<double>(in.events_received));
  ingest_->write_refusal_metrics(w, "taba_agent");
  w->counter("taba_agent_events_spooled_total", "Events written to the spool (duplicate posts not counted).",
             static_cast<double>(events_spooled_));
  w->counter("taba_agent_duplicate_posts_total", "Posts whose Taba-Batch-Id was already spooled (answered 200, not spooled again).",
             static_cast<double>(duplicate_posts_));
  w->gauge("taba_agent_spool_bytes", "Bytes in the spool (segments and queued records).", static_cast<double>(ss.bytes));
  w->gauge("taba_agent_spool_max_bytes", "The spool's cap (agent.spool_max_bytes).",
           static_cast<double>(config_.agent.spool_max_bytes));
  w->gauge("taba_agent_spool_events", "Events spooled and not yet forwarded.", static_cast<double>(ss.events));
  w->gauge("taba_agent_spool_batches", "Sealed batches waiting to be forwarded.", static_cast<double>(ss.segments));
  w->counter("taba_agent_spool_full_total", "Posts refused (503) because the spool was full.",
             static_cast<double>(ss.refused_full));
  w->counter("taba_agent_spool_write_errors_total", "Spool writes that failed (the posts got 503).",
             static_cast<double>(ss.write_errors));
  w->counter("taba_agent_spool_fsyncs_total", "fdatasync calls on spool segments.", static_cast<double>(ss.fsyncs));
  w->counter("taba_agent_spool_seal_failures_total",
             "Seals of spool segments that failed (fdatasync or rename) and are retried by writing the segment again.",
             static_cast<double>(ss.seal_failures));
  w->gauge("taba_agent_spool_unsealed_batches",
           "Spool segments whose seal failed: their records wait for a seal that works before they are forwarded.",
           static_cast<double>(ss.unsealed_segments));
  w->counter("taba_agent_spool_torn_records_total", "Torn records cut off at startup (a crash mid-write; never acknowledged).",
             static_cast<double>(ss.torn_records_skipped));
  w->counter("taba_agent_corrupt_records_total", "Spooled records skipped because their checksum failed.",
             static_cast<double>(ss.corrupt_records_skipped + fs.corrupt_records_skipped));
  w->counter("taba_agent_batches_forwarded_total", "Batches the fes acknowledged.", static_cast<double>(fs.batches_forwarded));
  w->counter("taba_agent_events_forwarded_total", "Events in batches the fes acknowledged.",
             static_cast<double>(fs.events_forwarded));
  w->counter("taba_agent_forward_bytes_total",
             "Body bytes of acknowledged posts to the fes (zlib'd v1 bodies, and delta bodies, zlib'd unless "
             "agent.compress_deltas is false).",
             static_cast<double>(fs.bytes_sent));
  w->family("taba_agent_forward_posts_total", "counter",
            "Posts the fes acknowledged, by form: delta (POST /post_delta) or v1 (POST /post_zip).");
  w->sample("taba_agent_forward_posts_total", static_cast<double>(fs.delta_posts), {{"form", "delta"}});
  w->sample("taba_agent_forward_posts_total", static_cast<double>(fs.v1_posts), {{"form", "v1"}});
  w->counter("taba_agent_delta_blocks_forwarded_total",
             "Delta blocks (one folded state per client, name and type, or a client-proxy's) the fes applied.",
             static_cast<double>(fs.delta_blocks));
  w->counter("taba_agent_leftover_events_total",
             "Events forwarded as v1 because no plugin of the agent serves their type, or their (client, name, type) came "
             "past agent.max_deltas_per_batch in their batch (the fe checks them).",
             static_cast<double>(fs.leftover_events));
  w->counter("taba_agent_delta_waits_total",
             "Times a batch holding delta records was put back because no fe took POST /post_delta.",
             static_cast<double>(fs.delta_waits));
  w->gauge("taba_agent_delta_batches_waiting",
           "Batches holding delta records waiting for an fe that takes POST /post_delta.",
           static_cast<double>(fs.waiting_for_delta));
  w->counter("taba_agent_forward_retries_total", "Forwarding attempts that failed and are retried.",
             static_cast<double>(fs.retries));
  w->counter("taba_agent_dead_letters_total", "Batches the fes refused (4xx), moved to the dead-letter directory.",
             static_cast<double>(fs.dead_letters));
  w->counter("taba_agent_dead_letter_events_total", "Events in dead-lettered batches.",
             static_cast<double>(fs.dead_letter_events));
  w->counter("taba_agent_poison_batches_total",
             "Batches an fe answered with 5xx agent.dead_letter_after_errors times while it acknowledged other batches, "
             "moved to the dead letters (also counted in taba_agent_dead_letters_total).",
             static_cast<double>(fs.poison_batches));
  w->gauge("taba_agent_failing_batches",
           "Queued batches an fe answered with 5xx while it acknowledged others: they back off on their own.",
           static_cast<double>(fs.failing_batches));
  w->counter("taba_agent_batches_past_dedup_window_total",
             "Batches sent again close to or past the dedup window their fe stated (Taba-Dedup-Window): marked with "
             "Taba-Batch-Age, applied twice if the fe had applied them before.",
             static_cast<double>(fs.past_dedup_window));
  w->counter("taba_agent_dead_letters_discarded_total", "Dead letters deleted to stay under agent.max_dead_letter_bytes.",
             static_cast<double>(fs.dead_letters_discarded));
  w->gauge("taba_agent_dead_letter_bytes", "Bytes in the dead-letter directory.", static_cast<double>(fs.dead_letter_bytes));
  w->gauge("taba_agent_oldest_batch_age_seconds", "Age of the oldest batch waiting to be forwarded.", fs.oldest_queued_age_s);
  w->family("taba_agent_endpoint_up", "gauge", "1 when the fe endpoint's last request succeeded.");
  for (const auto& e : fs.endpoints) {
    w->sample("taba_agent_endpoint_up", e.state == "up" ? 1 : 0, {{"endpoint", e.address}});
  }
  w->family("taba_agent_endpoint_failures_total", "counter", "Failed requests per fe endpoint.");
  for (const auto& e : fs.endpoints) {
    w->sample("taba_agent_endpoint_failures_total", static_cast<double>(e.failures), {{"endpoint", e.address}});
  }
  w->family("taba_agent_endpoint_takes_deltas", "gauge",
            "0 when the fe endpoint answered POST /post_delta with 404, 405 or 415 (an older tabad: it is sent v1 "
            "until it is tried again), else 1.");
  for (const auto& e : fs.endpoints) {
    w->sample("taba_agent_endpoint_takes_deltas", e.delta < 0 ? 0 : 1, {{"endpoint", e.address}});
  }
  w->family("taba_agent_endpoint_dedup_window_seconds", "gauge",
            "How long the fe endpoint remembers a batch id, as its last reply stated (Taba-Dedup-Window); -1 unknown.");
  for (const auto& e : fs.endpoints) {
    w->sample("taba_agent_endpoint_dedup_window_seconds", static_cast<double>(e.dedup_window_s),
              {{"endpoint", e.address}});
  }
}

std::string AgentRole::status_text() const {
  agent::SpoolStats ss = spool_->stats();
  agent::ForwarderStats fs = forwarder_->stats();
  const routes::IngestStats& in = ingest_->stats();
  std::string out = fmt::format("agent {} (tabad {}), up {:.0f} s{}\n\n", config_.agent.listen, TABA_VERSION_STRING,
                                wall_now() - started_at_, stopping_ ? ", shutting down" : "");
  out += fmt::format("spool      {}\n", spool_dir_);
  out += fmt::format("  bytes    {} of {} ({:.1f}%)\n", ss.bytes, config_.agent.spool_max_bytes,
                     100.0 * static_cast<double>(ss.bytes) / static_cast<double>(config_.agent.spool_max_bytes));
  out += fmt::format("  events   {} in {} sealed batch(es); oldest waiting {:.1f} s\n", ss.events, ss.segments,
                     fs.oldest_queued_age_s);
  out += fmt::format("  fsync    {} ({} fdatasync calls)\n", fsync_policy_name(config_.agent.fsync), ss.fsyncs);
  out += fmt::format("  refused  {} post(s) while full, {} write error(s)\n", ss.refused_full, ss.write_errors);
  if (ss.seal_failures > 0) {
    out += fmt::format("  sealing  {} batch(es) wait for a seal that works; {} failed seal(s)\n", ss.unsealed_segments,
                       ss.seal_failures);
  }
  out += fmt::format(
      "posts      {} accepted ({} events spooled), {} rejected (400/413/415), {} unavailable (503), {} duplicate(s)\n",
      in.bodies_ok, events_spooled_, in.bodies_rejected, in.bodies_unavailable, duplicate_posts_);
  out += fmt::format("forwarded  {} batch(es), {} events, {} bytes compressed; {} retried attempt(s); {} in flight\n",
                     fs.batches_forwarded, fs.events_forwarded, fs.bytes_sent, fs.retries, fs.in_flight);
  out += fmt::format("  as       {} delta post(s) ({} blocks), {} v1 post(s); {} leftover events as v1 (no plugin here)\n",
                     fs.delta_posts, fs.delta_blocks, fs.v1_posts, fs.leftover_events);
  if (fs.waiting_for_delta > 0) {
    out += fmt::format("  waiting  {} batch(es) hold delta records and no fe takes POST /post_delta now\n",
                       fs.waiting_for_delta);
  }
  if (fs.failing_batches > 0 || fs.past_dedup_window > 0) {
    out += fmt::format("  failing  {} batch(es) got 5xx while their fe acknowledged others; {} batch(es) sent again "
                       "near or past their fe's dedup window\n",
                       fs.failing_batches, fs.past_dedup_window);
  }
  out += fmt::format("dead       {} batch(es), {} events, {} bytes in {}; {} discarded over the cap; {} given up "
                     "after repeated 5xx\n",
                     fs.dead_letters, fs.dead_letter_events, fs.dead_letter_bytes, dead_letter_dir_,
                     fs.dead_letters_discarded, fs.poison_batches);
  out += "endpoints\n";
  for (const auto& e : fs.endpoints) {
    out += fmt::format("  {:<22} {:<8} in flight {}, {} ok, {} failed ({} in a row){}{}{}{}\n", e.address, e.state,
                       e.in_flight, e.ok, e.failures, e.consecutive_failures,
                       e.retry_in_s > 0 ? fmt::format(", retry in {:.1f} s", e.retry_in_s) : std::string(),
                       e.dedup_window_s >= 0 ? fmt::format(", dedup window {} s", e.dedup_window_s) : std::string(),
                       e.delta < 0 ? fmt::format("; v1 only (no POST /post_delta; deltas again in {:.0f} s)",
                                                 e.delta_probe_in_s)
                                   : std::string(),
                       e.last_error.empty() ? std::string() : fmt::format("; last error: {}", e.last_error));
  }
  return out;
}

std::string AgentRole::status_json() const {
  agent::SpoolStats ss = spool_->stats();
  agent::ForwarderStats fs = forwarder_->stats();
  const routes::IngestStats& in = ingest_->stats();
  std::string eps;
  for (const auto& e : fs.endpoints) {
    if (!eps.empty()) eps += ",";
    eps += fmt::format(
        "{{\"address\":{},\"state\":{},\"in_flight\":{},\"requests\":{},\"ok\":{},\"failures\":{},"
        "\"consecutive_failures\":{},\"retry_in_s\":{:.3f},\"latency_ms\":{:.3f},\"last_error\":{},"
        "\"deltas\":{},\"delta_probe_in_s\":{:.3f},\"dedup_window_s\":{}}}",
        json_quote(e.address), json_quote(e.state), e.in_flight, e.requests, e.ok, e.failures, e.consecutive_failures,
        e.retry_in_s, e.latency_ms_ewma, json_quote(e.last_error),
        json_quote(e.delta > 0 ? "yes" : e.delta < 0 ? "no" : "unknown"), e.delta_probe_in_s, e.dedup_window_s);
  }
  return fmt::format(
      "{{\"role\":\"agent\",\"version\":{},\"listen\":{},\"uptime_s\":{:.1f},\"stopping\":{},"
      "\"spool\":{{\"dir\":{},\"bytes\":{},\"max_bytes\":{},\"events\":{},\"batches\":{},\"fsync\":{},\"fsyncs\":{},"
      "\"refused_full\":{},\"write_errors\":{},\"seal_failures\":{},\"unsealed_batches\":{},"
      "\"torn_records_skipped\":{},\"corrupt_records_skipped\":{},"
      "\"oldest_batch_age_s\":{:.3f}}},"
      "\"posts\":{{\"accepted\":{},\"events_spooled\":{},\"rejected\":{},\"unavailable\":{},\"duplicates\":{}}},"
      "\"forwarded\":{{\"batches\":{},\"events\":{},\"bytes\":{},\"retries\":{},\"in_flight\":{},"
      "\"delta_posts\":{},\"delta_blocks\":{},\"v1_posts\":{},\"leftover_events\":{},\"delta_waits\":{},"
      "\"waiting_for_delta\":{},\"failing_batches\":{},\"past_dedup_window\":{}}},"
      "\"dead_letters\":{{\"dir\":{},\"batches\":{},\"events\":{},\"bytes\":{},\"discarded\":{},"
      "\"poison_batches\":{}}},"
      "\"endpoints\":[{}]}}\n",
      json_quote(TABA_VERSION_STRING), json_quote(config_.agent.listen), wall_now() - started_at_,
      stopping_ ? "true" : "false", json_quote(spool_dir_), ss.bytes, config_.agent.spool_max_bytes, ss.events,
      ss.segments, json_quote(fsync_policy_name(config_.agent.fsync)), ss.fsyncs, ss.refused_full, ss.write_errors, ss.seal_failures, ss.unsealed_segments, ss.torn_records_skipped,
      ss.corrupt_records_skipped + fs.corrupt_records_skipped, fs.oldest_queued_age_s, in.bodies_ok, events_spooled_,
      in.bodies_rejected, in.bodies_unavailable, duplicate_posts_, fs.batches_forwarded, fs.events_forwarded,
      fs.bytes_sent, fs.retries, fs.in_flight, fs.delta_posts, fs.delta_blocks, fs.v1_posts, fs.leftover_events,
      fs.delta_waits, fs.waiting_for_delta, fs.failing_batches, fs.past_dedup_window, json_quote(dead_letter_dir_),
      fs.dead_letters, fs.dead_letter_events, fs.dead_letter_bytes, fs.dead_letters_discarded, fs.poison_batches, eps);
}

void AgentRole::reload(const Config& config) {
  config_.auth = config.auth;
  config_.ingest = config.ingest;
  if (ingest_) ingest_->set_options(config.ingest);
  // Plugins SIGHUP loaded fold from now on.
  if (forwarder_) forwarder_->set_handlers(std::make_shared<const agent::HandlerMap>(agent::handler_map(*registry_)));
}

void AgentRole::shutdown(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  shutdown_done_ = std::move(done);
  log::info("agent: stopping: no new posts; forwarding for up to {} ms", config_.agent.shutdown_grace_ms);
  server_->shutdown([this] {
    // Every accepted post has its answer; write and seal what is queued so
    // that it can go too.
    spool_->close();
    forwarder_->stop_at(steady_ms() + config_.agent.shutdown_grace_ms);
    drain_timer_->start(50, 50);
  });
}

void AgentRole::on_drain_timer(AgentRole* self) {
  if (!self->forwarder_->stopped()) return;
  self->drain_timer_->stop();
  self->forwarder_->join();
  agent::SpoolStats ss = self->spool_->stats();
  log::info("agent: stopped; {} batch(es) with {} events stay spooled for the next start", ss.segments, ss.events);
  self->drain_timer_->close();
  if (self->shutdown_done_) self->shutdown_done_();
}

}  // namespace taba::roles
