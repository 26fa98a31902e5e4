// The client-proxy role (SPEC §3, §8): a local, best-effort entry point.
//
// StatsD / DogStatsD datagrams arrive on UDP (recvmmsg, a large receive
// buffer) and optionally on a unix datagram socket; each line becomes an
// event (docs/statsd.md) in a buffer bounded by max_buffered_events. Every
// flush_interval_ms the buffer becomes one v1 body, queued for a forwarding
// thread that posts it to the agent with its own Taba-Batch-Id (kept across
// retries, so the agent spools it once). Taba posts to POST /post on the
// proxy's own HTTP port are validated and queued the same way. Queued bodies
// are bounded by max_retry_bytes; what does not fit is dropped and counted.
// Bad lines are counted and skipped.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/string_map.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "protocol/statsd.h"
#include "roles/ingest.h"
#include "roles/metrics.h"

namespace taba::roles {

struct ProxyStats {
  uint64_t datagrams = 0;
  uint64_t lines = 0;           // good lines (values of multi-value lines counted once each)
  uint64_t bad_lines = 0;       // malformed, unmappable names, type conflicts
  uint64_t type_conflicts = 0;  // part of bad_lines
  uint64_t events_buffered = 0; // total accepted into the buffer
  uint64_t events_dropped_full = 0;   // buffer at max_buffered_events
  uint64_t events_dropped_retry = 0;  // queued bodies over max_retry_bytes
  uint64_t bodies_forwarded = 0;
  uint64_t events_forwarded = 0;
  uint64_t bodies_rejected = 0;       // the agent answered 4xx: dropped
  uint64_t events_rejected = 0;       // in those bodies
  uint64_t forward_failures = 0;      // retried
  uint64_t queued_bytes = 0;
  uint64_t queued_bodies = 0;
  uint64_t names_forgotten = 0;       // times the name table passed its bound and was cleared
};

class ClientProxyRole : public IngestSink {
 public:
  ClientProxyRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry);
  ~ClientProxyRole() override;

  Status start();
  int http_port() const;
  int udp_port() const;
  // SIGTERM: stops receiving, flushes the buffer and keeps handing queued
  // bodies to the agent for up to agent.shutdown_grace_ms; what is left is
  // dropped (logged).
  void shutdown(std::function<void()> done);
  void release_handles();
  void reload(const Config& config);

  ProxyStats stats() const;
  void write_metrics(MetricsWriter* w) const;
  std::string status_text() const;

  // IngestSink (POST /post on the proxy)
  const plugin::Handler* bound_handler(std::string_view) const override { return nullptr; }
  void submit(std::string batch, store::BatchId batch_id, store::Bindings new_bindings, uint64_t events,
              std::function<void(const Status&)> done) override;

  // Handles one datagram (public for the benchmark).
  void handle_datagram(std::string_view datagram, double now);

 private:
  struct Body {
    std::string batch_id;
    std::string text;
    uint64_t events = 0;
  };
  struct NameBuffer {
    std::string name;
    std::string lines;  // v1 event lines
    uint32_t events = 0;
  };

  std::unique_ptr<http::RequestHandler> route(const std::shared_ptr<http::Exchange>& ex);
  // What the proxy remembers per name: one hash lookup per line.
  struct NameState {
    std::string_view type;     // the first type seen (a static string)
    double gauge = 0;          // the last gauge value, for +n/-n
    uint64_t generation = 0;   // flush generation `slot` belongs to (0: none)
    size_t slot = 0;           // index in names_ while generation is current
  };
  void add_event(NameState* state, std::string_view name, std::string_view type, double ts,
                 std::string_view payload_json);
  void flush();
  bool enqueue(Body body, bool drop_oldest);
  void forward_main();
  std::string new_batch_id();
  Status open_unix_socket();
  void close_handles();
  static void on_udp(uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const struct sockaddr* addr, unsigned flags);
  static void on_unix_readable(uv_poll_t* h, int status, int events);

  uv_loop_t* loop_;
  Config config_;
  const plugin::Registry* registry_;
  std::string client_id_;
  std::unique_ptr<Ingest> ingest_;
  std::unique_ptr<http::Server> server_;

  uv_udp_t udp_;
  bool udp_open_ = false;
  int unix_fd_ = -1;
  uv_poll_t unix_poll_;
  bool unix_open_ = false;
  uv_timer_t flush_timer_;
  bool timer_open_ = false;
  std::vector<char> recv_buf_;

  // Loop thread: the current buffer and its counters.
  ProxyStats loop_stats_;
  StringMap<NameState> states_;
  uint64_t generation_ = 1;  // bumped by every flush
  std::vector<NameBuffer> names_;
  uint64_t buffered_events_ = 0;
  std::string name_scratch_;
  std::string line_scratch_;
  double ts_cached_ = -1;
  std::string ts_text_;

  // Shared with the forwarding thread.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Body> queue_;
  uint64_t queued_bytes_ = 0;
  bool stop_ = false;
  int64_t stop_deadline_ms_ = 0;
  bool forward_idle_ = true;
  std::thread forwarder_;
  ProxyStats fwd_stats_;  // the forwarding thread's counters, under mu_

  bool stopping_ = false;
  uv_timer_t drain_timer_;
  bool drain_open_ = false;
  std::function<void()> shutdown_done_;
  uint64_t rng_state_;
};

}  // namespace taba::roles
