// Small helpers shared by connection.cpp, sentinels.cpp and shard.cpp: address
// comparison, the reconnect backoff and reply text. Private to src/redis/
// (users read replies with reply.h).
#pragma once

#include <hiredis/hiredis.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string_view>

#include "redis/connection.h"

namespace taba::redis {

inline bool same(const Address& a, const Address& b) {
  return a.port == b.port && a.host == b.host;
}

// 100 ms doubling to 2 s; uniform jitter over the upper half of the step.
inline uint32_t backoff_ms(int attempt) {
  static thread_local std::minstd_rand rng(static_cast<uint32_t>(uv_hrtime()));
  uint32_t step = std::min<uint32_t>(100u << std::clamp(attempt, 0, 5), 2000u);
  return step / 2 + static_cast<uint32_t>(rng() % (step / 2 + 1));
}

inline std::string_view reply_text(const redisReply* r) {
  if (!r || !r->str) return {};
  return std::string_view(r->str, r->len);
}

}  // namespace taba::redis
