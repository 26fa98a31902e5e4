// The client-proxy's StatsD buffer (statsd_buffer.h): one vector pass over a
// datagram finds its lines, a hash of each line's name and tags as sent finds
// the Taba name, and the event is appended to that name's records with a few
// fixed-size copies; a take folds each name's records with its handler (or
// writes them as v1 text).
#include "roles/statsd_buffer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <new>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/json_escape.h"
#include "core/log.h"
#include "core/utf8.h"
#include "plugin/state.h"

namespace taba::roles {
namespace {

namespace statsd = protocol::statsd;

// Event buffers of names idle this many flushes are released; and a
// buffer much larger than its last use is released at once.
constexpr uint64_t kIdleFlushes = 64;
constexpr size_t kKeepCapacity = 1 << 20;
// The raw-spelling table is a cache: cleared past this many entries.
constexpr size_t kMaxRawSpellings = 4'000'000;
// take_deltas hands a handler at most this many events per call (bounded
// scratch: a taba_event is ~100 bytes).
constexpr size_t kFoldChunk = 4096;

// The Taba types, in the order of StatsdBuffer::Name::type.
constexpr std::string_view kTypes[] = {"CounterGroup", "PercentileGroup", "Gauge", "Set"};
constexpr uint8_t kSetType = 3;
// The start of their v1 events: ["<type>",
constexpr std::string_view kTypePrefixes[] = {"[\"CounterGroup\",", "[\"PercentileGroup\",", "[\"Gauge\",",
                                              "[\"Set\","};

uint8_t type_index(statsd::Kind kind) {
  switch (kind) {
    case statsd::Kind::kCounter:
      return 0;
    case statsd::Kind::kTimer:
    case statsd::Kind::kHistogram:
    case statsd::Kind::kDistribution:
      return 1;
    case statsd::Kind::kGauge:
    case statsd::Kind::kGaugeDelta:
      return 2;
    case statsd::Kind::kSet:
      return 3;
  }
  return 0;
}

// A fast hash of the bytes of a name as sent (not adversarial input: the
// senders are local clients). Eight bytes at a time, then a final mix.
inline uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

inline uint64_t load_tail(const char* p, size_t n) {  // n < 8
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return (static_cast<uint64_t>(a) << 32) | b;
  }
  if (n == 0) return 0;
  return (static_cast<uint64_t>(static_cast<unsigned char>(p[0])) << 16) |
         (static_cast<uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8) | static_cast<unsigned char>(p[n - 1]);
}

// memcmp(a, b, n) == 0 for the short keys of names, without the call.
// From 8 bytes on, the last word is read overlapping the one before.
inline bool same_bytes(const char* a, const char* b, size_t n) {
  if (n < 8) return load_tail(a, n) == load_tail(b, n);
  for (size_t i = 0; i + 8 < n; i += 8) {
    if (load8(a + i) != load8(b + i)) return false;
  }
  return load8(a + n - 8) == load8(b + n - 8);
}

// 64 x 64 -> 128-bit product, halves folded: every input bit reaches
// most output bits in one multiply.
inline uint64_t fold_mul(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// Sixteen bytes per multiply; the last 1-16 bytes as two overlapping
// words, with the length mixed in so that shorter keys differ.
inline uint64_t hash_bytes(std::string_view s, uint64_t h) {
  constexpr uint64_t kA = 0xa0761d6478bd642full;
  constexpr uint64_t kB = 0xe7037ed1a0b428dbull;
  const char* p = s.data();
  size_t n = s.size();
  const char* end = p + n;
  uint64_t a, b;
  if (n >= 16) {
    // Then the last 16 bytes, overlapping what the loop took.
    while (n > 16) {
      h = fold_mul(load8(p) ^ kA, load8(p + 8) ^ h ^ kB);
      p += 16;
      n -= 16;
    }
    a = load8(end - 16);
    b = load8(end - 8);
  } else if (n >= 8) {
    a = load8(p);
    b = load8(end - 8);
  } else {
    a = load_tail(p, n);
    b = 0;
  }
  return fold_mul(a ^ kA ^ (static_cast<uint64_t>(s.size()) << 56), b ^ h ^ kB);
}

inline uint64_t hash_spelling(std::string_view name, std::string_view tags) {
  uint64_t h = hash_bytes(name, 0x243f6a8885a308d3ull);
  if (!tags.empty()) h = hash_bytes(tags, h ^ 0x13198a2e03707344ull);
  h = fold_mul(h, 0xd6e8feb86659fd93ull);
  return h | 1;  // 0 marks an empty slot
}

// Copies n bytes with a few overlapping fixed-size moves when n is small
// (the usual number or member), reading only [src, src + n).
inline void copy_short(char* dst, const char* src, size_t n) {
  if (n > 16) {
    std::memcpy(dst, src, n);
  } else if (n >= 8) {
    uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else if (n > 0) {
    dst[0] = src[0];
    dst[n / 2] = src[n / 2];
    dst[n - 1] = src[n - 1];
  }
}

// Whether a set member needs no JSON escaping (no '"', '\\' or control
// byte), and whether it is all ASCII (so valid UTF-8 without a check).
inline bool plain_member(std::string_view member, bool* ascii) {
  unsigned char any = 0;
  for (char ch : member) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\' || c < 0x20) return false;
    any |= c;
  }
  *ascii = any < 0x80;
  return true;
}

// Whether a JSON string's text ("...", quotes included) holds no escape
// and no other '"', so that escaping it again only escapes its quotes.
inline bool plain_json_string(std::string_view text) {
  for (size_t i = 1; i + 1 < text.size(); ++i) {
    if (text[i] == '"' || text[i] == '\\') return false;
  }
  return text.size() >= 2;
}

// The masks of the 64 bytes at p (all readable).
template <class Masks>
inline void block_masks(const char* p, Masks* out) {
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n');
  const __m128i colon = _mm_set1_epi8(':');
  const __m128i bar = _mm_set1_epi8('|');
  uint64_t m_nl = 0, m_colon = 0, m_bar = 0;
  for (int k = 0; k < 4; ++k) {
    __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    __m128i is_bar = _mm_cmpeq_epi8(chunk, bar);
    auto shift = static_cast<unsigned>(16 * k);
    m_nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, nl)))) << shift;
    m_bar |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(is_bar))) << shift;
    m_colon |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(chunk, colon), is_bar))))
               << shift;
  }
  out->newline = m_nl;
  out->colon = m_colon;
  out->bar = m_bar;
