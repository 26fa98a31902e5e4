// taba/client.hpp — the C++ client library: record events from application
// code; a background thread ships them to the local agent (or any tabad fe)
// in wire protocol v1.
//
//   taba::Initialize({.client_id = "web01"});   // optional: defaults below
//   taba::Counter("bids_won");                  // CounterGroup, value 1
//   taba::Percentile("req_ms", 12.5);           // PercentileGroup
//   taba::Gauge("config_version", "v7");        // Gauge
//   taba::Stop();                               // final flush, before exit
//
// Link with the library taba_client (and zlib, pthreads). This header needs
// only the standard library. See docs/client.md for the full contract.
//
// Thread-safety: every member of Client may be called from any thread at
// any time. The recording calls never block on I/O and never throw; what they
// cannot keep is counted in Status(). Nothing in this library throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#if defined(__GNUC__)
#define TABA_CLIENT_API __attribute__((visibility("default")))
#else
#define TABA_CLIENT_API
#endif

namespace taba {

struct ClientOptions {
  // The agent (or an fe); "/post" is appended to its path.
  std::string endpoint = "http://127.0.0.1:8279";
  // Names this process's states on the server; durable across restarts.
  // Empty: the host name.
  std::string client_id;
  // How often the background thread ships what was recorded.
  std::chrono::milliseconds flush_interval{1000};
  // Events recorded and not yet encoded. Past it, new events are dropped
  // (dropped_full). Threads may each hold back up to a small slice of it.
  size_t max_pending_events = 1'000'000;
  // Bytes of text payloads (strings, Record JSON) held with those events;
  // numbers take none. Past it, new text events are dropped (dropped_full).
  size_t max_pending_bytes = 64u << 20;
  // Encoded bodies kept for retry while the agent is unreachable. Past it,
  // the oldest bodies are dropped (dropped_retry_overflow).
  size_t max_retry_bytes = 64u << 20;
  // Bodies are cut at about this many bytes (the receiver has a limit too).
  size_t max_body_bytes = 4u << 20;
  // Budget of one POST (connect, send, response).
  int timeout_ms = 5000;
  // Budget of the final flush made by Stop() (and by the destructor).
  std::chrono::milliseconds stop_timeout{5000};
  // Sent as "Authorization: Bearer <token>" when not empty.
  std::string token;
  // zlib-compress bodies (sent with Content-Encoding: deflate).
  bool compress = false;
  // A batch id is deduplicated only by the agent that received it, so once
  // a body may have reached a server, its retries go to that address (IP and
  // port) only, even when the endpoint's host resolves to several. When that
  // address gives no answer for this long, the body may go to any address
  // (counted in repinned; it may then be counted twice). The default is the
  // agent's default dedup window, agent.dedup_ttl_s = 600 s.
  std::chrono::milliseconds retry_pin_timeout{600'000};
};

// Counters since the client started, and what it holds now. Every event
// accepted by a recording call ends up in exactly one of: sent, pending_events,
// retry_events, dropped_conflict, dropped_rejected, dropped_retry_overflow,
// dropped_unsent. Events refused by a recording call count in
// dropped_invalid, dropped_full, or (after Stop) dropped_unsent.
struct ClientStatus {
  uint64_t recorded = 0;                // events accepted by the recording calls
  uint64_t sent = 0;                    // events in bodies the receiver answered 200
  uint64_t dropped_invalid = 0;         // refused: bad name, type or payload (see last_invalid)
  uint64_t dropped_full = 0;            // refused: max_pending_events reached
  uint64_t dropped_conflict = 0;        // a name recorded with a second type (first type wins)
  uint64_t dropped_rejected = 0;        // in name blocks the receiver refused with 400/413/415
  uint64_t dropped_retry_overflow = 0;  // in bodies dropped to stay within max_retry_bytes
  uint64_t dropped_unsent = 0;          // left unsent when Stop() finished, or recorded after it
  uint64_t posts_ok = 0;                // POSTs answered 200
  uint64_t posts_failed = 0;            // POSTs that failed (transport error or non-200)
  uint64_t pending_events = 0;          // recorded, not yet encoded into a body
  uint64_t retry_events = 0;            // events in bodies waiting to be (re)sent
  uint64_t retry_bytes = 0;             // bytes of those bodies
  uint64_t retry_bodies = 0;            // number of those bodies
  std::string last_error;               // the last failed POST, e.g. "connection refused: http://..."
  std::string last_invalid;  // the last refused event, e.g. name "a b": contains ' ' (0x20) at byte 1
  uint64_t repinned = 0;     // bodies whose retries left their address after retry_pin_timeout
};

class TABA_CLIENT_API Client {
 public:
  // Starts the flush thread. Invalid options (a bad client ID or endpoint)
  // make an inert client: every event counts in dropped_invalid and
  // last_invalid says why.
  explicit Client(ClientOptions options);
  // Stop().
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // CounterGroup: count and sum over sliding windows.
  void Counter(std::string_view name, double value = 1);
  // PercentileGroup: percentiles over sliding windows.
  void Percentile(std::string_view name, double value);
  // Gauge: this client's latest value (kept 48 h).
  void Gauge(std::string_view name, double value);
  void Gauge(std::string_view name, std::string_view value);
  // ExpiryGauge: this client's latest value, shown until `expiry`.
  void Gauge(std::string_view name, double value, std::chrono::system_clock::time_point expiry);
  void Gauge(std::string_view name, std::string_view value, std::chrono::system_clock::time_point expiry);
  // Buffer: recent values across clients; kept one hour, or until `expiry`.
  void Buffer(std::string_view name, std::string_view value);
  void Buffer(std::string_view name, std::string_view value, std::chrono::system_clock::time_point expiry);
  // Any type: `payload_json` is the value's JSON text, e.g. "[5]" for
  // TotalsCounter or "\"user42\"" for Set. Checked to be one JSON value.
  void Record(std::string_view name, std::string_view type, std::string_view payload_json);

