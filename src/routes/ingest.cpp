#include "routes/ingest.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "core/ascii.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/string_map.h"
#include "core/validation.h"
#include "http/inflate.h"
#include "protocol/payload.h"
#include "protocol/v1_decoder.h"
#include "query/accept.h"
#include "routes/metrics.h"

namespace taba::routes {
namespace {

// Resolves types against the store's bindings plus the bindings this body
// makes for the first time. A new binding counts the blocks using it; one
// whose blocks were all refused is forgotten (a refused block binds nothing).
class BodyResolver : public protocol::TypeResolver {
 public:
  BodyResolver(const IngestSink* sink, const plugin::Registry* registry) : sink_(sink), registry_(registry) {}

  const plugin::Handler* resolve(std::string_view name, std::string_view type, std::string* err) override {
    const plugin::Handler* wanted = registry_->find(type);
    if (!wanted) {
      *err = fmt::format("unknown type \"{}\" (no loaded plugin serves it)", quote_for_error(type));
      return nullptr;
    }
    const plugin::Handler* bound = sink_->bound_handler(name);
    NewBinding* fresh = nullptr;
    if (!bound) {
      auto it = new_bindings_.find(name);
      if (it == new_bindings_.end()) {
        new_bindings_.emplace(std::string(name), NewBinding{wanted, 1});
        return wanted;
      }
      fresh = &it->second;
      bound = fresh->handler;
    }
    if (bound != wanted) {
      *err = fmt::format("type \"{}\" conflicts with type \"{}\" bound to name \"{}\"", wanted->type_name,
                         bound->type_name, name);
      return nullptr;
    }
    if (fresh) ++fresh->blocks;
    return wanted;
  }

  void refused(std::string_view name) override {
    auto it = new_bindings_.find(name);
    if (it != new_bindings_.end() && --it->second.blocks == 0) new_bindings_.erase(it);
  }

  std::vector<std::pair<std::string, const plugin::Handler*>> take_bindings() {
    std::vector<std::pair<std::string, const plugin::Handler*>> out;
    out.reserve(new_bindings_.size());
    for (const auto& [name, b] : new_bindings_) out.emplace_back(name, b.handler);
    return out;
  }

 private:
  struct NewBinding {
    const plugin::Handler* handler;
    uint32_t blocks;  // blocks of this body using it, not refused
  };
  const IngestSink* sink_;
  const plugin::Registry* registry_;
  StringMap<NewBinding> new_bindings_;
};

// The reply's account of refused blocks: "line N: reason" lines, or with
// JSON {"events": <applied>, "refused": [{"line", "client", "name",
// "events", "reason"}]} (docs/api.md, "Partial acceptance").
std::string refusal_body(const std::vector<protocol::Refusal>& refusals, uint64_t applied, bool json) {
  std::string out;
  if (!json) {
    for (const protocol::Refusal& r : refusals) out += fmt::format("line {}: {}\n", r.line, r.reason);
    return out;
  }
  out = fmt::format("{{\"events\": {}, \"refused\": [", applied);
  for (size_t i = 0; i < refusals.size(); ++i) {
    const protocol::Refusal& r = refusals[i];
    out += fmt::format("{}{{\"line\": {}, \"client\": ", i ? ", " : "", r.line);
    protocol::append_json_string(&out, r.client);
    out += ", \"name\": ";
    if (r.name.empty()) {
      out += "null";
    } else {
      protocol::append_json_string(&out, r.name);
    }
    out += fmt::format(", \"events\": {}, \"reason\": ", r.events);
    protocol::append_json_string(&out, r.reason);
    out += "}";
  }
  out += "]}\n";
  return out;
}

class StoreSink : public IngestSink {
 public:
  explicit StoreSink(store::Store* store) : store_(store) {}
  const plugin::Handler* bound_handler(std::string_view name) const override { return store_->bound_handler(name); }
  void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings, uint64_t,
              std::function<void(const Status&)> done) override {
    store_->submit(std::move(batch), std::move(batch_id), std::move(new_bindings), std::move(done));
  }

