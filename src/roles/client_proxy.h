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
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/config.h"
#include "core/string_map.h"
#include "http/server.h"
#include "plugin/registry.h"
#include "protocol/statsd.h"
#include "routes/ingest.h"
#include "routes/metrics.h"

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

// The StatsD half of the proxy, without sockets (the role feeds it; unit
// tests drive it directly): datagrams in, one v1 body per flush out.
//
// Per line it costs one parse, one hash lookup keyed by the name and tags as
// sent (map_name runs once per distinct spelling), and appends to the name's
// event lines: a per-type, per-millisecond prefix, the value (the text as
// sent when it is already the text fmt would write), a fixed suffix. Names
// keep their event buffers across flushes, so a steady stream allocates
// nothing per event.
class StatsdBuffer {
 public:
  explicit StatsdBuffer(uint64_t max_events) : max_events_(max_events) {}

  // One datagram received at `now` (Unix seconds); counts datagrams, lines,
  // bad_lines, type_conflicts, events_buffered and events_dropped_full.
  void add_datagram(std::string_view datagram, double now, ProxyStats* stats);
  uint64_t events() const { return events_; }
  // Appends the v1 body of the buffered events (client `client_id`, names
  // in the order they first had an event since the last call) to *out and
  // empties the buffer; false, leaving *out alone, when it is empty. Names,
  // their types and gauge values are kept.
  bool take_body(std::string_view client_id, std::string* out);
  // Names remembered (types, gauge values).
  size_t names() const { return names_.size(); }
  // Forgets every name (bounded memory); the buffer must be empty.
  void forget_names();

 private:
  // A growable byte buffer written through raw pointers: an event is a few
  // fixed-size copies into reserved space, not several string appends.
  class EventText {
   public:
    EventText() = default;
    EventText(const EventText&) = delete;
    EventText& operator=(const EventText&) = delete;
    ~EventText() { std::free(data_); }
    // Room for n more bytes; write them, then commit(the end written).
    char* reserve(size_t n) {
      if (cap_ - size_ < n) grow(n);
      return data_ + size_;
    }
    void commit(char* end) { size_ = static_cast<size_t>(end - data_); }
    std::string_view view() const { return {data_, size_}; }
    size_t size() const { return size_; }
    size_t capacity() const { return cap_; }
    void clear() { size_ = 0; }
    void release() {
      std::free(data_);
      data_ = nullptr;
      size_ = cap_ = 0;
    }

   private:
    void grow(size_t n);
    char* data_ = nullptr;
    size_t size_ = 0;
    size_t cap_ = 0;
  };
  struct Name {
    std::string name;          // the Taba name
    EventText lines;           // v1 event lines since the last take_body
    double gauge = 0;          // the last gauge value, for +n/-n
    uint64_t generation = 0;   // the take_body generation `lines` belongs to
    uint8_t type = 0;          // the first Taba type seen (index into kTypes)
  };
  // An event's prefix, ["<type>",<ts>," : copied as a whole block, used
  // for its length.
  struct Prefix {
    static constexpr size_t kBlock = 64;
    char text[kBlock];
    size_t len = 0;
  };
  // Open addressing over (name, tags) as sent: hash 0 marks an empty slot.
  struct RawSlot {
    uint64_t hash = 0;
    uint32_t id = 0;       // index in names_
    uint32_t key_len = 0;  // name, '|', tags in raw_keys_
    size_t key_off = 0;
  };
  static constexpr uint32_t kNoName = UINT32_MAX;
  // Per 64 bytes of a datagram: bit i set when byte i is '\n', ':' or '|'
  // (colon), '|' (bar). One vector pass finds every line's splits.
  struct ByteMasks {
    uint64_t newline;
    uint64_t colon;
    uint64_t bar;
  };

  uint32_t find_or_add(const protocol::statsd::Line& line);
  uint32_t add_spelling(const protocol::statsd::Line& line, uint64_t hash, size_t slot);
  void grow_raw();
  void set_time(double ts);
  static void make_prefix(std::string_view type, double ts, Prefix* out);
  void append_value(uint32_t id, Name& n, const protocol::statsd::Line& value, const Prefix& prefix, ProxyStats* stats);

  uint64_t max_events_;
  uint64_t events_ = 0;
  uint64_t generation_ = 1;
  std::deque<Name> names_;  // stable addresses, never moved
  std::vector<Name*> by_id_;  // &names_[id]: one load instead of deque indexing
  StringMap<uint32_t> by_name_;
  std::vector<RawSlot> raw_;
  size_t raw_used_ = 0;
  std::string raw_keys_;
  std::vector<uint32_t> dirty_;  // names with events since the last take_body, in first-event order
  std::string name_scratch_;
  std::vector<ByteMasks> masks_;
  std::string set_scratch_;
  std::string set_text_;
  Prefix stamp_prefix_;      // for a line with its own |T timestamp
  double ts_cached_ = -1;
  Prefix prefixes_[4];       // per Taba type, for the cached millisecond
};

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
    uv_timer_t timer;
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
  uv_timer_t flush_timer_;
  bool timer_open_ = false;
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
  uv_timer_t drain_timer_;
  bool drain_open_ = false;
  std::function<void()> shutdown_done_;
  uint64_t rng_state_;
};

}  // namespace taba::roles
