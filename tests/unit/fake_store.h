// Test doubles of the store (store/store.h) for the units that run on one:
// the ingest route and the query service. FakeStore records what is
// submitted and answers submit with a status the test chooses (at once, or
// when the test releases it); its fetch hands out a FakeView, a ReadView the
// test fills with real plugin states from v1 batches. The store itself is
// tested in embedded_store_test.cpp; here it is only the collaborator.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plugin_batches.h"
#include "protocol/batch.h"
#include "store/store.h"

namespace taba::test {

// Names with per-client states and aggregates, filled like a store fills
// its memory (handler.h's contract: a fresh delta per block, merged into
// the client's state and the name's aggregate).
class FakeView final : public store::ReadView {
 public:
  // Applies every block of a batch (protocol/batch.h) at `now`; a name
  // keeps the type of its first block.
  void apply(std::string_view batch, double now) {
    protocol::BatchReader reader(batch);
    REQUIRE(reader.open().ok());
    protocol::BatchBlock block;
    std::vector<taba_event> events;
    Status s;
    while (reader.next(&block, &events, &s)) {
      store::NameEntry* entry = entry_for(block.name, block.type, now);
      const taba_handler* h = entry->handler->table;
      store::ClientIndex ci = client_index(block.client);
      taba_state* delta = h->new_state(block.client.data(), block.client.size(), now);
      REQUIRE(delta != nullptr);
      h->fold(delta, events.data(), events.size(), now);
      h->merge(entry->aggregate.get(), delta, now);
      if (store::State* existing = entry->states.find(ci)) {
        h->merge(existing->get(), delta, now);
        h->free_state(delta);
      } else {
        entry->states[ci] = store::State(entry->handler, delta);
      }
    }
    REQUIRE(s.ok());
  }

  // Drops one client's state of a name as a GC would: the aggregate is
  // merged anew from the states left, and a name left without states goes.
  // The client stays in clients(), without states.
  void erase_state(std::string_view name, std::string_view client, double now) {
    auto it = names_.find(std::string(name));
    REQUIRE(it != names_.end());
    store::NameEntry* entry = it->second.get();
    auto ci = std::find(clients_.begin(), clients_.end(), client);
    REQUIRE(ci != clients_.end());
    REQUIRE(entry->states.erase(static_cast<store::ClientIndex>(ci - clients_.begin())));
    if (entry->states.size() == 0) {
      names_.erase(it);
      return;
    }
    const taba_handler* h = entry->handler->table;
    entry->aggregate = store::State(entry->handler, h->new_state("", 0, now));
    REQUIRE(entry->aggregate);
    entry->states.for_each(
        [&](store::ClientIndex, const store::State& st) { h->merge(entry->aggregate.get(), st.get(), now); });
  }

  const store::NameEntry* find_name(std::string_view name) const override {
    auto it = names_.find(std::string(name));
    return it == names_.end() ? nullptr : it->second.get();
  }
  std::vector<const store::NameEntry*> names() const override {
    std::vector<const store::NameEntry*> out;
    for (const auto& [name, entry] : names_) out.push_back(entry.get());  // std::map: sorted
    return out;
  }
  const std::vector<std::string>& clients() const override { return clients_; }
  bool client_has_states(store::ClientIndex client) const override {
    for (const auto& [name, entry] : names_) {
      if (entry->states.find(client) != nullptr) return true;
    }
    return false;
  }

 private:
  store::NameEntry* entry_for(std::string_view name, std::string_view type, double now) {
    auto it = names_.find(std::string(name));
    if (it != names_.end()) {
      REQUIRE(it->second->handler->type_name == type);
      return it->second.get();
    }
    const plugin::Handler* handler = handler_of(type);
    auto entry = std::make_unique<store::NameEntry>();
    entry->name = std::string(name);
    entry->handler = handler;
    entry->aggregate = store::State(handler, handler->table->new_state("", 0, now));
    REQUIRE(entry->aggregate);
    return names_.emplace(entry->name, std::move(entry)).first->second.get();
  }
  store::ClientIndex client_index(std::string_view client) {
    auto it = std::find(clients_.begin(), clients_.end(), client);
    if (it != clients_.end()) return static_cast<store::ClientIndex>(it - clients_.begin());
    clients_.emplace_back(client);
    return static_cast<store::ClientIndex>(clients_.size() - 1);
  }

  std::map<std::string, std::unique_ptr<store::NameEntry>> names_;
  std::vector<std::string> clients_;
};

class FakeStore final : public store::Store {
 public:
  struct Submitted {
    std::string batch;
    store::BatchId id;
    store::Bindings new_bindings;  // sorted by name
  };
  // What fetch was asked for (the matchers themselves live in the caller).
  struct Need {
    bool aggregates = false;
    bool states = false;
    bool client_list = false;
  };

  // --- what the test sets ---
  std::map<std::string, const plugin::Handler*, std::less<>> bound;  // bound_handler's answers
  Status submit_status = Status::Ok();  // what submit answers
  bool hold_submits = false;            // answer only in release()
  const store::ReadView* view = nullptr;  // what fetch hands out
  Status fetch_status = Status::Ok();

  // --- what the store saw ---
  std::vector<Submitted> submitted;
  std::vector<Need> needs;

  // Answers the held submits with submit_status, in order.
  void release() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& done : held) done(submit_status);
  }
  size_t held() const { return held_.size(); }

  Status open() override { return Status::Ok(); }
  void close(std::function<void()> done) override { done(); }
  bool ready() const override { return true; }

  const plugin::Handler* bound_handler(std::string_view name) const override {
    auto it = bound.find(name);
    return it == bound.end() ? nullptr : it->second;
  }
  void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings,
              std::function<void(const Status&)> done) override {
    std::sort(new_bindings.begin(), new_bindings.end());
    submitted.push_back({std::move(batch), std::move(batch_id), std::move(new_bindings)});
    if (hold_submits) {
      held_.push_back(std::move(done));
    } else {
      done(submit_status);
    }
  }
  void set_name_limits(const store::NameLimits&) override {}

  void fetch(const store::QueryNeed& need, store::ViewCallback ready) override {
    REQUIRE(need.names != nullptr);
    REQUIRE(need.clients != nullptr);
    needs.push_back({need.aggregates, need.states, need.client_list});
    ready(fetch_status, fetch_status.ok() ? view : nullptr);
  }
  double pipeline_latency_s() const override { return 0; }

  void delete_names(const Matcher&, store::ReportCallback done) override { done(unsupported(), {}); }
  void gc(store::ReportCallback done) override { done(unsupported(), {}); }
  void check(bool, store::ReportCallback done) override { done(unsupported(), {}); }
  void flush(store::ReportCallback done) override { done(unsupported(), {}); }
  void status(std::function<void(const Status&, const store::ClusterStatus&)> done) override {
    done(unsupported(), {});
  }

  LatencyWindow::Summary local_latency() const override { return {}; }
  const LatencyWindow& local_latency_window() const override { return latencies_; }
  void metrics(std::vector<store::Metric>*) const override {}
  uint64_t local_deltas_applied() const override { return 0; }

 private:
  static Status unsupported() { return Status::Internal("FakeStore: not part of the test"); }
  std::vector<std::function<void(const Status&)>> held_;
  LatencyWindow latencies_;
};

}  // namespace taba::test
