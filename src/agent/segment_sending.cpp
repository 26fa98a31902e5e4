// How the forwarder sends one sealed segment (see forwarder.h and
// segment_forms.h): its main part under the segment's batch id, as one
// delta batch to /post_delta, or as one v1 body to /post_zip when the fe
// does not serve /post_delta (a segment holding delta records then waits);
// then its leftovers, the blocks of types the agent has no plugin for, as
// one v1 body under "<id>-v1". Each part is settled once: a part the fe
// refused whole is re-sent post by post (send_split), refused blocks
// become dead letters (refusal_settlement.cpp).
#include <fmt/format.h>

#include <set>

#include "agent/forwarder_impl.h"
#include "core/clock.h"
#include "core/log.h"
#include "protocol/delta_batch.h"

namespace taba::agent {
namespace {

// Blocks of `body` (numbered in it, from 0) -> a v1 body of just them, for
// settle_refusals.
std::function<std::string(const std::vector<size_t>&, uint64_t*)> blocks_of(const SegmentForms& forms,
                                                                            const V1Body& body) {
  return [&forms, &body](const std::vector<size_t>& blocks, uint64_t* events) {
    std::set<size_t> picked;
    for (size_t k : blocks) {
      if (k < body.blocks.size()) picked.insert(body.blocks[k]);
    }
    V1Body sub = forms.v1([&](size_t b) { return picked.count(b) > 0; });
    *events = sub.events;
    return sub.text;
  };
}

}  // namespace

Attempt Forwarder::Impl::send_segment(Sending& s) {
  Segment& seg = s.seg;
  if (seg.split) return send_split(s);
  Attempt a;
  a.outcome = Outcome::kOk;
  if (!seg.main_settled && s.forms.main_events() > 0) {
    bool deltas = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      deltas = EndpointPool::may_take_deltas(s.ep, steady_ms());
    }
    bool as_v1 = false;
    if (deltas) a = send_main_deltas(s, &as_v1);
    if (!deltas || as_v1) {
      if (s.forms.holds_deltas()) return wait_for_delta(s, a);
      a = send_main_v1(s);
    }
    // A part refused whole was split: the segment is settled (or not) post by post.
    if (seg.split || a.outcome != Outcome::kOk) return a;
  }
  seg.main_settled = true;
  if (s.forms.leftover_events() == 0) return a;
  return send_leftovers(s);
}

Attempt Forwarder::Impl::send_main_deltas(Sending& s, bool* as_v1) {
  Segment& seg = s.seg;
  DeltaBody body;
  Status folded = s.forms.fold(&body);
  if (!folded.ok()) {
    Attempt a;
    a.status = -1;  // not the endpoint's fault
    a.message = fmt::format("cannot fold batch {}: {}", seg.batch_id, folded.message());
    if (folded.code() != Status::Code::kUnavailable) {
      // A record that reads but does not fold (damage its checksum missed),
      // or a handler that cannot serialize: v1 needs neither (the encoder
      // skips what it cannot read).
      log::error("agent: {}; sending it as v1", a.message);
      *as_v1 = true;
    } else {
      log::error("agent: {}; it stays in the spool and is tried again", a.message);
    }
    return a;
  }
  std::string wire = protocol::wrap_delta_body(body.batch);
  if (options.compress_deltas) wire = http::zlib_compress(wire, options.zlib_level);
  Attempt a = post_delta(wire, options.compress_deltas, seg.batch_id, s.to());
  if (a.no_delta_route) {
    note_delta_route(s.ep, false, a);
    *as_v1 = true;
    return a;
  }
  if (a.outcome != Outcome::kRetry) note_delta_route(s.ep, true, a);
  if (a.outcome == Outcome::kRetry) return a;
  RefusedDeltas refused = s.forms.refused(body, a.refusals);
  // A 400 that names every block: each was refused on its own, nothing
  // was applied; they are dead letters like the refused blocks of a 200.
  bool all_named = a.outcome == Outcome::kDeadLetter && a.status == 400 && refused.blocks == body.blocks;
  if (a.outcome == Outcome::kOk || all_named) {
    if (!settle_delta_refusals(seg.batch_id, refused, a, s.ep.address)) return unsettled(a);
    s.events_ok += body.events - std::min(body.events, refused.events());
    count_delta_post(a, wire.size(), body.blocks - refused.blocks);
    a.outcome = Outcome::kOk;
    return a;
  }
  log::warn("agent: batch {} of {} post(s) refused ({}: {}); sending its posts one by one", seg.batch_id,
            s.contents.records.size(), a.status, a.message);
  return send_split(s);
}

