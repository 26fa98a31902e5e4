// The client-proxy's StatsD buffer: each value of the lines of the datagrams
// the role (client_proxy.h) receives becomes an event (docs/statsd.md), kept
// as a small record under its Taba name until the role's next flush takes
// them all: folded into one handler state per name and written as a delta
// batch (take_deltas; protocol/delta_batch.h), or, for an agent that takes
// no deltas, written as one v1 body (take_body). Bounded by
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
#include "plugin/registry.h"
#include "protocol/delta_batch.h"
#include "protocol/statsd.h"
#include "taba/handler.h"

namespace taba::roles {

// The client-proxy's counters. The StatsD buffer counts datagrams through
// events_dropped_fold; the role the rest.
struct ProxyStats {
  uint64_t datagrams = 0;
  uint64_t lines = 0;           // good lines (values of multi-value lines counted once each)
  uint64_t bad_lines = 0;       // malformed, unmappable names, type conflicts
  uint64_t type_conflicts = 0;  // part of bad_lines
  uint64_t events_buffered = 0; // total accepted into the buffer
  uint64_t events_dropped_full = 0;   // buffer at max_buffered_events
  uint64_t events_dropped_fold = 0;   // not foldable: refused by the handler (a number that overflowed), no handler, no memory
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

// What take_deltas folds with.
struct DeltaFlush {
  std::string_view client_id;  // the client of every state (new_state's client)
  // The fold's time: the handlers' `now`. Event stamps beyond now +
  // future_clamp_s become now, as the fe's v1 decoder clamps them.
  double now = 0;
  double future_clamp_s = 60;
};

// The StatsD half of the proxy, without sockets (the role feeds it; unit
// tests drive it directly): datagrams in, one delta batch (or v1 body) per
// flush out.
//
// Per line it costs one parse, one hash lookup keyed by the name and tags as
// sent (map_name runs once per distinct spelling), and one record appended
// to the name's buffer: the event's stamp, its number and the JSON text the
// fe would hand the handler for it (the value as sent when that is the text
// fmt would write, else formatted; a set member as a JSON string). Names
// keep their buffers across flushes, so a steady stream allocates nothing
// per event. The plugins' work (one fold per name and flush over all its
// events, one serialize) happens in take_deltas.
class StatsdBuffer {
 public:
  explicit StatsdBuffer(uint64_t max_events) : max_events_(max_events) {}

  // One datagram received at `now` (Unix seconds); counts datagrams, lines,
  // bad_lines, type_conflicts, events_buffered and events_dropped_full.
  void add_datagram(std::string_view datagram, double now, ProxyStats* stats);
  uint64_t events() const { return events_; }

  // Folds each name's buffered events (in arrival order) into a fresh state
  // of the loaded handler of its type, new_state(client_id, now), and adds
  // it to *out as one block (names in the order they first had an event
  // since the last take), then empties the buffer. The states are exactly
  // those the fe would fold from the v1 body take_body writes, received at
  // `now` (fold_many with the one state when the handler has it, else fold;
  // past 4096 events a name's later events fold as a later block of the
  // ingest contract would, so their sums may be added in another order).
  // An event the handler refuses (a counter value that overflowed to
  // infinity) is left out, and so are the events of a type no plugin
  // serves; both counted in events_dropped_fold. False, touching nothing,
  // when the buffer is empty. Names, their types and gauge values are kept.
  bool take_deltas(const plugin::Registry& registry, const DeltaFlush& flush, protocol::DeltaWriter* out,
                   ProxyStats* stats);
  // Appends the v1 body of the buffered events (client `client_id`, names
  // in the order they first had an event since the last take) to *out and
  // empties the buffer; false, leaving *out alone, when it is empty. Names,
  // their types and gauge values are kept.
  bool take_body(std::string_view client_id, std::string* out);
  // Names remembered (types, gauge values).
  size_t names() const { return names_.size(); }
  // Forgets every name (bounded memory); the buffer must be empty.
  void forget_names();

 private:
  // A growable byte buffer written through raw pointers: a record is a few
  // fixed-size copies into reserved space, not several string appends.
  class Records {
   public:
    Records() = default;
    Records(const Records&) = delete;
    Records& operator=(const Records&) = delete;
    ~Records() { std::free(data_); }
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
  // One buffered event: f64 timestamp | f64 number (the value; 0 for a
  // set member) | u32 len | len bytes of its payload's JSON text. Written
  // and read with memcpy (records are not aligned).
  static constexpr size_t kHeadBytes = 8 + 8 + 4;
  struct Name {
    std::string name;          // the Taba name
    Records records;           // events since the last take
    uint64_t count = 0;        // records held
    double gauge = 0;          // the last gauge value, for +n/-n
    uint64_t generation = 0;   // the take generation `records` belongs to
    uint8_t type = 0;          // the first Taba type seen (index into kTypes)
  };
  // A stamp's v1 text (take_body).
  struct Stamp {
    double ts = 0;
    char text[protocol::statsd::kMaxNumberText];
    uint8_t len = 0;
  };
  static constexpr size_t kStampSlots = 1024;
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
  std::string_view stamp_text(double ts);
  void append_value(uint32_t id, Name& n, const protocol::statsd::Line& value, double ts, ProxyStats* stats);
  // take_deltas for one name: its records as events, folded, serialized.
  void fold_name(const Name& n, const plugin::Handler* handler, const DeltaFlush& flush, protocol::DeltaWriter* out,
                 ProxyStats* stats);
  // After a take: every dirty name's records cleared (or released), the
  // next generation, idle buffers released.
  void end_take();

  uint64_t max_events_;
  uint64_t events_ = 0;
  uint64_t generation_ = 1;
  std::deque<Name> names_;  // stable addresses, never moved
  std::vector<Name*> by_id_;  // &names_[id]: one load instead of deque indexing
  StringMap<uint32_t> by_name_;
  std::vector<RawSlot> raw_;
  size_t raw_used_ = 0;
  std::string raw_keys_;
  std::vector<uint32_t> dirty_;  // names with events since the last take, in first-event order
  std::string name_scratch_;
  std::vector<ByteMasks> masks_;
  std::vector<Stamp> stamps_;  // take_body's stamp texts
  size_t stamps_used_ = 0;
  Records text_scratch_;       // take_body: one name's event text
  std::string set_scratch_;
  std::string latin1_scratch_;
  // take_deltas: the events of one name, its serialized state.
  std::vector<taba_event> fold_events_;
  std::string state_bytes_;
  bool warned_no_handler_[4] = {false, false, false, false};
};

}  // namespace taba::roles
