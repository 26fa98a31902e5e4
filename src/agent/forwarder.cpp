// The forwarder's public calls and its worker loop: take the next segment,
// read it, send it to the least loaded endpoint, settle or requeue it (see
// forwarder.h; how a segment is sent is in segment_sending.cpp, refusals
// are settled in refusal_settlement.cpp).
#include "agent/forwarder.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "agent/forwarder_impl.h"
#include "core/clock.h"
#include "core/log.h"

namespace taba::agent {
namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Forwarder::Impl::Impl(Spool* s, ForwarderOptions o)
    : spool(s),
      options(std::move(o)),
      endpoints(options.endpoints, options.backoff_initial_ms, options.backoff_max_ms),
      dead_letters(std::make_unique<DeadLetters>(options.dead_letter_dir, options.max_dead_letter_bytes)) {}

bool Forwarder::Impl::past_stop_deadline() {
  std::lock_guard<std::mutex> lock(mu);
  return stop_requested && steady_ms() >= stop_deadline_ms;
}

void Forwarder::Impl::count(const std::function<void(ForwarderStats&)>& f) {
  std::lock_guard<std::mutex> lock(mu);
  f(totals);
}

void Forwarder::Impl::worker_main() {
  std::vector<std::optional<http::ClientConnection>> conns(endpoints.size());
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    int64_t now = steady_ms();
    if (stop_requested && (queue.empty() || now >= stop_deadline_ms)) break;
    if (queue.empty()) {
      wake.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    // The first queued segment an endpoint can take now: one known to hold
    // deltas needs an endpoint that may take /post_delta.
    int64_t wait_until = INT64_MAX;
    int ep_index = -1;
    auto it = queue.begin();
    for (; it != queue.end(); ++it) {
      if (it->retry_at_ms > now) {
        // The batch's own backoff (poison_batch.cpp): the others go on.
        wait_until = std::min(wait_until, it->retry_at_ms);
        continue;
      }
      int64_t until = 0;
      ep_index = endpoints.choose(now, &until, it->holds_deltas == 1);
      if (ep_index >= 0) break;
      wait_until = std::min(wait_until, until);
      if (it->holds_deltas != 1) break;  // no endpoint at all: none for the rest either
    }
    if (ep_index < 0) {
      int64_t until = std::min<int64_t>(wait_until, now + 1000);
      if (stop_requested) until = std::min(until, stop_deadline_ms);
      wake.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(until - now, 1)));
      continue;
    }
    Endpoint& ep = endpoints.at(static_cast<size_t>(ep_index));
    Segment seg = std::move(*it);
    queue.erase(it);
    ++ep.in_flight;
    ++ep.requests;
    ++totals.in_flight;
    int timeout_ms = options.timeout_ms;
    if (stop_requested)
      timeout_ms = static_cast<int>(std::clamp<int64_t>(stop_deadline_ms - now, 100, timeout_ms));
    std::string address = ep.address;
    std::shared_ptr<const HandlerMap> handlers = options.handlers;
    const uint64_t acks_before = ep.acked;
    const int64_t attempt_wall_ms = wall_ms();
    const int64_t batch_age_s = batch_age_to_mark(seg, ep, attempt_wall_ms);
    const int64_t dedup_window_s = ep.dedup_window_s;
    lock.unlock();

