// The client-proxy role (docs/statsd.md, docs/operations.md): a local, best-effort entry point.
//
// StatsD / DogStatsD datagrams arrive on UDP (recvmmsg, a large receive
// buffer) and optionally on a unix datagram socket; each line becomes an
// event (docs/statsd.md) in a buffer bounded by max_buffered_events
// (StatsdBuffer, statsd_buffer.h). Every flush_interval_ms the buffer becomes
// one v1 body, queued for a forwarding thread that posts it to the agent with
// its own Taba-Batch-Id (kept across retries, so the agent spools it once).
// Taba posts to POST /post on the proxy's own HTTP port are validated and
// queued the same way. Queued bodies are bounded by max_retry_bytes; what
// does not fit is dropped and counted. Bad lines are counted and skipped.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/uv_timer.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "roles/statsd_buffer.h"
#include "routes/ingest.h"
#include "routes/metrics.h"

namespace taba::roles {

class ClientProxyRole : public routes::IngestSink {
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
  void write_metrics(routes::MetricsWriter* w) const;
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
    // Shared, so that the forwarding thread takes it without copying while
    // the queue keeps it until the agent has it.
    std::shared_ptr<const std::string> text;
    uint64_t events = 0;
  };

  std::unique_ptr<http::RequestHandler> route(const std::shared_ptr<http::Exchange>& ex);
  void flush();
  bool enqueue(Body body, bool drop_oldest);
  void forward_main();
  std::string new_batch_id();
  // A datagram socket (UDP or unix) read with recvmmsg. After a read that
  // found datagrams the proxy stops waiting for readiness and reads again
  // after kCoalesceMs: under load one wakeup then takes tens of datagrams
  // instead of one or two, and the receive buffer absorbs the wait.
  struct DatagramInput {
    ClientProxyRole* self = nullptr;
    int fd = -1;
    uv_poll_t poll;
    std::unique_ptr<UvTimer> timer;
    bool open = false;     // poll and timer initialised
    bool polling = false;  // waiting for readiness (else the timer is due)
  };
  Status open_udp_socket();
  Status open_unix_socket();
  Status start_input(DatagramInput* in);
  size_t read_input(DatagramInput* in, bool* more);
  void service_input(DatagramInput* in);
  void stop_input(DatagramInput* in);
  void close_handles();

  uv_loop_t* loop_;
  Config config_;
  const plugin::Registry* registry_;
  std::string client_id_;
  std::unique_ptr<routes::Ingest> ingest_;
  std::unique_ptr<http::Server> server_;

  DatagramInput udp_in_;
  DatagramInput unix_in_;
  std::unique_ptr<UvTimer> flush_timer_;
  std::vector<char> recv_buf_;

  // Loop thread: the current buffer and its counters.
  ProxyStats loop_stats_;
  std::unique_ptr<StatsdBuffer> buffer_;

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
  std::unique_ptr<UvTimer> drain_timer_;  // from shutdown() until the forwarder is done
  std::function<void()> shutdown_done_;
  uint64_t rng_state_;
};

}  // namespace taba::roles
