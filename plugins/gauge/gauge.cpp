// Gauge: per client, the latest value by event timestamp, which expires
// 48 hours (172800 s) after that timestamp; rendered as how many clients
// currently report each value.
//
// Payload: a JSON scalar (string, number, true, false, null), or an array
// whose [0] is a scalar. Empty arrays, objects and nested containers are
// rejected.
//
// Identity. A state knows the client it was created for (new_state's
// client; "" for aggregates). Entries are keyed by client ID: fold writes
// the entry of the state's own client (the latest event of the batch, ties
// going to the later event in arrival order, events already expired
// ignored); merge takes each client's entry from `from` unless `into` holds
// a strictly later one for that client (ties go to `from`), and drops
// expired ones. So a stream of per-request deltas of one client replaces
// that client's entry in the client state and in the name's aggregate.
//
// Render, TABA_FORMAT_JSON: {"<value>": <clients>, ...} over unexpired
// entries, keys sorted bytewise, ": " and ", " separators, {} when empty.
// A string value's key is its JSON text as sent (quotes and escapes
// included); any other scalar's text is wrapped in quotes (1.50 -> "1.50",
// true -> "true"). A number and a string with the same text share a key.
// No detailed format.
//
// Serialized form, version 1: bytes client, varint entry count, then per
// entry (sorted by client): bytes client, bytes value JSON text, double
// event timestamp; "bytes" is a varint length and the bytes.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/byte_io.h"
#include "common/plugin_support.h"
#include "common/text.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace taba::builtin {
namespace {

constexpr char kTypeName[] = "Gauge";
constexpr uint32_t kStateVersion = 1;
constexpr double kLifetimeSeconds = 48 * 3600;
// Limits deserialize enforces (client IDs are at most 256 bytes).
constexpr size_t kMaxClientBytes = 4096;
constexpr size_t kMaxValueBytes = size_t{1} << 20;

struct GaugeEntry {
  std::string value;  // the scalar's JSON text
  double timestamp = 0.0;
  double expiry() const { return timestamp + kLifetimeSeconds; }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct GaugeState {
  std::string client;    // client this state belongs to; "" for aggregates
  bool has_own = false;  // whether `own` holds the entry of `client`
  GaugeEntry own;
  // Entries of other clients (aggregates), by client ID.
  std::unordered_map<std::string, GaugeEntry, StringHash, std::equal_to<>> others;
  // Latest expiry of any entry held: exact, because an entry is only ever
  // replaced by one with a later timestamp, or dropped once expired.
  double max_expiry = -std::numeric_limits<double>::infinity();
  // At most the earliest expiry in `others`: when now reaches it, merge
  // sweeps expired entries out (amortized: one sweep per expiry).
  double min_other_expiry = std::numeric_limits<double>::infinity();
};

GaugeState* state_of(taba_state* s) {
  return reinterpret_cast<GaugeState*>(s);
}
const GaugeState* state_of(const taba_state* s) {
  return reinterpret_cast<const GaugeState*>(s);
}

bool is_scalar(uint32_t kind) {
  return kind == TABA_VALUE_NULL || kind == TABA_VALUE_BOOL || kind == TABA_VALUE_NUMBER ||
         kind == TABA_VALUE_STRING;
}

// Finds the JSON text of the value an event sets; false when the payload
// is not acceptable.
bool gauge_value(const taba_event& event, std::string_view* text) {
  const taba_value* v = nullptr;
  if (is_scalar(event.payload.kind)) {
    v = &event.payload;
  } else if (event.payload.kind == TABA_VALUE_ARRAY && is_scalar(event.elem0.kind)) {
    v = &event.elem0;
  }
  if (v == nullptr || v->json == nullptr) return false;
  *text = trim_json_space(std::string_view(v->json, v->json_len));
  return !text->empty();
}

// Keeps (key, value, timestamp) as key's entry unless the entry held is
// strictly newer.
void offer(GaugeState* s, std::string_view key, std::string_view value, double timestamp) {
  GaugeEntry* slot;
  if (key == s->client) {
    if (s->has_own && s->own.timestamp > timestamp) return;
    slot = &s->own;
    s->has_own = true;
  } else {
    auto it = s->others.find(key);
    if (it == s->others.end()) {
      it = s->others.emplace(std::string(key), GaugeEntry{}).first;
    } else if (it->second.timestamp > timestamp) {
      return;
    }
    slot = &it->second;
  }
  slot->value.assign(value.data(), value.size());
  slot->timestamp = timestamp;
  s->max_expiry = std::max(s->max_expiry, slot->expiry());
  if (slot != &s->own) s->min_other_expiry = std::min(s->min_other_expiry, slot->expiry());
}

void drop_expired(GaugeState* s, double now) {
  if (s->has_own && !(s->own.expiry() > now)) s->has_own = false;
  if (!(s->min_other_expiry <= now)) return;
  double earliest = std::numeric_limits<double>::infinity();
  for (auto it = s->others.begin(); it != s->others.end();) {
    if (!(it->second.expiry() > now)) {
      it = s->others.erase(it);
    } else {
      earliest = std::min(earliest, it->second.expiry());
      ++it;
    }
  }
  s->min_other_expiry = earliest;
}

taba_state* g_new_state(const char* client, size_t client_len, double) {
  try {
    auto s = std::make_unique<GaugeState>();
    if (client_len != 0) s->client.assign(client, client_len);
    return reinterpret_cast<taba_state*>(s.release());
  } catch (...) {
    return nullptr;
  }
}

void g_free_state(taba_state* state) {
  delete state_of(state);
}

taba_status g_check_event(const taba_event* event, char* err, size_t err_cap) {
  std::string_view text;
  if (event != nullptr && gauge_value(*event, &text)) return TABA_OK;
  set_error(err, err_cap,
            "Gauge payload must be a JSON scalar or a non-empty array whose first element is a scalar");
  return TABA_ERR_PAYLOAD;
}

void g_fold(taba_state* state, const taba_event* events, size_t n, double now) {
  guard_void([&] {
    // Pick the batch's latest unexpired event first: one copy per batch.
    const taba_event* best = nullptr;
    std::string_view best_text;
    for (size_t i = 0; i < n; ++i) {
      std::string_view text;
      if (!gauge_value(events[i], &text)) continue;
      const double ts = events[i].timestamp;
      if (!(ts + kLifetimeSeconds > now)) continue;
      if (best == nullptr || ts >= best->timestamp) {
        best = &events[i];
        best_text = text;
      }
    }
    GaugeState* s = state_of(state);
    if (best != nullptr) offer(s, s->client, best_text, best->timestamp);
  });
}

// O(entries of `from`) plus, when an entry of `into` has expired, one sweep.
void g_merge(taba_state* into, const taba_state* from, double now) {
  guard_void([&] {
    GaugeState* dst = state_of(into);
    const GaugeState& src = *state_of(from);
    drop_expired(dst, now);
    if (src.has_own && src.own.expiry() > now) offer(dst, src.client, src.own.value, src.own.timestamp);
    for (const auto& [client, entry] : src.others) {
      if (entry.expiry() > now) offer(dst, client, entry.value, entry.timestamp);
    }
  });
}

void append_key(std::string_view value, std::string* key) {
  if (!value.empty() && value.front() == '"') {
    key->assign(value.data(), value.size());
  } else {
    key->assign(1, '"');
    append_json_escaped(value, key);
    key->push_back('"');
  }
}

taba_status g_render(const taba_state* state, uint32_t format, double now, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    if (format != TABA_FORMAT_JSON) return TABA_ERR_UNSUPPORTED;
    const GaugeState& s = *state_of(state);
    std::map<std::string, uint64_t> clients_by_key;
    std::string key;
    auto count = [&](const GaugeEntry& e) {
      if (!(e.expiry() > now)) return;
      append_key(e.value, &key);
      ++clients_by_key[key];
    };
    if (s.has_own) count(s.own);
    for (const auto& entry : s.others) count(entry.second);
    TextBuffer text;
    text.raw("{");
    bool first = true;
    for (const auto& [k, n] : clients_by_key) {
      text.raw(first ? "" : ", ").raw(k).raw(": ").u64(n);
      first = false;
    }
    text.raw("}");
    return text.flush_to(out);
  });
}