    std::string err;
    SegmentContents contents;
    Result<SegmentContents> read = read_segment(seg.path);
    bool readable = read.ok();
    if (readable) {
      contents = std::move(read.value());
    } else {
      err = read.status().message();
    }
    Attempt a;
    uint64_t events_ok = 0;
    if (!readable && ::access(seg.path.c_str(), F_OK) != 0 && errno == ENOENT) {
      // Gone (deleted by hand?): nothing left to send; release its bytes.
      log::error("agent: {} disappeared from the spool; its {} events are lost", seg.path, seg.events);
      std::lock_guard<std::mutex> g(mu);
      totals.corrupt_records_skipped += seg.records;
      readable = true;
      a.outcome = Outcome::kOk;
    } else if (!readable && err.find("header") != std::string::npos) {
      // Unreadable for good: keep it for inspection beside the dead letters.
      std::string aside = options.dead_letter_dir + "/corrupt-" + seg.path.substr(seg.path.rfind('/') + 1);
      log::error("agent: {}: {}; moved to {}", seg.path, err, aside);
      if (::rename(seg.path.c_str(), aside.c_str()) == 0) {
        std::lock_guard<std::mutex> g(mu);
        totals.corrupt_records_skipped += seg.records;
        readable = true;
        a.outcome = Outcome::kOk;
      } else {
        a.message = err;
      }
    } else if (!readable) {
      log::error("agent: cannot read {}: {}; it stays in the spool", seg.path, err);
      a.message = err;
    } else {
      static const HandlerMap kNoHandlers;
      SegmentForms forms(contents, handlers ? *handlers : kNoHandlers, options.max_deltas);
      uint64_t corrupt = contents.corrupt + forms.corrupt();
      if (corrupt > 0) {
        log::error("agent: {}: {} corrupt record(s) skipped (disk corruption?)", seg.path, corrupt);
        count([&](ForwarderStats& t) { t.corrupt_records_skipped += corrupt; });
      }
      seg.holds_deltas = forms.holds_deltas() ? 1 : 0;
      if (forms.events() == 0) {
        a.outcome = Outcome::kOk;  // nothing sendable in it: drop the file
        log::warn("agent: {} held no readable events; deleting it", seg.path);
      } else {
        Sending sending{seg, contents, forms, ep, conns[static_cast<size_t>(ep_index)], timeout_ms, options.token,
                        &cutoff_ms};
        sending.batch_age_s = batch_age_s;
        a = send_segment(sending);
        if (a.outcome == Outcome::kRetry && a.status >= 500 && !a.waiting_for_delta) {
          note_server_error(sending, ep_index, acks_before, &a);
        }
        events_ok = sending.events_ok;
        // From its first post that went out, an fe may hold the batch.
        if (sending.sent && seg.sent_since_ms == 0) seg.sent_since_ms = attempt_wall_ms;
      }
    }
    if (a.outcome != Outcome::kRetry && options.on_settled) {
      std::vector<std::string> ids;
      for (const SpoolRecord& r : contents.records) {
        if (!r.client_batch_id.empty()) ids.emplace_back(r.client_batch_id);
      }
      if (!ids.empty()) options.on_settled(ids);
    }
    if (a.outcome != Outcome::kRetry && !spool->remove(seg)) {
      a.outcome = Outcome::kRetry;  // sent, but its file would come back after a restart
      a.status = -1;
    }

    lock.lock();
    --ep.in_flight;
    --totals.in_flight;
    if (a.dedup_window_s >= 0) ep.dedup_window_s = a.dedup_window_s;
    if (batch_age_s >= 0 && !seg.past_dedup_window) {
      seg.past_dedup_window = true;
      ++totals.past_dedup_window;
      log::warn("agent: batch {} was sent again {} s after it may first have reached an fe, and {} remembers batch ids "
                "for {} s: if the fe applied it then, it is applied twice (sent with Taba-Batch-Age; raise the fe's "
                "dedup_ttl_s above the longest outage)",
                seg.batch_id, batch_age_s, address, dedup_window_s);
    }
    // status -1: a local problem (a dead letter could not be written), not the endpoint's.
    bool local_problem = !readable || a.status == -1;
    bool reached = a.status > 0;
    if (!a.waiting_for_delta) seg.waiting_for_delta = false;
    if (a.waiting_for_delta) {
      // No fe takes /post_delta now: the segment waits until one may (the
      // endpoints' probe times), without blaming the endpoint.
      if (reached) endpoints.answered(ep, a.latency_ms);
      seg.waiting_for_delta = true;
      ++totals.delta_waits;
      now = steady_ms();
      if (now - wait_logged_ms >= 60'000) {
        wait_logged_ms = now;
        size_t waiting = 1;
        for (const Segment& q : queue) waiting += q.waiting_for_delta ? 1 : 0;
        log::warn("agent: {} batch(es) hold delta records (from a client-proxy) and no fe takes POST /post_delta "
                  "now ({}); they wait, and the fes are tried with deltas again every {} s",
                  waiting, a.message, options.delta_probe_ms / 1000);
      }
    } else if (a.strike && !local_problem) {
      // The fe acknowledges other batches: this one backs off (or was given
      // up), not the endpoint.
      endpoints.batch_failed(ep, fmt::format("HTTP {}: {}", a.status, a.message));
      if (a.outcome == Outcome::kRetry) {
        int64_t rest = std::max(endpoints.backoff_ms(seg.strikes), a.retry_after_ms);
        seg.retry_at_ms = steady_ms() + rest;
        log::warn("agent: batch {} to {} failed ({}), {} time(s) while it acknowledged other batches; the batch "
                  "backs off {} ms",
                  seg.batch_id, address, ep.last_error, seg.strikes, rest);
      }
    } else if (a.outcome == Outcome::kRetry && !local_problem) {
      endpoints.failed(ep, reached ? fmt::format("HTTP {}: {}", a.status, a.message) : a.message,
                       a.retry_after_ms);
      log::warn("agent: batch {} to {} failed ({}); endpoint backs off {} ms", seg.batch_id, address,
                ep.last_error, ep.retry_at_ms - steady_ms());
    } else if (reached) {
      endpoints.answered(ep, a.latency_ms);
      if (a.outcome == Outcome::kOk && a.status >= 200 && a.status < 300 && !a.gave_up) ++ep.acked;
    }
    if (a.gave_up) ++totals.poison_batches;
    if (a.outcome == Outcome::kOk && events_ok > 0) {
      ++totals.batches_forwarded;
      totals.events_forwarded += events_ok;
    }
    if (a.outcome == Outcome::kRetry) {
      if (!a.waiting_for_delta) {
        ++totals.retries;
        ++seg.attempts;
      }
      if (local_problem) {
        // Unreadable or unwritable for now (EMFILE, a full disk): try again a little later.
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        lock.lock();
      }
      // At the back: a batch that keeps failing must not hold up the others.
      queue.push_back(std::move(seg));
    } else {
      enqueued_at.erase(static_cast<int64_t>(seg.number));
    }
    wake.notify_all();
  }
  --running;
  wake.notify_all();
}

