// Order statistics of benchmark samples: the percentile of request
// latencies and the median over runs that the benchmark programs report.
// Header-only and without dependencies, so that plugin_bench (which links
// only libdl) shares it too.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace taba::bench {

// The sample of rank floor(p * n) (the last one at most) of v's n samples;
// 0 when there are none.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// The middle sample, or the mean of the two middle ones; 0 when there are
// none.
inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

}  // namespace taba::bench
