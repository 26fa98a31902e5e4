// A one-shot libuv timer that its owner may destroy at any time, even from
// inside the timer's own callback: the uv_timer_t lives in a box of its own
// that the handle's close callback frees, so libuv never touches freed memory
// and the owner needs no close-then-delete dance of its own. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace taba {

// A one-shot uv timer whose handle outlives its owner until the close
// callback, so a callback may destroy the owner (and this timer) safely.
class UvTimer {
 public:
  UvTimer(uv_loop_t* loop, std::function<void()> fn) : box_(new Box) {
    uv_timer_init(loop, &box_->timer);
    box_->timer.data = box_;
    box_->fn = std::move(fn);
  }
  ~UvTimer() {
    uv_close(reinterpret_cast<uv_handle_t*>(&box_->timer),
             [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
  }
  UvTimer(const UvTimer&) = delete;
  UvTimer& operator=(const UvTimer&) = delete;

  void start(uint64_t ms) { uv_timer_start(&box_->timer, &UvTimer::fire, ms, 0); }
  void stop() { uv_timer_stop(&box_->timer); }
  bool active() const { return uv_is_active(reinterpret_cast<const uv_handle_t*>(&box_->timer)) != 0; }

 private:
  struct Box {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  static void fire(uv_timer_t* t) {
    auto* box = static_cast<Box*>(t->data);
    box->fn();  // the Box lives until its close callback even if the owner is gone now
  }
  Box* box_;
};

}  // namespace taba
