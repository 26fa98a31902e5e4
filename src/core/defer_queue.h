// Closures run on a later loop iteration: how the Redis layer keeps its
// promise that no callback runs inside the call that registered it (a failure
// known at once is reported from here). The uv_idle_t lives in a box that its
// close callback frees, so a closure may destroy the queue's owner. Loop
// thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <utility>
#include <vector>

#include "core/uv_close.h"

namespace taba {

// Runs closures on a later loop iteration (uv_idle: a closure posted while the
// queue runs waits for the next iteration, so retry loops cannot starve I/O).
class DeferQueue {
 public:
  explicit DeferQueue(uv_loop_t* loop) : box_(new Box) {
    uv_idle_init(loop, &box_->idle);
    box_->idle.data = box_;
    box_->queue = this;
  }
  ~DeferQueue() {
    box_->queue = nullptr;
    uv_close_and_delete_owner<Box>(&box_->idle);
  }
  DeferQueue(const DeferQueue&) = delete;
  DeferQueue& operator=(const DeferQueue&) = delete;

  void post(std::function<void()> fn) {
    items_.push_back(std::move(fn));
    uv_idle_start(&box_->idle, &DeferQueue::run);
  }
  // For the owner's destructor: what has not run yet.
  std::vector<std::function<void()>> take() {
    uv_idle_stop(&box_->idle);
    return std::exchange(items_, {});
  }

 private:
  struct Box {
    uv_idle_t idle;
    DeferQueue* queue = nullptr;
  };
  static void run(uv_idle_t* h) {
    auto* box = static_cast<Box*>(h->data);
    uv_idle_stop(h);
    if (!box->queue) return;
    // The closures are self-contained: running them does not need the queue,
    // which a closure may destroy (together with its owner).
    std::vector<std::function<void()>> items = std::exchange(box->queue->items_, {});
    for (auto& fn : items) fn();
  }
  Box* box_;
  std::vector<std::function<void()>> items_;
};

}  // namespace taba