int g_prunable(const taba_state* state, double now) {
  return state_of(state)->max_expiry > now ? 0 : 1;
}

taba_status g_serialize(const taba_state* state, taba_output* out) {
  return guard_status(nullptr, 0, [&] {
    const GaugeState& s = *state_of(state);
    std::vector<std::pair<std::string_view, const GaugeEntry*>> entries;
    entries.reserve(s.others.size() + 1);
    if (s.has_own) entries.emplace_back(s.client, &s.own);
    for (const auto& [client, entry] : s.others) entries.emplace_back(client, &entry);
    std::sort(entries.begin(), entries.end());
    ByteWriter w;
    w.put_bytes(s.client);
    w.put_varint(entries.size());
    for (const auto& [client, entry] : entries) {
      w.put_bytes(client);
      w.put_bytes(entry->value);
      w.put_double(entry->timestamp);
    }
    return w.flush_to(out);
  });
}

// Reads the version-1 form into s; the reason for a refusal in *why.
bool read_state(ByteReader* r, GaugeState* s, const char** why) {
  std::string_view client;
  uint64_t n;
  // Each entry takes at least 11 bytes: two lengths, a value byte, 8 for ts.
  if (!r->get_bytes(kMaxClientBytes, &client) || !r->get_varint_max(r->remaining() / 11, &n)) {
    *why = "header truncated or entry count too large";
    return false;
  }
  s->client.assign(client.data(), client.size());
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key;
    std::string_view value;
    double ts;
    if (!r->get_bytes(kMaxClientBytes, &key) || !r->get_bytes(kMaxValueBytes, &value) ||
        !r->get_double(&ts)) {
      *why = "entry truncated";
      return false;
    }
    if (value.empty() || !std::isfinite(ts)) {
      *why = "entry with an empty value or a non-finite timestamp";
      return false;
    }
    if ((key == s->client && s->has_own) || s->others.count(key) != 0) {
      *why = "duplicate client entry";
      return false;
    }
    offer(s, key, value, ts);
  }
  if (!r->at_end()) {
    *why = "trailing bytes";
    return false;
  }
  return true;
}

