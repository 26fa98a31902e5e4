// Completions handed from worker threads to the libuv loop thread: the
// WAL's writer and snapshot threads and the agent spool's writer post
// (callback, status) pairs, and the loop runs them in the order they were
// posted. A completion may close, or even destroy, the object that owns the
// queue: the run then stops touching it.
#pragma once

#include <uv.h>

#include <functional>
#include <mutex>
#include <vector>

#include "core/status.h"

namespace taba {

class CompletionQueue {
 public:
  using Done = std::function<void(const Status&)>;
  struct Completion {
    Done done;
    Status status;
  };

  CompletionQueue() = default;
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;
  ~CompletionQueue();  // tells a run in progress to stop

  // Loop thread, before any post().
  Status start(uv_loop_t* loop);

  // Any thread: queues the completions of *out (leaving it empty) and wakes the loop.
  void post(std::vector<Completion>* out);

  // Loop thread: runs what was posted, in order. Re-entrant: a completion may
  // call close() (which runs the rest, in order) or destroy the queue's owner.
  // False when the queue was destroyed while running.
  bool run();

  // Loop thread, once no thread posts any more: runs what is left, then
  // closes the loop handle. Idempotent.
  void close();

 private:
  uv_async_t* async_ = nullptr;  // heap-allocated: freed by its close callback, after we are gone

  std::mutex mu_;
  std::vector<Completion> posted_;  // guarded by mu_

  // Loop thread only.
  std::vector<Completion> running_;  // being run, from next_ on
  size_t next_ = 0;
  bool* destroyed_signal_ = nullptr;  // set on destruction, for run()
};

}  // namespace taba
