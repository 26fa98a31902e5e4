// The libuv handle toolkit in src/core on a real loop: UvTimer (one-shot,
// repeating, restarted, destroyed before firing or from its own callback,
// closed early, the self-freeing UvTimer::after), DeferQueue (later
// iteration, order, destroyed by a closure or before running) and
// uv_close_and_delete / uv_close_and_delete_owner. Every test ends with
// uv_loop_close, which fails if a handle was left open; under ASan the
// destroy-from-callback cases catch a use after free.
#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "core/defer_queue.h"
#include "core/uv_close.h"
#include "core/uv_timer.h"

using namespace taba;

namespace {

struct Loop {
  Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);  // fails if a handle was leaked
  }
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }
  uv_loop_t loop;
};

// Counts its destructions, to check that a handle's owner was freed.
struct Owned {
  explicit Owned(int* counter) : freed(counter) {}
  ~Owned() { ++*freed; }
  uv_timer_t timer;
  int* freed;
};

}  // namespace

TEST_CASE("uv timer: a one-shot timer fires once", "[uv_handles]") {
  Loop l;
  int fired = 0;
  UvTimer t(&l.loop, [&] { ++fired; });
  CHECK_FALSE(t.active());
  t.start(1);
  CHECK(t.active());
  l.run();
  CHECK(fired == 1);
  CHECK_FALSE(t.active());
}

TEST_CASE("uv timer: a timer may destroy itself from its own callback", "[uv_handles]") {
  Loop l;
  int fired = 0;
  auto token = std::make_shared<int>(42);
  std::unique_ptr<UvTimer> t;
  t = std::make_unique<UvTimer>(&l.loop, [&fired, &t, token] {
    t.reset();  // the running closure and its handle live on until the close callback
    ++fired;
    CHECK(*token == 42);
  });
  t->start(1);
  l.run();
  CHECK(fired == 1);
  CHECK(t == nullptr);
  CHECK(token.use_count() == 1);  // the closure was freed with its handle
}

TEST_CASE("uv timer: the owner may be destroyed from the timer's callback", "[uv_handles]") {
  Loop l;
  struct Owner {
    explicit Owner(uv_loop_t* loop, int* fired, std::unique_ptr<Owner>* self)
        : timer(loop, [fired, self] {
            ++*fired;
            std::vector<int> payload(100, 7);  // touch memory after the owner is gone
            self->reset();  // destroys this Owner and its timer, from the timer's callback
            CHECK(payload[99] == 7);
          }) {}
    UvTimer timer;
  };
  int fired = 0;
  std::unique_ptr<Owner> owner;
  owner = std::make_unique<Owner>(&l.loop, &fired, &owner);
  owner->timer.start(1, 1);  // repeating: it must not fire again once destroyed
  l.run();
  CHECK(fired == 1);
  CHECK(owner == nullptr);
}

TEST_CASE("uv timer: destroyed before firing, it never fires", "[uv_handles]") {
  Loop l;
  int fired = 0;
  {
    UvTimer t(&l.loop, [&] { ++fired; });
    t.start(1);
  }
  l.run();
  CHECK(fired == 0);
}

TEST_CASE("uv timer: a restart replaces the pending due time", "[uv_handles]") {
  Loop l;
  int fired = 0;
  uint64_t fired_at = 0;
  UvTimer t(&l.loop, [&] {
    ++fired;
    fired_at = uv_now(&l.loop);
  });
  uint64_t start = uv_now(&l.loop);
  t.start(10000);
  t.start(5);  // not both: the second start replaces the first
  l.run();
  CHECK(fired == 1);
  CHECK(fired_at - start < 10000);
  // Stopped, then started again from its own callback.
  int again = 0;
  std::unique_ptr<UvTimer> v;
  v = std::make_unique<UvTimer>(&l.loop, [&] {
    if (++again < 3) v->start(1);
  });
  v->start(1);
  l.run();
  CHECK(again == 3);
  // A stop before the due time cancels it.
  t.start(1);
  t.stop();
  CHECK_FALSE(t.active());
  l.run();
  CHECK(fired == 1);
}

