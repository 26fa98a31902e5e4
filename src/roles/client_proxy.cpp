#include "roles/client_proxy.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <optional>
#include <random>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/clock.h"
#include "core/log.h"
#include "http/client.h"
#include "protocol/v1_encoder.h"
#include "roles/server_options.h"
#include "routes/auth.h"
#include "taba/version.h"

namespace taba::roles {
namespace {

namespace statsd = protocol::statsd;

// recvmmsg: libuv fills up to this many 64 KiB datagram slots per call.
constexpr size_t kDatagramSlot = 64 * 1024;
constexpr size_t kSlots = 32;
// recvmmsg calls per turn of the loop, at most.
constexpr int kRoundsPerRead = 16;
// After a read that found datagrams, the next read comes this much later
// (instead of a wakeup per datagram). At 1 M lines/s that is ~50 datagrams,
// far within the receive buffer.
constexpr uint64_t kCoalesceMs = 1;
// Names remembered for type checks and gauge deltas (bounded memory).
constexpr size_t kMaxRememberedNames = 1'000'000;

// Event buffers of names idle this many flushes are released; and a
// buffer much larger than its last use is released at once.
constexpr uint64_t kIdleFlushes = 64;
constexpr size_t kKeepCapacity = 1 << 20;
// The raw-spelling table is a cache: cleared past this many entries.
constexpr size_t kMaxRawSpellings = 4'000'000;

// The Taba types, in the order of StatsdBuffer::Name::type.
constexpr std::string_view kTypes[] = {"CounterGroup", "PercentileGroup", "Gauge", "Set"};

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

// Whether a set member needs no JSON escaping.
inline bool plain_member(std::string_view member) {
  for (char ch : member) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\' || c < 0x20) return false;
  }
  return true;
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

void StatsdBuffer::EventText::grow(size_t n) {
  size_t cap = std::max<size_t>({cap_ * 2, size_ + n, 1024});
  auto* data = static_cast<char*>(std::realloc(data_, cap));
  if (data == nullptr) throw std::bad_alloc();
  data_ = data;
  cap_ = cap;
}

void StatsdBuffer::make_prefix(std::string_view type, double ts, Prefix* out) {
  std::string p = "[\"";
  p.append(type);
  p.append("\",");
  statsd::append_number(ts, &p);
  p.append(",\"");
  // At most 19 + 24 + 2 bytes: always fits the block.
  std::memset(out->text, 0, Prefix::kBlock);
  std::memcpy(out->text, p.data(), std::min(p.size(), Prefix::kBlock));
  out->len = std::min(p.size(), Prefix::kBlock);
}

void StatsdBuffer::set_time(double ts) {
  ts_cached_ = ts;
  for (size_t t = 0; t < 4; ++t) make_prefix(kTypes[t], ts, &prefixes_[t]);
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

void StatsdBuffer::append_value(uint32_t id, Name& n, const statsd::Line& v, const Prefix& prefix, ProxyStats* stats) {
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
  // The payload: the value as sent when that is the text fmt would write
  // for it, else formatted; a set member as a JSON string, escaped again
  // as the body of the event's JSON string (\"alice\").
  char number[statsd::kMaxNumberText];
  std::string_view payload;
  bool quoted = false;
  double value = v.number;
  switch (v.kind) {
    case statsd::Kind::kCounter:
      if (v.sample_rate != 1) {
        value = v.number / v.sample_rate;
        payload = std::string_view(number, static_cast<size_t>(statsd::format_number(value, number) - number));
        break;
      }
      [[fallthrough]];
    case statsd::Kind::kTimer:
    case statsd::Kind::kHistogram:
    case statsd::Kind::kDistribution:
    case statsd::Kind::kGauge:
      if (v.value_is_shortest) {
        payload = v.value;
      } else {
        payload = std::string_view(number, static_cast<size_t>(statsd::format_number(value, number) - number));
      }
      if (v.kind == statsd::Kind::kGauge) n.gauge = value;
      break;
    case statsd::Kind::kGaugeDelta:
      n.gauge = v.number + n.gauge;
      payload = std::string_view(number, static_cast<size_t>(statsd::format_number(n.gauge, number) - number));
      break;
    case statsd::Kind::kSet:
      if (plain_member(v.value)) {
        payload = v.value;
        quoted = true;
      } else {
        set_scratch_.assign("\"");
        protocol::append_json_string_body(v.value, &set_scratch_);
        set_scratch_.push_back('"');
        set_text_.clear();
        protocol::append_json_string_body(set_scratch_, &set_text_);
        payload = set_text_;
      }
      break;
  }
  char* p = n.lines.reserve(Prefix::kBlock + payload.size() + 8);
  std::memcpy(p, prefix.text, Prefix::kBlock);  // one block copy; only len bytes count
  p += prefix.len;
  if (quoted) {
    std::memcpy(p, "\\\"", 2);
    p += 2;
  }
  copy_short(p, payload.data(), payload.size());
  p += payload.size();
  if (quoted) {
    std::memcpy(p, "\\\"\"]\n", 5);
    p += 5;
  } else {
    std::memcpy(p, "\"]\n", 3);
    p += 3;
  }
  n.lines.commit(p);
  // The next event of this name comes hundreds of other events later, into
  // a cache line not written yet: fetch it now, so that write does not wait
  // for memory (the proxy writes to as many places as it has busy names).
  __builtin_prefetch(p + 64, 1);
  ++events_;
  ++stats->events_buffered;
}

void StatsdBuffer::add_datagram(std::string_view datagram, double now, ProxyStats* stats) {
  ++stats->datagrams;
  // Millisecond stamps: one prefix per type and millisecond, shared by its lines.
  double ts = std::floor(now * 1000) / 1000;
  if (ts != ts_cached_) set_time(ts);
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
    const Prefix* prefix = &prefixes_[type];
    if (line.timestamp > 0) {
      make_prefix(kTypes[type], static_cast<double>(line.timestamp), &stamp_prefix_);
      prefix = &stamp_prefix_;
    }
    statsd::for_each_value(line, [&](const statsd::Line& v) { append_value(id, *name, v, *prefix, stats); });
  }
}

bool StatsdBuffer::take_body(std::string_view client_id, std::string* out) {
  if (dirty_.empty()) return false;
  size_t bytes = 8 + client_id.size();
  for (uint32_t id : dirty_) bytes += names_[id].name.size() + names_[id].lines.size() + 2;
  out->reserve(out->size() + bytes);
  out->append("1\n\n");
  out->append(client_id);
  out->append("\n\n");
  for (uint32_t id : dirty_) {
    Name& n = names_[id];
    out->append(n.name);
    out->push_back('\n');
    out->append(n.lines.view());
    out->push_back('\n');
    if (n.lines.capacity() > kKeepCapacity && n.lines.size() < n.lines.capacity() / 4) {
      n.lines.release();
    } else {
      n.lines.clear();
    }
  }
  out->push_back('\n');
  dirty_.clear();
  events_ = 0;
  ++generation_;
  if (generation_ % kIdleFlushes == 0) {
    // Release the buffers of names that have been quiet for a while.
    for (Name& n : names_) {
      if (n.generation + kIdleFlushes < generation_ && n.lines.capacity() != 0) n.lines.release();
    }
  }
  if (raw_used_ > kMaxRawSpellings) {
    raw_.clear();
    raw_used_ = 0;
    raw_keys_.clear();
  }
  return true;
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

ClientProxyRole::ClientProxyRole(uv_loop_t* loop, const Config& config, const plugin::Registry* registry)
    : loop_(loop), config_(config), registry_(registry) {
  client_id_ = config_.client_proxy.client_id;
  if (client_id_.empty()) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    client_id_ = host;
  }
  buffer_ = std::make_unique<StatsdBuffer>(static_cast<uint64_t>(config_.client_proxy.max_buffered_events));
  rng_state_ = std::random_device{}();
  rng_state_ = (rng_state_ << 32) ^ std::random_device{}();
}

ClientProxyRole::~ClientProxyRole() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stop_deadline_ms_ = 0;
  }
  wake_.notify_all();
  if (forwarder_.joinable()) forwarder_.join();
  if (udp_in_.fd >= 0) ::close(udp_in_.fd);
  if (unix_in_.fd >= 0) ::close(unix_in_.fd);
}

