// Buffer: the most recent values posted, across clients: up to 1000
// unexpired (value, event timestamp) pairs, newest first.
//
// Payload: [value, expiry_epoch_seconds] (value any JSON value, expiry a
// finite number), or a bare value: any JSON value that is not an array,
// which expires one hour after its event. An array that is not
// [value, number] is refused (to buffer an array, send [array, expiry]).
// The ABI exposes only an array's first two elements, so elements after
// [1] cannot be seen and are ignored.
//
// Values are kept as their canonical JSON text (common/json_canonical.h):
// "a\/b" is buffered as "a/b", {"k": 1.50} as {"k":1.5}, and equal values
// written differently rank and render alike.
//
// State: at most kCapacity entries (value canonical JSON text, event
// timestamp, expiry). Entries are ranked by a strict order: newer event
// timestamp first; equal timestamps by value text (bytewise, ascending),
// then by later expiry. fold and merge keep the first kCapacity entries of that
// order among the entries not yet expired (now < expiry); so merging
// states in any order, or folding all their events into one state, keeps
// the same entries as long as no kept entry expires before an evicted one
// would have (eviction is by age, not by expiry). An event already expired
// when folded is ignored. Duplicates are kept: the same event merged twice
// is buffered twice.
//
// Storage is a binary heap whose top is the lowest-ranked entry: a merge
// costs O(k log kCapacity) for the k entries of `from`, and an eviction
// reuses the evicted entry's string buffer. Expired entries are swept out
// lazily, in one pass each time now reaches the earliest expiry held.
//
// Render, TABA_FORMAT_JSON: [[value, ts], ...] over the unexpired entries
// in rank order (newest first), ", " separators, [] when empty. value is
// its canonical JSON text; ts is the event timestamp as the shortest
// decimal text that reads back as the same double (std::to_chars):
// 1400000000.5, 1400000002 (no fraction for integral stamps),
// 1400000000.125. No detailed format.
//
// Render, TABA_FORMAT_METRICS (docs/prometheus.md): _values (the entries
// unexpired as of now); when there is one, _newest_timestamp_seconds (the
// event time of the first in rank order) and that value as the gauge
// _newest when it is a number, else as the info family _newest_info
// (label value: a string's content, any other value's JSON text, at most
// 256 bytes; common/value_labels.h).
//
// prunable: no entry is unexpired as of now.
//
// Serialized form: varint entry count (<= kCapacity), then per entry in
// rank order: bytes value JSON text (a varint length and the bytes),
// double event timestamp, double expiry (8 bytes little-endian).
// deserialize checks every value is JSON and every double finite. Version
// 2 holds canonical values (deserialize refuses one that is not); version
// 1, the same layout written by earlier releases, holds values as sent,
// and deserialize rewrites them (duplicates are kept, as always, so only
// the texts and the order among equal timestamps change).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_io.h"
#include "common/handler_adapter.h"
#include "common/json_canonical.h"
#include "common/json_text.h"
#include "common/metric_families.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "common/value_labels.h"
#include "taba/handler.h"

