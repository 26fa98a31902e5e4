// The ingest routes of the fe role: POST /post and POST /post_zip (v1
// bodies, decoded here), and POST /post_delta (delta batches folded at the
// edge: routes/delta_ingest.h).
//
// A body streams through (optional) decompression into the v1 decoder,
// which validates every event into a batch. The unit of refusal is the
// (client, name) block: the good blocks go to the store (or the agent's
// spool) and the reply, once they are durable and applied, is 200 listing
// the refused blocks ("line N: reason", or JSON with Accept:
// application/json; header Taba-Refused-Blocks). A body whose blocks are
// all refused answers 400 with the same list; a body whose framing cannot
// be read (version line, blank lines around a client ID, an over-long
// line) answers 400 and nothing of it is applied. Every refusal is counted
// and logged (rate-limited). A delta body is answered the same way, its
// blocks numbered instead of its lines ("block N: reason").
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "core/config.h"
#include "http/inflate.h"
#include "http/server.h"
#include "protocol/v1_decoder.h"
#include "store/store.h"

namespace taba::routes {

class MetricsWriter;

// The kinds of Refusal::kind, in the order of IngestStats::blocks_refused
// ("state": a delta block whose state the plugin cannot read).
inline constexpr std::array<std::string_view, 6> kRefusalKinds = {"client", "name",    "event",
                                                                  "type",   "payload", "state"};

struct IngestStats {
  uint64_t bodies_ok = 0;
  uint64_t bodies_rejected = 0;     // 400 / 413 / 415 / 422
  uint64_t bodies_over_limit = 0;   // of those: refused by a configured limit (413 events, 422 names)
  uint64_t bodies_unavailable = 0;  // 503
  uint64_t events_received = 0;     // in accepted bodies
  uint64_t events_clamped = 0;      // future timestamps clamped to now
  uint64_t bytes_received = 0;      // on the wire
  uint64_t bodies_partial = 0;      // 200 with some blocks refused
  std::array<uint64_t, kRefusalKinds.size()> blocks_refused{};  // by kind
  uint64_t events_refused = 0;                                  // in refused blocks
  // POST /post_delta: accepted bodies, the blocks they applied and the
  // events those fold (also counted in bodies_ok and events_received).
  uint64_t delta_bodies = 0;
  uint64_t delta_blocks = 0;
  uint64_t delta_events = 0;
  // Bodies marked Taba-Batch-Age: a batch sent again close to or past the
  // dedup window this process states (an agent's retry after a long outage).
  uint64_t batches_past_dedup_window = 0;
};

// Where an accepted body goes: the store (fe) or the agent's spool.
class IngestSink {
 public:
  virtual ~IngestSink() = default;
  // The type a name is bound to, or nullptr (unknown here).
  virtual const plugin::Handler* bound_handler(std::string_view name) const = 0;
  // Takes a validated batch of `events` events (a v1 batch, or a delta
  // batch from /post_delta: protocol::is_delta_batch); done as Store::submit.
  virtual void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings,
                      uint64_t events, std::function<void(const Status&)> done) = 0;
  // Whether refused() wants the refused blocks' text (the agent keeps them
  // as dead letters; the fe only reports them).
  virtual bool keeps_refused() const { return false; }
  // Whether a v1 block of a type no loaded plugin serves is taken with the
  // checks that need no plugin only (client, name, timestamps, payload
  // JSON), for the next hop to check: the agent forwards such blocks as v1.
  // Otherwise (the fe) it is refused: "unknown type". (A delta block of such
  // a type is refused everywhere: its state cannot be read.)
  virtual bool forwards_unknown_types() const { return false; }
  // Called once a body's good blocks are accepted (or it had none), with
  // its refused blocks as a v1 body (empty unless keeps_refused()), the
  // body's batch id, their event count and the "line N: reason" lines.
  virtual void refused(const std::string& v1_text, const std::string& batch_id, uint64_t events,
                       const std::string& reasons) {
    (void)v1_text, (void)batch_id, (void)events, (void)reasons;
  }
  // Whether the sink takes /post_delta bodies (their batches are delta
  // batches); a sink that does not answers 404 there.
  virtual bool accepts_deltas() const { return false; }
  // refused() for a /post_delta body: its refused blocks as a delta batch
  // (protocol/delta_batch.h; empty unless keeps_refused()) and the
  // "block N: reason" lines.
  virtual void refused_deltas(const std::string& delta_batch, const std::string& batch_id, uint64_t events,
                              const std::string& reasons) {
    (void)delta_batch, (void)batch_id, (void)events, (void)reasons;
  }
};

