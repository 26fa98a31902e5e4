// tabad configuration: taba.toml (toml++) overridden by command-line flags.
// Unknown keys and bad values are errors that name the key path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/fsync_policy.h"
#include "core/log.h"
#include "core/status.h"

namespace taba {

// What the client-proxy posts to its agent (client_proxy.forward_format).
enum class ForwardFormat { kDelta, kV1 };
// The configuration spelling: "delta", "v1".
constexpr std::string_view forward_format_name(ForwardFormat f) { return f == ForwardFormat::kV1 ? "v1" : "delta"; }

// The roles one tabad process runs (server.roles, --role).
enum class Role { kClientProxy, kAgent, kFe, kBe, kCtrl };

// The configuration spelling: "client-proxy", "agent", "fe", "be", "ctrl".
std::string_view role_name(Role role);
// The spellings of `roles`, in their order.
std::vector<std::string> role_names(const std::vector<Role>& roles);

struct Config {
  struct Server {
    std::vector<Role> roles{Role::kFe, Role::kBe};
    std::string listen = "127.0.0.1:8300";
    std::string data_dir = "./taba-data";
    std::string plugins_dir;  // empty: <exe dir>/plugins, then <exe dir>/../lib/taba/plugins
    log::Level log_level = log::Level::kInfo;
    int64_t self_tabs_interval_s = 10;  // this process's own taba_* tabs; 0 = off
  } server;

  // Bearer tokens (Authorization: Bearer TOKEN); empty = not required.
  struct Auth {
    std::string ingest_token;  // /post, /post_zip
    std::string admin_token;   // /delete /gc /check /flush, POST /reshard; also valid wherever query_token is
    std::string query_token;   // queries, /status /servers /latency /metrics, GET /reshard
  } auth;

  struct Store {
    FsyncPolicy fsync = FsyncPolicy::kEverySec;
    int64_t snapshot_interval_s = 60;
    int64_t wal_max_queued_bytes = 256ll << 20;
    int64_t dedup_ttl_s = 3600;   // an applied client Taba-Batch-Id is remembered this long
    int64_t gc_interval_s = 600;  // be: prune dead states this often (both store modes); 0 = never
  } store;

  // Present: state lives in Redis masters found through Sentinel (docs/operations.md).
  struct Redis {
    struct Shard {
      std::string name;  // the Sentinel master name
      int64_t first_vbucket = 0;
      int64_t last_vbucket = 0;  // inclusive
    };
    bool enabled = false;
    std::vector<std::string> sentinels;  // host:port
    int64_t vbuckets = 1024;
    std::vector<Shard> shards;
    int64_t min_replica_acks = 0;  // > 0: the fe WAITs for this many replicas before its 200
    int64_t replica_ack_timeout_ms = 1000;
    int64_t connect_timeout_ms = 1000;
    int64_t command_timeout_ms = 2000;
    int64_t pool_size = 2;  // pipelined connections per shard (plus dedicated ones for the be)
    std::string password;
    std::string key_prefix = "taba:";
    int64_t dedup_ttl_s = 3600;           // how long an applied batch id is remembered
    int64_t claim_idle_ms = 10'000;       // a pending entry idle this long is claimed by another be
    int64_t max_stream_entries = 100'000; // fe answers 503 while a shard's stream is longer
    int64_t placement_refresh_ms = 1000;  // re-read the placement this often (and at once when fenced)
    int64_t reshard_names_per_s = 0;      // a move copies at most this many names per second; 0 = no limit
    int64_t reshard_lease_ms = 5000;      // a move driver silent this long is gone (the move can be resumed)
    int64_t max_read_bytes = 32ll << 20;  // a be reads and merges at most this many entry bytes per round (>= 1 entry)
    int64_t idle_consumer_ms = 600'000;   // a stream consumer idle this long with nothing pending is deleted
  } redis;

  struct Http {
    int64_t max_body_bytes = 64ll << 20;
    int64_t max_header_bytes = 64 << 10;
    int64_t header_timeout_ms = 10'000;
    int64_t body_timeout_ms = 30'000;
    int64_t min_body_rate = 1024;  // bytes/s a body must average once body_timeout_ms has passed; 0 = off
    int64_t idle_timeout_ms = 60'000;
    int64_t max_connections = 10'000;
  } http;

  struct Ingest {
    int64_t max_inflated_bytes = 512ll << 20;  // decompressed body limit
    int64_t max_inflate_ratio = 1000;           // decompressed/compressed bytes
    int64_t future_clamp_s = 60;                // stamps beyond now+this are clamped
    int64_t max_events_per_body = 1'000'000;    // more: 413; 0 = no limit
    int64_t max_names = 1'000'000;              // distinct names in the store; a body adding more: 422; 0 = no limit
    int64_t max_names_per_client = 100'000;     // names one client has state for; more: 422; 0 = no limit
    bool operator==(const Ingest&) const = default;
  } ingest;