#else
  uint64_t m_nl = 0, m_colon = 0, m_bar = 0;
  for (unsigned i = 0; i < 64; ++i) {
    uint64_t bit = uint64_t{1} << i;
    if (p[i] == '\n') m_nl |= bit;
    if (p[i] == '|') m_bar |= bit;
    if (p[i] == ':' || p[i] == '|') m_colon |= bit;
  }
  out->newline = m_nl;
  out->colon = m_colon;
  out->bar = m_bar;
#endif
}

// The first position in [pos, limit) whose bit is set in `field` of the
// masks, or limit. The masks cover at least [0, limit) (zero beyond the data).
template <class Masks>
inline size_t next_bit(const Masks* m, uint64_t Masks::*field, size_t pos, size_t limit) {
  if (pos >= limit) return limit;
  size_t w = pos >> 6;
  uint64_t bits = (m[w].*field) & (~uint64_t{0} << (pos & 63));
  while (bits == 0) {
    if ((++w << 6) >= limit) return limit;
    bits = m[w].*field;
  }
  size_t at = (w << 6) + static_cast<size_t>(__builtin_ctzll(bits));
  return at < limit ? at : limit;
}

}  // namespace

void StatsdBuffer::Records::grow(size_t n) {
  size_t cap = std::max<size_t>({cap_ * 2, size_ + n, 1024});
  auto* data = static_cast<char*>(std::realloc(data_, cap));
  if (data == nullptr) throw std::bad_alloc();
  data_ = data;
  cap_ = cap;
}

