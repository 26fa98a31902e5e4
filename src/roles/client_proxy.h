// The client-proxy role (docs/statsd.md, docs/operations.md): a local, best-effort entry point.
//
// StatsD / DogStatsD datagrams arrive on UDP (recvmmsg, a large receive
// buffer) and optionally on a unix datagram socket; each line becomes an
// event (docs/statsd.md) in a buffer bounded by max_buffered_events
// (StatsdBuffer, statsd_buffer.h). Every flush_interval_ms the buffer's
// events are folded by the plugins into one state per name, written as one
// delta batch (protocol/delta_batch.h) and queued for a forwarding thread
// that posts it to the agent's POST /post_delta with its own Taba-Batch-Id
// (kept across retries, so the agent spools it once). With
// client_proxy.forward_format = "v1", or when the agent has no
// /post_delta (an older release: the forwarding thread asks it before the
// first flush, and again every minute), a flush is one v1 body for
// POST /post instead. Taba posts to POST /post on the proxy's own HTTP port
// are validated and queued as v1 bodies. Queued bodies are bounded by
// max_retry_bytes; what does not fit is dropped and counted. Bad lines are
// counted and skipped.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/uv_timer.h"
#include "http/client.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "protocol/delta_batch.h"
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
    bool delta = false;  // a delta batch in its envelope (POST /post_delta), else a v1 body (POST /post)
  };
  // What flushes make (format_): kAsking until the agent has answered
  // whether it takes delta batches.
  enum class Format : int { kAsking, kDelta, kV1 };

  std::unique_ptr<http::RequestHandler> route(const std::shared_ptr<http::Exchange>& ex);
  void flush();
  bool enqueue(Body body, bool drop_oldest);
  void forward_main();
  // One POST of an empty delta batch to the agent's /post_delta: its HTTP
  // status, or 0 with *error set when there was no answer.
  int ask_agent(std::optional<http::ClientConnection>* conn, const std::string& host, int port, int timeout,
                std::string* error);
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
  protocol::DeltaWriter delta_writer_;
  // Set by the forwarding thread (the agent's answers), read by flush().
  std::atomic<Format> format_{Format::kAsking};
  // forward_format is "delta" and the plugins of every StatsD type are
  // loaded: the forwarding thread asks the agent (start() sets it).
  bool may_delta_ = false;

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
