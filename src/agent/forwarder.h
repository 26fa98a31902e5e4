// The agent's forwarder: sends sealed spool segments to fe endpoints.
//
// Worker threads (blocking HTTP with timeouts, one keep-alive connection per
// endpoint each) take segments in order. A segment's main part (the blocks
// of types the agent has plugins for, folded into one state per (client,
// name, type), and the blocks of its delta records) goes as one delta batch
// to POST /post_delta with the segment's Taba-Batch-Id, so a retry after a
// lost 200 (or a restart) is applied once; blocks of types no plugin of the
// agent serves go as a zlib'd v1 body to /post_zip under "<id>-v1" (see
// segment_forms.h). An fe that does not know /post_delta gets the main part
// as a zlib'd v1 body to /post_zip instead, and is tried with deltas again
// every few minutes; a segment holding delta records waits for an fe that
// takes them.
//
//   200                        -> the segment is deleted; blocks it names as
//                                 refused ("block N:" / "line N:") become
//                                 dead letters
//   400, 413, other 4xx        -> the body can never be accepted as it is:
//                                 a 400 naming every block dead-letters
//                                 them; otherwise the segment's posts are
//                                 re-sent one by one (ids "<id>-<post>"),
//                                 and a refused post without the name block
//                                 the fe named in "line N:" (ids
//                                 "<id>-<post>-x<blocks>"); what is refused
//                                 moves to the dead-letter directory
//                                 (counted, logged)
//   401, 403, 404, 408, 429,
//   5xx, timeouts, refused     -> the endpoint backs off (exponential, with
//                                 jitter, at least Retry-After) and the
//                                 segment is retried, on another endpoint if
//                                 one is healthy
//   5xx while the same fe      -> the batch backs off, not the endpoint; after
//   acknowledged other batches    dead_letter_after_errors such answers, the
//                                 first dead_letter_after_ms ago, it becomes
//                                 a dead letter (poison_batch.cpp)
// The endpoint for each request is the least loaded healthy one (fewest
// requests in flight, then fewest recent failures, then round robin).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/dead_letters.h"
#include "agent/segment_forms.h"
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
  // The agent's handlers (type name -> handler), for folding v1 events into
  // deltas; none: every v1 block goes as a v1 leftover.
  std::shared_ptr<const HandlerMap> handlers;
  bool compress_deltas = true;       // zlib /post_delta bodies (Content-Encoding: deflate)
  size_t max_deltas = 10'000;        // states folded per segment (SegmentForms)
  int64_t delta_probe_ms = 300'000;  // an fe without /post_delta is tried again after this
  // A batch that an fe answers with 5xx while acknowledging other batches
  // becomes a dead letter after this many such answers (0: never), the
  // first at least dead_letter_after_ms ago.
  uint32_t dead_letter_after_errors = 20;
  int64_t dead_letter_after_ms = 600'000;
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
  int64_t dedup_window_s = -1;  // as its last reply stated (Taba-Dedup-Window); -1 unknown
  int delta = 0;                // /post_delta: 1 served, -1 not (v1 to it), 0 not tried
  double delta_probe_in_s = 0;  // delta -1: when it is tried again
};

struct ForwarderStats {
  uint64_t batches_forwarded = 0;
  uint64_t events_forwarded = 0;
  uint64_t bytes_sent = 0;           // request bodies (as sent: compressed unless compress_deltas is off)
  uint64_t delta_posts = 0;          // acknowledged posts by form: /post_delta
  uint64_t v1_posts = 0;             // and /post_zip
  uint64_t delta_blocks = 0;         // delta blocks acknowledged (folded states and copied blocks)
  uint64_t leftover_events = 0;      // events forwarded as v1 because no plugin of the agent serves their type
  uint64_t delta_waits = 0;          // times a segment holding deltas waited: no fe took /post_delta
  uint64_t waiting_for_delta = 0;    // segments waiting so now
  uint64_t retries = 0;              // attempts that failed and will be retried
  uint64_t dead_letters = 0;         // batches moved to the dead letters
  uint64_t dead_letter_events = 0;
  uint64_t dead_letters_discarded = 0;  // deleted beyond max_dead_letter_bytes
  uint64_t dead_letter_bytes = 0;    // in the directory now
  uint64_t corrupt_records_skipped = 0;
  uint64_t poison_batches = 0;       // batches moved to the dead letters after dead_letter_after_errors 5xx
  uint64_t failing_batches = 0;      // queued batches that got such a 5xx and back off on their own
  uint64_t past_dedup_window = 0;    // batches re-sent close to or past their fe's dedup window (Taba-Batch-Age)
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
  // New handlers (SIGHUP loaded plugins); segments read from now on fold
  // with them. Any thread.
  void set_handlers(std::shared_ptr<const HandlerMap> handlers);
  Status start();
  // A sealed segment to send. Any thread.
  void enqueue(Segment segment);
  // Asks the workers to stop taking new segments once `deadline_ms` (steady
  // clock, ms) has passed or the queue is empty; requests in flight end by
  // the deadline (their segment stays in the spool).
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