  // GET /metrics/tabs, the tabs as Prometheus families (docs/prometheus.md).
  struct Prometheus {
    std::string prefix;                   // in front of every tab's metric name ([A-Za-z_][A-Za-z0-9_]* or "")
    int64_t max_series_per_tab = 1000;    // samples of one tab beyond it are left out (counted)
    int64_t max_series = 1'000'000;       // samples of one reply beyond it are left out (counted)
    bool operator==(const Prometheus&) const = default;
  } prometheus;

  // The agent role (docs/operations.md, "An agent on every host"): a durable spool in front of the fes.
  struct Agent {
    std::string listen = "127.0.0.1:8279";
    std::string spool_dir;        // "" = <server.data_dir>/spool
    std::string dead_letter_dir;  // "" = <server.data_dir>/dead-letters
    int64_t spool_max_bytes = 1ll << 30;           // posts get 503 beyond this
    int64_t max_dead_letter_bytes = 256ll << 20;   // oldest dead letters deleted beyond this
    FsyncPolicy fsync = FsyncPolicy::kEverySec;
    std::vector<std::string> endpoints{"http://127.0.0.1:8300"};  // fes: http://host:port (or host:port)
    int64_t batch_max_bytes = 8ll << 20;  // a forwarded batch is sealed past this size...
    int64_t flush_interval_ms = 200;      // ...or this long after its first post
    int64_t forward_concurrency = 2;      // requests in flight
    int64_t forward_timeout_ms = 10'000;
    int64_t backoff_initial_ms = 100;
    int64_t backoff_max_ms = 30'000;
    int64_t shutdown_grace_ms = 5000;  // SIGTERM: keep forwarding this long
    std::string forward_token;         // Bearer token sent to the fes
    int64_t dedup_ttl_s = 600;         // a client's Taba-Batch-Id is remembered this long
    bool compress_deltas = true;       // zlib the /post_delta bodies (Content-Encoding: deflate)
    int64_t max_deltas_per_batch = 10'000;  // states folded per batch; later (client, name)s go as v1
    // A batch an fe answers with 5xx while that fe acknowledges other
    // batches becomes a dead letter after this many such answers (0 = never:
    // retried for ever)...
    int64_t dead_letter_after_errors = 20;
    int64_t dead_letter_after_s = 600;  // ...the first of them at least this long ago
  } agent;

  // The client-proxy role: StatsD/DogStatsD and local posts, forwarded to an agent.
  struct ClientProxy {
    std::string listen = "127.0.0.1:8280";      // HTTP: POST /post, /status, /metrics
    std::string statsd_udp = "127.0.0.1:8125";  // "" = off
    std::string statsd_unix;                    // unix datagram socket path; "" = off
    std::string agent = "http://127.0.0.1:8279";  // http://host:port (or host:port)
    std::string client_id;                      // "" = this host's name
    int64_t flush_interval_ms = 200;
    int64_t max_buffered_events = 1'000'000;    // not yet handed to the agent; beyond: dropped, counted
    int64_t max_retry_bytes = 64ll << 20;       // bodies kept while the agent is unreachable
    int64_t udp_recv_buffer_bytes = 8ll << 20;
    int64_t forward_timeout_ms = 5000;
    std::string forward_token;                  // Bearer token sent to the agent
    // What a flush becomes: "delta" (one delta batch of the names' folded
    // states, POST /post_delta; v1 when the agent has no such route) or
    // "v1" (a v1 body of the events, POST /post).
    ForwardFormat forward_format = ForwardFormat::kDelta;
  } client_proxy;

  struct Plugins {
    // Extra type names served by a loaded type's handler, or overrides of a
    // built-in name: {"LatencyMs" = "PercentileGroup"}.
    std::vector<std::pair<std::string, std::string>> types;
  } plugins;

  bool has_role(Role role) const;
  // fe, be or ctrl: the process runs the server role (roles/server.h).
  bool serves() const { return has_role(Role::kFe) || has_role(Role::kBe) || has_role(Role::kCtrl); }
};

// Reads and validates a taba.toml file into `config` (keys absent from the
// file keep their current values).
Status load_config_file(const std::string& path, Config* config);

// The same, for configuration text; `origin` names it in errors.
Status load_config_text(std::string_view text, const std::string& origin, Config* config);

// Reads role spellings (the TOML array server.roles, or --role) into `roles`;
// an unknown one is an error naming it.
Status parse_roles(const std::vector<std::string>& names, std::vector<Role>* roles);

// Reads an fsync spelling ("always" or "everysec") into `policy`; anything
// else is an error naming `key` ("store.fsync", "agent.fsync").
Status parse_fsync_policy(std::string_view key, std::string_view text, FsyncPolicy* policy);

// Reads a log level spelling (server.log_level, --log-level: "debug",
// "info", "warn" or "error") into `level`; anything else is an error.
Status parse_log_level(std::string_view text, log::Level* level);

// Checks cross-field rules (roles, ranges).
Status validate_config(const Config& config);

// The effective configuration as TOML text (for --check-config).
std::string dump_config(const Config& config);

}  // namespace taba
