// The forwarder's fe endpoints: which one a request goes to, and how long an
// endpoint rests after a failure.
//
// The endpoint for each request is the least loaded usable one (fewest
// requests in flight, then fewest recent failures, then round robin). An
// endpoint that fails backs off exponentially from backoff_initial_ms to
// backoff_max_ms, with equal jitter, and at least as long as the fe's
// Retry-After asked. An endpoint that answered POST /post_delta with 404,
// 405 or 415 (an older tabad) is sent v1 until its probe time, when the
// next segment tries /post_delta again. Not thread-safe: the forwarder calls
// it under its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "agent/forwarder.h"

namespace taba::agent {

struct Endpoint {
  std::string address;
  std::string host;
  int port = 0;
  int in_flight = 0;
  uint64_t requests = 0;
  uint64_t ok = 0;
  uint64_t failures = 0;
  uint32_t consecutive_failures = 0;
  int64_t retry_at_ms = 0;  // steady clock; usable from then on
  double latency_ms_ewma = 0;
  std::string last_error;
  // /post_delta: 0 not tried yet, 1 served, -1 not served (v1 until
  // delta_probe_at_ms, steady clock).
  int delta = 0;
  int64_t delta_probe_at_ms = 0;
  // Segments it acknowledged (2xx), for telling a poison batch from a sick
  // fe (poison_batch.cpp).
  uint64_t acked = 0;
  // The dedup window its last reply stated (Taba-Dedup-Window, seconds), or
  // -1 when none did.
  int64_t dedup_window_s = -1;
};

class EndpointPool {
 public:
  // `addresses` are host:port.
  EndpointPool(const std::vector<std::string>& addresses, int backoff_initial_ms, int backoff_max_ms);

  size_t size() const { return endpoints_.size(); }
  Endpoint& at(size_t i) { return endpoints_[i]; }

  // The endpoint to use now, or -1 (then *wait_until_ms says when one
  // becomes usable). With `need_delta`, only endpoints that may take
  // /post_delta now (served it, not tried, or due for a probe).
  int choose(int64_t now, int64_t* wait_until_ms, bool need_delta = false);
  // Whether `ep` is to be sent /post_delta now.
  static bool may_take_deltas(const Endpoint& ep, int64_t now) {
    return ep.delta >= 0 || now >= ep.delta_probe_at_ms;
  }
  // Whether some endpoint takes (or may take) /post_delta, backoff aside.
  bool any_takes_deltas(int64_t now) const;
  // `ep` answered /post_delta: served it, or not (then v1 until now + probe_ms).
  // True when this changed what is known of it.
  bool delta_answered(Endpoint& ep, bool served, int64_t now, int64_t probe_ms);
  // An attempt on `ep` failed with `error` (the fe asked for at least
  // `retry_after_ms`): it backs off.
  void failed(Endpoint& ep, std::string error, int64_t retry_after_ms);
  // The fe at `ep` answered (whatever the outcome) in `latency_ms`.
  void answered(Endpoint& ep, double latency_ms);
  // `ep` failed one batch (a 5xx) while it acknowledged others: counted
  // against it, but it does not back off (the batch does).
  void batch_failed(Endpoint& ep, std::string error);
  // A backoff after `failures` failures in a row: min(initial × 2^(n-1),
  // max), half of it random.
  int64_t backoff_ms(uint32_t failures);
  // Each endpoint's state, for ForwarderStats.
  std::vector<EndpointStatus> status(int64_t now) const;

 private:
  std::vector<Endpoint> endpoints_;
  int backoff_initial_ms_;
  int backoff_max_ms_;
  uint64_t round_robin_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace taba::agent
