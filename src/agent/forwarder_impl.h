// Forwarder::Impl: the state the forwarder's worker threads share, for the
// three files that implement it: forwarder.cpp (the public calls and the
// worker loop: take a segment, read it, send it, settle it),
// segment_sending.cpp (how one segment is sent: its main part as deltas or
// v1, then its leftovers) and refusal_settlement.cpp (what the fe refused:
// a refused batch re-sent post by post, refused blocks and posts moved to
// the dead letters).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/dead_letters.h"
#include "agent/endpoint_pool.h"
#include "agent/fe_post.h"
#include "agent/forwarder.h"
#include "agent/segment_forms.h"
#include "http/client.h"
#include "protocol/v1_encoder.h"

namespace taba::agent {

struct Forwarder::Impl {
  Impl(Spool* s, ForwarderOptions o);

  Spool* spool = nullptr;
  ForwarderOptions options;  // options.handlers under mu (set_handlers)

  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Segment> queue;
  EndpointPool endpoints;  // under mu
  std::vector<std::thread> workers;
  int running = 0;
  bool stop_requested = false;
  int64_t stop_deadline_ms = 0;
  std::map<int64_t, int64_t> enqueued_at;  // segment number -> wall ms, for the oldest age
  ForwarderStats totals;                   // counters only (dead letters: dead_letters)
  std::unique_ptr<DeadLetters> dead_letters;
  int64_t wait_logged_ms = 0;  // steady ms of the last "waits for /post_delta" line
  // The shutdown deadline (steady ms; INT64_MAX until stop_at): requests in
  // flight end by it (http::ClientConnection::set_cutoff), so that a silent
  // fe cannot hold the agent past its grace.
  std::atomic<int64_t> cutoff_ms{INT64_MAX};

  // One segment being sent: what a worker holds for it.
  struct Sending {
    Segment& seg;
    const SegmentContents& contents;
    const SegmentForms& forms;
    Endpoint& ep;
    std::optional<http::ClientConnection>& conn;
    int timeout_ms;
    const std::string& token;
    const std::atomic<int64_t>* cutoff;
    int64_t batch_age_s = -1;  // >= 0: its posts say Taba-Batch-Age (see batch_age_to_mark)
    uint64_t events_ok = 0;    // applied by the fe so far
    mutable bool sent = false;  // a post went out (the fe may have it)

    PostTarget to() const { return PostTarget{ep, token, conn, timeout_ms, cutoff, batch_age_s, &sent}; }
  };

  // forwarder.cpp

  bool past_stop_deadline();
  void worker_main();
  // The age (s) to send as Taba-Batch-Age with `seg` to `ep`: since it may
  // first have reached an fe (Segment::sent_since_ms), when that is close to
  // or past the dedup window the fe last stated (less a tenth, at least
  // 1 s); else -1. Under mu.
  static int64_t batch_age_to_mark(const Segment& seg, const Endpoint& ep, int64_t now_wall_ms);
  // Adds to the forwarder's counters (under mu).
  void count(const std::function<void(ForwarderStats&)>& f);

  // segment_sending.cpp

  // Sends a segment: its main part (as deltas, or as v1 to an fe without
  // /post_delta), then its leftovers; or post by post once it was split.
  Attempt send_segment(Sending& s);
  // *as_v1: the fe does not take /post_delta, or the segment does not
  // fold: its main part is to go as v1.
  Attempt send_main_deltas(Sending& s, bool* as_v1);
  Attempt send_main_v1(Sending& s);
  Attempt send_leftovers(Sending& s);
  // Counts a delta post the fe answered (acknowledged when a.outcome is
  // kOk; refused whole otherwise: its bytes only).
  void count_delta_post(const Attempt& a, size_t wire_bytes, uint64_t blocks_applied);
  // Records what an endpoint's answer to /post_delta says of it (logged
  // when it changes).
  void note_delta_route(Endpoint& ep, bool served, const Attempt& a);
  // The segment holds delta records and `ep` takes no deltas now (`last`:
  // its answer to /post_delta, if it was asked).
  Attempt wait_for_delta(const Sending& s, const Attempt& last) const;

  // poison_batch.cpp

  // `a` is a 5xx the batch being sent got from the endpoint numbered
  // `ep_index`, which had acknowledged `acks_before` segments when the
  // attempt began: marks it a strike when the endpoint acknowledged other
  // batches since (a.strike), and past the bound writes the batch's unsent
  // part as dead letters (a.gave_up; outcome kOk).
  void note_server_error(Sending& s, int ep_index, uint64_t acks_before, Attempt* a);
  // The batch's unsent part as dead letters "<id>-failing" (v1; delta
  // records: "<id>-failing-<record>.delta"), with `reason`.
  Attempt give_up(Sending& s, const Attempt& a, const std::string& reason);

  // refusal_settlement.cpp

  // The fe applied a v1 body but refused some of its blocks (200 with
  // Taba-Refused-Blocks): those blocks become one dead letter. `encode`
  // maps blocks of the body sent (indices into its block lines) to a v1
  // body of the segment's records holding just them. False when the dead
  // letter could not be written. *refused_events: events in the refused
  // blocks.
  bool settle_refusals(const std::string& id, const Attempt& a,
                       const std::vector<protocol::V1Encoder::BlockLines>& lines,
                       const std::function<std::string(const std::vector<size_t>&, uint64_t*)>& encode,
                       const std::string& endpoint, uint64_t* refused_events);
  // The same for a delta body (SegmentForms::refused): refused blocks
  // folded from v1 blocks become a v1 dead letter ("<id>-refused") of the
  // events they were folded from, refused copied delta blocks a delta dead
  // letter ("<id>-refused-delta"). False when one could not be written.
  bool settle_delta_refusals(const std::string& id, const RefusedDeltas& refused, const Attempt& a,
                             const std::string& endpoint);
  // The fe refused a batch of several posts: sends each post on its own
  // (see refusal_settlement.cpp). kRetry when some post could not be settled
  // yet.
  Attempt send_split(Sending& s);
  // Split: record `i` (a delta batch) on its own to /post_delta, as
  // "<id>-<i>".
  Attempt send_delta_post(Sending& s, size_t i);
  // A dead letter could not be written: the segment stays and is tried
  // again later (the endpoint is not to blame).
  static Attempt unsettled(Attempt a);
  // Writes the body and the reason into the dead-letter directory. False
  // when they could not be written (the caller then keeps the segment).
  bool dead_letter(const std::string& id, const std::string& body, uint64_t events, const Attempt& a,
                   const std::string& endpoint, const std::string& suffix = ".v1");
};

}  // namespace taba::agent