std::string ClientProxyRole::new_batch_id() {
  // splitmix64: ids only need to be unique, not secret.
  auto next = [this] {
    uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return fmt::format("{:016x}{:016x}", next(), next());
}

Status ClientProxyRole::start() {
  ingest_ = std::make_unique<routes::Ingest>(this, registry_, config_.ingest);
  http::ServerOptions ho = server_options(config_.http);
  server_ = std::make_unique<http::Server>(loop_, ho, [this](const std::shared_ptr<http::Exchange>& ex) {
    return route(ex);
  });
  std::string host;
  int port = 0;
  http::split_host_port(config_.client_proxy.listen, &host, &port);
  Status s = server_->listen(host, port);
  if (!s.ok()) {
    return Status::IoError(fmt::format("client-proxy: cannot listen on {}: {}", config_.client_proxy.listen, s.message()));
  }

  if (!config_.client_proxy.statsd_udp.empty()) {
    s = open_udp_socket();
    if (!s.ok()) return s;
  }
  if (!config_.client_proxy.statsd_unix.empty()) {
    s = open_unix_socket();
    if (!s.ok()) return s;
  }

  uv_timer_init(loop_, &flush_timer_);
  flush_timer_.data = this;
  timer_open_ = true;
  auto every = static_cast<uint64_t>(config_.client_proxy.flush_interval_ms);
  uv_timer_start(&flush_timer_, [](uv_timer_t* t) { static_cast<ClientProxyRole*>(t->data)->flush(); }, every, every);
  uv_timer_init(loop_, &drain_timer_);
  drain_timer_.data = this;
  drain_open_ = true;
  forwarder_ = std::thread([this] { forward_main(); });
  log::info("client-proxy: HTTP {}:{}, StatsD UDP {} (recvmmsg {}), unix {}, forwarding to the agent at {} as client {}",
            host, server_->port(), config_.client_proxy.statsd_udp.empty() ? "off" : config_.client_proxy.statsd_udp,
            udp_in_.open ? "on" : "off",
            config_.client_proxy.statsd_unix.empty() ? "off" : config_.client_proxy.statsd_unix,
            config_.client_proxy.agent, client_id_);
  return Status::Ok();
}

// Asks for a receive buffer of `want` bytes; SO_RCVBUFFORCE passes
// net.core.rmem_max when we may (CAP_NET_ADMIN). The size granted, as
// Linux counts it (twice what was asked, for its bookkeeping).
static int set_receive_buffer(int fd, int want) {
  if (want > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  }
  int got = 0;
  socklen_t len = sizeof got;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len);
  return got;
}

