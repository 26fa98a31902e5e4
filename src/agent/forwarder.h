// The agent's forwarder: sends sealed spool segments to fe endpoints.
//
// Worker threads (blocking HTTP with timeouts, one keep-alive connection per
// endpoint each) take segments in order, encode each as one v1 body (many
// clients), zlib it, and POST it to /post_zip with the segment's
// Taba-Batch-Id, so a retry after a lost 200 (or a restart) is applied once.
//
//   200                        -> the segment is deleted
//   400, 413, other 4xx        -> the body can never be accepted as it is:
//                                 its posts are re-sent one by one (ids
//                                 "<id>-<post>"), and a refused post without
//                                 the name block the fe named in "line N:"
//                                 (ids "<id>-<post>-x<blocks>"); what is
//                                 refused moves to the dead-letter directory
//                                 (counted, logged)
//   401, 403, 404, 408, 429,
//   5xx, timeouts, refused     -> the endpoint backs off (exponential, with
//                                 jitter, at least Retry-After) and the
//                                 segment is retried, on another endpoint if
//                                 one is healthy
// The endpoint for each request is the least loaded healthy one (fewest
// requests in flight, then fewest recent failures, then round robin).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/spool.h"

namespace taba::agent {

struct ForwarderOptions {
  std::vector<std::string> endpoints;  // host:port
  int concurrency = 2;                 // worker threads
  int timeout_ms = 10'000;             // per request
  int backoff_initial_ms = 100;
  int backoff_max_ms = 30'000;
  std::string token;                   // Bearer token for the fes ("" = none)
  std::string dead_letter_dir;
  uint64_t max_dead_letter_bytes = 256ull << 20;  // oldest dead letters deleted beyond this
  int zlib_level = 1;
  // Called on a worker thread with the client batch ids of a segment's posts
  // once it is settled, before its file is deleted (the agent journals them).
  std::function<void(const std::vector<std::string>& client_ids)> on_settled;
};

struct EndpointStatus {
  std::string address;  // host:port
  std::string state;    // "up", "failing" (backoff over, not yet retried), "backoff", "unknown"
  int in_flight = 0;
  uint64_t requests = 0;
  uint64_t ok = 0;
  uint64_t failures = 0;             // all time
  uint32_t consecutive_failures = 0;
  double retry_in_s = 0;             // backoff left
  double latency_ms_ewma = 0;
  std::string last_error;
};

struct ForwarderStats {
  uint64_t batches_forwarded = 0;
  uint64_t events_forwarded = 0;
  uint64_t bytes_sent = 0;           // compressed
  uint64_t retries = 0;              // attempts that failed and will be retried
  uint64_t dead_letters = 0;         // batches moved to the dead letters
  uint64_t dead_letter_events = 0;
  uint64_t dead_letters_discarded = 0;  // deleted beyond max_dead_letter_bytes
  uint64_t dead_letter_bytes = 0;    // in the directory now
  uint64_t corrupt_records_skipped = 0;
  uint64_t queued_segments = 0;
  uint64_t in_flight = 0;
  double oldest_queued_age_s = 0;
  std::vector<EndpointStatus> endpoints;
};

class Forwarder {
 public:
  Forwarder(Spool* spool, ForwarderOptions options);
  ~Forwarder();

  // The spool segments are deleted from (set before start()).
  void set_spool(Spool* spool);
  Status start();
  // A sealed segment to send. Any thread.
  void enqueue(Segment segment);
  // Asks the workers to stop taking new segments once `deadline_ms` (steady
  // clock, ms) has passed or the queue is empty; requests in flight keep
  // their timeout, shortened to the deadline.
  void stop_at(int64_t deadline_ms);
  // True once every worker has exited.
  bool stopped() const;
  // Joins the workers (call after stopped(), or it blocks). Idempotent.
  void join();

  ForwarderStats stats() const;
  // Writes a dead letter `dl-<id>.v1` (the body; `dl-<id><suffix>` with
  // another suffix, e.g. ".delta" for a delta body) and `dl-<id>.reason`,
  // counted with the forwarder's own, once per id. Any thread (it writes
  // and fsyncs two small files). False when they could not be written.
  bool dead_letter(const std::string& id, const std::string& v1_body, uint64_t events, const std::string& reason,
                   const std::string& suffix = ".v1");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::agent