  // Ships everything recorded before the call, retrying failed POSTs until
  // `timeout`. True when all of it (and every earlier body) reached the
  // receiver. Blocks the calling thread; safe to call from several threads.
  bool Flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  // Final flush (bounded by options.stop_timeout), then stops the thread.
  // Events recorded afterwards are counted in dropped_unsent. Idempotent.
  void Stop();

  ClientStatus Status() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The process-wide client. The first recording call creates it with default
// options unless Initialize() came first. Initialize() again stops the
// previous client (flushing it) and starts a new one. The process-wide
// client is never destroyed (threads may record during exit): call Stop()
// before exiting to ship the last events.
TABA_CLIENT_API void Initialize(ClientOptions options);
TABA_CLIENT_API void Counter(std::string_view name, double value = 1);
TABA_CLIENT_API void Percentile(std::string_view name, double value);
TABA_CLIENT_API void Gauge(std::string_view name, double value);
TABA_CLIENT_API void Gauge(std::string_view name, std::string_view value);
TABA_CLIENT_API void Gauge(std::string_view name, double value, std::chrono::system_clock::time_point expiry);
TABA_CLIENT_API void Gauge(std::string_view name, std::string_view value,
                           std::chrono::system_clock::time_point expiry);
TABA_CLIENT_API void Buffer(std::string_view name, std::string_view value);
TABA_CLIENT_API void Buffer(std::string_view name, std::string_view value,
                            std::chrono::system_clock::time_point expiry);
TABA_CLIENT_API void Record(std::string_view name, std::string_view type, std::string_view payload_json);
TABA_CLIENT_API bool Flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
TABA_CLIENT_API void Stop();
// The process-wide client's Status() (not named Status: that would hide
// the class of the same name in programs that have one in namespace taba).
TABA_CLIENT_API ClientStatus GetStatus();

}  // namespace taba
