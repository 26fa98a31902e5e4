// DeltaFolder: folds checked events into one delta state per (client,
// name, type) with the loaded plugins, then writes the states as a delta
// batch (protocol/delta_batch.h). The agent folds the v1 posts of a spooled
// segment with it before forwarding; tests fold the events they also post
// as v1, to compare both paths.
//
// The fold follows the ingest contract of include/taba/handler.h: a block
// folds into a fresh state for its client, and later blocks of the same
// (client, name) fold into that state (fold_many with one target when the
// handler has it, else fold into a fresh delta and merge it). So the fe
// that merges the delta ends with the state it would have made from the
// events. A type no loaded plugin serves cannot be folded: fold_batch hands
// those blocks on as v1 events, for the fe to check and apply.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "plugin/registry.h"
#include "plugin/state.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"

namespace taba::protocol {

class DeltaFolder {
 public:
  // The handler of a type name, or nullptr when none serves it.
  using FindHandler = std::function<const plugin::Handler*(std::string_view type)>;

  explicit DeltaFolder(const plugin::Registry* registry)
      : find_([registry](std::string_view type) { return registry->find(type); }) {}
  // With a handler lookup of the caller's (the agent's forwarder threads
  // use a copy of the registry's type map, which SIGHUP may change on the
  // loop thread meanwhile).
  explicit DeltaFolder(FindHandler find) : find_(std::move(find)) {}

  // At most this many deltas (0: no limit): a block that would start one
  // more is not folded (fold returns false), so the caller's memory for
  // states is bounded whatever a batch holds.
  void set_max_deltas(size_t max) { max_deltas_ = max; }

  // Folds n checked events of one (client, name) block into its delta.
  // False, folding nothing, when no loaded plugin serves `type`, when the
  // block would start a delta past set_max_deltas, or when a handler could
  // not allocate a state.
  bool fold(std::string_view client, std::string_view name, std::string_view type, const taba_event* events,
            size_t n, double now);
  // Folds every block of a v1 batch (protocol/batch.h) at the batch's
  // receive time. Blocks of types no plugin serves are copied to *leftover
  // (begun by the caller with BatchWriter::reset) when it is given, and
  // counted in unfoldable_events(). An error: the batch is corrupt (what was
  // folded before the bad block stays folded).
  Status fold_batch(std::string_view batch, bool written_here, BatchWriter* leftover);

  size_t deltas() const { return entries_.size(); }
  uint64_t events() const { return events_; }
  uint64_t unfoldable_events() const { return unfoldable_events_; }

  // Writes every delta (in the order they were first folded) as a delta
  // batch stamped `time`, and forgets them. An error names the handler
  // whose serialize failed (nothing is written then).
  Result<std::string> finish(double time);
  // The same, appending the deltas to *out (which may hold blocks
  // already; after an error it holds some of the deltas: discard it).
  Status finish_into(DeltaWriter* out);

 private:
  struct Entry {
    const plugin::Handler* handler = nullptr;
    plugin::State state;
    std::string client;
    std::string name;
    uint64_t events = 0;
  };
  FindHandler find_;
  size_t max_deltas_ = 0;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;  // client \0 name \0 type -> entries_
  std::string key_;
  std::vector<taba_event> scratch_;
  uint64_t events_ = 0;
  uint64_t unfoldable_events_ = 0;
};

}  // namespace taba::protocol
