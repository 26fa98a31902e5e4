// taba::Client: the public face over the recorder (record path), the encoder
// and the sender, which the flush thread drives.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "client/encoder.h"
#include "client/json_text.h"
#include "client/recorder.h"
#include "client/sender.h"
#include "core/validation.h"
#include "http/url.h"
#include "taba/client.hpp"

namespace taba {

namespace {

using client::PayloadKind;
using client::TypeTable;
using SteadyClock = std::chrono::steady_clock;

// Text payloads are capped so that, escaped twice in the worst case (7 bytes
// per byte), an event line stays under the receiver's 1 MiB line limit.
constexpr size_t kMaxTextBytes = 64 * 1024;
// An explicit flush waits this long between attempts at a failing receiver.
constexpr auto kFlushRetryPause = std::chrono::milliseconds(100);

double to_epoch_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

int64_t steady_ms(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

std::string quoted_name(std::string_view name) {
  return "name \"" + quote_for_error(name) + "\"";
}

// Why `options` cannot work, or "".
std::string check_options(const ClientOptions& o, http::Url* url) {
  if (std::string why = check_identifier(o.client_id); !why.empty()) {
    return "client ID \"" + quote_for_error(o.client_id) + "\" " + why;
  }
  auto parsed = http::parse_url(o.endpoint);
  if (!parsed.ok()) return "endpoint: " + parsed.status().message();
  if (parsed->target.find('?') != std::string::npos) return "endpoint must not have a query: " + o.endpoint;
  *url = parsed.value();
  if (o.flush_interval.count() <= 0) return "flush_interval must be positive";
  if (o.max_body_bytes == 0) return "max_body_bytes must be positive";
  if (o.timeout_ms <= 0) return "timeout_ms must be positive";
  if (o.retry_pin_timeout.count() <= 0) return "retry_pin_timeout must be positive";
  return {};
}

}  // namespace

// Hidden: only Client is the library's interface.
class __attribute__((visibility("hidden"))) Client::Impl {
 public:
  explicit Impl(ClientOptions options);
  ~Impl() { stop(); }

  void record(std::string_view name, uint16_t type, PayloadKind kind, double number, double expiry,
              std::string_view text);
  // Counts one refused event; `reason` is built only when called.
  template <typename Reason>
  void refuse(Reason&& reason) {
    dropped_invalid_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(invalid_mu_);
    last_invalid_ = reason();
  }
  bool flush(std::chrono::milliseconds timeout);
  void stop();
  ClientStatus status() const;

  TypeTable types;

 private:
  void run();
  // Takes the recorded events, encodes them and queues the bodies.
  void collect(bool close);
  // Sends queued bodies, retrying until deadline; true if all were sent.
  bool send_until(SteadyClock::time_point deadline);

  ClientOptions options_;
  std::string inert_reason_;  // non-empty: invalid options, nothing is recorded
  client::Recorder recorder_;
  std::unique_ptr<client::Encoder> encoder_;
  std::unique_ptr<client::Sender> sender_;

  std::atomic<uint64_t> dropped_invalid_{0};
  mutable std::mutex invalid_mu_;
  std::string last_invalid_;
  std::atomic<uint64_t> dropped_conflict_{0};

