// A throwaway Redis + Sentinel deployment for integration tests: real
// redis-server and redis-sentinel child processes on free loopback ports,
// files in one temporary directory, everything killed and reaped by the
// destructor.
//
// Layout: `shards` masters named for Sentinel "shard1", "shard2", ...; each
// with `replicas_per_shard` replicas (replicaof their master); `sentinels`
// sentinels, each monitoring every shard. Processes are addressed by port.
//
// Needs redis-server, redis-cli and redis-sentinel (or redis-server, run as
// `redis-server <conf> --sentinel`) on PATH; $TABA_REDIS_SERVER,
// $TABA_REDIS_SENTINEL and $TABA_REDIS_CLI override the programs.
//
// Not thread-safe; use from the test's main thread. Children get
// PR_SET_PDEATHSIG(SIGKILL), so they die with the thread that started them.
//
// Sentinel timing worth knowing when writing tests against it:
//  - Sentinels find each other through hello messages published every 2 s,
//    so start() takes ~2-3 s even on an idle machine.
//  - After a failover the old master, if still alive, stays a master until a
//    sentinel reconverts it: that happens on the first INFO poll (every 10 s
//    for replicas) at least 8 s after sentinel first saw the wrong role,
//    i.e. ~10 s after failover() returns. wait_synced() waits for it.
#pragma once

#include <sys/types.h>

#include <deque>
#include <string>
#include <vector>

#include "core/status.h"

namespace taba::test {

// RedisCluster::Options. Defined outside the class only so that it is
// complete where start()'s default argument needs it (GCC rejects `= {}` for
// a nested aggregate with default member initializers).
struct RedisClusterOptions {
  int shards = 2;  // Sentinel master names "shard1", "shard2", ...
  int replicas_per_shard = 1;
  int sentinels = 3;
  int quorum = 2;  // min(quorum, sentinels)
  int down_after_ms = 1000;
  int failover_timeout_ms = 3000;
};

class RedisCluster {
 public:
  using Options = RedisClusterOptions;

  RedisCluster() = default;
  // SIGKILLs everything still running (stopped ones too), reaps it, and
  // removes the temporary directory (unless $TABA_TEST_KEEP_DIRS is set).
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Starts masters, replicas (replicaof their master) and sentinels (each
  // monitoring every shard), then waits (15 s at most) until every replica is
  // in sync (master_link_status:up) and every sentinel reports every master
  // with all its replicas and all the other sentinels. A port taken meanwhile
  // is retried with another. The error names what failed and carries the end
  // of the relevant log. Call once per object.
  Status start(Options options = {});

  // "127.0.0.1:PORT" for every sentinel, in start order (dead ones too).
  std::vector<std::string> sentinel_addrs() const;
  std::vector<int> sentinel_ports() const;
  // 0-based index -> "shard1", ...
  std::string shard_name(int shard) const;
  int shards() const { return static_cast<int>(shard_ports_.size()); }

  // The current master's port of a shard, as the first answering sentinel
  // (not paused or killed by this object) reports it.
  Result<int> master_port(int shard) const;
  // Every redis-server port of the shard, the initial master first (the
  // order does not follow failovers).
  std::vector<int> node_ports(int shard) const;
  // The redis-server or sentinel process at that port, or -1.
  pid_t pid_of(int port) const;
  // The directory holding every config file and log (redis-PORT.log,
  // sentinel-PORT.log, sentinel-PORT.conf).
  const std::string& dir() const { return dir_; }
  // The end of the log of the process at that port (for failure messages).
  std::string log_tail(int port) const;

  // Runs `redis-cli -e -h 127.0.0.1 -p PORT ARGS...` and returns its stdout
  // with trailing newlines removed (--raw formatting: one line per array
  // element). An error reply, a failed connection or running past
  // timeout_ms (the redis-cli is then killed) is an error Status carrying
  // what redis-cli printed.
  Result<std::string> cli(int port, const std::vector<std::string>& args, int timeout_ms = 10'000) const;

  // SENTINEL FAILOVER shardN (retried while a sentinel answers NOGOODSLAVE or
  // INPROG), then waits (30 s at most in all) until every live sentinel
  // reports the same master, different from the one before, and that node
  // answers ROLE with "master". Returns the new master's port. The old
  // master, if alive, is still a master at that point (see above).
  Result<int> failover(int shard);

  // Waits until every live redis-server of the shard but the current master
  // is a replica of it with master_link_status:up (e.g. the old master after
  // failover(), a restarted node).
  Status wait_synced(int shard, int timeout_ms = 30'000) const;

  // SIGSTOP / SIGCONT, returning once the process is stopped / running.
  Status pause(int port);
  Status resume(int port);
  // SIGKILL and reap.
  Status kill9(int port);
  // Starts a killed process again on the same port with the same arguments
  // (a sentinel with its rewritten config file) and waits until it answers
  // PING. A restarted master comes back empty and as a master until
  // sentinel reconverts it (~10 s, see above).
  Status restart(int port);

  // A [redis] TOML section for tabad:
  //   [redis]
  //   sentinels = ["127.0.0.1:P1", ...]
  //   vbuckets = 1024
  //   <extra_redis_lines, one per line>
  //
  //   [[redis.shards]]
  //   name = "shard1"
  //   vbuckets = [0, 511]
  //   ...
  // with 0..vbuckets-1 split into contiguous, near-equal ranges in shard order.
  // placed_shards > 0: only the first placed_shards shards get a range (the
  // split is among them); the others are monitored by the sentinels but own
  // no vbucket, e.g. the target of a re-sharding move.
  std::string toml(int vbuckets = 1024, const std::vector<std::string>& extra_redis_lines = {},
                   int placed_shards = 0) const;

 private:
  struct Proc {
    enum class Kind { kServer, kSentinel };
    Kind kind = Kind::kServer;
    int shard = -1;  // servers only
    int port = 0;
    pid_t pid = -1;
    bool alive = false;             // spawned and not yet reaped
    bool paused = false;            // SIGSTOPped by pause()
    std::vector<std::string> args;  // argv, argv[0] a path
    std::string log;
    std::string conf;  // sentinels only
  };

  Status spawn(Proc* p);
  Status start_proc(Proc* p, int master_port);  // picks a port, spawns, waits for PING
  void prepare(Proc* p, int master_port);       // args (and the sentinel config) for p->port
  Status wait_ping(Proc* p, int timeout_ms);
  bool reap(Proc* p, bool block);  // true once the process has exited
  Proc* find(int port);
  const Proc* find(int port) const;
  bool usable(const Proc& p) const { return p.alive && !p.paused; }
  Status wait_converged(int64_t deadline_ms) const;

  Options options_;
  std::string dir_;
  std::string server_bin_, sentinel_bin_, cli_bin_;
  bool sentinel_via_server_ = false;
  std::deque<Proc> procs_;                     // servers, then sentinels (stable addresses)
  std::vector<std::vector<int>> shard_ports_;  // per shard: server ports, initial master first
};

}  // namespace taba::test