 private:
  store::Store* store_;
};

}  // namespace

// What a body's refused blocks make of its reply.
struct Refused {
  size_t blocks = 0;
  uint64_t events = 0;
  bool json = false;
  std::string body;  // refusal_body()
  std::string text;  // the refused blocks as a v1 body, when the sink keeps them
  std::string reasons;  // "line N: reason" lines

  http::Response response(int status) const {
    http::Response r = http::Response::text(status, body);
    if (json) r.content_type = "application/json";
    r.headers.push_back({"Taba-Refused-Blocks", std::to_string(blocks)});
    return r;
  }
};

class IngestRequest : public http::RequestHandler {
 public:
  IngestRequest(Ingest* ingest, std::shared_ptr<http::Exchange> exchange,
                std::optional<http::Inflater::Format> compression)
      : ingest_(ingest),
        exchange_(std::move(exchange)),
        resolver_(ingest->sink_, ingest->registry_),
        decoder_(&resolver_, &batch_, decode_options(ingest, now_)) {
    batch_.reset(now_);
    // Sizing the batch from the body length saves its regrowth copies (a
    // batch is about 0.7 of its v1 text, which zlib shrinks 6-7 times).
    if (auto length = exchange_->request().content_length) {
      constexpr uint64_t kMaxReserve = 64ull << 20;
      uint64_t expect = compression ? *length * 6 : *length;
      batch_.reserve(static_cast<size_t>(std::min(expect, kMaxReserve)));
    }
    if (compression) {
      http::Inflater::Limits limits;
      limits.max_output_bytes = static_cast<uint64_t>(ingest->options_.max_inflated_bytes);
      limits.max_ratio = static_cast<uint64_t>(ingest->options_.max_inflate_ratio);
      limits.output_limit_name = "ingest.max_inflated_bytes";
      limits.ratio_limit_name = "ingest.max_inflate_ratio";
      inflater_ = std::make_unique<http::Inflater>(*compression, limits);
    }
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
    uint64_t events = decoder_.events();
    uint64_t clamped = decoder_.clamped();
    Ingest* ingest = ingest_;
    std::shared_ptr<http::Exchange> exchange = exchange_;
    // A body without a batch id gets one; a 503 names it so that a retry
    // with it is applied at most once.
    std::string batch_id(exchange_->request().header("taba-batch-id"));
    bool generated = batch_id.empty();
    if (generated) batch_id = ingest->new_batch_id();
    // Refused blocks: logged and counted now; the good blocks go on.
    auto refused = std::make_shared<Refused>();
    if (!decoder_.refusals().empty()) {
      ingest->note_refusals(exchange_->request(), decoder_.refusals());
      refused->blocks = decoder_.refusals().size();
      for (const protocol::Refusal& r : decoder_.refusals()) refused->events += r.events;
      refused->json = query::negotiate(exchange_->request().header("accept"), {"text/plain", "application/json"}) ==
                      "application/json";
      refused->body = refusal_body(decoder_.refusals(), events, refused->json);
      refused->text = decoder_.refused_text();
      refused->reasons = refused->json ? refusal_body(decoder_.refusals(), events, false) : refused->body;
    }
    if (events == 0) {
      if (refused->blocks == 0) {
        ++ingest->stats_.bodies_ok;
        exchange_->reply(http::Response::text(200, ""));
        return;
      }
      // Every block refused: nothing to apply.
      failed_ = true;
      ++ingest->stats_.bodies_rejected;
      ingest->sink_->refused(refused->text, batch_id, refused->events, refused->reasons);
      exchange_->reply(refused->response(400));
      return;
    }
    uint64_t t0 = uv_hrtime();
    ingest->sink_->submit(batch_.finish(), store::BatchId{batch_id, !generated}, resolver_.take_bindings(), events,
                           [ingest, exchange, events, clamped, batch_id, generated, t0, refused](const Status& s) {
                             if (ingest->latency_observer_) {
                               ingest->latency_observer_(static_cast<double>(uv_hrtime() - t0) / 1e6);
                             }
                             if (s.ok()) {
                               ++ingest->stats_.bodies_ok;
                               ingest->stats_.events_received += events;
                               ingest->stats_.events_clamped += clamped;
                               if (refused->blocks == 0) {
                                 exchange->reply(http::Response::text(200, ""));
                                 return;
                               }
                               ++ingest->stats_.bodies_partial;
                               ingest->sink_->refused(refused->text, batch_id, refused->events, refused->reasons);
                               exchange->reply(refused->response(200));
                             } else if (s.code() == Status::Code::kInvalid) {
                               ++ingest->stats_.bodies_rejected;
                               exchange->reply(http::Response::text(400, s.message() + "\n"));
                             } else if (s.code() == Status::Code::kLimit) {
                               ++ingest->stats_.bodies_rejected;
                               ++ingest->stats_.bodies_over_limit;
                               exchange->reply(http::Response::text(422, s.message() + "\n"));
                             } else {
                               ++ingest->stats_.bodies_unavailable;
                               http::Response r = http::Response::text(503, s.message() + "\n");
                               r.headers.push_back({"Retry-After", "1"});
                               if (generated) r.headers.push_back({"Taba-Batch-Id", batch_id});
                               exchange->reply(std::move(r));
                             }
                           });
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
    ++ingest_->stats_.bodies_rejected;
    log::debug("ingest: {} from {} rejected: {}", exchange_->request().path, exchange_->request().peer, why);
    exchange_->reply(http::Response::text(status, why + "\n"));
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

void Ingest::note_refusals(const http::Request& req, const std::vector<protocol::Refusal>& refusals) {
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
    log::warn("ingest: {} from {}: block of client \"{}\" name \"{}\" refused ({} events): line {}: {}{}", req.path,
              req.peer, r.client, r.name, r.events, r.line, r.reason, suppressed);
  }
}

void Ingest::write_refusal_metrics(MetricsWriter* w, std::string_view prefix) const {
  std::string blocks = fmt::format("{}_blocks_refused_total", prefix);
  w->family(blocks, "counter",
            "Name blocks of ingest bodies refused, by kind (client, name, event, type, payload); the body's good "
            "blocks were applied.");
  for (size_t k = 0; k < kRefusalKinds.size(); ++k) {
    w->sample(blocks, static_cast<double>(stats_.blocks_refused[k]), {{"kind", std::string(kRefusalKinds[k])}});
  }
  w->counter(fmt::format("{}_events_refused_total", prefix), "Events in refused name blocks.",
             static_cast<double>(stats_.events_refused));
  w->counter(fmt::format("{}_bodies_partial_total", prefix),
             "Bodies applied in part: some blocks refused, the rest accepted (200 with the refusals listed).",
             static_cast<double>(stats_.bodies_partial));
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
  if (req.method != "POST") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only POST\n", req.path));
    r.headers.push_back({"Allow", "POST"});
    exchange->reply(std::move(r));
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
    exchange->reply(http::Response::text(
        415, fmt::format("unsupported Content-Encoding \"{}\" (use gzip, deflate or none)\n", encoding)));
    return nullptr;
  } else if (req.path == "/post_zip") {
    compression = http::Inflater::Format::kZlibOrGzip;  // the original agent's zlib body, no header
  }
  std::string_view batch_id = req.header("taba-batch-id");
  if (batch_id.size() > 128 || std::any_of(batch_id.begin(), batch_id.end(), [](char c) { return c <= ' ' || c > '~'; })) {
    ++stats_.bodies_rejected;
    exchange->reply(http::Response::text(
        400, "Taba-Batch-Id must be 1..128 printable ASCII characters without spaces\n"));
    return nullptr;
  }
  return std::make_unique<IngestRequest>(this, exchange, compression);
}

}  // namespace taba::routes