  // Flush-thread control, guarded by mu_.
  std::mutex mu_;
  std::condition_variable wake_;  // to the flush thread
  std::condition_variable done_;  // from it
  uint64_t flush_wanted_ = 0;     // flush requests made
  uint64_t flush_done_ = 0;       // requests served
  bool flush_ok_ = false;         // the last served request sent everything
  SteadyClock::time_point flush_deadline_{};
  bool stop_requested_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

Client::Impl::Impl(ClientOptions options)
    : options_(std::move(options)), recorder_(options_.max_pending_events, options_.max_pending_bytes) {
  if (options_.client_id.empty()) options_.client_id = host_name();
  http::Url url;
  inert_reason_ = check_options(options_, &url);
  if (!inert_reason_.empty()) {
    last_invalid_ = inert_reason_;
    stopped_ = true;
    return;
  }
  encoder_ = std::make_unique<client::Encoder>(options_.client_id, options_.max_body_bytes);
  sender_ = std::make_unique<client::Sender>(
      client::SenderOptions{std::move(url), options_.max_retry_bytes, options_.timeout_ms, options_.token,
                            options_.compress, static_cast<int64_t>(options_.retry_pin_timeout.count())});
  thread_ = std::thread([this] { run(); });
}

void Client::Impl::record(std::string_view name, uint16_t type, PayloadKind kind, double number,
                          double expiry, std::string_view text) {
  if (!inert_reason_.empty()) {
    dropped_invalid_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (text.size() > kMaxTextBytes) {
    return refuse([&] {
      return quoted_name(name) + ": payload is " + std::to_string(text.size()) + " bytes (at most " +
             std::to_string(kMaxTextBytes) + ")";
    });
  }
  auto result = recorder_.add(name, type, kind, client::now_epoch_seconds(), number, expiry, text);
  if (result == client::AddResult::kBadName) {
    refuse([&] { return quoted_name(name) + ": " + check_identifier(name); });
  }
}

void Client::Impl::collect(bool close) {
  std::vector<std::unique_ptr<client::EventBuffer>> buffers;
  recorder_.take(&buffers, close);
  if (buffers.empty()) return;
  auto encoded = encoder_->encode(buffers, types);
  recorder_.recycle(&buffers);
  if (encoded.conflicts > 0) {
    dropped_conflict_.fetch_add(encoded.conflicts, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(invalid_mu_);
    last_invalid_ = encoded.conflict_note;
  }
  for (auto& body : encoded.bodies) sender_->enqueue(std::move(body));
}

bool Client::Impl::send_until(SteadyClock::time_point deadline) {
  for (;;) {
    if (sender_->send(steady_ms(deadline))) return true;
    auto now = SteadyClock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(kFlushRetryPause, deadline - now));
  }
}

void Client::Impl::run() {
  std::unique_lock<std::mutex> lock(mu_);
  auto next_tick = SteadyClock::now() + options_.flush_interval;
  for (;;) {
    wake_.wait_until(lock, next_tick, [&] { return stop_requested_ || flush_wanted_ > flush_done_; });
    const bool final = stop_requested_;
    const uint64_t serving = flush_wanted_;
    const bool explicit_flush = final || serving > flush_done_;
    const auto deadline = final ? SteadyClock::now() + options_.stop_timeout : flush_deadline_;
    flush_deadline_ = {};
    lock.unlock();

    collect(final);
    bool all_sent;
    if (explicit_flush) {
      all_sent = send_until(deadline);
    } else {
      // A tick sends while the receiver takes bodies, for about one
      // interval (or one request timeout), and skips a receiver that is
      // backing off.
      int64_t now = steady_ms(SteadyClock::now());
      int64_t budget = std::max<int64_t>(options_.flush_interval.count(), options_.timeout_ms);
      if (now >= sender_->retry_at_ms()) sender_->send(now + budget);
      all_sent = sender_->empty();
    }
    if (final) sender_->drop_all();

    lock.lock();
    if (explicit_flush) {
      flush_done_ = serving;
      flush_ok_ = all_sent;
      done_.notify_all();
    }
    if (final) {
      stopped_ = true;
      done_.notify_all();
      return;
    }
    next_tick = SteadyClock::now() + options_.flush_interval;
  }
}

bool Client::Impl::flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_ || stop_requested_) {
    done_.wait(lock, [&] { return stopped_; });
    return flush_ok_;
  }
  const uint64_t ticket = ++flush_wanted_;
  const auto deadline = SteadyClock::now() + timeout;
  flush_deadline_ = std::max(flush_deadline_, deadline);
  wake_.notify_all();
  // One POST may run past the deadline by up to its own timeout.
  const auto give_up = deadline + std::chrono::milliseconds(options_.timeout_ms) + std::chrono::seconds(1);
  bool served = done_.wait_until(lock, give_up, [&] { return flush_done_ >= ticket || stopped_; });
  return served && flush_done_ >= ticket && flush_ok_;
}

void Client::Impl::stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopped_ || stop_requested_) {
    done_.wait(lock, [&] { return stopped_; });
    return;
  }
  stop_requested_ = true;
  wake_.notify_all();
  lock.unlock();
  thread_.join();
}

