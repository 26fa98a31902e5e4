// Completions posted from other threads and run on the loop thread
// (core/completion_queue): order, a completion that closes the queue, and
// one that destroys the queue's owner.
#include "core/completion_queue.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <thread>
#include <vector>

using namespace taba;
using Completion = CompletionQueue::Completion;

namespace {

struct Loop {
  Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);  // fails if the queue leaked its handle
  }
  uv_loop_t loop;
};

}  // namespace

TEST_CASE("completion queue: completions run on the loop in the order posted", "[completion_queue]") {
  Loop l;
  CompletionQueue q;
  REQUIRE(q.start(&l.loop).ok());
  std::vector<int> ran;
  std::thread worker([&] {
    for (int i = 0; i < 100; i += 2) {
      std::vector<Completion> out;
      out.push_back({[&ran, i](const Status& s) { ran.push_back(s.ok() ? i : -1); }, Status::Ok()});
      out.push_back({[&ran, i](const Status& s) { ran.push_back(s.ok() ? -1 : i + 1); }, Status::IoError("x")});
      q.post(&out);
      CHECK(out.empty());
    }
  });
  worker.join();
  uv_run(&l.loop, UV_RUN_NOWAIT);
  REQUIRE(ran.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(ran[i] == i);
  q.close();
}

TEST_CASE("completion queue: a completion may close the queue, and the rest still run, in order", "[completion_queue]") {
  Loop l;
  CompletionQueue q;
  REQUIRE(q.start(&l.loop).ok());
  std::vector<int> ran;
  std::vector<Completion> out;
  out.push_back({[&](const Status&) {
                   ran.push_back(0);
                   // Posted while running: close() runs it after the ones already taken.
                   std::vector<Completion> late;
                   late.push_back({[&](const Status&) { ran.push_back(3); }, Status::Ok()});
                   q.post(&late);
                   q.close();
                   ran.push_back(99);
                 },
                 Status::Ok()});
  out.push_back({[&](const Status&) { ran.push_back(1); }, Status::Ok()});
  out.push_back({[&](const Status&) { ran.push_back(2); }, Status::Ok()});
  q.post(&out);
  uv_run(&l.loop, UV_RUN_NOWAIT);
  CHECK(ran == std::vector<int>{0, 1, 2, 3, 99});
  q.close();  // idempotent
}

TEST_CASE("completion queue: a completion may destroy the queue's owner", "[completion_queue]") {
  Loop l;
  auto q = std::make_unique<CompletionQueue>();
  REQUIRE(q->start(&l.loop).ok());
  std::vector<int> ran;
  std::vector<Completion> out;
  out.push_back({[&](const Status&) {
                   ran.push_back(0);
                   q->close();  // as an owner's destructor does
                   q.reset();
                 },
                 Status::Ok()});
  out.push_back({[&](const Status&) { ran.push_back(1); }, Status::Ok()});
  q->post(&out);
  uv_run(&l.loop, UV_RUN_NOWAIT);
  CHECK(ran == std::vector<int>{0, 1});
  CHECK(q == nullptr);
}
