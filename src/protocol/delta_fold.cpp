#include "protocol/delta_fold.h"

#include <fmt/format.h>


namespace taba::protocol {

bool DeltaFolder::fold(std::string_view client, std::string_view name, std::string_view type,
                       const taba_event* events, size_t n, double now) {
  key_.assign(client);
  key_.push_back('\0');
  key_.append(name);
  key_.push_back('\0');
  key_.append(type);
  auto found = index_.find(key_);
  if (found == index_.end()) {
    if (max_deltas_ != 0 && entries_.size() >= max_deltas_) return false;
    const plugin::Handler* h = find_(type);
    if (!h) return false;
    plugin::State state;
    if (!plugin::fold_block(*h, &state, client, events, n, now)) return false;
    index_.emplace(key_, entries_.size());
    entries_.push_back(Entry{h, std::move(state), std::string(client), std::string(name), n});
    events_ += n;
    return true;
  }
  Entry& e = entries_[found->second];
  if (!plugin::fold_block(*e.handler, &e.state, client, events, n, now)) return false;
  e.events += n;
  events_ += n;
  return true;
}

Status DeltaFolder::fold_batch(std::string_view batch, bool written_here, BatchWriter* leftover) {
  BatchReader reader(batch, written_here);
  TABA_RETURN_IF_ERROR(reader.open());
  const double now = reader.receive_time();
  BatchBlock block;
  Status s;
  while (reader.next(&block, &scratch_, &s)) {
    if (fold(block.client, block.name, block.type, scratch_.data(), scratch_.size(), now)) continue;
    unfoldable_events_ += scratch_.size();
    if (!leftover) continue;
    leftover->begin_block(block.client, block.name, block.type);
    for (const taba_event& e : scratch_) leftover->add_event(e.timestamp, e.payload);
  }
  return s;
}

Result<std::string> DeltaFolder::finish(double time) {
  DeltaWriter w(time);
  TABA_RETURN_IF_ERROR(finish_into(&w));
  return w.finish();
}

Status DeltaFolder::finish_into(DeltaWriter* out) {
  std::string bytes;
  for (const Entry& e : entries_) {
    bytes.clear();
    if (!e.handler->serialize(e.state.get(), &bytes)) {
      return Status::Internal(fmt::format("the {} handler could not serialize the delta of \"{}\" (client \"{}\")",
                                          e.handler->type_name, e.name, e.client));
    }
    out->add(e.client, e.name, e.handler->type_name, e.events, e.handler->state_version(), bytes);
  }
  entries_.clear();
  index_.clear();
  events_ = 0;
  unfoldable_events_ = 0;
  return Status::Ok();
}

}  // namespace taba::protocol
