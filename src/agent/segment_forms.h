// The forms a sealed spool segment is forwarded in (docs/operations.md,
// "Forwarding").
//
// A segment's records hold v1 batches (posts the agent validated) or delta
// batches (posts of states folded by a client-proxy). Its events are cut
// into two parts, each always sent under the same batch id whatever form
// it travels in, so that an fe deduplicating by id never drops one part
// for having seen the other:
//
//   main       the v1 blocks of types the agent has a plugin for, folded
//              into one delta state per (client, name, type), plus every
//              block of the delta records, copied as they are: one delta
//              batch for POST /post_delta under the segment's id. To an fe
//              without /post_delta the v1 blocks go as one v1 body under
//              the same id instead (a segment holding delta records
//              cannot go there and waits).
//   leftovers  the v1 blocks of types no plugin of the agent serves, which
//              cannot be folded, and those of (client, name, type)s past
//              max_deltas: one v1 body under "<id>-v1", for the fe to
//              check and apply.
//
// Everything here is a pure function of the segment's bytes, the agent's
// handlers and max_deltas, so a retry (even after a restart) sends the same
// bytes.
// The index reads block headers only; payloads are parsed by the fold.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/spool.h"
#include "core/status.h"
#include "core/string_map.h"
#include "plugin/handler.h"
#include "plugin/registry.h"
#include "protocol/v1_encoder.h"

namespace taba::agent {

// Type name -> handler, copied from the registry on the loop thread so that
// forwarder threads read it while SIGHUP loads plugins.
using HandlerMap = StringMap<const plugin::Handler*>;
HandlerMap handler_map(const plugin::Registry& registry);

// One (client, name) block of a v1 record.
struct V1Block {
  uint32_t record = 0;  // index into SegmentContents::records
  uint32_t index = 0;   // block number within its record's batch, from 0
  std::string_view client;
  std::string_view name;
  std::string_view type;
  uint32_t events = 0;
  bool foldable = false;  // a handler of the agent serves its type
};

// A v1 body of some of the segment's v1 blocks.
struct V1Body {
  std::string text;                                       // "" when it has no events
  uint64_t events = 0;
  std::vector<size_t> blocks;                             // the V1Blocks it holds, in body order
  std::vector<protocol::V1Encoder::BlockLines> lines;     // where each starts in `text`
};

// The main part as a delta batch.
struct DeltaBody {
  std::string batch;           // protocol/delta_batch.h (without the envelope)
  uint32_t folded_blocks = 0;  // blocks 1..folded_blocks were folded from v1 blocks
  uint32_t blocks = 0;         // the rest were copied from delta records
  uint64_t events = 0;
};

// What an fe refused of a delta body ("block N: reason" lines), as dead
// letters: the refused folded blocks as the v1 events they were folded
// from, and the refused copied blocks as a delta batch.
struct RefusedDeltas {
  struct Part {
    size_t blocks = 0;    // refused blocks of the body
    uint64_t events = 0;
    std::string body;     // v1 text, or a delta batch (no envelope); "" when none
    // One line per refused block: block N: client "c" name "n" type T,
    // E events: the fe's reason.
    std::string reasons;
  };
  size_t blocks = 0;  // distinct blocks the lines named
  Part v1;
  Part delta;
  uint64_t events() const { return v1.events + delta.events; }
};

// "block N: reason" lines of a reply: (N, reason), in order.
std::vector<std::pair<uint32_t, std::string_view>> refused_block_lines(std::string_view reply);

class SegmentForms {
 public:
  // Indexes the records of `contents` (which must outlive this). Records
  // that cannot be read are counted in corrupt() and sent nowhere. At most
  // `max_deltas` distinct (client, name, type) triples of v1 blocks are
  // folded (0: no limit): the blocks of later triples, in record order,
  // travel with the leftovers as v1, so the states one segment makes stay
  // bounded (agent.max_deltas_per_batch).
  SegmentForms(const SegmentContents& contents, const HandlerMap& handlers, size_t max_deltas = 0);

  uint32_t corrupt() const { return corrupt_; }
  bool holds_deltas() const { return !delta_records_.empty(); }
  // Events of the main part (v1 and delta), of the leftovers, and in all.
  uint64_t main_events() const { return foldable_events_ + delta_events_; }
  uint64_t leftover_events() const { return leftover_events_; }
  uint64_t events() const { return main_events() + leftover_events_; }
  const std::vector<V1Block>& v1_blocks() const { return blocks_; }

  // The main part as one delta batch. An error: a handler failed to
  // allocate or serialize a state (try again later).
  Status fold(DeltaBody* out) const;
  // The v1 blocks `pick` selects (by index into v1_blocks()) as one body.
  V1Body v1(const std::function<bool(size_t)>& pick) const;
  // The main part's v1 blocks as one body (to an fe without /post_delta).
  V1Body main_v1() const {
    return v1([this](size_t b) { return blocks_[b].foldable; });
  }
  V1Body leftovers() const {
    return v1([this](size_t b) { return !blocks_[b].foldable; });
  }
  // What the refusal lines of a reply to `sent` name, as dead letters.
  RefusedDeltas refused(const DeltaBody& sent, std::string_view reply) const;

 private:
  const SegmentContents& contents_;
  const HandlerMap& handlers_;
  size_t max_deltas_ = 0;
  std::vector<V1Block> blocks_;
  std::vector<uint32_t> v1_records_;     // records holding v1 batches that index cleanly
  std::vector<uint32_t> delta_records_;  // records holding delta batches that read cleanly
  uint32_t corrupt_ = 0;
  uint64_t foldable_events_ = 0;
  uint64_t leftover_events_ = 0;
  uint64_t delta_events_ = 0;
  double time_ = 0;  // the latest receive (or fold) time of its records
};

}  // namespace taba::agent
