// The client's sending side: a queue of encoded bodies, each with the batch
// id it keeps for its whole life, POSTed oldest first to <endpoint>/post.
//
// Delivery is at-least-once on the wire and exactly-once in effect: a body
// that failed (transport error, timeout, 5xx, 503...) is re-sent later with
// the same Taba-Batch-Id, which the receiver uses to apply it only once even
// when the first attempt did arrive and only its 200 was lost. The receiver
// refuses name blocks, not bodies: a 200 listing refused blocks ("line N:
// reason", header Taba-Refused-Blocks) applied the rest, and the refused
// blocks' events are counted as dropped_rejected. A 400, 413 or 415 means
// nothing of the body can ever be taken (every block refused, or the body
// unreadable): it is dropped whole.
//
// A receiver remembers batch ids only for itself (an agent for
// agent.dedup_ttl_s), so a retry must go where the first attempt went: once
// a body's request bytes may have reached a server (the connection was made
// and sending began), the body is pinned to that address (IP and port) and
// every retry connects only there, even when the endpoint's host name
// resolves to other addresses too. The pin goes with the body's answer
// (200, 400, 413, 415). A pinned address that gives no HTTP answer for
// pin_timeout_ms releases the body to any address: counted in `repinned`
// and said in last_error, since the body may then be counted twice. Bodies
// go oldest first, so only the front body can be pinned (docs/client.md).
//
// Thread-safety: one thread (the flush thread) calls everything except
// stats(), which any thread may call.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "client/encoder.h"
#include "http/client.h"
#include "http/url.h"

namespace taba::client {

struct SenderOptions {
  http::Url endpoint;  // target is the path "/post" is appended to
  size_t max_retry_bytes = 64u << 20;
  int timeout_ms = 5000;
  std::string token;
  bool compress = false;
  int64_t pin_timeout_ms = 600'000;
};

struct SenderStats {
  uint64_t sent = 0;  // events
  uint64_t posts_ok = 0;
  uint64_t posts_failed = 0;
  uint64_t dropped_rejected = 0;        // events in blocks or bodies the receiver refused
  uint64_t dropped_retry_overflow = 0;  // events
  uint64_t dropped_unsent = 0;          // events, by drop_all()
  uint64_t queued_events = 0;
  uint64_t queued_bytes = 0;
  uint64_t queued_bodies = 0;
  uint64_t repinned = 0;  // pinned bodies released to any address after pin_timeout_ms
  std::string last_error;
};

class Sender {
 public:
  explicit Sender(SenderOptions options);

  // Queues `body` under a fresh batch id, first dropping the oldest bodies
  // while the queue would exceed max_retry_bytes.
  void enqueue(Body body);

  // POSTs queued bodies, oldest first, until the queue is empty (true), a
  // post fails (false; the failed body stays first in the queue and a
  // backoff starts) or deadline_ms (steady clock) passes (false).
  bool send(int64_t deadline_ms);

  bool empty() const { return queue_.empty(); }
  // Steady-clock ms before which a failed receiver is not tried again by
  // the periodic tick (Flush() does not wait for it).
  int64_t retry_at_ms() const { return retry_at_ms_; }

  // Drops every queued body (counted in dropped_unsent).
  void drop_all();

  SenderStats stats() const;

 private:
  struct Pending {
    Body body;
    std::string batch_id;                  // 32 lowercase hex digits
    std::optional<http::PeerAddress> pin;  // where its bytes may have gone; retries go there only
    int64_t pin_heard_ms = 0;              // when pinned, or when the pinned address last answered
  };
  enum class Outcome { kOk, kRejected, kRetry };

  std::string new_batch_id();
  // *refused: a 200's refusal lines (blocks the receiver did not apply).
  // Pins `p` to the address its bytes may have reached.
  Outcome post(Pending& p, int timeout_ms, std::string* error, std::string* refused);
  // Releases the front body's pin when its address has not answered for
  // pin_timeout_ms; the note for last_error, or "".
  std::string release_stale_pin(int64_t now);
  // Takes the front body off the queue: `applied` of its events were
  // taken, the rest refused.
  void settle_front(uint64_t applied);
  void backoff(int64_t now);

  SenderOptions options_;
  std::string target_;    // endpoint path + "/post"
  std::string base_url_;  // "http://host:port", for messages
  std::deque<Pending> queue_;
  std::optional<http::ClientConnection> conn_;
  std::mt19937_64 rng_;
  int failures_ = 0;  // consecutive failed posts
  int64_t retry_at_ms_ = 0;

  mutable std::mutex stats_mu_;  // stats_ is read by Status() on other threads
  SenderStats stats_;
};

}  // namespace taba::client
