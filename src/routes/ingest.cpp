#include "routes/ingest.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "core/ascii.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/inflate.h"
#include "protocol/v1_decoder.h"
#include "routes/body_resolver.h"
#include "routes/delta_ingest.h"
#include "routes/ingest_reply.h"
#include "routes/metrics.h"

namespace taba::routes {
namespace {

class StoreSink : public IngestSink {
 public:
  explicit StoreSink(store::Store* store) : store_(store) {}
  const plugin::Handler* bound_handler(std::string_view name) const override { return store_->bound_handler(name); }
  bool accepts_deltas() const override { return true; }
  void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings, uint64_t,
              std::function<void(const Status&)> done) override {
    store_->submit(std::move(batch), std::move(batch_id), std::move(new_bindings), std::move(done));
  }

 private:
  store::Store* store_;
};

}  // namespace

class IngestRequest : public http::RequestHandler {
 public:
  IngestRequest(Ingest* ingest, std::shared_ptr<http::Exchange> exchange,
                std::optional<http::Inflater::Format> compression)
      : ingest_(ingest),
        exchange_(std::move(exchange)),
        resolver_(ingest->sink_, ingest->registry_, ingest->sink_->forwards_unknown_types()),
        decoder_(&resolver_, &batch_, decode_options(ingest, now_)) {
    batch_.reset(now_);
    // Sizing the batch from the body length saves its regrowth copies (a
    // batch is about 0.7 of its v1 text, which zlib shrinks 6-7 times).
    if (auto length = exchange_->request().content_length) {
      constexpr uint64_t kMaxReserve = 64ull << 20;
      uint64_t expect = compression ? *length * 6 : *length;
      batch_.reserve(static_cast<size_t>(std::min(expect, kMaxReserve)));
    }
    if (compression) inflater_ = ingest->make_inflater(*compression);
  }

  void on_body(std::string_view chunk) override {
    if (failed_) return;
    ingest_->stats_.bytes_received += chunk.size();
    if (inflater_) {
      Status s = inflater_->feed(chunk, [this](std::string_view out) { return decoder_.feed(out); });
      if (!s.ok()) return reject(400, s.message());
    } else {
      decoder_.feed(chunk);
    }
    if (!decoder_.error().empty()) return reject(400, decoder_.error());
    check_event_limit();
  }

  void on_complete() override {
    if (failed_) return;
    if (inflater_) {
      Status s = inflater_->finish();
      if (!s.ok()) return reject(400, s.message());
    }
    if (!decoder_.finish()) return reject(400, decoder_.error());
    if (check_event_limit()) return;
    // Refused blocks: logged and counted now; the good blocks go on.
    auto refused = std::make_shared<Refused>();
    if (!decoder_.refusals().empty()) {
      ingest_->note_refusals(exchange_->request(), decoder_.refusals(), "line");
      refused->fill(exchange_->request(), decoder_.refusals(), decoder_.events(), "line");
      refused->text = decoder_.refused_text();
    }
    failed_ = true;  // answered from here on
    Ingest::Accepted body;
    body.events = decoder_.events();
    body.clamped = decoder_.clamped();
    if (body.events > 0) {
      body.batch = batch_.finish();
      body.bindings = resolver_.take_bindings();
    }
    ingest_->settle(exchange_, std::move(body), std::move(refused));
  }

 private:
  static protocol::DecodeOptions decode_options(Ingest* ingest, double now) {
    protocol::DecodeOptions o;
    o.keep_refused_text = ingest->sink_->keeps_refused();
    o.now = now;
    o.future_clamp_s = static_cast<double>(ingest->options_.future_clamp_s);
    return o;
  }

  // A body with more events than ingest.max_events_per_body is refused as
  // soon as the decoder passes the limit (the rest is not decoded).
  bool check_event_limit() {
    auto limit = static_cast<uint64_t>(ingest_->options_.max_events_per_body);
    if (limit == 0 || decoder_.events() <= limit) return false;
    ++ingest_->stats_.bodies_over_limit;
    reject(413, fmt::format("body has more than {} events (ingest.max_events_per_body); post smaller bodies", limit));
    return true;
  }

  void reject(int status, const std::string& why) {
    failed_ = true;
    ingest_->reject(*exchange_, status, why);
  }

  Ingest* ingest_;
  std::shared_ptr<http::Exchange> exchange_;
  double now_ = wall_now();  // the receive time; initialised before decoder_
  protocol::BatchWriter batch_;
  BodyResolver resolver_;
  protocol::V1Decoder decoder_;
  std::unique_ptr<http::Inflater> inflater_;
  bool failed_ = false;
};

std::unique_ptr<http::Inflater> Ingest::make_inflater(http::Inflater::Format format) const {
  http::Inflater::Limits limits;
  limits.max_output_bytes = static_cast<uint64_t>(options_.max_inflated_bytes);
  limits.max_ratio = static_cast<uint64_t>(options_.max_inflate_ratio);
  limits.output_limit_name = "ingest.max_inflated_bytes";
  limits.ratio_limit_name = "ingest.max_inflate_ratio";
  return std::make_unique<http::Inflater>(format, limits);
}