// What a body's refused blocks make of its reply (ingest_reply.h).
struct Refused;

class Ingest {
 public:
  // The fe: bodies go to the store.
  Ingest(store::Store* store, const plugin::Registry* registry, const Config::Ingest& options);
  // The agent: bodies go to `sink` (not owned).
  Ingest(IngestSink* sink, const plugin::Registry* registry, const Config::Ingest& options);
  ~Ingest();

  static bool handles(std::string_view path) {
    return path == "/post" || path == "/post_zip" || path == "/post_delta";
  }
  // Creates the body handler for an ingest request, or replies (404 for
  // /post_delta when the sink takes no deltas, 405, 415) and returns nullptr.
  std::unique_ptr<http::RequestHandler> start(const std::shared_ptr<http::Exchange>& exchange);

  const IngestStats& stats() const { return stats_; }
  // SIGHUP: new limits for bodies that start from now on.
  void set_options(const Config::Ingest& options) { options_ = options; }
  // The fe: how long the store remembers an applied batch id (seconds),
  // stated in every reply as Taba-Dedup-Window (docs/api.md 4.3). -1 (the
  // default, the agent): not stated.
  void set_dedup_window_s(int64_t seconds) { dedup_window_s_ = seconds; }
  // Called with each accepted or refused body's time from its last byte to
  // its reply (milliseconds).
  void set_latency_observer(std::function<void(double)> f) { latency_observer_ = std::move(f); }
  // A random 128-bit batch id (hex) for a body that came without one.
  std::string new_batch_id();
  // <prefix>_blocks_refused_total{kind}, _events_refused_total,
  // _bodies_partial_total, and the /post_delta families
  // _delta_bodies_total, _delta_blocks_total, _delta_events_total.
  void write_refusal_metrics(MetricsWriter* w, std::string_view prefix) const;

 private:
  friend class IngestRequest;
  friend class DeltaIngestRequest;
  static constexpr int kRefusalLogBurst = 10;  // log lines per second
  // Counts and logs refused blocks; `unit` is what Refusal::line numbers
  // ("line", or "block" in a delta body).
  void note_refusals(const http::Request& req, const std::vector<protocol::Refusal>& refusals,
                     const char* unit);
  // The decompressor of a body with Content-Encoding, bounded by
  // ingest.max_inflated_bytes and ingest.max_inflate_ratio.
  std::unique_ptr<http::Inflater> make_inflater(http::Inflater::Format format) const;
  // Answers `status` with the one-line reason (a body refused whole).
  void reject(http::Exchange& exchange, int status, const std::string& why);
  // Every reply of the ingest routes goes through here (Taba-Dedup-Window).
  void reply(http::Exchange& exchange, http::Response response) const;
  // A Taba-Batch-Age header: counted and logged (at most a line a second).
  // False when it is not a whole number of seconds (then answered 400).
  bool note_batch_age(http::Exchange& exchange, std::string_view age);
  // An accepted body: hands its batch (when it has blocks to apply) to the
  // sink and replies once the sink settles it: 200 (listing `refused`), or
  // the sink's 400 / 422 / 503; a body with nothing to apply answers at
  // once (200, or 400 when it had refused blocks).
  struct Accepted {
    std::string batch;  // "" = nothing to apply
    std::string batch_id;
    bool generated = false;  // batch_id made here
    store::Bindings bindings;
    uint64_t events = 0;
    uint64_t clamped = 0;
    uint64_t delta_blocks = 0;  // a delta body's blocks applied (0 for v1)
    bool delta = false;
  };
  void settle(const std::shared_ptr<http::Exchange>& exchange, Accepted body,
              std::shared_ptr<Refused> refused);
  std::unique_ptr<IngestSink> owned_sink_;
  IngestSink* sink_;
  const plugin::Registry* registry_;
  Config::Ingest options_;
  IngestStats stats_;
  std::function<void(double)> latency_observer_;
  std::mt19937_64 rng_{std::random_device{}()};
  int64_t dedup_window_s_ = -1;
  int64_t age_log_window_ms_ = 0;
  uint64_t ages_not_logged_ = 0;
  int64_t refusal_log_window_ms_ = 0;
  int refusal_log_lines_ = 0;
  uint64_t refusals_not_logged_ = 0;
};

}  // namespace taba::routes