TEST_CASE("uv timer: a repeating timer fires until stopped", "[uv_handles]") {
  Loop l;
  int fired = 0;
  UvTimer t(&l.loop, [&] {
    if (++fired == 5) t.stop();
  });
  t.start(1, 1);
  l.run();
  CHECK(fired == 5);
  CHECK_FALSE(t.active());
}

TEST_CASE("uv timer: close() ends the timer early, and start() does nothing after it", "[uv_handles]") {
  Loop l;
  int fired = 0;
  UvTimer t(&l.loop, [&] {
    ++fired;
    t.close();  // from its own callback; the object stays, inert
    t.start(1);
  });
  t.start(1, 1);
  l.run();  // returns: the closed timer no longer keeps the loop alive
  CHECK(fired == 1);
  CHECK_FALSE(t.active());
  t.close();  // idempotent; the destructor calls it again
}

TEST_CASE("uv timer: after() runs once and frees itself", "[uv_handles]") {
  Loop l;
  std::vector<int> ran;
  auto token = std::make_shared<int>(0);
  UvTimer::after(&l.loop, 2, [&ran, token] { ran.push_back(2); });
  UvTimer::after(&l.loop, 1, [&ran] { ran.push_back(1); });
  l.run();
  CHECK(ran == std::vector<int>{1, 2});
  CHECK(token.use_count() == 1);  // the closure was freed with its timer
}

TEST_CASE("defer queue: closures run on a later iteration, in order", "[uv_handles]") {
  Loop l;
  DeferQueue q(&l.loop);
  std::vector<int> ran;
  q.post([&] {
    ran.push_back(1);
    q.post([&] { ran.push_back(3); });  // posted while running: the next iteration
  });
  q.post([&] { ran.push_back(2); });
  CHECK(ran.empty());  // nothing runs inside post()
  uv_run(&l.loop, UV_RUN_NOWAIT);
  CHECK(ran == std::vector<int>{1, 2});
  uv_run(&l.loop, UV_RUN_NOWAIT);
  CHECK(ran == std::vector<int>{1, 2, 3});
}

TEST_CASE("defer queue: a closure may destroy the queue, and the closures taken with it still run", "[uv_handles]") {
  Loop l;
  auto q = std::make_unique<DeferQueue>(&l.loop);
  std::vector<int> ran;
  q->post([&] {
    ran.push_back(1);
    q.reset();
  });
  q->post([&] { ran.push_back(2); });
  l.run();
  CHECK(ran == std::vector<int>{1, 2});
  CHECK(q == nullptr);
}

TEST_CASE("defer queue: destroyed before its turn, nothing runs, and take() hands back what is queued", "[uv_handles]") {
  Loop l;
  int ran = 0;
  {
    DeferQueue q(&l.loop);
    q.post([&] { ++ran; });
  }
  l.run();
  CHECK(ran == 0);
  DeferQueue q(&l.loop);
  q.post([&] { ++ran; });
  q.post([&] { ++ran; });
  auto left = q.take();
  l.run();
  CHECK(ran == 0);
  REQUIRE(left.size() == 2);
  for (auto& fn : left) fn();
  CHECK(ran == 2);
}

TEST_CASE("uv close: uv_close_and_delete frees a handle owned by pointer once closed", "[uv_handles]") {
  Loop l;
  auto* t = new uv_timer_t;
  REQUIRE(uv_timer_init(&l.loop, t) == 0);
  REQUIRE(uv_timer_start(t, [](uv_timer_t*) {}, 10000, 0) == 0);
  uv_close_and_delete(t);  // an active handle: closing stops it
  l.run();                 // the close callback deletes it (ASan: no leak, no use after free)
}

TEST_CASE("uv close: uv_close_and_delete_owner frees the handle's owner once closed", "[uv_handles]") {
  Loop l;
  int freed = 0;
  auto* o = new Owned(&freed);
  REQUIRE(uv_timer_init(&l.loop, &o->timer) == 0);
  o->timer.data = o;
  // Closed from the handle's own callback, as the HTTP listener is.
  REQUIRE(uv_timer_start(
              &o->timer, [](uv_timer_t* h) { uv_close_and_delete_owner<Owned>(h); }, 1, 0) == 0);
  l.run();
  CHECK(freed == 1);
}