namespace taba::builtin {
namespace {

// The first version whose values are canonical.
constexpr uint32_t kCanonicalSince = 2;
constexpr size_t kCapacity = 1000;
constexpr double kBareValueLifetime = 3600;
constexpr size_t kMaxValueBytes = size_t{1} << 20;

struct Entry {
  std::string value;  // canonical JSON text
  double timestamp = 0.0;
  double expiry = 0.0;
};

// Whether a ranks before b (is kept in preference to b).
bool ranks_before(const Entry& a, const Entry& b) {
  if (a.timestamp != b.timestamp) return a.timestamp > b.timestamp;
  const int c = a.value.compare(b.value);
  if (c != 0) return c < 0;
  return a.expiry > b.expiry;
}

// Heap order: the top (the "largest") is the lowest-ranked entry.
struct LowestOnTop {
  bool operator()(const Entry& a, const Entry& b) const { return ranks_before(a, b); }
};

struct BufferState {
  std::vector<Entry> heap;
  // At most the earliest expiry held: when now reaches it, sweep.
  double min_expiry = std::numeric_limits<double>::infinity();
};

// The value text and expiry of an event; false when the payload is not
// acceptable.
bool event_entry(const taba_event& event, std::string_view* text, double* expiry) {
  if (event.payload.kind == TABA_VALUE_ARRAY) {
    if (event.elem1.kind != TABA_VALUE_NUMBER || !std::isfinite(event.elem1.number)) return false;
    *expiry = event.elem1.number;
    return value_text(event.elem0, text);
  }
  *expiry = event.timestamp + kBareValueLifetime;
  return value_text(event.payload, text);
}

// Offers one entry (value canonical); the caller has checked expiry > now.
void offer(BufferState* s, std::string_view value, double timestamp, double expiry) {
  auto& heap = s->heap;
  if (heap.size() < kCapacity) {
    heap.emplace_back();
  } else {
    // Full: only an entry ranking before the lowest one gets in, in its
    // place (and in its string buffer).
    const Entry& lowest = heap.front();
    if (timestamp < lowest.timestamp) return;
    if (timestamp == lowest.timestamp) {
      const int c = value.compare(lowest.value);
      if (c > 0 || (c == 0 && !(expiry > lowest.expiry))) return;
    }
    std::pop_heap(heap.begin(), heap.end(), LowestOnTop{});
  }
  Entry& e = heap.back();
  e.value.assign(value.data(), value.size());
  e.timestamp = timestamp;
  e.expiry = expiry;
  std::push_heap(heap.begin(), heap.end(), LowestOnTop{});
  s->min_expiry = std::min(s->min_expiry, expiry);
}

void sweep(BufferState* s, double now) {
  if (!(s->min_expiry <= now)) return;
  auto& heap = s->heap;
  heap.erase(std::remove_if(heap.begin(), heap.end(), [now](const Entry& e) { return !(e.expiry > now); }),
             heap.end());
  std::make_heap(heap.begin(), heap.end(), LowestOnTop{});
  double earliest = std::numeric_limits<double>::infinity();
  for (const Entry& e : heap) earliest = std::min(earliest, e.expiry);
  s->min_expiry = earliest;
}

// The entries in rank order, optionally only those unexpired as of now.
std::vector<const Entry*> ranked(const BufferState& s, double now, bool only_live) {
  std::vector<const Entry*> out;
  out.reserve(s.heap.size());
  for (const Entry& e : s.heap) {
    if (!only_live || e.expiry > now) out.push_back(&e);
  }
  std::sort(out.begin(), out.end(), [](const Entry* a, const Entry* b) { return ranks_before(*a, *b); });
  return out;
}

// The handler (common/handler_adapter.h makes its C-ABI table).
struct Buffer {
  using State = BufferState;
  static constexpr char kPluginName[] = "buffer";
  static constexpr char kTypeName[] = "Buffer";
  static constexpr char kDescription[] = "the 1000 most recent unexpired values across clients, newest first";
  static constexpr uint32_t kStateVersion = 2;
  static constexpr uint32_t kFormats = format_bits({TABA_FORMAT_JSON, TABA_FORMAT_METRICS});