taba_status g_deserialize(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                          size_t err_cap) {
  return guard_status(err, err_cap, [&] {
    if (version == 0 || version > kStateVersion) {
      set_errorf(err, err_cap, "Gauge state version %" PRIu32 " not supported (newest is %" PRIu32 ")",
                 version, kStateVersion);
      return TABA_ERR_VERSION;
    }
    auto s = std::make_unique<GaugeState>();
    ByteReader r(data, len);
    const char* why = nullptr;
    if (!read_state(&r, s.get(), &why)) {
      set_errorf(err, err_cap, "corrupt Gauge state: %s", why);
      return TABA_ERR_CORRUPT;
    }
    *out = reinterpret_cast<taba_state*>(s.release());
    return TABA_OK;
  });
}

const taba_handler kGauge = {
    sizeof(taba_handler),
    kStateVersion,
    kTypeName,
    "per client, the latest value (expiring after 48 h); rendered as clients per value",
    g_new_state,
    g_free_state,
    g_check_event,
    g_fold,
    g_merge,
    g_render,
    g_prunable,
    g_serialize,
    g_deserialize,
    {},
};

const taba_handler* const kHandlers[] = {&kGauge};

const taba_plugin kPlugin = {
    sizeof(taba_plugin), TABA_ABI_MAJOR, TABA_ABI_MINOR, "gauge", TABA_VERSION_STRING, 1, 0, kHandlers, {},
};

}  // namespace
}  // namespace taba::builtin

extern "C" const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return taba::builtin::host_compatible(host) ? &taba::builtin::kPlugin : nullptr;
}
