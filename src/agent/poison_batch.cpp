// A batch an fe keeps answering with 5xx while it acknowledges the others
// (see forwarder.h): a "poison" batch, e.g. one that trips a bug or a
// per-shard outage in the fe. Such a 5xx says more about the batch than
// about the fe, so the batch backs off on its own and the endpoint does not
// (the other batches keep going). A 5xx counts against the batch only when
// the same endpoint acknowledged some other segment since the batch's
// previous 5xx from it (or since the attempt began): an fe that is briefly
// unavailable (store not ready, shutting down, a WAL behind) answers every
// batch 503 and so adds no strike to any; it backs off as an endpoint.
// A 503 backs the batch off alone too but is never a strike (see
// note_server_error). After agent.dead_letter_after_errors strikes, the first at least
// agent.dead_letter_after_s ago (defaults 20 and 10 minutes: the batch's own
// backoff alone makes 20 strikes take 3 to 6 minutes), the batch's unsent
// part becomes dead letters (docs/operations.md, "Refused blocks and dead
// letters"), which an operator can post again once the cause is fixed.
#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

#include "agent/forwarder_impl.h"
#include "core/clock.h"
#include "core/log.h"
#include "protocol/delta_batch.h"

namespace taba::agent {

void Forwarder::Impl::note_server_error(Sending& s, int ep_index, uint64_t acks_before, Attempt* a) {
  Segment& seg = s.seg;
  int64_t now = steady_ms();
  {
    std::lock_guard<std::mutex> lock(mu);
    uint64_t mark =
        seg.last_5xx_endpoint == ep_index ? std::min(seg.last_5xx_acks, acks_before) : acks_before;
    a->strike = s.ep.acked > mark;
    seg.last_5xx_endpoint = ep_index;
    seg.last_5xx_acks = s.ep.acked;
    if (!a->strike) return;
    // A 503 says "retry with the same id": in Redis mode the fe answers it
    // after some shards appended (or when WAIT saw too few replicas), so
    // the fe may hold part of the batch, and a dead letter posted again
    // would count that part twice. Such a batch backs off alone but is
    // never given up.
    if (a->status == 503) return;
    if (seg.strikes++ == 0) seg.first_strike_ms = now;
    if (options.dead_letter_after_errors == 0 || seg.strikes < options.dead_letter_after_errors ||
        now - seg.first_strike_ms < options.dead_letter_after_ms) {
      return;
    }
  }
  std::string reason = fmt::format(
      "batch {} ({} events) answered HTTP {} {} times over {:.0f} s by {}, which acknowledged other batches "
      "meanwhile (agent.dead_letter_after_errors = {}, agent.dead_letter_after_s = {}); last answer: {}\n",
      seg.batch_id, seg.events, a->status, seg.strikes,
      static_cast<double>(now - seg.first_strike_ms) / 1000.0, s.ep.address, options.dead_letter_after_errors,
      options.dead_letter_after_ms / 1000, a->message);
  *a = give_up(s, *a, reason);
}

Attempt Forwarder::Impl::give_up(Sending& s, const Attempt& a, const std::string& reason) {
  Segment& seg = s.seg;
  const SegmentContents& contents = s.contents;
  const std::string id = seg.batch_id + "-failing";
  // What the fe has not applied yet: the records not settled (split), or
  // the main part unless it was settled, and the leftovers.
  protocol::V1Encoder v1;
  uint64_t events = 0;
  const bool leftovers_only = seg.main_settled && !seg.split;  // the main part was applied
  std::set<std::pair<uint32_t, uint32_t>> leftovers;           // (record, block) no plugin here folds
  if (leftovers_only) {
    for (const V1Block& b : s.forms.v1_blocks()) {
      if (!b.foldable) leftovers.emplace(b.record, b.index);
    }
  }
  for (size_t i = 0; i < contents.records.size(); ++i) {
    if (seg.split && i < seg.done.size() && seg.done[i]) continue;
    std::string_view batch = contents.records[i].batch;
    if (protocol::is_delta_batch(batch)) {
      if (leftovers_only) continue;  // copied into the main part, applied
      if (!dead_letters->write(fmt::format("{}-{}", id, i), protocol::wrap_delta_body(batch),
                               contents.records[i].events, reason, ".delta")) {
        return unsettled(a);
      }
      events += contents.records[i].events;
      continue;
    }
    const std::vector<size_t> none;
    const std::vector<size_t>& skipped = seg.split && i < seg.skipped.size() ? seg.skipped[i] : none;
    Status st = v1.add_batch(batch, [&](size_t b) {
      if (std::binary_search(skipped.begin(), skipped.end(), b)) return false;
      return !leftovers_only || leftovers.count({static_cast<uint32_t>(i), static_cast<uint32_t>(b)}) > 0;
    });
    if (!st.ok()) {
      log::error("agent: batch {}: record {} does not read ({}); left out of its dead letter", id, i,
                 st.message());
    }
  }
  uint64_t v1_events = v1.events();
  if (v1_events > 0 && !dead_letters->write(id, v1.finish(), v1_events, reason)) return unsettled(a);
  events += v1_events;
  log::error(
      "agent: gave up on batch {} after {} HTTP 5xx answers while its fe acknowledged other batches: its {} "
      "unsent events are dead letters {}* (post them again once the fe takes them)",
      seg.batch_id, seg.strikes, events, dead_letters->dir() + "/dl-" + id);
  Attempt done = a;
  done.outcome = Outcome::kOk;
  done.gave_up = true;
  return done;
}

}  // namespace taba::agent
