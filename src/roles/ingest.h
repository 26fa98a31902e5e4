// The ingest routes of the fe role: POST /post and POST /post_zip.
//
// A body streams through (optional) decompression into the v1 decoder,
// which validates every event into a batch. Only when the whole body is
// valid is the batch handed to the store; the reply waits for the store to
// make it durable and apply it. Any error answers 400 naming the line, and
// nothing of that body is applied.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "core/config.h"
#include "http/server.h"
#include "store/store.h"

namespace taba::roles {

struct IngestStats {
  uint64_t bodies_ok = 0;
  uint64_t bodies_rejected = 0;     // 400 / 413 / 415 / 422
  uint64_t bodies_over_limit = 0;   // of those: refused by a configured limit (413 events, 422 names)
  uint64_t bodies_unavailable = 0;  // 503
  uint64_t events_received = 0;     // in accepted bodies
  uint64_t events_clamped = 0;      // future timestamps clamped to now
  uint64_t bytes_received = 0;      // on the wire
};

// Where an accepted body goes: the store (fe) or the agent's spool.
class IngestSink {
 public:
  virtual ~IngestSink() = default;
  // The type a name is bound to, or nullptr (unknown here).
  virtual const plugin::Handler* bound_handler(std::string_view name) const = 0;
  // Takes a validated batch of `events` events; done as Store::submit.
  virtual void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings, uint64_t events,
                      std::function<void(const Status&)> done) = 0;
};

class Ingest {
 public:
  // The fe: bodies go to the store.
  Ingest(store::Store* store, const plugin::Registry* registry, const Config::Ingest& options);
  // The agent: bodies go to `sink` (not owned).
  Ingest(IngestSink* sink, const plugin::Registry* registry, const Config::Ingest& options);
  ~Ingest();

  static bool handles(std::string_view path) { return path == "/post" || path == "/post_zip"; }
  // Creates the body handler for an ingest request, or replies (405, 415)
  // and returns nullptr.
  std::unique_ptr<http::RequestHandler> start(const std::shared_ptr<http::Exchange>& exchange);

  const IngestStats& stats() const { return stats_; }
  // SIGHUP: new limits for bodies that start from now on.
  void set_options(const Config::Ingest& options) { options_ = options; }
  // Called with each accepted or refused body's time from its last byte to
  // its reply (milliseconds).
  void set_latency_observer(std::function<void(double)> f) { latency_observer_ = std::move(f); }
  // A random 128-bit batch id (hex) for a body that came without one.
  std::string new_batch_id();

 private:
  friend class IngestRequest;
  std::unique_ptr<IngestSink> owned_sink_;
  IngestSink* sink_;
  const plugin::Registry* registry_;
  Config::Ingest options_;
  IngestStats stats_;
  std::function<void(double)> latency_observer_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace taba::roles
