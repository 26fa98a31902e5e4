// The forms of a sealed segment: its index, the main part folded into a
// delta batch or encoded as v1, the leftovers, and the dead letters of
// refused delta blocks (see segment_forms.h).
#include "agent/segment_forms.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string>
#include <unordered_set>
#include <tuple>

#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "protocol/delta_fold.h"

namespace taba::agent {

HandlerMap handler_map(const plugin::Registry& registry) {
  HandlerMap out;
  for (const plugin::Handler* h : registry.handlers()) out.emplace(h->type_name, h);
  return out;
}

std::vector<std::pair<uint32_t, std::string_view>> refused_block_lines(std::string_view reply) {
  std::vector<std::pair<uint32_t, std::string_view>> out;
  while (!reply.empty()) {
    std::string_view line = reply.substr(0, reply.find('\n'));
    reply.remove_prefix(std::min(reply.size(), line.size() + 1));
    if (line.rfind("block ", 0) != 0) continue;
    uint64_t n = 0;
    size_t k = 6;
    for (; k < line.size() && line[k] >= '0' && line[k] <= '9' && n <= UINT32_MAX; ++k) {
      n = n * 10 + static_cast<uint64_t>(line[k] - '0');
    }
    if (k == 6 || n == 0 || n > UINT32_MAX || k >= line.size() || line[k] != ':') continue;
    std::string_view reason = line.substr(k + 1);
    if (!reason.empty() && reason.front() == ' ') reason.remove_prefix(1);
    out.emplace_back(static_cast<uint32_t>(n), reason);
  }
  return out;
}

SegmentForms::SegmentForms(const SegmentContents& contents, const HandlerMap& handlers, size_t max_deltas)
    : contents_(contents), handlers_(handlers), max_deltas_(max_deltas) {
  // The triples folded so far, keyed as DeltaFolder keys them: the fold
  // reads the records in the same order, so it leaves out exactly the
  // blocks marked here.
  std::unordered_set<std::string> triples;
  std::string key;
  for (uint32_t r = 0; r < contents.records.size(); ++r) {
    std::string_view batch = contents.records[r].batch;
    if (protocol::is_delta_batch(batch)) {
      protocol::DeltaReader reader(batch);
      Status s = reader.open();
      protocol::DeltaBlock block;
      uint64_t events = 0;
      while (s.ok() && reader.next(&block, &s)) events += block.events;
      if (!s.ok()) {
        ++corrupt_;
        continue;
      }
      delta_records_.push_back(r);
      delta_events_ += events;
      time_ = std::max(time_, reader.time());
      continue;
    }
    protocol::BatchReader reader(batch);
    Status s = reader.open();
    const size_t first = blocks_.size();
    protocol::BatchBlock block;
    uint32_t index = 0;
    while (s.ok() && reader.next_header(&block, &s)) {
      V1Block b;
      b.record = r;
      b.index = index++;
      b.client = block.client;
      b.name = block.name;
      b.type = block.type;
      b.events = block.event_count;
      b.foldable = handlers.find(block.type) != handlers.end();
      if (b.foldable && max_deltas != 0) {
        key.assign(block.client);
        key.push_back('\0');
        key.append(block.name);
        key.push_back('\0');
        key.append(block.type);
        if (triples.size() >= max_deltas && triples.find(key) == triples.end()) {
          b.foldable = false;
        } else {
          triples.insert(key);
        }
      }
      blocks_.push_back(b);
    }
    if (!s.ok()) {
      blocks_.resize(first);  // nothing of a record that cannot be read
      ++corrupt_;
      continue;
    }
    v1_records_.push_back(r);
    time_ = std::max(time_, reader.receive_time());
    for (size_t i = first; i < blocks_.size(); ++i) {
      (blocks_[i].foldable ? foldable_events_ : leftover_events_) += blocks_[i].events;
    }
  }
}

Status SegmentForms::fold(DeltaBody* out) const {
  const HandlerMap* handlers = &handlers_;
  protocol::DeltaFolder folder([handlers](std::string_view type) -> const plugin::Handler* {
    auto it = handlers->find(type);
    return it == handlers->end() ? nullptr : it->second;
  });
  folder.set_max_deltas(max_deltas_);
  // Each record at its own receive time, as the fe would have folded it.
  for (uint32_t r : v1_records_) {
    Status s = folder.fold_batch(contents_.records[r].batch, false, nullptr);
    if (!s.ok()) return Status::Invalid(fmt::format("record {} cannot be folded: {}", r, s.message()));
  }
  // The blocks the index found of no plugin's type are exactly the ones
  // left unfolded, unless a handler could not allocate a state.
  if (folder.unfoldable_events() != leftover_events_) {
    return Status::Unavailable(fmt::format("{} events could not be folded (a handler out of memory?)",
                                           folder.unfoldable_events() - std::min(folder.unfoldable_events(),
                                                                                 leftover_events_)));
  }
  protocol::DeltaWriter w(time_);
  TABA_RETURN_IF_ERROR(folder.finish_into(&w));
  out->folded_blocks = w.block_count();
  for (uint32_t r : delta_records_) {
    protocol::DeltaReader reader(contents_.records[r].batch);
    Status s = reader.open();
    protocol::DeltaBlock block;
    while (s.ok() && reader.next(&block, &s)) w.add(block);
  }
  out->blocks = w.block_count();
  out->events = w.event_count();
  out->batch = w.finish();
  return Status::Ok();
}

V1Body SegmentForms::v1(const std::function<bool(size_t)>& pick) const {
  V1Body body;
  protocol::V1Encoder enc;
  size_t b = 0;  // the first V1Block of the record being encoded
  for (uint32_t r : v1_records_) {
    size_t first = b;
    while (b < blocks_.size() && blocks_[b].record == r) ++b;
    bool any = false;
    for (size_t i = first; i < b && !any; ++i) any = pick(i);
    if (!any) continue;
    Status s = enc.add_batch(contents_.records[r].batch, [&](size_t index) {
      size_t i = first + index;
      if (i >= b || !pick(i)) return false;
      body.blocks.push_back(i);
      return true;
    });
    (void)s;  // indexed cleanly: it reads
  }
  body.events = enc.events();
  body.lines = enc.block_lines();
  if (body.events > 0) body.text = enc.finish();
  return body;
}

RefusedDeltas SegmentForms::refused(const DeltaBody& sent, std::string_view reply) const {
  RefusedDeltas out;
  auto lines = refused_block_lines(reply);
  std::set<uint32_t> numbers;
  for (const auto& [n, reason] : lines) {
    if (n <= sent.blocks) numbers.insert(n);
  }
  out.blocks = numbers.size();
  if (numbers.empty()) return out;
  // The refused blocks, read back from the batch sent.
  using Key = std::tuple<std::string_view, std::string_view, std::string_view>;  // client, name, type
  std::set<Key> folded;
  std::vector<protocol::DeltaBlock> refused_blocks(sent.blocks + 1);
  protocol::DeltaReader reader(sent.batch);
  Status s = reader.open();
  protocol::DeltaWriter copied(time_);
  protocol::DeltaBlock block;
  for (uint32_t n = 1; s.ok() && reader.next(&block, &s); ++n) {
    if (!numbers.count(n)) continue;
    refused_blocks[n] = block;
    if (n <= sent.folded_blocks) {
      folded.emplace(block.client, block.name, block.type);
    } else {
      copied.add(block);
    }
  }
  for (const auto& [n, reason] : lines) {
    if (!numbers.count(n)) continue;
    const protocol::DeltaBlock& b = refused_blocks[n];
    RefusedDeltas::Part& part = n <= sent.folded_blocks ? out.v1 : out.delta;
    part.reasons += fmt::format("block {}: client \"{}\" name \"{}\" type {}, {} events: {}\n", n, b.client, b.name,
                                b.type, b.events, reason);
  }
  if (!folded.empty()) {
    V1Body v1 = this->v1([&](size_t i) {
      const V1Block& vb = blocks_[i];
      return vb.foldable && folded.count(Key{vb.client, vb.name, vb.type}) > 0;
    });
    out.v1.blocks = folded.size();
    out.v1.body = std::move(v1.text);
    out.v1.events = v1.events;
  }
  if (copied.block_count() > 0) {
    out.delta.blocks = copied.block_count();
    out.delta.events = copied.event_count();
    out.delta.body = copied.finish();
  }
  return out;
}

}  // namespace taba::agent