void StatsdBuffer::grow_raw() {
  std::vector<RawSlot> old;
  old.swap(raw_);
  raw_.assign(old.empty() ? 1024 : old.size() * 2, RawSlot{});
  size_t mask = raw_.size() - 1;
  for (const RawSlot& s : old) {
    if (s.hash == 0) continue;
    size_t i = s.hash & mask;
    while (raw_[i].hash != 0) i = (i + 1) & mask;
    raw_[i] = s;
  }
}

// Inline in add_datagram: the lookup that finds the spelling; a new one
// goes to add_spelling, out of line.
inline uint32_t StatsdBuffer::find_or_add(const statsd::Line& line) {
  uint64_t h = hash_spelling(line.name, line.tags);
  size_t key_len = line.name.size() + 1 + line.tags.size();
  if (raw_.empty()) grow_raw();
  size_t mask = raw_.size() - 1;
  size_t i = h & mask;
  for (; raw_[i].hash != 0; i = (i + 1) & mask) {
    const RawSlot& s = raw_[i];
    if (s.hash != h || s.key_len != key_len) continue;
    const char* k = raw_keys_.data() + s.key_off;
    if (same_bytes(k, line.name.data(), line.name.size()) &&
        same_bytes(k + line.name.size() + 1, line.tags.data(), line.tags.size())) {
      return s.id;
    }
  }
  return add_spelling(line, h, i);
}

// A spelling not seen before, for the empty slot i: map it (the same Taba
// name may come from several spellings, e.g. tags in another order).
__attribute__((noinline)) uint32_t StatsdBuffer::add_spelling(const statsd::Line& line, uint64_t h, size_t i) {
  size_t key_len = line.name.size() + 1 + line.tags.size();
  if (!statsd::map_name(line, &name_scratch_)) return kNoName;
  uint32_t id;
  auto it = by_name_.find(name_scratch_);
  if (it != by_name_.end()) {
    id = it->second;
  } else {
    id = static_cast<uint32_t>(names_.size());
    Name& n = names_.emplace_back();
    n.name = name_scratch_;
    n.type = type_index(line.kind);
    by_id_.push_back(&n);
    by_name_.emplace(name_scratch_, id);
  }
  RawSlot s;
  s.hash = h;
  s.id = id;
  s.key_len = static_cast<uint32_t>(key_len);
  s.key_off = raw_keys_.size();
  raw_keys_.append(line.name);
  raw_keys_.push_back('|');
  raw_keys_.append(line.tags);
  raw_[i] = s;
  if (++raw_used_ * 2 > raw_.size()) grow_raw();
  return id;
}