ClientStatus Client::Impl::status() const {
  ClientStatus s;
  client::RecorderCounts rc = recorder_.counts();
  s.recorded = rc.recorded;
  s.dropped_full = rc.full;
  s.pending_events = rc.pending;
  s.dropped_invalid = dropped_invalid_.load(std::memory_order_relaxed);
  s.dropped_conflict = dropped_conflict_.load(std::memory_order_relaxed);
  s.dropped_unsent = rc.closed;
  if (sender_) {
    client::SenderStats ss = sender_->stats();
    s.sent = ss.sent;
    s.dropped_rejected = ss.dropped_rejected;
    s.dropped_retry_overflow = ss.dropped_retry_overflow;
    s.dropped_unsent += ss.dropped_unsent;
    s.posts_ok = ss.posts_ok;
    s.posts_failed = ss.posts_failed;
    s.retry_events = ss.queued_events;
    s.retry_bytes = ss.queued_bytes;
    s.retry_bodies = ss.queued_bodies;
    s.last_error = ss.last_error;
    s.repinned = ss.repinned;
  }
  std::lock_guard<std::mutex> lock(invalid_mu_);
  s.last_invalid = last_invalid_;
  return s;
}

// ---------------------------------------------------------------------------
// Client

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;

void Client::Counter(std::string_view name, double value) {
  if (!std::isfinite(value)) {
    return impl_->refuse([&] { return quoted_name(name) + ": Counter value is not a finite number"; });
  }
  impl_->record(name, TypeTable::kCounterGroup, PayloadKind::kNumber, value, 0, {});
}

void Client::Percentile(std::string_view name, double value) {
  if (!std::isfinite(value)) {
    return impl_->refuse([&] { return quoted_name(name) + ": Percentile value is not a finite number"; });
  }
  impl_->record(name, TypeTable::kPercentileGroup, PayloadKind::kNumber, value, 0, {});
}

void Client::Gauge(std::string_view name, double value) {
  if (!std::isfinite(value)) {
    return impl_->refuse([&] { return quoted_name(name) + ": Gauge value is not a finite number"; });
  }
  impl_->record(name, TypeTable::kGauge, PayloadKind::kNumber, value, 0, {});
}

void Client::Gauge(std::string_view name, std::string_view value) {
  if (std::string why = client::check_utf8(value); !why.empty()) {
    return impl_->refuse([&] { return quoted_name(name) + ": Gauge value: " + why; });
  }
  impl_->record(name, TypeTable::kGauge, PayloadKind::kText, 0, 0, value);
}

void Client::Gauge(std::string_view name, double value, std::chrono::system_clock::time_point expiry) {
  double e = to_epoch_seconds(expiry);
  if (!std::isfinite(value) || !std::isfinite(e)) {
    return impl_->refuse(
        [&] { return quoted_name(name) + ": Gauge value or expiry is not a finite number"; });
  }
  impl_->record(name, TypeTable::kExpiryGauge, PayloadKind::kNumberExpiry, value, e, {});
}

void Client::Gauge(std::string_view name, std::string_view value,
                   std::chrono::system_clock::time_point expiry) {
  if (std::string why = client::check_utf8(value); !why.empty()) {
    return impl_->refuse([&] { return quoted_name(name) + ": Gauge value: " + why; });
  }
  double e = to_epoch_seconds(expiry);
  if (!std::isfinite(e)) {
    return impl_->refuse([&] { return quoted_name(name) + ": Gauge expiry is not a finite number"; });
  }
  impl_->record(name, TypeTable::kExpiryGauge, PayloadKind::kTextExpiry, 0, e, value);
}

void Client::Buffer(std::string_view name, std::string_view value) {
  if (std::string why = client::check_utf8(value); !why.empty()) {
    return impl_->refuse([&] { return quoted_name(name) + ": Buffer value: " + why; });
  }
  impl_->record(name, TypeTable::kBuffer, PayloadKind::kText, 0, 0, value);
}