Status ClientProxyRole::open_udp_socket() {
  std::string uhost;
  int uport = 0;
  http::split_host_port(config_.client_proxy.statsd_udp, &uhost, &uport);
  if (uhost == "localhost") uhost = "127.0.0.1";
  sockaddr_storage addr{};
  socklen_t addr_len = sizeof(sockaddr_in);
  int family = AF_INET;
  if (uv_ip4_addr(uhost.c_str(), uport, reinterpret_cast<sockaddr_in*>(&addr)) != 0) {
    if (uv_ip6_addr(uhost.c_str(), uport, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
      return Status::Invalid(fmt::format("client_proxy.statsd_udp: \"{}\" is not an IP address", uhost));
    }
    family = AF_INET6;
    addr_len = sizeof(sockaddr_in6);
  }
  udp_in_.fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (udp_in_.fd < 0) return Status::IoError(fmt::format("client-proxy: socket(UDP): {}", strerror(errno)));
  if (::bind(udp_in_.fd, reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0) {
    return Status::IoError(
        fmt::format("client-proxy: cannot bind UDP {}: {}", config_.client_proxy.statsd_udp, strerror(errno)));
  }
  if (config_.client_proxy.udp_recv_buffer_bytes > 0) {
    int want = static_cast<int>(config_.client_proxy.udp_recv_buffer_bytes);
    int got = set_receive_buffer(udp_in_.fd, want);
    if (got / 2 < want) {
      log::warn("client-proxy: UDP receive buffer is {} bytes, not the {} asked for (raise net.core.rmem_max)", got / 2,
                want);
    }
  }
  return start_input(&udp_in_);
}

Status ClientProxyRole::open_unix_socket() {
  const std::string& path = config_.client_proxy.statsd_unix;
  unix_in_.fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (unix_in_.fd < 0) return Status::IoError(fmt::format("client-proxy: socket(AF_UNIX): {}", strerror(errno)));
  ::unlink(path.c_str());  // a stale socket from an earlier run
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::bind(unix_in_.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IoError(fmt::format("client-proxy: cannot bind {}: {}", path, strerror(errno)));
  }
  set_receive_buffer(unix_in_.fd, static_cast<int>(config_.client_proxy.udp_recv_buffer_bytes));
  return start_input(&unix_in_);
}

Status ClientProxyRole::start_input(DatagramInput* in) {
  if (recv_buf_.empty()) recv_buf_.resize(kDatagramSlot * kSlots);
  in->self = this;
  int rc = uv_poll_init(loop_, &in->poll, in->fd);
  if (rc != 0) return Status::Internal(fmt::format("uv_poll_init: {}", uv_strerror(rc)));
  uv_timer_init(loop_, &in->timer);
  in->open = true;
  in->poll.data = in;
  in->timer.data = in;
  in->polling = true;
  uv_poll_start(&in->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
    if (status < 0) return;
    auto* input = static_cast<DatagramInput*>(h->data);
    input->self->service_input(input);
  });
  return Status::Ok();
}

size_t ClientProxyRole::read_input(DatagramInput* in, bool* more) {
  *more = false;
  size_t total = 0;
  mmsghdr msgs[kSlots];
  iovec iov[kSlots];
  // A bounded number of calls per turn keeps the loop fair to the other
  // socket, HTTP and the flush timer.
  for (int round = 0; round < kRoundsPerRead; ++round) {
    for (size_t i = 0; i < kSlots; ++i) {
      iov[i] = {recv_buf_.data() + i * kDatagramSlot, kDatagramSlot};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(in->fd, msgs, kSlots, MSG_DONTWAIT, nullptr);
    if (n <= 0) return total;  // nothing more, or an error (counted nowhere: datagrams)
    // One stamp per batch: these datagrams were all waiting when it was read.
    double now = wall_now();
    for (int i = 0; i < n; ++i) {
      handle_datagram(std::string_view(static_cast<const char*>(iov[i].iov_base), msgs[i].msg_len), now);
    }
    total += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < kSlots) return total;
  }
  *more = true;
  return total;
}

void ClientProxyRole::service_input(DatagramInput* in) {
  if (stopping_) return;
  bool more = false;
  size_t got = read_input(in, &more);
  if (got == 0 || more) {
    // Quiet: wait for the socket again. Or more is waiting: readiness
    // brings us back on the next turn of the loop, after the timers and
    // HTTP (a 0 ms timer would not: libuv may run it again at once).
    if (!in->polling) {
      in->polling = true;
      uv_poll_start(&in->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
        if (status < 0) return;
        auto* input = static_cast<DatagramInput*>(h->data);
        input->self->service_input(input);
      });
    }
    return;
  }
  // Busy: read again shortly rather than wake for every datagram.
  in->polling = false;
  uv_poll_stop(&in->poll);
  uv_timer_start(
      &in->timer,
      [](uv_timer_t* t) {
        auto* input = static_cast<DatagramInput*>(t->data);
        input->self->service_input(input);
      },
      kCoalesceMs, 0);
}

