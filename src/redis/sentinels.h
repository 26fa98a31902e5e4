// Sentinel master discovery for the Redis layer: which address a master name
// has now, and a subscription that hears when it changes.
//
// resolve() asks each sentinel in turn over a short-lived connection of its
// own (bounded per sentinel by the connect and command timeouts). start()
// keeps one connection subscribed to +switch-master; a lost subscription
// moves to the next sentinel after a backoff (100 ms doubling to 2 s).
//
// The ground rules of connection.h hold here: loop thread only, no callback
// from inside the call that registered it, the destructor fails what is
// pending at once.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "redis/connection.h"

namespace taba::redis {

// Asks Sentinels for a master's address: each sentinel in turn (SENTINEL
// get-master-addr-by-name), the first that answers wins; Unavailable naming
// every sentinel's failure when none does. Keeps one subscription to
// "+switch-master" on some reachable sentinel (moving to the next on loss,
// with backoff) and calls the registered listeners with (master_name, new
// Address).
class Sentinels {
 public:
  Sentinels(uv_loop_t* loop, std::vector<Address> sentinels, ConnectionOptions options);
  ~Sentinels();  // in-flight resolve() callbacks fail with Unavailable, immediately
  Sentinels(const Sentinels&) = delete;
  Sentinels& operator=(const Sentinels&) = delete;

  void start();  // starts the +switch-master subscription
  void stop();
  void resolve(const std::string& master_name, std::function<void(const Status&, const Address&)> done);
  void on_switch(std::function<void(const std::string& master_name, const Address&)> cb);  // adds

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::redis
