// A handler state owned by the host (a store's per-client state or
// aggregate, a delta, a query-time reduction): freed through its handler
// when dropped.
#pragma once

#include "plugin/handler.h"

namespace taba::plugin {

class State {
 public:
  State() = default;
  State(const Handler* h, taba_state* s) : handler_(h), state_(s) {}
  ~State() { reset(); }
  State(State&& o) noexcept : handler_(o.handler_), state_(o.state_) { o.state_ = nullptr; }
  State& operator=(State&& o) noexcept {
    if (this != &o) {
      reset();
      handler_ = o.handler_;
      state_ = o.state_;
      o.state_ = nullptr;
    }
    return *this;
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  taba_state* get() const { return state_; }
  explicit operator bool() const { return state_ != nullptr; }
  void reset() {
    if (state_) handler_->free_state(state_);
    state_ = nullptr;
  }

 private:
  const Handler* handler_ = nullptr;
  taba_state* state_ = nullptr;
};

// Folds n checked events of `client` into *state the way the ingest
// contract of include/taba/handler.h folds a block: into a new state of
// `client` when *state is empty, then with fold_many when the handler has
// it, else through a fresh delta merged in. What the edge (the agent's
// DeltaFolder, the client-proxy's buffer) folds deltas with. False, folding
// nothing, when the handler could not make a state.
inline bool fold_block(const Handler& h, State* state, std::string_view client, const taba_event* events, size_t n,
                       double now) {
  const bool fresh = !*state;
  if (fresh) {
    taba_state* s = h.new_state(client, now);
    if (s == nullptr) return false;
    *state = State(&h, s);
  }
  if (h.has_fold_many()) {
    taba_state* const target[1] = {state->get()};
    h.fold_many(target, 1, client, events, n, now);
  } else if (fresh) {
    h.fold(state->get(), events, n, now);
  } else {
    taba_state* delta = h.new_state(client, now);
    if (delta == nullptr) return false;
    h.fold(delta, events, n, now);
    h.merge(state->get(), delta, now);
    h.free_state(delta);
  }
  return true;
}

}  // namespace taba::plugin