  static State make(std::string_view, double) { return BufferState(); }
  static taba_status check_event(const taba_event* event, char* err, size_t err_cap);
  static void fold(State& s, const taba_event* events, size_t n, double now);
  static void merge(State& dst, const State& src, double now);
  static taba_status render(const State& s, uint32_t format, double now, taba_output* out);
  static bool prunable(const State& s, double now);
  static void write(const State& s, ByteWriter* w);
  static bool read(ByteReader* r, uint32_t version, State* s, const char** why);
};

taba_status Buffer::check_event(const taba_event* event, char* err, size_t err_cap) {
  std::string_view text;
  double expiry;
  if (event != nullptr && event_entry(*event, &text, &expiry)) return TABA_OK;
  set_error(err, err_cap,
            "Buffer payload must be [value, expiry_epoch_seconds] with a finite number as expiry, or a "
            "bare value that is not an array");
  return TABA_ERR_PAYLOAD;
}

void Buffer::fold(BufferState& s, const taba_event* events, size_t n, double now) {
  sweep(&s, now);
  std::string scratch;
  for (size_t i = 0; i < n; ++i) {
    std::string_view text;
    std::string_view value;
    double expiry;
    // The host accepts only values canonical_json accepts: the last test
    // cannot drop an event.
    if (event_entry(events[i], &text, &expiry) && expiry > now && canonical_json(text, &scratch, &value)) {
      offer(&s, value, events[i].timestamp, expiry);
    }
  }
}

void Buffer::merge(BufferState& dst, const BufferState& src, double now) {
  // The ABI never merges a state into itself (`from` stays unchanged);
  // refuse it rather than change a heap while walking it.
  if (&dst == &src) return;
  sweep(&dst, now);
  for (const Entry& e : src.heap) {
    if (e.expiry > now) offer(&dst, e.value, e.timestamp, e.expiry);
  }
}

void append_number(double v, TextBuffer* text) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  text->raw(res.ec == std::errc() ? std::string_view(buf, static_cast<size_t>(res.ptr - buf))
                                  : std::string_view("0"));
}

// The TABA_FORMAT_METRICS render: the count, then the newest entry.
taba_status render_metrics(const BufferState& s, double now, taba_output* out) {
  size_t live = 0;
  const Entry* newest = nullptr;
  for (const Entry& e : s.heap) {
    if (!(e.expiry > now)) continue;
    ++live;
    if (newest == nullptr || ranks_before(e, *newest)) newest = &e;
  }
  MetricFamilies families;
  families.family("_values", "gauge", "Values held.");
  families.sample(static_cast<double>(live));
  if (newest != nullptr) {
    families.family("_newest_timestamp_seconds", "gauge", "Event time of the newest value.");
    families.sample(newest->timestamp);
    double v;
    if (canonical_number(newest->value, &v)) {
      families.family("_newest", "gauge", "The newest value.");
      families.sample(v);
    } else {
      families.family("_newest_info", "info", "The newest value, which is not a number.");
      const std::string text = value_label(newest->value);
      families.sample({{"value", text}}, 1);
    }
  }
  return families.flush_to(out);
}

taba_status Buffer::render(const BufferState& s, uint32_t format, double now, taba_output* out) {
  if (format == TABA_FORMAT_METRICS) return render_metrics(s, now, out);
  TextBuffer text;
  text.raw("[");
  bool first = true;
  for (const Entry* e : ranked(s, now, true)) {
    text.raw(first ? "[" : ", [").raw(e->value).raw(", ");
    append_number(e->timestamp, &text);
    text.raw("]");
    first = false;
  }
  text.raw("]");
  return text.flush_to(out);
}

bool Buffer::prunable(const BufferState& s, double now) {
  for (const Entry& e : s.heap) {
    if (e.expiry > now) return false;
  }
  return true;
}

void Buffer::write(const BufferState& s, ByteWriter* w) {
  const auto entries = ranked(s, 0, false);
  w->put_varint(entries.size());
  for (const Entry* e : entries) {
    w->put_bytes(e->value);
    w->put_double(e->timestamp);
    w->put_double(e->expiry);
  }
}

bool Buffer::read(ByteReader* r, uint32_t version, BufferState* s, const char** why) {
  const bool values_canonical = version >= kCanonicalSince;
  uint64_t n;
  // Each entry takes at least 18 bytes: a length, a value byte, 2 doubles.
  if (!r->get_varint_max(std::min<uint64_t>(kCapacity, r->remaining() / 18), &n)) {
    *why = "entry count truncated or too large";
    return false;
  }
  s->heap.reserve(n);
  std::string scratch;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view value;
    Entry e;
    if (!r->get_bytes(kMaxValueBytes, &value) || !r->get_double(&e.timestamp) || !r->get_double(&e.expiry)) {
      *why = "entry truncated";
      return false;
    }
    if (!std::isfinite(e.timestamp) || !std::isfinite(e.expiry)) {
      *why = "entry with a non-finite timestamp or expiry";
      return false;
    }
    if (!read_stored_value(value, values_canonical, &scratch, &value)) {
      *why = values_canonical ? "entry value is not canonical JSON" : "entry value is not JSON";
      return false;
    }
    e.value.assign(value.data(), value.size());
    s->min_expiry = std::min(s->min_expiry, e.expiry);
    s->heap.push_back(std::move(e));
  }
  if (!r->at_end()) {
    *why = "trailing bytes";
    return false;
  }
  std::make_heap(s->heap.begin(), s->heap.end(), LowestOnTop{});
  return true;
}

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::plugin_entry<taba::builtin::Buffer>(host);
}