void Client::Buffer(std::string_view name, std::string_view value,
                    std::chrono::system_clock::time_point expiry) {
  if (std::string why = client::check_utf8(value); !why.empty()) {
    return impl_->refuse([&] { return quoted_name(name) + ": Buffer value: " + why; });
  }
  double e = to_epoch_seconds(expiry);
  if (!std::isfinite(e)) {
    return impl_->refuse([&] { return quoted_name(name) + ": Buffer expiry is not a finite number"; });
  }
  impl_->record(name, TypeTable::kBuffer, PayloadKind::kTextExpiry, 0, e, value);
}

void Client::Record(std::string_view name, std::string_view type, std::string_view payload_json) {
  if (std::string why = check_identifier(type); !why.empty()) {
    return impl_->refuse(
        [&] { return quoted_name(name) + ": type \"" + quote_for_error(type) + "\" " + why; });
  }
  if (std::string why = client::check_json_value(payload_json); !why.empty()) {
    return impl_->refuse([&] {
      return quoted_name(name) + ": payload \"" + quote_for_error(payload_json) + "\" is not JSON: " + why;
    });
  }
  uint16_t id;
  if (!impl_->types.intern(type, &id)) {
    return impl_->refuse([&] {
      return quoted_name(name) + ": type \"" + quote_for_error(type) + "\": more than " +
             std::to_string(TypeTable::kMaxTypes) + " types";
    });
  }
  impl_->record(name, id, PayloadKind::kRawJson, 0, 0, payload_json);
}

bool Client::Flush(std::chrono::milliseconds timeout) {
  return impl_->flush(timeout);
}
void Client::Stop() {
  impl_->stop();
}
ClientStatus Client::Status() const {
  return impl_->status();
}

// ---------------------------------------------------------------------------
// The process-wide client

namespace {

std::mutex g_mu;
std::atomic<Client*> g_client{nullptr};
// Clients replaced by Initialize(): stopped, and kept alive because other
// threads may still be recording into them.
std::vector<Client*>* g_retired = nullptr;

Client& global() {
  Client* c = g_client.load(std::memory_order_acquire);
  if (c != nullptr) return *c;
  std::lock_guard<std::mutex> lock(g_mu);
  c = g_client.load(std::memory_order_relaxed);
  if (c == nullptr) {
    c = new Client(ClientOptions{});
    g_client.store(c, std::memory_order_release);
  }
  return *c;
}

}  // namespace

void Initialize(ClientOptions options) {
  std::lock_guard<std::mutex> lock(g_mu);
  Client* old = g_client.exchange(new Client(std::move(options)), std::memory_order_acq_rel);
  if (old != nullptr) {
    old->Stop();
    if (g_retired == nullptr) g_retired = new std::vector<Client*>();
    g_retired->push_back(old);
  }
}

void Counter(std::string_view name, double value) {
  global().Counter(name, value);
}
void Percentile(std::string_view name, double value) {
  global().Percentile(name, value);
}
void Gauge(std::string_view name, double value) {
  global().Gauge(name, value);
}
void Gauge(std::string_view name, std::string_view value) {
  global().Gauge(name, value);
}
void Gauge(std::string_view name, double value, std::chrono::system_clock::time_point expiry) {
  global().Gauge(name, value, expiry);
}
void Gauge(std::string_view name, std::string_view value, std::chrono::system_clock::time_point expiry) {
  global().Gauge(name, value, expiry);
}
void Buffer(std::string_view name, std::string_view value) {
  global().Buffer(name, value);
}
void Buffer(std::string_view name, std::string_view value, std::chrono::system_clock::time_point expiry) {
  global().Buffer(name, value, expiry);
}
void Record(std::string_view name, std::string_view type, std::string_view payload_json) {
  global().Record(name, type, payload_json);
}
bool Flush(std::chrono::milliseconds timeout) {
  return global().Flush(timeout);
}
void Stop() {
  if (Client* c = g_client.load(std::memory_order_acquire)) c->Stop();
}
ClientStatus GetStatus() {
  Client* c = g_client.load(std::memory_order_acquire);
  return c != nullptr ? c->Status() : ClientStatus{};
}

}  // namespace taba
