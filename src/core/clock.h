// The wall clock, in epoch seconds with sub-second precision, and the
// monotonic clock in milliseconds (for deadlines and backoff).
#pragma once

#include <cstdint>
#include <ctime>

namespace taba {

inline double wall_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline int64_t steady_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace taba
