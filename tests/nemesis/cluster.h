// The cluster a nemesis run attacks, on loopback: every tabad process (each
// on a fixed port, so that a restart comes back where its peers look for it,
// each under libfaketime so that its wall clock can be stepped), the links
// between roles (link.h), and in Redis mode a Redis + Sentinel deployment.
//
//   embedded: server (fe,be, embedded store), agent0, agent1, client-proxy
//   redis:    2 shards (master + replica each), 3 sentinels, fe0, fe1, be0,
//             be1, ctrl, agent0, agent1, client-proxy
//
// Links: client -> agent i (client<i>), agent i -> fe j (agent<i>->fe<j>) and
// client-proxy -> agent0. The loaders post through the client links, the
// agents forward through theirs; direct v1 posts go to the fes themselves.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "link.h"
#include "redis_harness.h"

namespace taba::nemesis {

using test::RedisCluster;

enum class StoreMode { kEmbedded, kRedis };

// One tabad process of the cluster.
struct Node {
  std::string name;   // "fe0", "agent1", "proxy", "server", ...
  std::string roles;  // --role
  int port = 0;       // HTTP
  std::string dir;    // data dir (spool, WAL), config and log
  std::string config;
  std::string clock_file;  // libfaketime's FAKETIME_TIMESTAMP_FILE
  pid_t pid = -1;
  bool paused = false;
  int clock_step_s = 0;

  bool is_agent() const { return name.rfind("agent", 0) == 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

class Cluster {
 public:
  Cluster(StoreMode mode, std::string tabad, std::string dir);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts everything and waits until every process answers /healthz and
  // every fe /readyz.
  Status start();

  StoreMode mode() const { return mode_; }
  std::vector<Node*> nodes();
  Node* node(const std::string& name);
  std::vector<Node*> fes();     // fe0, fe1 (or the embedded server)
  std::vector<Node*> agents();  // agent0, agent1
  Node* query_node();           // where the checker reads: the ctrl, or the server
  int statsd_port() const { return statsd_port_; }
  // The client link in front of agent i.
  Link* client_link(int agent);
  std::vector<Link*> links();
  RedisCluster* redis() { return redis_.get(); }

  // Process faults. restart() starts a killed node again on its port with
  // its own data dir; it waits (bounded) until /healthz answers.
  void kill9(Node* n);
  Status restart(Node* n);
  bool alive(Node* n);
  void pause(Node* n);
  void resume(Node* n);
  // False when libfaketime is not installed: clocks cannot be stepped.
  bool can_step_clocks() const { return !faketime_lib_.empty(); }
  // Steps n's wall clock to `seconds` off the real one (0: back to real).
  void step_clock(Node* n, int seconds);
  // RLIMIT_FSIZE on n (0: lifted): writes past `bytes` fail, a full disk.
  void limit_file_size(Node* n, uint64_t bytes);

  // The end of a node's log, for failure reports.
  std::string log_tail(const Node* n, size_t bytes = 3000) const;

 private:
  Status spawn(Node* n);
  Status wait_healthy(Node* n, int timeout_ms);
  std::string write_config(Node* n, const std::string& text);
  Node* add(const std::string& name, const std::string& roles);

  StoreMode mode_;
  std::string tabad_;
  std::string dir_;
  std::string faketime_lib_;
  int statsd_port_ = 0;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Link>> links_;
  std::map<int, Link*> client_links_;
  std::unique_ptr<RedisCluster> redis_;
};

}  // namespace taba::nemesis