void StatsdBuffer::append_value(uint32_t id, Name& n, const statsd::Line& v, double ts, ProxyStats* stats) {
  ++stats->lines;
  if (events_ >= max_events_) {
    // Dropped before a gauge takes the value: a later +n/-n stays right.
    ++stats->events_dropped_full;
    return;
  }
  if (n.generation != generation_) {
    n.generation = generation_;
    dirty_.push_back(id);
  }
  // The payload's JSON text, as the fe's v1 decoder hands it to the handler
  // for the event of a v1 body: a number as sent when that is the text fmt
  // would write for it, else formatted; a set member as a JSON string (its
  // bytes read as Latin-1 when they are not UTF-8, as the decoder reads
  // them).
  char number[statsd::kMaxNumberText];
  std::string_view text;
  bool quoted = false;
  double value = v.number;
  switch (v.kind) {
    case statsd::Kind::kCounter:
      if (v.sample_rate != 1) {
        value = v.number / v.sample_rate;
        text = std::string_view(number, static_cast<size_t>(statsd::format_number(value, number) - number));
        break;
      }
      [[fallthrough]];
    case statsd::Kind::kTimer:
    case statsd::Kind::kHistogram:
    case statsd::Kind::kDistribution:
    case statsd::Kind::kGauge:
      if (v.value_is_shortest) {
        text = v.value;
      } else {
        text = std::string_view(number, static_cast<size_t>(statsd::format_number(value, number) - number));
      }
      if (v.kind == statsd::Kind::kGauge) n.gauge = value;
      break;
    case statsd::Kind::kGaugeDelta:
      value = n.gauge = v.number + n.gauge;
      text = std::string_view(number, static_cast<size_t>(statsd::format_number(n.gauge, number) - number));
      break;
    case statsd::Kind::kSet: {
      value = 0;
      bool ascii = false;
      if (plain_member(v.value, &ascii) && (ascii || is_valid_utf8(v.value))) {
        text = v.value;
        quoted = true;
        break;
      }
      std::string_view member = v.value;
      if (!is_valid_utf8(member)) {
        latin1_scratch_.clear();
        append_latin1_as_utf8(member, &latin1_scratch_);
        member = latin1_scratch_;
      }
      set_scratch_.assign("\"");
      append_json_escaped(&set_scratch_, member, JsonControls::kHex);
      set_scratch_.push_back('"');
      text = set_scratch_;
      break;
    }
  }
  const auto len = static_cast<uint32_t>(text.size() + (quoted ? 2 : 0));
  char* p = n.records.reserve(kHeadBytes + len);
  std::memcpy(p, &ts, 8);
  std::memcpy(p + 8, &value, 8);
  std::memcpy(p + 16, &len, 4);
  p += kHeadBytes;
  if (quoted) *p++ = '"';
  copy_short(p, text.data(), text.size());
  p += text.size();
  if (quoted) *p++ = '"';
  n.records.commit(p);
  // The next event of this name comes hundreds of other events later, into
  // a cache line not written yet: fetch it now, so that write does not wait
  // for memory (the proxy writes to as many places as it has busy names).
  __builtin_prefetch(p + 64, 1);
  ++n.count;
  ++events_;
  ++stats->events_buffered;
}

void StatsdBuffer::add_datagram(std::string_view datagram, double now, ProxyStats* stats) {
  ++stats->datagrams;
  // Millisecond stamps, as the v1 bodies carried them.
  const double ts = std::floor(now * 1000) / 1000;
  statsd::Line line;  // one for all lines: parse_line sets every field
  const char* d = datagram.data();
  size_t size = datagram.size();
  size_t blocks = size / 64;
  if (masks_.size() < blocks + 1) masks_.resize(blocks + 1);
  ByteMasks* m = masks_.data();
  for (size_t b = 0; b < blocks; ++b) block_masks(d + 64 * b, &m[b]);
  if (size % 64 != 0) {
    char tail[64] = {};
    std::memcpy(tail, d + 64 * blocks, size % 64);
    block_masks(tail, &m[blocks]);
  }
  size_t pos = 0;
  while (pos < size) {
    // As statsd::parse_datagram, with one name lookup per line rather than per value.
    size_t nl = next_bit(m, &ByteMasks::newline, pos, size);
    size_t line_end = nl;
    size_t start = pos;
    pos = nl + 1;
    if (line_end > start && d[line_end - 1] == '\r') --line_end;
    if (line_end == start) continue;
    size_t colon = next_bit(m, &ByteMasks::colon, start, line_end);
    size_t bar = colon < line_end && d[colon] == '|' ? colon : next_bit(m, &ByteMasks::bar, colon, line_end);
    std::string_view text(d + start, line_end - start);
    if (statsd::parse_line_at(text, d + colon, d + bar, &line) != nullptr) {
      ++stats->bad_lines;
      continue;
    }
    uint32_t id = find_or_add(line);
    uint8_t type = type_index(line.kind);
    Name* name = id == kNoName ? nullptr : by_id_[id];
    if (name == nullptr || name->type != type) {
      // Counted once per value, like the values of a good line. A type
      // conflict: the fe would refuse the whole body for it; refuse the line.
      uint64_t values = 1;
      if (line.kind != statsd::Kind::kSet) {
        for (char c : line.values) values += c == ':';
      }
      stats->bad_lines += values;
      if (id != kNoName) stats->type_conflicts += values;
      continue;
    }
    const double event_ts = line.timestamp > 0 ? static_cast<double>(line.timestamp) : ts;
    statsd::for_each_value(line, [&](const statsd::Line& v) { append_value(id, *name, v, event_ts, stats); });
  }
}

