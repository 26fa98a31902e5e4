// The forwarder's endpoint choice and backoff (see endpoint_pool.h).
#include "agent/endpoint_pool.h"

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "http/url.h"

namespace taba::agent {

EndpointPool::EndpointPool(const std::vector<std::string>& addresses, int backoff_initial_ms,
                           int backoff_max_ms)
    : backoff_initial_ms_(backoff_initial_ms), backoff_max_ms_(backoff_max_ms) {
  for (const std::string& a : addresses) {
    Endpoint e;
    e.address = a;
    http::split_endpoint(a, &e.host, &e.port);
    endpoints_.push_back(std::move(e));
  }
}

int EndpointPool::choose(int64_t now, int64_t* wait_until_ms, bool need_delta) {
  int best = -1;
  *wait_until_ms = INT64_MAX;
  size_t n = endpoints_.size();
  for (size_t k = 0; k < n; ++k) {
    size_t i = (round_robin_ + k) % n;
    const Endpoint& e = endpoints_[i];
    int64_t usable_at = e.retry_at_ms;
    if (need_delta && !may_take_deltas(e, now)) usable_at = std::max(usable_at, e.delta_probe_at_ms);
    if (usable_at > now) {
      *wait_until_ms = std::min(*wait_until_ms, usable_at);
      continue;
    }
    if (best < 0) {
      best = static_cast<int>(i);
      continue;
    }
    const Endpoint& b = endpoints_[static_cast<size_t>(best)];
    if (e.in_flight < b.in_flight ||
        (e.in_flight == b.in_flight && e.consecutive_failures < b.consecutive_failures)) {
      best = static_cast<int>(i);
    }
  }
  if (best >= 0) ++round_robin_;
  return best;
}

bool EndpointPool::any_takes_deltas(int64_t now) const {
  for (const Endpoint& e : endpoints_) {
    if (may_take_deltas(e, now)) return true;
  }
  return false;
}

bool EndpointPool::delta_answered(Endpoint& ep, bool served, int64_t now, int64_t probe_ms) {
  int before = ep.delta;
  ep.delta = served ? 1 : -1;
  if (!served) ep.delta_probe_at_ms = now + probe_ms;
  return before != ep.delta;
}

int64_t EndpointPool::backoff_ms(uint32_t failures) {
  int64_t d = backoff_initial_ms_;
  for (uint32_t i = 1; i < failures && d < backoff_max_ms_; ++i) d *= 2;
  d = std::min<int64_t>(d, backoff_max_ms_);
  // Equal jitter: half fixed, half random, so that agents restarted
  // together do not retry in lockstep.
  std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(d / 2, 1));
  return d / 2 + jitter(rng_);
}

void EndpointPool::failed(Endpoint& ep, std::string error, int64_t retry_after_ms) {
  ++ep.failures;
  ++ep.consecutive_failures;
  ep.last_error = std::move(error);
  ep.retry_at_ms = steady_ms() + std::max(backoff_ms(ep.consecutive_failures), retry_after_ms);
}

void EndpointPool::batch_failed(Endpoint& ep, std::string error) {
  ++ep.failures;
  ep.last_error = std::move(error);
}

void EndpointPool::answered(Endpoint& ep, double latency_ms) {
  ++ep.ok;
  ep.consecutive_failures = 0;
  ep.latency_ms_ewma = ep.latency_ms_ewma == 0 ? latency_ms : 0.8 * ep.latency_ms_ewma + 0.2 * latency_ms;
}

std::vector<EndpointStatus> EndpointPool::status(int64_t now) const {
  std::vector<EndpointStatus> out;
  for (const Endpoint& e : endpoints_) {
    EndpointStatus es;
    es.address = e.address;
    es.in_flight = e.in_flight;
    es.requests = e.requests;
    es.ok = e.ok;
    es.failures = e.failures;
    es.consecutive_failures = e.consecutive_failures;
    es.retry_in_s = e.retry_at_ms > now ? static_cast<double>(e.retry_at_ms - now) / 1000.0 : 0;
    es.latency_ms_ewma = e.latency_ms_ewma;
    es.last_error = e.last_error;
    es.dedup_window_s = e.dedup_window_s;
    es.delta = e.delta;
    es.delta_probe_in_s =
        e.delta < 0 && e.delta_probe_at_ms > now ? static_cast<double>(e.delta_probe_at_ms - now) / 1000.0 : 0;
    if (e.retry_at_ms > now) {
      es.state = "backoff";
    } else if (e.consecutive_failures > 0) {
      es.state = "failing";
    } else {
      es.state = e.ok > 0 ? "up" : "unknown";
    }
    out.push_back(std::move(es));
  }
  return out;
}

}  // namespace taba::agent
