// The client's record path: events go into per-thread-hash shards, each an
// EventBuffer behind its own mutex, so that threads rarely contend and a
// recording call costs one uncontended lock, a name lookup and a push_back.
// Payloads stay as doubles or bytes in an arena; JSON text is made only at
// flush time, on the flush thread.
//
// Thread-safety: add() from any thread; take() and counts() from any thread
// (the client calls take() from its flush thread only).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace taba::client {

enum class PayloadKind : uint8_t {
  kNumber,        // number
  kText,          // "text"
  kNumberExpiry,  // [number, expiry]
  kTextExpiry,    // ["text", expiry]
  kRawJson,       // the text is the payload's JSON text
};

struct Event {
  double timestamp;      // epoch seconds
  double number;         // kNumber, kNumberExpiry
  double expiry;         // kNumberExpiry, kTextExpiry: epoch seconds
  uint32_t name;         // index into EventBuffer::names
  uint32_t text_offset;  // kText, kTextExpiry, kRawJson: bytes in EventBuffer::text
  uint32_t text_size;
  uint16_t type;  // a TypeTable id
  PayloadKind kind;
};

// Hashes and compares std::string keys with std::string_view probes, so a
// lookup by name allocates nothing.
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct NameEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// Events are stored in fixed-size chunks that the recorder recycles: a
// buffer never moves its events to grow, and in steady state recording
// touches only memory that earlier intervals already faulted in.
struct EventChunk {
  static constexpr size_t kEvents = 1024;  // 40 KiB: below malloc's mmap threshold
  Event events[kEvents];
};

// What one shard accumulated between two flushes. Names are interned: each
// distinct name is stored (and validated) once per buffer.
struct EventBuffer {
  std::vector<std::string> names;
  std::unordered_map<std::string, uint32_t, NameHash, NameEqual> name_ids;
  std::vector<std::unique_ptr<EventChunk>> chunks;
  size_t size = 0;   // events
  std::string text;  // arena of text payloads

  const Event& event(size_t i) const {
    return chunks[i / EventChunk::kEvents]->events[i % EventChunk::kEvents];
  }
  std::string_view text_of(const Event& e) const {
    return std::string_view(text).substr(e.text_offset, e.text_size);
  }
};

// A recording outcome.
enum class AddResult { kAccepted, kBadName, kFull, kClosed };

// Counters summed over the shards.
struct RecorderCounts {
  uint64_t recorded = 0;  // accepted
  uint64_t full = 0;      // refused for max_pending_events
  uint64_t closed = 0;    // refused after close
  uint64_t pending = 0;   // accepted, not yet taken
};

// The shard lock. A shard is almost always used by one thread and held for
// a few dozen ns, so a spin lock (one atomic exchange to take, one store to
// release) beats a futex-based mutex; a waiter that spins too long yields
// in case the holder was preempted.
class SpinLock {
 public:
  void lock() {
    int spins = 0;
    while (held_.exchange(true, std::memory_order_acquire)) {
      while (held_.load(std::memory_order_relaxed)) pause(&spins);
    }
  }
  void unlock() { held_.store(false, std::memory_order_release); }

 private:
  static void pause(int* spins);
  std::atomic<bool> held_{false};
};

class Recorder {
 public:
  // max_pending_text_bytes bounds the text payloads (strings, raw JSON)
  // held with the pending events; numbers take none.
  Recorder(size_t max_pending_events, size_t max_pending_text_bytes);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Buffers one event of the calling thread's shard. kBadName when the name
  // is not a valid identifier (the caller builds the reason off the hot path).
  AddResult add(std::string_view name, uint16_t type, PayloadKind kind, double timestamp, double number,
                double expiry, std::string_view text);

  // Swaps every shard's buffer for an empty one and appends the full ones to
  // *out (which keeps ownership until it hands them back with recycle()).
  // With close, every later add() is refused with kClosed.
  void take(std::vector<std::unique_ptr<EventBuffer>>* out, bool close);
  // Returns buffers from take() for reuse (they are cleared here).
  void recycle(std::vector<std::unique_ptr<EventBuffer>>* buffers);

  RecorderCounts counts() const;

 private:
  struct Shard;

  // Takes up to `credit_batch_` event credits from the pool for `shard`; false when
  // max_pending_events are already granted.
  bool grant(Shard* shard);
  std::unique_ptr<EventChunk> new_chunk();

  // Chunks kept for reuse, at most kPooledChunks (beyond: freed).
  static constexpr size_t kPooledChunks = 512;

  std::vector<std::unique_ptr<Shard>> shards_;
  size_t shard_mask_ = 0;
  size_t max_pending_;
  size_t credit_batch_;  // credits a shard takes from the pool at a time
  // Credits granted to shards since their last take(): an upper bound on the
  // pending events. Shards take credits in batches, so that recording
  // threads touch this shared cache line once per batch, not per event.
  std::atomic<size_t> granted_{0};
  size_t max_text_bytes_;
  std::atomic<size_t> text_bytes_{0};  // text payload bytes in the shards' buffers
  std::mutex spare_mu_;
  std::vector<std::unique_ptr<EventBuffer>> spares_;
  // A leaf lock: add() takes it under a shard lock, so it is never held
  // while taking another lock.
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<EventChunk>> chunk_pool_;
};

// Timestamp for a new event: the real-time clock, cheaply (the coarse clock
// is a few ns to read and ticks every few ms, plenty for epoch seconds).
double now_epoch_seconds();

}  // namespace taba::client
