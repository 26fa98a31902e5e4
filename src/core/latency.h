// Recent pipeline latencies (enqueue -> applied): the last samples of the
// last minute, for /latency and the heartbeat. Bounded: a ring of samples.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace taba {

class LatencyWindow {
 public:
  static constexpr size_t kCapacity = 4096;
  static constexpr double kHorizonS = 60;

  // Upper bounds of the cumulative histogram (seconds), for /metrics.
  static constexpr std::array<double, 14> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10,  30};

  void add(double at, double latency_s) {
    ring_[next_ % kCapacity] = {at, latency_s};
    ++next_;
    ++total_;
    sum_s_ += latency_s;
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      if (latency_s <= kBuckets[i]) ++bucket_counts_[i];
    }
  }

  // Cumulative counts per kBuckets bound (Prometheus "le" semantics), the
  // sum of every sample, and total() is the count.
  const std::array<uint64_t, 14>& bucket_counts() const { return bucket_counts_; }
  double sum_s() const { return sum_s_; }

  struct Summary {
    int64_t samples = 0;  // within the horizon
    double p50_s = 0;
    double p99_s = 0;
    double max_s = 0;
  };

  Summary summary(double now) const {
    std::vector<double> v;
    size_t n = std::min<uint64_t>(next_, kCapacity);
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (now - ring_[i].at <= kHorizonS) v.push_back(ring_[i].latency_s);
    }
    Summary s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    s.samples = static_cast<int64_t>(v.size());
    s.p50_s = v[(v.size() - 1) / 2];
    s.p99_s = v[std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99))];
    s.max_s = v.back();
    return s;
  }

  uint64_t total() const { return total_; }

  // The latest n samples' latencies (n <= kCapacity), oldest first.
  std::vector<double> recent(uint64_t n) const {
    n = std::min<uint64_t>({n, next_, kCapacity});
    std::vector<double> out;
    out.reserve(n);
    for (uint64_t i = next_ - n; i < next_; ++i) out.push_back(ring_[i % kCapacity].latency_s);
    return out;
  }

 private:
  struct Sample {
    double at = 0;
    double latency_s = 0;
  };
  std::array<Sample, kCapacity> ring_{};
  uint64_t next_ = 0;
  uint64_t total_ = 0;
  double sum_s_ = 0;
  std::array<uint64_t, 14> bucket_counts_{};
};

}  // namespace taba
