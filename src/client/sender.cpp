#include "client/sender.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace taba::client {

namespace {

constexpr int64_t kBackoffBaseMs = 200;
constexpr int64_t kBackoffMaxMs = 30'000;
constexpr int kMinRequestTimeoutMs = 50;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The line number of a "line N: ..." reason, or 0.
uint32_t reason_line(std::string_view reason) {
  if (reason.substr(0, 5) != "line ") return 0;
  uint64_t n = 0;
  size_t i = 5;
  for (; i < reason.size() && reason[i] >= '0' && reason[i] <= '9' && n < (1ull << 32); ++i) {
    n = n * 10 + static_cast<uint64_t>(reason[i] - '0');
  }
  if (i == 5 || i >= reason.size() || reason[i] != ':' || n >= (1ull << 32)) return 0;
  return static_cast<uint32_t>(n);
}

std::string first_line(std::string_view text) {
  std::string_view line = text.substr(0, text.find('\n'));
  if (line.size() > 300) line = line.substr(0, 300);
  return std::string(line);
}

}  // namespace

Sender::Sender(SenderOptions options)
    : options_(std::move(options)),
      rng_(std::random_device{}() ^ static_cast<uint64_t>(steady_ms()) ^
           (static_cast<uint64_t>(::getpid()) << 32)) {
  std::string path = options_.endpoint.target;
  while (!path.empty() && path.back() == '/') path.pop_back();
  target_ = path + "/post";
  const std::string& host = options_.endpoint.host;
  base_url_ = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
              std::to_string(options_.endpoint.port);
}

std::string Sender::new_batch_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t r = rng_();
    for (int i = 0; i < 16; ++i) id[static_cast<size_t>(half * 16 + i)] = kHex[(r >> (4 * i)) & 0xf];
  }
  return id;
}

void Sender::enqueue(Body body) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  while (!queue_.empty() && stats_.queued_bytes + body.bytes.size() > options_.max_retry_bytes) {
    const Body& old = queue_.front().body;
    stats_.dropped_retry_overflow += old.events;
    stats_.queued_events -= old.events;
    stats_.queued_bytes -= old.bytes.size();
    --stats_.queued_bodies;
    queue_.pop_front();
  }
  stats_.queued_events += body.events;
  stats_.queued_bytes += body.bytes.size();
  ++stats_.queued_bodies;
  queue_.push_back(Pending{std::move(body), new_batch_id()});
}

Sender::Outcome Sender::post(Pending& p, int timeout_ms, std::string* error, std::string* refused) {
  std::vector<http::Header> headers = {{"Content-Type", "text/plain; charset=utf-8"},
                                       {"Taba-Batch-Id", p.batch_id}};
  if (!options_.token.empty()) headers.push_back({"Authorization", "Bearer " + options_.token});
  std::string compressed;
  std::string_view payload = p.body.bytes;
  if (options_.compress) {
    compressed = http::zlib_compress(payload);
    payload = compressed;
    headers.push_back({"Content-Encoding", "deflate"});
  }
  if (conn_) {
    conn_->set_only(p.pin);
  } else {
    auto conn =
        http::ClientConnection::connect(options_.endpoint.host, options_.endpoint.port, timeout_ms, p.pin);
    if (!conn.ok()) {
      *error = conn.status().message();
      return Outcome::kRetry;
    }
    conn_.emplace(std::move(conn.value()));
  }
  auto resp = conn_->request("POST", target_, headers, payload, timeout_ms);
  if (p.pin) {
    if (resp.ok()) p.pin_heard_ms = steady_ms();
  } else if (conn_->reached()) {
    p.pin = conn_->reached();
    p.pin_heard_ms = steady_ms();
  }
  if (!resp.ok()) {
    conn_.reset();
    *error = resp.status().message();
    return Outcome::kRetry;
  }
  if (resp->status == 200) {
    std::string_view blocks = resp->header("taba-refused-blocks");
    if (!blocks.empty() && blocks != "0") {
      *refused = resp->body;
      *error = "HTTP 200 from " + base_url_ + target_ + ", " + std::string(blocks) +
               " block(s) refused: " + first_line(resp->body);
    }
    return Outcome::kOk;
  }
  *error = "HTTP " + std::to_string(resp->status) + " from " + base_url_ + target_ + ": " + first_line(resp->body);
  int s = resp->status;
  return (s == 400 || s == 413 || s == 415) ? Outcome::kRejected : Outcome::kRetry;
}