bool StatsdBuffer::take_deltas(const plugin::Registry& registry, const DeltaFlush& flush, protocol::DeltaWriter* out,
                               ProxyStats* stats) {
  if (dirty_.empty()) return false;
  const plugin::Handler* handlers[std::size(kTypes)];
  for (size_t t = 0; t < std::size(kTypes); ++t) handlers[t] = registry.find(kTypes[t]);
  for (uint32_t id : dirty_) {
    const Name& n = *by_id_[id];
    const plugin::Handler* h = handlers[n.type];
    if (h == nullptr) {
      stats->events_dropped_fold += n.count;
      if (!warned_no_handler_[n.type]) {
        warned_no_handler_[n.type] = true;
        log::error("client-proxy: no loaded plugin serves {}: StatsD values of that type are dropped", kTypes[n.type]);
      }
      continue;
    }
    fold_name(n, h, flush, out, stats);
  }
  end_take();
  return true;
}

void StatsdBuffer::fold_name(const Name& n, const plugin::Handler* h, const DeltaFlush& flush,
                             protocol::DeltaWriter* out, ProxyStats* stats) {
  const bool set = n.type == kSetType;
  const std::string_view records = n.records.view();
  plugin::State state;
  uint64_t folded = 0;
  plugin::HookError why;
  size_t pos = 0;
  // elem0 and elem1 stay NONE (zeroed once): no payload is an array.
  if (fold_events_.size() < kFoldChunk) fold_events_.resize(kFoldChunk, taba_event{});
  while (pos < records.size()) {
    // Up to kFoldChunk events at a time: the first chunk into the fresh
    // state, the next ones as the ingest contract folds a later block.
    size_t k = 0;
    while (pos < records.size() && k < kFoldChunk) {
      double ts, number;
      uint32_t len;
      std::memcpy(&ts, records.data() + pos, 8);
      std::memcpy(&number, records.data() + pos + 8, 8);
      std::memcpy(&len, records.data() + pos + 16, 4);
      const char* text = records.data() + pos + kHeadBytes;
      pos += kHeadBytes + len;
      taba_event& ev = fold_events_[k];
      ev.timestamp = ts > flush.now + flush.future_clamp_s ? flush.now : ts;
      ev.payload = taba_value{set ? TABA_VALUE_STRING : TABA_VALUE_NUMBER, 0, number, text, len};
      // A value that overflowed (1e308|c|@0.1) has no JSON number text:
      // the fe's decoder would refuse it too.
      if ((!set && !std::isfinite(number)) || !h->check_event(&ev, &why)) {
        ++stats->events_dropped_fold;
        continue;
      }
      ++k;
    }
    if (k == 0) continue;
    // fold_many, where the handler has it, also folds the first chunk: it
    // sums a chunk's events per bucket before adding them (CounterGroup).
    if (!plugin::fold_block(*h, &state, flush.client_id, fold_events_.data(), k, flush.now)) {
      stats->events_dropped_fold += k;
      continue;
    }
    folded += k;
  }
  if (!state) return;
  if (!h->serialize(state.get(), &state_bytes_)) {
    log::error("client-proxy: the {} handler could not serialize the state of \"{}\"; its {} events are dropped",
               h->type_name, n.name, folded);
    stats->events_dropped_fold += folded;
    return;
  }
  out->add(flush.client_id, n.name, h->type_name, folded, h->state_version(), state_bytes_);
}

std::string_view StatsdBuffer::stamp_text(double ts) {
  // Open addressing by the stamp's bits, emptied by each take_body: a
  // flush's events share a few hundred distinct milliseconds.
  uint64_t bits;
  std::memcpy(&bits, &ts, sizeof bits);
  const size_t mask = stamps_.size() - 1;
  size_t i = fold_mul(bits, 0x9e3779b97f4a7c15ull) & mask;
  for (; stamps_[i].len != 0; i = (i + 1) & mask) {
    if (stamps_[i].ts == ts) return {stamps_[i].text, stamps_[i].len};
  }
  if (++stamps_used_ * 2 > stamps_.size()) {
    // Many distinct stamps (|T fields): start over.
    for (Stamp& st : stamps_) st.len = 0;
    stamps_used_ = 1;
    i = fold_mul(bits, 0x9e3779b97f4a7c15ull) & mask;
  }
  Stamp& st = stamps_[i];
  st.len = static_cast<uint8_t>(statsd::format_number(ts, st.text) - st.text);
  st.ts = ts;
  return {st.text, st.len};
}

