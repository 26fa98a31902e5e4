// Completions from worker threads, run on the loop thread (see completion_queue.h).
#include "core/completion_queue.h"

#include <fmt/format.h>

#include "core/uv_close.h"

namespace taba {

CompletionQueue::~CompletionQueue() {
  if (destroyed_signal_) *destroyed_signal_ = true;
}

Status CompletionQueue::start(uv_loop_t* loop) {
  async_ = new uv_async_t;
  int rc = uv_async_init(loop, async_, [](uv_async_t* handle) {
    if (auto* self = static_cast<CompletionQueue*>(handle->data)) self->run();
  });
  if (rc != 0) {
    delete async_;
    async_ = nullptr;
    return Status::Internal(fmt::format("uv_async_init: {}", uv_strerror(rc)));
  }
  async_->data = this;
  return Status::Ok();
}

void CompletionQueue::post(std::vector<Completion>* out) {
  if (out->empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Completion& c : *out) posted_.push_back(std::move(c));
  }
  out->clear();
  uv_async_send(async_);
}

bool CompletionQueue::run() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (next_ == running_.size()) {
      // Nothing left from an outer run: take the posted ones whole.
      running_.clear();
      next_ = 0;
      running_.swap(posted_);
    } else {
      for (Completion& c : posted_) running_.push_back(std::move(c));
      posted_.clear();
    }
  }
  bool destroyed = false;
  bool* outer = destroyed_signal_;
  destroyed_signal_ = &destroyed;
  while (next_ < running_.size()) {
    Completion c = std::move(running_[next_++]);
    if (c.done) c.done(c.status);
    if (destroyed) {
      if (outer) *outer = true;
      return false;
    }
  }
  running_.clear();
  next_ = 0;
  destroyed_signal_ = outer;
  return true;
}

void CompletionQueue::close() {
  if (!async_) return;
  if (!run()) return;
  async_->data = nullptr;
  uv_close_and_delete(async_);
  async_ = nullptr;
}

}  // namespace taba