void Ingest::reject(http::Exchange& exchange, int status, const std::string& why) {
  ++stats_.bodies_rejected;
  log::debug("ingest: {} from {} rejected: {}", exchange.request().path, exchange.request().peer, why);
  reply(exchange, http::Response::text(status, why + "\n"));
}

void Ingest::reply(http::Exchange& exchange, http::Response response) const {
  if (dedup_window_s_ >= 0) response.headers.push_back({"Taba-Dedup-Window", std::to_string(dedup_window_s_)});
  exchange.reply(std::move(response));
}

bool Ingest::note_batch_age(http::Exchange& exchange, std::string_view age) {
  const http::Request& req = exchange.request();
  if (age.size() > 12 || !std::all_of(age.begin(), age.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    ++stats_.bodies_rejected;
    reply(exchange, http::Response::text(400, "Taba-Batch-Age must be a whole number of seconds\n"));
    return false;
  }
  ++stats_.batches_past_dedup_window;
  int64_t now = steady_ms();
  if (now - age_log_window_ms_ < 1000) {
    ++ages_not_logged_;
    return true;
  }
  age_log_window_ms_ = now;
  std::string window = dedup_window_s_ >= 0 ? fmt::format("{} s", dedup_window_s_) : std::string("not stated");
  log::warn("ingest: {} from {}: batch {} is sent again {} s after its first send (Taba-Batch-Age), near or past the "
            "dedup window ({}): applied twice if it was applied before and its id is forgotten{}",
            req.path, req.peer, req.header("taba-batch-id"), age, window,
            ages_not_logged_ > 0 ? fmt::format(" ({} more such batches not logged)", ages_not_logged_) : std::string());
  ages_not_logged_ = 0;
  return true;
}

void Ingest::settle(const std::shared_ptr<http::Exchange>& exchange, Accepted body, std::shared_ptr<Refused> refused) {
  // A body without a batch id gets one; a 503 names it so that a retry
  // with it is applied at most once.
  std::string batch_id(exchange->request().header("taba-batch-id"));
  bool generated = batch_id.empty();
  if (generated) batch_id = new_batch_id();
  if (body.batch.empty()) {
    if (refused->blocks == 0) {
      ++stats_.bodies_ok;
      reply(*exchange, http::Response::text(200, ""));
      return;
    }
    // Every block refused: nothing to apply.
    ++stats_.bodies_rejected;
    refused->hand_to(sink_, batch_id);
    reply(*exchange, refused->response(400));
    return;
  }
  uint64_t t0 = uv_hrtime();
  const uint64_t events = body.events, clamped = body.clamped, delta_blocks = body.delta_blocks;
  const bool delta = body.delta;
  sink_->submit(std::move(body.batch), store::BatchId{batch_id, !generated}, std::move(body.bindings), events,
                [this, exchange, events, clamped, delta, delta_blocks, batch_id, generated, t0,
                 refused](const Status& s) {
                  if (latency_observer_) latency_observer_(static_cast<double>(uv_hrtime() - t0) / 1e6);
                  if (s.ok()) {
                    ++stats_.bodies_ok;
                    stats_.events_received += events;
                    stats_.events_clamped += clamped;
                    if (delta) {
                      ++stats_.delta_bodies;
                      stats_.delta_blocks += delta_blocks;
                      stats_.delta_events += events;
                    }
                    if (refused->blocks == 0) {
                      reply(*exchange, http::Response::text(200, ""));
                      return;
                    }
                    ++stats_.bodies_partial;
                    refused->hand_to(sink_, batch_id);
                    reply(*exchange, refused->response(200));
                  } else if (s.code() == Status::Code::kInvalid) {
                    ++stats_.bodies_rejected;
                    reply(*exchange, http::Response::text(400, s.message() + "\n"));
                  } else if (s.code() == Status::Code::kLimit) {
                    ++stats_.bodies_rejected;
                    ++stats_.bodies_over_limit;
                    reply(*exchange, http::Response::text(422, s.message() + "\n"));
                  } else {
                    ++stats_.bodies_unavailable;
                    http::Response r = http::Response::text(503, s.message() + "\n");
                    r.headers.push_back({"Retry-After", "1"});
                    if (generated) r.headers.push_back({"Taba-Batch-Id", batch_id});
                    reply(*exchange, std::move(r));
                  }
                });
}

void Ingest::note_refusals(const http::Request& req, const std::vector<protocol::Refusal>& refusals,
                           const char* unit) {
  for (const protocol::Refusal& r : refusals) {
    stats_.events_refused += r.events;
    for (size_t k = 0; k < kRefusalKinds.size(); ++k) {
      if (std::string_view(r.kind) == kRefusalKinds[k]) ++stats_.blocks_refused[k];
    }
  }
  // At most kRefusalLogBurst lines per second; the rest are counted and
  // summed up in the next line that is written.
  int64_t now = steady_ms();
  if (now - refusal_log_window_ms_ >= 1000) {
    refusal_log_window_ms_ = now;
    refusal_log_lines_ = 0;
  }
  for (const protocol::Refusal& r : refusals) {
    if (refusal_log_lines_ >= kRefusalLogBurst) {
      ++refusals_not_logged_;
      continue;
    }
    ++refusal_log_lines_;
    std::string suppressed;
    if (refusals_not_logged_ > 0) {
      suppressed = fmt::format(" ({} earlier refusals not logged)", refusals_not_logged_);
      refusals_not_logged_ = 0;
    }
    log::warn("ingest: {} from {}: block of client \"{}\" name \"{}\" refused ({} events): {} {}: {}{}", req.path,
              req.peer, r.client, r.name, r.events, unit, r.line, r.reason, suppressed);
  }
}

void Ingest::write_refusal_metrics(MetricsWriter* w, std::string_view prefix) const {
  std::string blocks = fmt::format("{}_blocks_refused_total", prefix);
  w->family(blocks, "counter",
            "Name blocks of ingest bodies refused, by kind (client, name, event, type, payload, state); the body's "
            "good blocks were applied.");
  for (size_t k = 0; k < kRefusalKinds.size(); ++k) {
    w->sample(blocks, static_cast<double>(stats_.blocks_refused[k]), {{"kind", std::string(kRefusalKinds[k])}});
  }
  w->counter(fmt::format("{}_events_refused_total", prefix), "Events in refused name blocks.",
             static_cast<double>(stats_.events_refused));
  w->counter(fmt::format("{}_bodies_partial_total", prefix),
             "Bodies applied in part: some blocks refused, the rest accepted (200 with the refusals listed).",
             static_cast<double>(stats_.bodies_partial));
  w->counter(fmt::format("{}_delta_bodies_total", prefix),
             "POST /post_delta bodies accepted (their deltas folded at the edge; also counted among the accepted "
             "bodies).",
             static_cast<double>(stats_.delta_bodies));
  w->counter(fmt::format("{}_delta_blocks_total", prefix),
             "Delta blocks (one (client, name) state each) of accepted /post_delta bodies.",
             static_cast<double>(stats_.delta_blocks));
  w->counter(fmt::format("{}_delta_events_total", prefix),
             "Events folded into the delta blocks accepted (also counted among the events received).",
             static_cast<double>(stats_.delta_events));
}

std::string Ingest::new_batch_id() {
  return fmt::format("{:016x}{:016x}", rng_(), rng_());
}

Ingest::Ingest(store::Store* store, const plugin::Registry* registry, const Config::Ingest& options)
    : owned_sink_(std::make_unique<StoreSink>(store)), sink_(owned_sink_.get()), registry_(registry), options_(options) {}

Ingest::Ingest(IngestSink* sink, const plugin::Registry* registry, const Config::Ingest& options)
    : sink_(sink), registry_(registry), options_(options) {}

Ingest::~Ingest() = default;

std::unique_ptr<http::RequestHandler> Ingest::start(const std::shared_ptr<http::Exchange>& exchange) {
  const http::Request& req = exchange->request();
  if (req.path == "/post_delta" && !sink_->accepts_deltas()) {
    reply(*exchange, http::Response::text(404, "/post_delta: this process takes no delta bodies; post v1 to /post\n"));
    return nullptr;
  }
  if (req.method != "POST") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only POST\n", req.path));
    r.headers.push_back({"Allow", "POST"});
    reply(*exchange, std::move(r));
    return nullptr;
  }
  std::optional<http::Inflater::Format> compression;
  // Content codings are case-insensitive (RFC 9110 §8.4.1).
  std::string encoding(req.header("content-encoding"));
  for (char& c : encoding) c = ascii_lower(c);
  if (encoding == "gzip" || encoding == "x-gzip") {
    compression = http::Inflater::Format::kZlibOrGzip;
  } else if (encoding == "deflate") {
    compression = http::Inflater::Format::kDeflate;
  } else if (!encoding.empty() && encoding != "identity") {
    ++stats_.bodies_rejected;
    reply(*exchange, http::Response::text(
                         415, fmt::format("unsupported Content-Encoding \"{}\" (use gzip, deflate or none)\n", encoding)));
    return nullptr;
  } else if (req.path == "/post_zip") {
    compression = http::Inflater::Format::kZlibOrGzip;  // the original agent's zlib body, no header
  }
  std::string_view batch_id = req.header("taba-batch-id");
  if (batch_id.size() > 128 || std::any_of(batch_id.begin(), batch_id.end(), [](char c) { return c <= ' ' || c > '~'; })) {
    ++stats_.bodies_rejected;
    reply(*exchange,
          http::Response::text(400, "Taba-Batch-Id must be 1..128 printable ASCII characters without spaces\n"));
    return nullptr;
  }
  // An agent's re-send near or past the dedup window (an empty header counts as absent).
  if (std::string_view age = req.header("taba-batch-age"); !age.empty() && !note_batch_age(*exchange, age)) {
    return nullptr;
  }
  if (req.path == "/post_delta") return std::make_unique<DeltaIngestRequest>(this, exchange, compression);
  return std::make_unique<IngestRequest>(this, exchange, compression);
}

}  // namespace taba::routes