bool StatsdBuffer::take_body(std::string_view client_id, std::string* out) {
  if (dirty_.empty()) return false;
  out->append("1\n\n");
  out->append(client_id);
  out->append("\n\n");
  stamps_.assign(kStampSlots, Stamp{});
  stamps_used_ = 0;
  for (uint32_t id : dirty_) {
    const Name& n = *by_id_[id];
    const std::string_view type_prefix = kTypePrefixes[n.type];
    const std::string_view records = n.records.view();
    out->append(n.name);
    out->push_back('\n');
    // Each event is ["<type>",<ts>,"<payload>"] and a newline. A number's
    // JSON text needs no escaping: the name's events are written with a
    // few short copies into one buffer, appended whole. A set member's
    // quotes and escapes are escaped again, by the one escaper.
    const bool set = n.type == kSetType;
    text_scratch_.clear();
    for (size_t pos = 0; pos < records.size();) {
      double ts;
      uint32_t len;
      std::memcpy(&ts, records.data() + pos, 8);
      std::memcpy(&len, records.data() + pos + 16, 4);
      const std::string_view text(records.data() + pos + kHeadBytes, len);
      pos += kHeadBytes + len;
      const std::string_view stamp = stamp_text(ts);
      char* p = text_scratch_.reserve(type_prefix.size() + stamp.size() + 2 + len + 2 + 3);
      copy_short(p, type_prefix.data(), type_prefix.size());
      p += type_prefix.size();
      copy_short(p, stamp.data(), stamp.size());
      p += stamp.size();
      std::memcpy(p, ",\"", 2);
      p += 2;
      if (set && plain_json_string(text)) {
        // "member" as the body of a JSON string: \"member\"
        *p++ = '\\';
        copy_short(p, text.data(), text.size() - 1);
        p += text.size() - 1;
        *p++ = '\\';
        *p++ = '"';
      } else if (set) {
        text_scratch_.commit(p);
        out->append(text_scratch_.view());
        text_scratch_.clear();
        append_json_escaped(out, text, JsonControls::kHex);
        p = text_scratch_.reserve(3);
      } else {
        copy_short(p, text.data(), text.size());
        p += text.size();
      }
      std::memcpy(p, "\"]\n", 3);
      text_scratch_.commit(p + 3);
    }
    out->append(text_scratch_.view());
    out->push_back('\n');
  }
  out->push_back('\n');
  end_take();
  return true;
}

void StatsdBuffer::end_take() {
  for (uint32_t id : dirty_) {
    Name& n = *by_id_[id];
    n.count = 0;
    if (n.records.capacity() > kKeepCapacity && n.records.size() < n.records.capacity() / 4) {
      n.records.release();
    } else {
      n.records.clear();
    }
  }
  dirty_.clear();
  events_ = 0;
  ++generation_;
  if (generation_ % kIdleFlushes == 0) {
    // Release the buffers of names that have been quiet for a while.
    for (Name& n : names_) {
      if (n.generation + kIdleFlushes < generation_ && n.records.capacity() != 0) n.records.release();
    }
  }
  if (raw_used_ > kMaxRawSpellings) {
    raw_.clear();
    raw_used_ = 0;
    raw_keys_.clear();
  }
}

void StatsdBuffer::forget_names() {
  names_.clear();
  by_id_.clear();
  by_name_.clear();
  raw_.clear();
  raw_used_ = 0;
  std::string().swap(raw_keys_);
  dirty_.clear();
  events_ = 0;
}

}  // namespace taba::roles
