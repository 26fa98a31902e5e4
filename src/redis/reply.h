// Small helpers over hiredis replies and for fanning out commands: what the
// Redis layer's users (the Redis store) read replies with.
#pragma once

#include <hiredis/hiredis.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"
#include "redis/connection.h"

namespace taba::redis {

inline std::string_view reply_str(const redisReply* r) {
  if (!r) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
    return std::string_view(r->str, r->len);
  }
  return {};
}
inline bool reply_is_nil(const redisReply* r) { return !r || r->type == REDIS_REPLY_NIL; }
inline bool reply_is_array(const redisReply* r) { return r && r->type == REDIS_REPLY_ARRAY; }
inline bool reply_is_error(const redisReply* r) { return r && r->type == REDIS_REPLY_ERROR; }
inline long long reply_int(const redisReply* r) { return r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0; }

// Counts outstanding replies of a fan-out and runs `then` once all are in,
// with the first failure (a lost connection, a timeout, or an error reply
// unless the handler accepts errors).
class Gather : public std::enable_shared_from_this<Gather> {
 public:
  explicit Gather(std::function<void(const Status&)> then) : then_(std::move(then)) {}

  // A callback for one command; `handle` sees the reply when the command did
  // not fail (error replies fail the gather unless accept_errors).
  Connection::Callback add(std::function<void(const redisReply*)> handle, bool accept_errors = false,
                           std::string what = {}) {
    ++pending_;
    auto self = shared_from_this();
    return [self, handle = std::move(handle), accept_errors, what = std::move(what)](const Status& s,
                                                                                     const redisReply* r) {
      if (!s.ok()) {
        self->fail(s);
      } else if (reply_is_error(r) && !accept_errors) {
        self->fail(Status::Unavailable(what.empty() ? std::string(reply_str(r))
                                                    : what + ": " + std::string(reply_str(r))));
      } else if (handle) {
        handle(r);
      }
      if (--self->pending_ == 0 && self->armed_) self->finish();
    };
  }
  void fail(const Status& s) {
    if (first_.ok()) first_ = s;
  }
  // Call after issuing every command.
  void arm() {
    armed_ = true;
    if (pending_ == 0) finish();
  }

 private:
  void finish() {
    if (done_) return;
    done_ = true;
    auto then = std::move(then_);
    then(first_);
  }
  std::function<void(const Status&)> then_;
  Status first_;
  int pending_ = 0;
  bool armed_ = false;
  bool done_ = false;
};

}  // namespace taba::redis