void ClientProxyRole::stop_input(DatagramInput* in) {
  if (!in->open) return;
  uv_poll_stop(&in->poll);
  uv_timer_stop(&in->timer);
  in->polling = false;
}

void ClientProxyRole::handle_datagram(std::string_view datagram, double now) {
  buffer_->add_datagram(datagram, now, &loop_stats_);
}

void ClientProxyRole::flush() {
  uint64_t events = buffer_->events();
  auto text = std::make_shared<std::string>();
  if (!buffer_->take_body(client_id_, text.get())) return;
  Body body;
  body.batch_id = new_batch_id();
  body.text = std::move(text);
  body.events = events;
  if (buffer_->names() > kMaxRememberedNames) {
    // Bounded memory: forget every name (their types and gauge values) and
    // start over; counted so that it shows.
    log::warn("client-proxy: more than {} names seen; forgetting their types and gauge values", kMaxRememberedNames);
    buffer_->forget_names();
    ++loop_stats_.names_forgotten;
  }
  enqueue(std::move(body), true);
}

bool ClientProxyRole::enqueue(Body body, bool drop_oldest) {
  uint64_t cap = static_cast<uint64_t>(config_.client_proxy.max_retry_bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t size = body.text->size();
    if (!drop_oldest && queued_bytes_ + size > cap && !queue_.empty()) return false;
    // Best effort: the newest data is kept, the oldest queued body goes.
    while (queued_bytes_ + size > cap && !queue_.empty()) {
      fwd_stats_.events_dropped_retry += queue_.front().events;
      queued_bytes_ -= queue_.front().text->size();
      queue_.pop_front();
    }
    queued_bytes_ += size;
    queue_.push_back(std::move(body));
  }
  wake_.notify_one();
  return true;
}

