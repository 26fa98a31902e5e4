#include "roles/ingest.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "core/clock.h"
#include "core/log.h"
#include "core/string_map.h"
#include "core/validation.h"
#include "http/inflate.h"
#include "protocol/v1_decoder.h"

namespace taba::roles {
namespace {

// Resolves types against the store's bindings plus the bindings this body
// makes for the first time.
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
    if (!bound) {
      auto it = new_bindings_.find(name);
      if (it == new_bindings_.end()) {
        new_bindings_.emplace(std::string(name), wanted);
        return wanted;
      }
      bound = it->second;
    }
    if (bound != wanted) {
      *err = fmt::format("type \"{}\" conflicts with type \"{}\" bound to name \"{}\"", wanted->type_name,
                         bound->type_name, name);
      return nullptr;
    }
    return wanted;
  }

  std::vector<std::pair<std::string, const plugin::Handler*>> take_bindings() {
    return {new_bindings_.begin(), new_bindings_.end()};
  }

 private:
  const IngestSink* sink_;
  const plugin::Registry* registry_;
  StringMap<const plugin::Handler*> new_bindings_;
};

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

class IngestRequest : public http::RequestHandler {
 public:
  IngestRequest(Ingest* ingest, std::shared_ptr<http::Exchange> exchange,
                std::optional<http::Inflater::Format> compression)
      : ingest_(ingest),
        exchange_(std::move(exchange)),
        resolver_(ingest->sink_, ingest->registry_),
        decoder_(&resolver_, &batch_, decode_options(ingest, now_)) {
    batch_.reset(now_);
    // Sizing the batch from the body length saves its regrowth copies.
    if (auto length = exchange_->request().content_length) {
      constexpr uint64_t kMaxReserve = 64ull << 20;
      uint64_t expect = compression ? *length * 4 : *length;
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
    if (events == 0) {
      ++ingest_->stats_.bodies_ok;
      exchange_->reply(http::Response::text(200, ""));
      return;
    }
    Ingest* ingest = ingest_;
    std::shared_ptr<http::Exchange> exchange = exchange_;
    // A body without a batch id gets one; a 503 names it so that a retry
    // with it is applied at most once.
    std::string batch_id(exchange_->request().header("taba-batch-id"));
    bool generated = batch_id.empty();
    if (generated) batch_id = ingest->new_batch_id();
    uint64_t t0 = uv_hrtime();
    ingest->sink_->submit(batch_.finish(), store::BatchId{batch_id, !generated}, resolver_.take_bindings(), events,
                           [ingest, exchange, events, clamped, batch_id, generated, t0](const Status& s) {
                             if (ingest->latency_observer_) {
                               ingest->latency_observer_(static_cast<double>(uv_hrtime() - t0) / 1e6);
                             }
                             if (s.ok()) {
                               ++ingest->stats_.bodies_ok;
                               ingest->stats_.events_received += events;
                               ingest->stats_.events_clamped += clamped;
                               exchange->reply(http::Response::text(200, ""));
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
  for (char& c : encoding) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
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

}  // namespace taba::roles
