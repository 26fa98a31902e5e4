// What the parts of the Redis store share (redis_store.cpp, redis_submit.cpp,
// redis_fetch.cpp, redis_admin.cpp, redis_heartbeat.cpp): reading a stored
// state, stream ids, argv views. Private to store/redis/.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plugin/registry.h"
#include "store/redis/layout.h"
#include "store/store.h"

namespace taba::store {

// A stream entry id "<ms>-<seq>" as numbers, for ordering.
inline std::pair<uint64_t, uint64_t> parse_stream_id(std::string_view id) {
  size_t dash = id.find('-');
  std::string ms(id.substr(0, dash));
  std::string seq = dash == std::string_view::npos ? "0" : std::string(id.substr(dash + 1));
  return {std::strtoull(ms.c_str(), nullptr, 10), std::strtoull(seq.c_str(), nullptr, 10)};
}

inline std::vector<std::string_view> views(const std::vector<std::string>& v) {
  return std::vector<std::string_view>(v.begin(), v.end());
}

// A stored state (layout.h's encoding) loaded through its handler; false when
// unreadable.
inline bool load_state(const plugin::Handler* h, std::string_view blob, State* out) {
  uint32_t version = 0;
  std::string_view bytes;
  if (!redis::decode_state(blob, &version, &bytes)) return false;
  Result<State> st = h->deserialize(bytes, version);
  if (!st.ok()) return false;
  *out = std::move(*st);
  return true;
}

// A server's line in the registry (P servers; redis_heartbeat.cpp writes
// it): false when malformed. *has_epoch (optional) says whether the line
// carries a placement epoch (servers older than re-sharding do not).
bool decode_server(std::string_view id, std::string_view value, double now, ServerInfo* out, double* seen_at,
                   bool* has_epoch = nullptr);

}  // namespace taba::store
