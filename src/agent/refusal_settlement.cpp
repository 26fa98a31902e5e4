// The forwarder's settlement of what an fe refused (see forwarder.h): a
// 200 naming refused blocks dead-letters just those blocks; a batch refused
// whole is re-sent post by post under ids derived from the segment's, each
// refused post losing the name block its "line N:" points into, until every
// post is applied or dead-lettered. A post of delta records goes to
// /post_delta on its own, its refused blocks ("block N:") dead-lettered.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "agent/forwarder_impl.h"
#include "core/clock.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/log.h"
#include "protocol/delta_batch.h"

namespace taba::agent {
namespace {

// FNV-1a over the indices' decimal text, '.'-separated.
uint64_t hash_indices(const std::vector<size_t>& indices) {
  std::string text;
  for (size_t k = 0; k < indices.size(); ++k) {
    if (k) text += '.';
    text += std::to_string(indices[k]);
  }
  return fnv1a64(text);
}

}  // namespace

bool Forwarder::Impl::settle_refusals(
    const std::string& id, const Attempt& a, const std::vector<protocol::V1Encoder::BlockLines>& lines,
    const std::function<std::string(const std::vector<size_t>&, uint64_t*)>& encode,
    const std::string& endpoint, uint64_t* refused_events) {
  *refused_events = 0;
  if (a.refusals.empty()) return true;
  std::vector<size_t> blocks = refused_blocks(a.refusals, lines);
  std::string body = encode(blocks, refused_events);
  if (*refused_events == 0) {
    log::warn("agent: batch {}: {} refused blocks named lines this batch does not have: {}", id,
              blocks.size(), first_line(a.refusals));
    return true;
  }
  return dead_letters->write(
      id + "-refused", body, *refused_events,
      fmt::format("batch {}: {} events in {} name block(s) refused by {} ({}): {}", id, *refused_events,
                  blocks.size(), endpoint,
                  a.outcome == Outcome::kOk ? "the rest was applied" : fmt::format("HTTP {}", a.status),
                  a.refusals));
}

bool Forwarder::Impl::settle_delta_refusals(const std::string& id, const RefusedDeltas& refused, const Attempt& a,
                                            const std::string& endpoint) {
  if (refused.blocks == 0) {
    if (!a.refusals.empty()) {
      log::warn("agent: batch {}: refused blocks named blocks this batch does not have: {}", id,
                first_line(a.refusals));
    }
    return true;
  }
  auto reason = [&](const RefusedDeltas::Part& part) {
    return fmt::format("batch {}: {} events in {} name block(s) refused by {} ({}): {}", id, part.events,
                       part.blocks, endpoint,
                       a.outcome == Outcome::kOk ? "the rest was applied" : fmt::format("HTTP {}", a.status),
                       part.reasons);
  };
  // The folded blocks as the v1 events they were folded from: readable,
  // and re-posted as they are to any fe; the copied ones as a delta batch.
  if (refused.v1.blocks > 0 &&
      !dead_letters->write(id + "-refused", refused.v1.body, refused.v1.events, reason(refused.v1))) {
    return false;
  }
  if (refused.delta.blocks > 0 &&
      !dead_letters->write(id + "-refused-delta", protocol::wrap_delta_body(refused.delta.body), refused.delta.events,
                           reason(refused.delta), ".delta")) {
    return false;
  }
  return true;
}

// The fe refused a batch of several posts: sends each post on its own,
// with a batch id derived from the segment's (so a retry, even after a
// restart, is still applied once). A refused post whose reason names a
// line ("line N: ...") loses just the name block holding that line, which
// becomes a dead letter, and the rest is sent again under an id naming
// the blocks left out; a refusal without a line dead-letters the rest of
// the post. A post of delta records goes to /post_delta whole, its refused
// blocks dead-lettered; it waits while the endpoint takes no deltas.
// kRetry when some post could not be settled yet.
Attempt Forwarder::Impl::send_split(Sending& s) {
  Segment& seg = s.seg;
  const SegmentContents& contents = s.contents;
  Endpoint& ep = s.ep;
  uint64_t* events_ok = &s.events_ok;
  if (!seg.split) {
    // From now on this segment goes post by post, also after a restart.
    std::string marker = seg.path + ".split";
    FILE* f = std::fopen(marker.c_str(), "wb");
    if (!f || std::fclose(f) != 0) {
      Attempt a;
      a.message = fmt::format("cannot create {}: {}", marker, fileio::errno_text(errno));
      return unsettled(a);
    }
    std::string dir = seg.path.substr(0, seg.path.rfind('/'));
    fileio::sync_dir(dir.empty() ? "." : dir);
    seg.split = true;
  }
  seg.done.resize(contents.records.size(), 0);
  seg.skipped.resize(contents.records.size());
  Attempt last;
  for (size_t i = 0; i < contents.records.size(); ++i) {
    if (seg.done[i]) continue;
    std::string_view batch = contents.records[i].batch;
    if (protocol::is_delta_batch(batch)) {
      Attempt a = send_delta_post(s, i);
      if (a.outcome == Outcome::kRetry) return a;
      last = a;
      seg.done[i] = 1;
      continue;
    }
    std::vector<size_t>& skipped = seg.skipped[i];  // block indices left out, ascending
    for (;;) {
      if (past_stop_deadline()) {
        Attempt a;
        a.message = "stopping";
        return unsettled(a);
      }
      protocol::V1Encoder enc;
      std::vector<size_t> included;
      Status st = enc.add_batch(batch, [&](size_t b) {
        if (std::binary_search(skipped.begin(), skipped.end(), b)) return false;
        included.push_back(b);
        return true;
      });
      if (!st.ok() || enc.events() == 0) break;
      std::vector<protocol::V1Encoder::BlockLines> lines = enc.block_lines();
      uint64_t events = enc.events();
      std::string body = enc.finish();
      Segment one = seg;
      one.batch_id = fmt::format("{}-{}", seg.batch_id, i);
      // The blocks left out, as a fixed-length hash of their sorted
      // indices: deterministic across restarts, and within the fe's
      // 128-character limit however many blocks go.
      if (!skipped.empty()) one.batch_id += fmt::format("-x{:016x}", hash_indices(skipped));
      std::string compressed = http::zlib_compress(body, options.zlib_level);
      Attempt a = post_zip(compressed, one.batch_id, s.to());
      if (a.outcome == Outcome::kRetry) return a;
      if (a.outcome == Outcome::kOk) {
        uint64_t refused_events = 0;
        auto encode = [&](const std::vector<size_t>& blocks, uint64_t* n) {
          protocol::V1Encoder bad;
          bool ok = bad.add_batch(batch,
                                  [&](size_t x) {
                                    for (size_t k : blocks) {
                                      if (k < included.size() && included[k] == x) return true;
                                    }
                                    return false;
                                  })
                        .ok();
          *n = ok ? bad.events() : 0;
          return ok ? bad.finish() : std::string();
        };
        if (!settle_refusals(one.batch_id, a, lines, encode, ep.address, &refused_events))
          return unsettled(a);
        *events_ok += events - refused_events;
        std::lock_guard<std::mutex> g(mu);
        totals.bytes_sent += compressed.size();
        break;
      }
      last = a;
      // Which block does the fe's "line N:" point into?
      std::optional<size_t> culprit;
      uint64_t line = 0;
      if (a.message.rfind("line ", 0) == 0) {
        for (size_t k = 5; k < a.message.size() && a.message[k] >= '0' && a.message[k] <= '9'; ++k) {
          line = line * 10 + static_cast<uint64_t>(a.message[k] - '0');
        }
      }
      for (size_t k = 0; k < lines.size() && line > 0; ++k) {
        if (line >= lines[k].name_line && line <= lines[k].name_line + lines[k].events) culprit = k;
      }
      if (!culprit || included.size() == 1) {
        if (!dead_letter(one.batch_id, body, events, a, ep.address)) return unsettled(a);
        break;
      }
      size_t b = included[*culprit];
      protocol::V1Encoder alone;
      if (alone.add_batch(batch, [b](size_t x) { return x == b; }).ok()) {
        uint64_t n = alone.events();
        Segment bad = seg;
        bad.batch_id = fmt::format("{}-{}-b{}", seg.batch_id, i, b);
        if (!dead_letter(bad.batch_id, alone.finish(), n, a, ep.address)) return unsettled(a);
      }
      skipped.insert(std::upper_bound(skipped.begin(), skipped.end(), b), b);
      log::warn("agent: post {} of batch {}: name block {} refused ({}); sending the rest of the post", i,
                seg.batch_id, b, a.message);
    }
    seg.done[i] = 1;
  }
  // Settled: the segment is done; what was refused is in the dead letters.
  last.outcome = Outcome::kOk;
  return last;
}

Attempt Forwarder::Impl::send_delta_post(Sending& s, size_t i) {
  std::string_view batch = s.contents.records[i].batch;
  DeltaBody one;
  protocol::DeltaReader reader(batch);
  Status st = reader.open();
  protocol::DeltaBlock block;
  while (st.ok() && reader.next(&block, &st)) {
    ++one.blocks;
    one.events += block.events;
  }
  Attempt a;
  a.outcome = Outcome::kOk;
  if (!st.ok() || one.blocks == 0) return a;  // counted as corrupt when the segment was read
  bool deltas = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    deltas = EndpointPool::may_take_deltas(s.ep, steady_ms());
  }
  if (!deltas) return wait_for_delta(s, Attempt{});
  if (past_stop_deadline()) {
    a.outcome = Outcome::kRetry;
    a.message = "stopping";
    return unsettled(a);
  }
  one.batch = std::string(batch);
  const std::string id = fmt::format("{}-{}", s.seg.batch_id, i);
  std::string wire = protocol::wrap_delta_body(one.batch);
  if (options.compress_deltas) wire = http::zlib_compress(wire, options.zlib_level);
  a = post_delta(wire, options.compress_deltas, id, s.to());
  if (a.no_delta_route) {
    note_delta_route(s.ep, false, a);
    return wait_for_delta(s, a);
  }
  if (a.outcome == Outcome::kRetry) return a;
  note_delta_route(s.ep, true, a);
  RefusedDeltas refused = s.forms.refused(one, a.refusals);
  uint64_t refused_events = 0;
  if (a.outcome == Outcome::kOk || refused.blocks == one.blocks) {
    if (!settle_delta_refusals(id, refused, a, s.ep.address)) return unsettled(a);
    refused_events = refused.events();
  } else {
    // Refused whole for a reason naming no block: kept whole.
    if (!dead_letter(id, protocol::wrap_delta_body(one.batch), one.events, a, s.ep.address,
                     ".delta")) {
      return unsettled(a);
    }
    refused_events = one.events;
  }
  s.events_ok += one.events - std::min(one.events, refused_events);
  count_delta_post(a, wire.size(), one.blocks - refused.blocks);
  a.outcome = Outcome::kOk;
  return a;
}

Attempt Forwarder::Impl::unsettled(Attempt a) {
  a.outcome = Outcome::kRetry;
  a.status = -1;
  a.message = "cannot write a dead letter; " + a.message;
  return a;
}

bool Forwarder::Impl::dead_letter(const std::string& id, const std::string& body, uint64_t events,
                                  const Attempt& a, const std::string& endpoint, const std::string& suffix) {
  return dead_letters->write(
      id, body, events,
      fmt::format("batch {} ({} events) refused by {}: HTTP {}: {}\n", id, events, endpoint, a.status, a.message),
      suffix);
}

}  // namespace taba::agent