void ClientProxyRole::submit(std::string batch, store::BatchId batch_id, store::Bindings, uint64_t events,
                             std::function<void(const Status&)> done) {
  if (stopping_) return done(Status::Unavailable("the client-proxy is shutting down"));
  protocol::V1Encoder enc;
  Status s = enc.add_batch(batch);
  if (!s.ok()) return done(Status::Internal(s.message()));
  Body body;
  body.batch_id = batch_id.value;  // the client's, or one Ingest made up
  body.text = std::make_shared<const std::string>(enc.finish());
  body.events = events;
  // A post is refused (503) rather than pushing out what others sent.
  if (!enqueue(std::move(body), false)) {
    return done(Status::Unavailable("the client-proxy's queue to the agent is full; retry later"));
  }
  done(Status::Ok());
}

void ClientProxyRole::forward_main() {
  std::string host;
  int port = 0;
  http::split_endpoint(config_.client_proxy.agent, &host, &port);
  std::optional<http::ClientConnection> conn;
  int64_t backoff_ms = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    int64_t now = steady_ms();
    if (stop_ && (queue_.empty() || now >= stop_deadline_ms_)) break;
    if (queue_.empty()) {
      forward_idle_ = true;
      wake_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    forward_idle_ = false;
    Body body = queue_.front();  // the queue keeps it (shared text) until the agent has it
    int timeout = static_cast<int>(config_.client_proxy.forward_timeout_ms);
    if (stop_) timeout = static_cast<int>(std::clamp<int64_t>(stop_deadline_ms_ - now, 100, timeout));
    lock.unlock();
    int status = 0;
    std::string error;
    if (!conn || !conn->is_open()) {
      auto c = http::ClientConnection::connect(host, port, timeout);
      if (c.ok()) {
        conn.emplace(std::move(c.value()));
      } else {
        error = c.status().message();
      }
    }
    if (conn && conn->is_open()) {
      std::vector<http::Header> headers{{"Taba-Batch-Id", body.batch_id}};
      if (!config_.client_proxy.forward_token.empty()) {
        headers.push_back({"Authorization", "Bearer " + config_.client_proxy.forward_token});
      }
      auto r = conn->request("POST", "/post", headers, *body.text, timeout);
      if (r.ok()) {
        status = r->status;
        if (status != 200) error = fmt::format("HTTP {}: {}", status, r->body.substr(0, r->body.find('\n')));
      } else {
        conn.reset();
        error = r.status().message();
      }
    }
    lock.lock();
    // 401/403 (a token to fix), 404 (not an agent there yet), 408 and 429
    // are worth retrying; any other 4xx can never succeed.
    bool done = status == 200 || (status >= 400 && status < 500 && status != 401 && status != 403 && status != 404 &&
                                  status != 408 && status != 429);
    if (done) {
      // The front may have been dropped for space meanwhile; find ours.
      bool found = false;
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (it->batch_id == body.batch_id) {
          queued_bytes_ -= it->text->size();
          queue_.erase(it);
          found = true;
          break;
        }
      }
      // Pushed out for space while on its way: already counted as dropped.
      if (!found && status == 200) fwd_stats_.events_dropped_retry -= body.events;  // delivered after all
      if (status == 200) {
        ++fwd_stats_.bodies_forwarded;
        fwd_stats_.events_forwarded += body.events;
      } else {
        ++fwd_stats_.bodies_rejected;
        if (found) fwd_stats_.events_rejected += body.events;
        log::error("client-proxy: the agent refused a body of {} events ({}); dropped", body.events, error);
      }
      backoff_ms = 0;
      continue;
    }
    ++fwd_stats_.forward_failures;
    backoff_ms = backoff_ms == 0 ? 100 : std::min<int64_t>(backoff_ms * 2, 5000);
    int64_t wait = backoff_ms / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(backoff_ms / 2 + 1));
    log::warn("client-proxy: cannot forward to the agent at {} ({}); retrying in {} ms", config_.client_proxy.agent,
              error, wait);
    if (stop_) wait = std::min<int64_t>(wait, std::max<int64_t>(stop_deadline_ms_ - steady_ms(), 0));
    wake_.wait_for(lock, std::chrono::milliseconds(wait));
  }
  forward_idle_ = true;
}

