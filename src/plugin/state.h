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

}  // namespace taba::plugin
