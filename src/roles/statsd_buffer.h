// The client-proxy's StatsD buffer: each line of the datagrams the role
// (client_proxy.h) receives becomes an event (docs/statsd.md), held until the
// role's next flush takes them all as one v1 body. Bounded by
// max_buffered_events; also used alone by its unit test and the StatsD
// benchmark.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/string_map.h"
#include "protocol/statsd.h"

namespace taba::roles {

// The client-proxy's counters. The StatsD buffer counts datagrams through
// events_dropped_full; the role the rest.
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

}  // namespace taba::roles
