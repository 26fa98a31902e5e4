// The wall clock, in epoch seconds with sub-second precision.
#pragma once

#include <ctime>

namespace taba {

inline double wall_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace taba
