// A libuv timer (one-shot or repeating) that its owner may destroy at any
// time, even from inside the timer's own callback: the uv_timer_t lives in a
// box of its own that the handle's close callback frees, so libuv never
// touches freed memory and the owner needs no close-then-delete dance of its
// own. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <utility>

#include "core/uv_close.h"

namespace taba {

// A uv timer whose handle outlives its owner until the close callback, so a
// callback may destroy the owner (and this timer) safely.
class UvTimer {
 public:
  UvTimer(uv_loop_t* loop, std::function<void()> fn) : box_(new Box) {
    uv_timer_init(loop, &box_->timer);
    box_->timer.data = box_;
    box_->fn = std::move(fn);
  }
  ~UvTimer() { close(); }
  UvTimer(const UvTimer&) = delete;
  UvTimer& operator=(const UvTimer&) = delete;

  // Runs fn once, ms from now (a running timer starts over).
  void start(uint64_t ms) { start(ms, 0); }
  // Runs fn ms from now, then every repeat_ms (0: once).
  void start(uint64_t ms, uint64_t repeat_ms) {
    if (box_) uv_timer_start(&box_->timer, &UvTimer::fire, ms, repeat_ms);
  }
  void stop() {
    if (box_) uv_timer_stop(&box_->timer);
  }
  bool active() const { return box_ && uv_is_active(reinterpret_cast<const uv_handle_t*>(&box_->timer)) != 0; }

  // Closes the handle now, for an owner whose shutdown waits for the loop to
  // run out of handles; the timer never fires again and start() does
  // nothing. Idempotent; the destructor does it. A handle that something
  // else closed already (a uv_walk closing every handle at teardown) is left
  // to that close: closing twice would abort, so the box is lost instead.
  void close() {
    if (!box_) return;
    Box* box = std::exchange(box_, nullptr);
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&box->timer))) uv_close_and_delete_owner<Box>(&box->timer);
  }

  // Runs fn once, ms from now, on a timer nobody owns: it frees itself after
  // firing.
  static void after(uv_loop_t* loop, uint64_t ms, std::function<void()> fn) {
    auto* timer = new UvTimer(loop, {});
    timer->box_->fn = [timer, fn = std::move(fn)] {
      fn();
      delete timer;  // the Box, and this closure, live until the close callback
    };
    timer->start(ms);
  }

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