namespace {

// The events of the blocks that "line N: reason" lines name.
uint64_t refused_events(const Body& body, std::string_view refused) {
  std::vector<const BlockSpan*> seen;
  uint64_t events = 0;
  while (!refused.empty()) {
    std::string_view one = refused.substr(0, refused.find('\n'));
    refused.remove_prefix(std::min(refused.size(), one.size() + 1));
    const BlockSpan* span = block_at_line(body, reason_line(one));
    if (span == nullptr || std::find(seen.begin(), seen.end(), span) != seen.end()) continue;
    seen.push_back(span);
    events += span->events;
  }
  return std::min(events, body.events);
}

}  // namespace

void Sender::settle_front(uint64_t applied) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  const Body& done = queue_.front().body;
  stats_.sent += applied;
  stats_.dropped_rejected += done.events - applied;
  stats_.queued_events -= done.events;
  stats_.queued_bytes -= done.bytes.size();
  --stats_.queued_bodies;
  queue_.pop_front();
}

void Sender::backoff(int64_t now) {
  failures_ = std::min(failures_ + 1, 30);
  int64_t delay = std::min(kBackoffMaxMs, kBackoffBaseMs << std::min(failures_ - 1, 16));
  // Jitter in [delay/2, delay): clients that failed together spread out.
  delay = delay / 2 + static_cast<int64_t>(rng_() % static_cast<uint64_t>(delay / 2 + 1));
  retry_at_ms_ = now + delay;
}

std::string Sender::release_stale_pin(int64_t now) {
  Pending& p = queue_.front();
  if (!p.pin || now - p.pin_heard_ms <= options_.pin_timeout_ms) return {};
  std::string note = "retry of batch " + p.batch_id + " pinned to " + p.pin->text() + " got no answer for " +
                     std::to_string(now - p.pin_heard_ms) + " ms (retry_pin_timeout " +
                     std::to_string(options_.pin_timeout_ms) + " ms): sent to any address of " + base_url_ +
                     " now, so it may be counted twice";
  p.pin.reset();
  std::lock_guard<std::mutex> lock(stats_mu_);
  ++stats_.repinned;
  stats_.last_error = note;
  return note;
}

bool Sender::send(int64_t deadline_ms) {
  while (!queue_.empty()) {
    int64_t now = steady_ms();
    if (now >= deadline_ms) return false;
    int timeout =
        static_cast<int>(std::clamp<int64_t>(deadline_ms - now, kMinRequestTimeoutMs, options_.timeout_ms));
    std::string released = release_stale_pin(now);
    std::string error, refused;
    Outcome outcome = post(queue_.front(), timeout, &error, &refused);
    if (outcome == Outcome::kOk) {
      const Body& done = queue_.front().body;
      uint64_t applied = done.events - refused_events(done, refused);
      {
        std::lock_guard<std::mutex> lock(stats_mu_);
        ++stats_.posts_ok;
        if (!refused.empty()) stats_.last_error = released.empty() ? error : released + "; then: " + error;
      }
      settle_front(applied);
      failures_ = 0;
      retry_at_ms_ = 0;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      ++stats_.posts_failed;
      stats_.last_error = released.empty() ? error : released + "; then: " + error;
    }
    if (outcome == Outcome::kRejected) {
      settle_front(0);
      continue;
    }
    backoff(steady_ms());
    return false;
  }
  return true;
}

void Sender::drop_all() {
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.dropped_unsent += stats_.queued_events;
  stats_.queued_events = stats_.queued_bytes = stats_.queued_bodies = 0;
  queue_.clear();
}

SenderStats Sender::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

}  // namespace taba::client
