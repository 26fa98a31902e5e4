// Forwarder::Impl: the state the forwarder's worker threads share, for the
// two files that implement it: forwarder.cpp (the public calls and the
// worker loop: take a segment, read it, post it, settle it) and
// refusal_settlement.cpp (what the fe refused: a refused batch re-sent post
// by post, refused blocks and posts moved to the dead letters).
#pragma once

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
#include "http/client.h"
#include "protocol/v1_encoder.h"

namespace taba::agent {

struct Forwarder::Impl {
  Impl(Spool* s, ForwarderOptions o);

  Spool* spool = nullptr;
  ForwarderOptions options;

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

  // forwarder.cpp

  // Reads a segment and encodes its records as one body (or, for a split
  // segment, leaves the encoding to send_split). Returns false when the file
  // cannot be read (*err says why).
  bool load(const Segment& seg, SegmentContents* contents, std::string* body, uint64_t* events,
            std::vector<protocol::V1Encoder::BlockLines>* block_lines, std::string* err);
  bool past_stop_deadline();
  void worker_main();

  // refusal_settlement.cpp

  // The fe applied a body but refused some of its blocks (200 with
  // Taba-Refused-Blocks): those blocks become one dead letter. `encode`
  // maps blocks of the body sent (indices into its block lines) to a v1
  // body of the segment's records holding just them. False when the dead
  // letter could not be written. *refused_events: events in the refused
  // blocks.
  bool settle_refusals(const std::string& id, const Attempt& a,
                       const std::vector<protocol::V1Encoder::BlockLines>& lines,
                       const std::function<std::string(const std::vector<size_t>&, uint64_t*)>& encode,
                       const std::string& endpoint, uint64_t* refused_events);
  // The fe refused a batch of several posts: sends each post on its own
  // (see refusal_settlement.cpp). kRetry when some post could not be settled
  // yet.
  Attempt send_split(Segment& seg, const SegmentContents& contents, Endpoint& ep,
                     std::optional<http::ClientConnection>& conn, int timeout_ms, uint64_t* events_ok);
  // A dead letter could not be written: the segment stays and is tried
  // again later (the endpoint is not to blame).
  static Attempt unsettled(Attempt a);
  // Writes the body and the reason into the dead-letter directory. False
  // when they could not be written (the caller then keeps the segment).
  bool dead_letter(const Segment& seg, const std::string& body, uint64_t events, const Attempt& a,
                   const std::string& endpoint);
};

}  // namespace taba::agent