std::unique_ptr<http::RequestHandler> ClientProxyRole::route(const std::shared_ptr<http::Exchange>& ex) {
  const http::Request& req = ex->request();
  if (auto denied = routes::check_access(config_.auth, routes::access_of(req.path), req)) {
    ex->reply(std::move(*denied));
    return nullptr;
  }
  if (routes::Ingest::handles(req.path)) return ingest_->start(ex);
  if (req.method != "GET") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only GET\n", req.path));
    r.headers.push_back({"Allow", "GET"});
    ex->reply(std::move(r));
  } else if (req.path == "/status") {
    ex->reply(http::Response::text(200, status_text()));
  } else if (req.path == "/metrics") {
    routes::MetricsWriter w;
    write_metrics(&w);
    http::Response r = http::Response::text(200, w.take());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    ex->reply(std::move(r));
  } else if (req.path == "/healthz" || req.path == "/readyz") {
    ex->reply(stopping_ ? http::Response::text(503, "shutting down\n") : http::Response::text(200, "ok\n"));
  } else {
    ex->reply(http::Response::text(
        404, fmt::format("no such route: {} (the client-proxy serves /post /post_zip /status /metrics /healthz /readyz)\n",
                         req.path)));
  }
  return nullptr;
}

ProxyStats ClientProxyRole::stats() const {
  ProxyStats s = loop_stats_;
  std::lock_guard<std::mutex> lock(mu_);
  s.events_dropped_retry = fwd_stats_.events_dropped_retry;
  s.bodies_forwarded = fwd_stats_.bodies_forwarded;
  s.events_forwarded = fwd_stats_.events_forwarded;
  s.bodies_rejected = fwd_stats_.bodies_rejected;
  s.events_rejected = fwd_stats_.events_rejected;
  s.forward_failures = fwd_stats_.forward_failures;
  s.queued_bytes = queued_bytes_;
  s.queued_bodies = queue_.size();
  return s;
}

void ClientProxyRole::write_metrics(routes::MetricsWriter* w) const {
  w->gauge("taba_build_info", "tabad version.", 1, {{"version", TABA_VERSION_STRING}});
  ingest_->write_refusal_metrics(w, "taba_proxy");
  ProxyStats s = stats();
  w->counter("taba_proxy_datagrams_total", "StatsD datagrams received (UDP and unix socket).", static_cast<double>(s.datagrams));
  w->counter("taba_proxy_lines_total", "StatsD values accepted.", static_cast<double>(s.lines));
  w->counter("taba_proxy_bad_lines_total", "StatsD lines skipped: malformed, unmappable name or type conflict.",
             static_cast<double>(s.bad_lines));
  w->counter("taba_proxy_type_conflicts_total", "StatsD lines whose name was seen before with another type.",
             static_cast<double>(s.type_conflicts));
  w->counter("taba_proxy_events_buffered_total", "Events taken into the buffer.", static_cast<double>(s.events_buffered));
  w->family("taba_proxy_events_dropped_total", "counter", "Events dropped by the proxy, by reason.");
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_dropped_full), {{"reason", "buffer_full"}});
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_dropped_retry), {{"reason", "queue_full"}});
  w->sample("taba_proxy_events_dropped_total", static_cast<double>(s.events_rejected), {{"reason", "rejected"}});
  w->counter("taba_proxy_bodies_forwarded_total", "Bodies the agent accepted.", static_cast<double>(s.bodies_forwarded));
  w->counter("taba_proxy_events_forwarded_total", "Events in bodies the agent accepted.", static_cast<double>(s.events_forwarded));
  w->counter("taba_proxy_bodies_rejected_total", "Bodies the agent refused (4xx) and the proxy dropped.",
             static_cast<double>(s.bodies_rejected));
  w->counter("taba_proxy_forward_failures_total", "Forwarding attempts that failed and were retried.",
             static_cast<double>(s.forward_failures));
  w->counter("taba_proxy_names_forgotten_total",
             "Times the proxy's name table (types, gauge values) passed 1,000,000 names and was cleared.",
             static_cast<double>(s.names_forgotten));
  w->gauge("taba_proxy_queued_bytes", "Bytes of bodies waiting for the agent.", static_cast<double>(s.queued_bytes));
  w->gauge("taba_proxy_buffered_events", "Events in the buffer, not yet in a body.", static_cast<double>(buffer_ ? buffer_->events() : 0));
}

