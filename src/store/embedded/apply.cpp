// EmbeddedStore::apply: applies a WAL record's batch to memory, live (once
// the WAL has it) and at replay alike, at the batch's recorded time. A batch
// is either events decoded from v1 posts (protocol/batch.h: apply_events)
// or per-(client, name) states folded at the edge (protocol/delta_batch.h,
// from POST /post_delta: apply_deltas); both follow the ingest contract of
// include/taba/handler.h, so a delta applied gives the states its events
// would have.
#include <fmt/format.h>

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "plugin/state.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "store/embedded/embedded_store.h"
#include "store/embedded/records.h"

namespace taba::store {

Status EmbeddedStore::apply(std::string_view record, bool replay) {
  std::string_view batch_id, batch;
  if (!split_batch_record(record, &batch_id, &batch)) return Status::Corruption("batch record: truncated batch id");
  // An event batch (protocol/batch.h) or a delta batch (protocol/delta_batch.h).
  const bool deltas = protocol::is_delta_batch(batch);
  protocol::BatchReader reader(batch, /*written_here=*/!replay);
  protocol::DeltaReader delta_reader(batch);
  Status s = deltas ? delta_reader.open() : reader.open();
  TABA_RETURN_IF_ERROR(s);
  const double now = deltas ? delta_reader.time() : reader.receive_time();
  if (!batch_id.empty()) {
    if (applied_ids_.find(batch_id) != applied_ids_.end()) return Status::Ok();  // logged twice: apply once
    remember_batch_id(batch_id, now);
  }
  s = deltas ? apply_deltas(&delta_reader, now, replay) : apply_events(&reader, now, replay);
  TABA_RETURN_IF_ERROR(s);
  ++stats_.batches_applied;
  ++changes_since_snapshot_;
  if (!replay) {
    double applied_at = wall_now();
    double lag = std::clamp(applied_at - now, 0.0, 30.0);
    stats_.last_apply_lag_s = lag;
    latencies_.add(applied_at, lag);
    latency_ewma_s_ = last_live_apply_ == 0 ? lag : 0.8 * latency_ewma_s_ + 0.2 * lag;
    last_live_apply_ = applied_at;
  }
  return Status::Ok();
}

Status EmbeddedStore::name_entry(std::string_view name, std::string_view type, double now, bool replay,
                                 NameEntry** out) {
  *out = nullptr;
  auto it = names_.find(name);
  if (it == names_.end()) {
    const plugin::Handler* handler = registry_->find(type);
    if (!handler) {
      return Status::Invalid(
          fmt::format("name \"{}\" has type \"{}\", which no loaded plugin serves", name, type));
    }
    auto fresh = std::make_unique<NameEntry>();
    fresh->name.assign(name);
    fresh->handler = handler;
    taba_state* aggregate = handler->new_state(now);
    if (!aggregate) return Status::Internal(fmt::format("{} handler: new_state failed", handler->type_name));
    fresh->aggregate = State(handler, aggregate);
    *out = fresh.get();
    names_.emplace(fresh->name, std::move(fresh));
    if (auto r = reserved_.find(name); r != reserved_.end()) reserved_.erase(r);
    return Status::Ok();
  }
  if (it->second->handler->type_name != type) {
    log::warn("store: {} block for name \"{}\" of type {} skipped (bound to {})", replay ? "replayed" : "live", name,
              type, it->second->handler->type_name);
    return Status::Ok();
  }
  *out = it->second.get();
  return Status::Ok();
}

State* EmbeddedStore::add_client_state(NameEntry* entry, ClientIndex client, State state) {
  State* slot = &entry->states[client];
  *slot = std::move(state);
  max_client_states_ = std::max(max_client_states_, ++client_state_counts_[client]);
  return slot;
}

Status EmbeddedStore::apply_events(protocol::BatchReader* reader_ptr, double now, bool replay) {
  protocol::BatchReader& reader = *reader_ptr;
  Status s;
  // Blocks are read one ahead: the next block's name, client and states are
  // looked up and its handler's prefetch hint issued before the current
  // block is folded, so the cache misses of cold states overlap with work.
  // A lookup ahead is kept only when it found something (entries and client
  // indexes are never removed while a batch applies); a miss is looked up
  // again, since the current block may create that name or client.
  protocol::BatchBlock block;
  protocol::BatchBlock next_block;
  NameEntry* next_entry = nullptr;
  ClientIndex next_client = 0;
  bool next_client_known = false;
  auto look_ahead = [&] {
    next_entry = nullptr;
    next_client_known = false;
    auto found = names_.find(next_block.name);
    if (found == names_.end()) return;
    next_entry = found->second.get();
    next_client_known = find_client(next_block.client, &next_client);
    if (!next_entry->handler->has_prefetch() || next_entry->handler->type_name != next_block.type) return;
    const taba_state* targets[2] = {next_entry->aggregate.get(), nullptr};
    size_t count = 1;
    if (next_client_known) {
      if (const State* st = next_entry->states.find(next_client)) targets[count++] = st->get();
    }
    next_entry->handler->prefetch(targets, count, events_ahead_.data(), events_ahead_.size(), now);
  };
  bool have_next = reader.next(&next_block, &events_ahead_, &s);
  if (have_next) look_ahead();
  while (have_next) {
    block = next_block;
    std::swap(events_, events_ahead_);
    NameEntry* const entry_ahead = next_entry;
    const bool client_known = next_client_known;
    const ClientIndex client_ahead = next_client;
    have_next = reader.next(&next_block, &events_ahead_, &s);
    if (have_next) look_ahead();

    NameEntry* entry = entry_ahead;
    if (!entry || entry->handler->type_name != block.type) {
      TABA_RETURN_IF_ERROR(name_entry(block.name, block.type, now, replay, &entry));
      if (!entry) continue;  // bound to another type: skipped
    }
    const plugin::Handler* h = entry->handler;
    ClientIndex ci = client_known ? client_ahead : intern_client(block.client);
    State* existing = entry->states.find(ci);
    taba_state* fresh_state = nullptr;
    if (!existing || !h->has_fold_many()) {
      fresh_state = h->new_state(block.client, now);
      if (!fresh_state) {
        ++stats_.blocks_dropped;
        log::error("store: {} handler could not create a state: {} events of \"{}\" dropped",
                   entry->handler->type_name, block.event_count, block.name);
        continue;
      }
    }
    State* client_state = existing;
    if (!existing) {
      // A new client: its first events fold straight into its new state.
      client_state = add_client_state(entry, ci, State(entry->handler, fresh_state));
    }
    if (h->has_fold_many()) {
      // One pass over the events into both states (handler.h, ABI 1.1).
      taba_state* const targets[2] = {client_state->get(), entry->aggregate.get()};
      h->fold_many(targets, 2, block.client, events_.data(), events_.size(), now);
    } else if (!existing) {
      h->fold(client_state->get(), events_.data(), events_.size(), now);
      h->merge(entry->aggregate.get(), client_state->get(), now);
    } else {
      taba_state* delta = fresh_state;
      h->fold(delta, events_.data(), events_.size(), now);
      h->merge(client_state->get(), delta, now);
      h->merge(entry->aggregate.get(), delta, now);
      h->free_state(delta);
    }
    ++stats_.blocks_applied;
    stats_.events_applied += block.event_count;
  }
  return s;
}

// Per delta block: the state deserialized (a block that does not read -
// corrupt at replay, or a plugin that changed - is logged, counted in
// blocks_dropped and skipped); the name's entry (created, or skipped when
// bound to another type, as for events); then a client without a state
// takes the delta as its state and it is merged into the aggregate,
// otherwise it is merged into both the client's state and the aggregate,
// then freed.
Status EmbeddedStore::apply_deltas(protocol::DeltaReader* reader, double now, bool replay) {
  protocol::DeltaBlock block;
  Status s;
  while (reader->next(&block, &s)) {
    const plugin::Handler* h = registry_->find(block.type);
    if (!h) {
      return Status::Invalid(
          fmt::format("name \"{}\" has type \"{}\", which no loaded plugin serves", block.name, block.type));
    }
    Result<State> delta = h->deserialize(block.state, block.state_version);
    if (!delta.ok()) {
      ++stats_.blocks_dropped;
      log::error("store: {} delta of \"{}\" (client \"{}\", {} events, state version {}) does not deserialize and "
                 "is dropped: {}",
                 replay ? "replayed" : "live", block.name, block.client, block.events, block.state_version,
                 delta.status().message());
      // A name this block would have made is not held for it any longer.
      if (names_.find(block.name) == names_.end()) {
        if (auto r = reserved_.find(block.name); r != reserved_.end()) reserved_.erase(r);
      }
      continue;
    }
    NameEntry* entry = nullptr;
    TABA_RETURN_IF_ERROR(name_entry(block.name, block.type, now, replay, &entry));
    if (!entry) continue;  // bound to another type: skipped
    ClientIndex ci = intern_client(block.client);
    if (State* existing = entry->states.find(ci)) {
      h->merge(existing->get(), delta.value().get(), now);
      h->merge(entry->aggregate.get(), delta.value().get(), now);
    } else {
      // A new client: the delta becomes its state.
      State* client_state = add_client_state(entry, ci, std::move(delta.value()));
      h->merge(entry->aggregate.get(), client_state->get(), now);
    }
    ++stats_.blocks_applied;
    stats_.events_applied += block.events;
  }
  return s;
}

}  // namespace taba::store