Attempt Forwarder::Impl::send_main_v1(Sending& s) {
  Segment& seg = s.seg;
  V1Body body = s.forms.main_v1();
  Attempt a;
  a.outcome = Outcome::kOk;
  if (body.events == 0) return a;
  std::string compressed = http::zlib_compress(body.text, options.zlib_level);
  a = post_zip(compressed, seg.batch_id, s.to());
  if (a.outcome == Outcome::kOk) {
    uint64_t refused_events = 0;
    if (!settle_refusals(seg.batch_id, a, body.lines, blocks_of(s.forms, body), s.ep.address, &refused_events)) {
      return unsettled(a);
    }
    s.events_ok += body.events - std::min(body.events, refused_events);
    count([&](ForwarderStats& t) {
      t.bytes_sent += compressed.size();
      ++t.v1_posts;
    });
    return a;
  }
  if (a.outcome == Outcome::kDeadLetter) {
    log::warn("agent: batch {} of {} post(s) refused ({}: {}); sending its posts one by one", seg.batch_id,
              s.contents.records.size(), a.status, a.message);
    return send_split(s);
  }
  return a;
}

Attempt Forwarder::Impl::send_leftovers(Sending& s) {
  V1Body body = s.forms.leftovers();
  Attempt a;
  a.outcome = Outcome::kOk;
  if (body.events == 0) return a;
  const std::string id = s.seg.batch_id + "-v1";
  std::string compressed = http::zlib_compress(body.text, options.zlib_level);
  a = post_zip(compressed, id, s.to());
  if (a.outcome == Outcome::kRetry) return a;
  // A 400 naming every block refused each on its own (an fe without the
  // type's plugin either); settled like the refused blocks of a 200.
  bool all_named = a.outcome == Outcome::kDeadLetter && a.status == 400 && !a.refusals.empty() &&
                   refused_blocks(a.refusals, body.lines).size() == body.lines.size();
  uint64_t refused_events = 0;
  if (a.outcome == Outcome::kOk || all_named) {
    if (!settle_refusals(id, a, body.lines, blocks_of(s.forms, body), s.ep.address, &refused_events)) {
      return unsettled(a);
    }
  } else {
    // Refused whole for another reason (413, 422): kept whole, as a dead letter.
    if (!dead_letter(id, body.text, body.events, a, s.ep.address)) return unsettled(a);
    refused_events = body.events;
  }
  s.events_ok += body.events - std::min(body.events, refused_events);
  count([&](ForwarderStats& t) {
    t.bytes_sent += compressed.size();
    if (a.outcome == Outcome::kOk) ++t.v1_posts;
    t.leftover_events += body.events - std::min(body.events, refused_events);
  });
  a.outcome = Outcome::kOk;
  return a;
}

void Forwarder::Impl::count_delta_post(const Attempt& a, size_t wire_bytes, uint64_t blocks_applied) {
  count([&](ForwarderStats& t) {
    t.bytes_sent += wire_bytes;
    if (a.outcome == Outcome::kOk) {
      ++t.delta_posts;
      t.delta_blocks += blocks_applied;
    }
  });
}

void Forwarder::Impl::note_delta_route(Endpoint& ep, bool served, const Attempt& a) {
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    changed = endpoints.delta_answered(ep, served, steady_ms(), options.delta_probe_ms);
  }
  if (!changed) return;
  if (served) {
    log::info("agent: {} takes POST /post_delta: forwarding deltas to it", ep.address);
  } else {
    log::warn("agent: {} does not take POST /post_delta (HTTP {}: {}; a tabad older than this agent?): sending it "
              "v1 bodies to /post_zip, and deltas again in {} s",
              ep.address, a.status, a.message, options.delta_probe_ms / 1000);
  }
}

Attempt Forwarder::Impl::wait_for_delta(const Sending& s, const Attempt& last) const {
  Attempt a = last;
  a.outcome = Outcome::kRetry;
  a.waiting_for_delta = true;
  a.message = last.no_delta_route
                  ? fmt::format("{} answered POST /post_delta with HTTP {}", s.ep.address, last.status)
                  : fmt::format("{} does not take POST /post_delta", s.ep.address);
  return a;
}

}  // namespace taba::agent
