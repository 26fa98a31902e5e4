// One Redis shard for the layer's users: a Sentinel master name, followed
// through failovers, with a pool of pipelined connections and dedicated ones.
//
// The ground rules of connection.h hold here: loop thread only, no callback
// from inside the call that registered it, the destructor fails what is
// pending at once. Listener registrations (Connection::on_state,
// Sentinels::on_switch) add a listener; there is no removal, so a listener
// must outlive its subject or guard itself.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis/connection.h"
#include "redis/sentinels.h"

namespace taba::redis {

// One shard: a Sentinel master name. Owns a pool of pipelined connections plus
// any number of dedicated connections (for WATCH/MULTI/EXEC and blocking
// reads), all pointed at the current master. The master is (re)resolved
// through Sentinels at start, on any connection loss or timeout, on a READONLY
// or MASTERDOWN error reply, on a matching +switch-master event, and when a
// connected node answers ROLE with anything but "master" (checked after every
// (re)connect). Reconnects use exponential backoff with jitter (100 ms
// doubling to 2 s). Logs one line per master change / loss (not per retry).
// The first resolution after a healthy period is immediate; while the shard
// stays unusable they back off (100 ms doubling to 2 s). A READONLY or
// MASTERDOWN reply (still handed to the caller) marks every connection to that
// node unverified, so commands fail fast with Unavailable until ROLE says
// "master" again or the master moves. `sentinels` must outlive the shard.
class Shard {
 public:
  Shard(uv_loop_t* loop, Sentinels* sentinels, std::string master_name, ConnectionOptions options,
        int pool_size);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  void start();
  void stop();
  const std::string& name() const;
  bool ready() const;      // at least one pooled connection up to a verified master
  Address master() const;  // last resolved ({} when none)
  // Round-robin over the up pooled connections; Unavailable (deferred) when none is up.
  void command(const std::vector<std::string_view>& argv, Connection::Callback cb, uint32_t timeout_ms = 0);
  // A connection that follows the master like the pool does; owned by the
  // shard, valid until stop().
  Connection* dedicated();
  uint64_t master_changes() const;  // how many times the master address changed (the first
                                    // resolution is not a change)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::redis
