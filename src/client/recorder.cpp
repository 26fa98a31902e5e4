#include "client/recorder.h"

#include <time.h>

#include <algorithm>
#include <limits>
#include <thread>

#include "core/validation.h"

namespace taba::client {

namespace {

// Above this many text bytes a recycled buffer gives its arena back instead
// of keeping it for the next interval.
constexpr size_t kKeepTextBytes = 4 << 20;

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxIdentifierBytes) return false;
  for (char c : name) {
    if (!is_identifier_char(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Each thread gets the next shard slot on its first event, so that up to
// the shard count concurrent threads never share a shard.
std::atomic<size_t> g_next_slot{0};

size_t thread_slot() {
  thread_local const size_t slot = g_next_slot.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

}  // namespace

void SpinLock::pause(int* spins) {
  if (++*spins < 100) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
    return;
  }
  std::this_thread::yield();
}

struct alignas(64) Recorder::Shard {
  SpinLock mu;
  std::unique_ptr<EventBuffer> buf = std::make_unique<EventBuffer>();
  size_t credits = 0;  // events this shard may still add without asking the pool
  size_t granted = 0;  // credits taken from the pool since the last take()
  uint32_t last_name = std::numeric_limits<uint32_t>::max();  // id of the previous event's name
  bool closed = false;
  uint64_t recorded = 0;
  uint64_t full = 0;
  uint64_t refused_closed = 0;
};

double now_epoch_seconds() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Recorder::Recorder(size_t max_pending_events, size_t max_pending_text_bytes)
    : max_pending_(max_pending_events), max_text_bytes_(max_pending_text_bytes) {
  size_t want = std::max<size_t>(4, 2 * std::max(1u, std::thread::hardware_concurrency()));
  size_t n = 1;
  while (n < want && n < 64) n <<= 1;
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>());
  shard_mask_ = n - 1;
  // Credits idle in other shards can refuse events early; batches of at most
  // 1/8 of the bound per shard keep that slack small, 1024 keeps pool
  // traffic rare.
  credit_batch_ = std::clamp<size_t>(max_pending_ / (8 * n), 1, 1024);
}

Recorder::~Recorder() = default;

bool Recorder::grant(Shard* shard) {
  size_t cur = granted_.load(std::memory_order_relaxed);
  size_t take;
  do {
    if (cur >= max_pending_) return false;
    take = std::min(credit_batch_, max_pending_ - cur);
  } while (!granted_.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed));
  shard->credits += take;
  shard->granted += take;
  return true;
}

AddResult Recorder::add(std::string_view name, uint16_t type, PayloadKind kind, double timestamp,
                        double number, double expiry, std::string_view text) {
  Shard& s = *shards_[thread_slot() & shard_mask_];
  std::lock_guard<SpinLock> lock(s.mu);
  if (s.closed) {
    ++s.refused_closed;
    return AddResult::kClosed;
  }
  EventBuffer& b = *s.buf;
  if ((s.credits == 0 && !grant(&s)) || b.text.size() + text.size() > std::numeric_limits<uint32_t>::max()) {
    ++s.full;
    return AddResult::kFull;
  }
  // Loops record the same name again and again: check the previous one
  // before hashing.
  uint32_t id = s.last_name;
  if (id >= b.names.size() || b.names[id] != name) {
    auto it = b.name_ids.find(name);
    if (it != b.name_ids.end()) {
      id = it->second;
    } else {
      if (!valid_name(name)) return AddResult::kBadName;
      id = static_cast<uint32_t>(b.names.size());
      b.names.emplace_back(name);
      b.name_ids.emplace(b.names.back(), id);
    }
    s.last_name = id;
  }
  if (!text.empty()) {
    size_t before = text_bytes_.fetch_add(text.size(), std::memory_order_relaxed);
    if (before + text.size() > max_text_bytes_) {
      text_bytes_.fetch_sub(text.size(), std::memory_order_relaxed);
      ++s.full;
      return AddResult::kFull;
    }
  }
  if (b.size == b.chunks.size() * EventChunk::kEvents) b.chunks.push_back(new_chunk());
  Event& e = b.chunks.back()->events[b.size++ % EventChunk::kEvents];
  e.timestamp = timestamp;
  e.number = number;
  e.expiry = expiry;
  e.name = id;
  e.text_offset = static_cast<uint32_t>(b.text.size());
  e.text_size = static_cast<uint32_t>(text.size());
  e.type = type;
  e.kind = kind;
  b.text.append(text);
  --s.credits;
  ++s.recorded;
  return AddResult::kAccepted;
}

std::unique_ptr<EventChunk> Recorder::new_chunk() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!chunk_pool_.empty()) {
      auto chunk = std::move(chunk_pool_.back());
      chunk_pool_.pop_back();
      return chunk;
    }
  }
  return std::unique_ptr<EventChunk>(new EventChunk);  // not value-initialized: no 40 KiB memset
}

void Recorder::take(std::vector<std::unique_ptr<EventBuffer>>* out, bool close) {
  std::unique_lock<std::mutex> spare_lock(spare_mu_);
  for (auto& shard : shards_) {
    std::unique_ptr<EventBuffer> fresh;
    if (!spares_.empty()) {
      fresh = std::move(spares_.back());
      spares_.pop_back();
    } else {
      fresh = std::make_unique<EventBuffer>();
    }
    std::lock_guard<SpinLock> lock(shard->mu);
    if (close) shard->closed = true;
    granted_.fetch_sub(shard->granted, std::memory_order_relaxed);
    shard->granted = 0;
    shard->credits = 0;
    shard->last_name = std::numeric_limits<uint32_t>::max();
    text_bytes_.fetch_sub(shard->buf->text.size(), std::memory_order_relaxed);
    if (shard->buf->size == 0) {
      spares_.push_back(std::move(fresh));
      continue;
    }
    out->push_back(std::move(shard->buf));
    shard->buf = std::move(fresh);
  }
}

void Recorder::recycle(std::vector<std::unique_ptr<EventBuffer>>* buffers) {
  std::lock_guard<std::mutex> lock(spare_mu_);
  std::lock_guard<std::mutex> pool_lock(pool_mu_);
  for (auto& b : *buffers) {
    for (auto& chunk : b->chunks) {
      if (chunk_pool_.size() < kPooledChunks) chunk_pool_.push_back(std::move(chunk));
    }
    b->chunks.clear();
    b->size = 0;
    b->names.clear();
    b->name_ids.clear();
    b->text.clear();
    if (b->text.capacity() > kKeepTextBytes) std::string().swap(b->text);
    spares_.push_back(std::move(b));
  }
  buffers->clear();
}

RecorderCounts Recorder::counts() const {
  RecorderCounts c;
  for (const auto& shard : shards_) {
    std::lock_guard<SpinLock> lock(shard->mu);
    c.recorded += shard->recorded;
    c.full += shard->full;
    c.closed += shard->refused_closed;
    c.pending += shard->buf->size;
  }
  return c;
}

}  // namespace taba::client