std::string ClientProxyRole::status_text() const {
  ProxyStats s = stats();
  return fmt::format(
      "client-proxy {} as client {}{}\n"
      "statsd     udp {}, unix {}: {} datagrams, {} values, {} bad lines ({} type conflicts)\n"
      "buffer     {} events now (max {}), {} dropped while full\n"
      "queue      {} bodies, {} bytes (max {}), {} events dropped while full\n"
      "forwarded  to {}: {} bodies, {} events; {} failed attempts retried; {} bodies refused\n",
      config_.client_proxy.listen, client_id_, stopping_ ? ", shutting down" : "",
      config_.client_proxy.statsd_udp.empty() ? "off" : config_.client_proxy.statsd_udp,
      config_.client_proxy.statsd_unix.empty() ? "off" : config_.client_proxy.statsd_unix, s.datagrams, s.lines,
      s.bad_lines, s.type_conflicts, buffer_ ? buffer_->events() : 0, config_.client_proxy.max_buffered_events, s.events_dropped_full,
      s.queued_bodies, s.queued_bytes, config_.client_proxy.max_retry_bytes, s.events_dropped_retry,
      config_.client_proxy.agent, s.bodies_forwarded, s.events_forwarded, s.forward_failures, s.bodies_rejected);
}

int ClientProxyRole::http_port() const { return server_ ? server_->port() : 0; }

int ClientProxyRole::udp_port() const {
  if (udp_in_.fd < 0) return 0;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(udp_in_.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void ClientProxyRole::reload(const Config& config) {
  config_.auth = config.auth;
  config_.ingest = config.ingest;
  if (ingest_) ingest_->set_options(config.ingest);
}

void ClientProxyRole::shutdown(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  shutdown_done_ = std::move(done);
  stop_input(&udp_in_);
  stop_input(&unix_in_);
  server_->shutdown([this] {
    flush();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      stop_deadline_ms_ = steady_ms() + config_.agent.shutdown_grace_ms;
    }
    wake_.notify_all();
    uv_timer_start(
        &drain_timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<ClientProxyRole*>(t->data);
          {
            std::lock_guard<std::mutex> lock(self->mu_);
            if (!self->forward_idle_ || (!self->queue_.empty() && steady_ms() < self->stop_deadline_ms_)) return;
          }
          uv_timer_stop(t);
          if (self->forwarder_.joinable()) self->forwarder_.join();
          ProxyStats s = self->stats();
          if (s.queued_bodies > 0) {
            log::warn("client-proxy: stopped with {} bodies the agent did not take; they are dropped", s.queued_bodies);
          }
          self->close_handles();  // the loop ends once every role's handles are closed
          if (self->shutdown_done_) self->shutdown_done_();
        },
        50, 50);
  });
}

void ClientProxyRole::release_handles() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stop_deadline_ms_ = 0;
  }
  wake_.notify_all();
  if (forwarder_.joinable()) forwarder_.join();
  close_handles();
}

void ClientProxyRole::close_handles() {
  auto close = [](void* h) {
    if (!uv_is_closing(static_cast<uv_handle_t*>(h))) uv_close(static_cast<uv_handle_t*>(h), nullptr);
  };
  for (DatagramInput* in : {&udp_in_, &unix_in_}) {
    if (!in->open) continue;
    close(&in->poll);
    close(&in->timer);
    in->open = false;
  }
  if (timer_open_) close(&flush_timer_);
  if (drain_open_) close(&drain_timer_);
  timer_open_ = drain_open_ = false;
}

}  // namespace taba::roles