int64_t Forwarder::Impl::batch_age_to_mark(const Segment& seg, const Endpoint& ep, int64_t now_wall_ms) {
  if (seg.sent_since_ms == 0) return -1;  // no fe can have it yet
  if (ep.dedup_window_s < 0) return -1;   // the fe has not said
  int64_t age_s = std::max<int64_t>(now_wall_ms - seg.sent_since_ms, 0) / 1000;
  // A margin for the time a request takes and for clocks: a tenth of the
  // window, at least a second.
  int64_t horizon_s = ep.dedup_window_s - std::max<int64_t>(ep.dedup_window_s / 10, 1);
  return age_s >= horizon_s ? age_s : -1;
}

Forwarder::Forwarder(Spool* spool, ForwarderOptions options)
    : impl_(std::make_unique<Impl>(spool, std::move(options))) {}

Forwarder::~Forwarder() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->stop_requested) {
      impl_->stop_requested = true;
      impl_->stop_deadline_ms = 0;
      impl_->cutoff_ms = 0;
    }
  }
  impl_->wake.notify_all();
  join();
}

void Forwarder::set_spool(Spool* spool) {
  impl_->spool = spool;
}

Status Forwarder::start() {
  impl_->dead_letters->scan();
  int n = std::max(1, impl_->options.concurrency);
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (int i = 0; i < n; ++i) {
    ++impl_->running;
    impl_->workers.emplace_back([m = impl_.get()] { m->worker_main(); });
  }
  return Status::Ok();
}

bool Forwarder::dead_letter(const std::string& id, const std::string& v1_body, uint64_t events,
                            const std::string& reason, const std::string& suffix) {
  return impl_->dead_letters->write(id, v1_body, events, reason, suffix);
}

void Forwarder::set_handlers(std::shared_ptr<const HandlerMap> handlers) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->options.handlers = std::move(handlers);
}

void Forwarder::enqueue(Segment segment) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->enqueued_at.emplace(static_cast<int64_t>(segment.number), wall_ms());
    impl_->queue.push_back(std::move(segment));
  }
  impl_->wake.notify_one();
}

void Forwarder::stop_at(int64_t deadline_ms) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop_requested = true;
    impl_->stop_deadline_ms = deadline_ms;
    impl_->cutoff_ms = deadline_ms;
  }
  impl_->wake.notify_all();
}

bool Forwarder::stopped() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->running == 0;
}

void Forwarder::join() {
  for (std::thread& t : impl_->workers) {
    if (t.joinable()) t.join();
  }
}

ForwarderStats Forwarder::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  ForwarderStats s = impl_->totals;
  DeadLetters::Stats d = impl_->dead_letters->stats();
  s.dead_letters = d.letters;
  s.dead_letter_events = d.events;
  s.dead_letters_discarded = d.discarded;
  s.dead_letter_bytes = d.bytes;
  s.queued_segments = impl_->queue.size();
  for (const Segment& q : impl_->queue) {
    s.waiting_for_delta += q.waiting_for_delta ? 1 : 0;
    s.failing_batches += q.strikes > 0 ? 1 : 0;
  }
  if (!impl_->enqueued_at.empty()) {
    int64_t oldest = INT64_MAX;
    for (const auto& [n, at] : impl_->enqueued_at) oldest = std::min(oldest, at);
    s.oldest_queued_age_s = static_cast<double>(wall_ms() - oldest) / 1000.0;
  }
  s.endpoints = impl_->endpoints.status(steady_ms());
  return s;
}

}  // namespace taba::agent
