// Accuracy of the percentiles tabad reports, end to end through the plugin
// ABI: data split across 1,000 PercentileCounter client states (new_state
// per client, one fold each), merged into an aggregate in random orders and
// in a tree. Every reported percentile p25..p99.9 must be within 1 %
// (relative) of the exact nearest-rank value of the data (rank ceil(q * n),
// 1-based), exact for up to 5 values and for the lowest and highest rank,
// and every merge order must give the same result.
//
// What "the same" means: bit-identical. The sketch's bins, count, min and
// max merge exactly and its sum is an order-free fixed-point sum, so the
// render strings and the serialized states must be identical byte for byte
// for every merge order. Set TABA_ACCURACY_REPORT=1 to print the worst
// relative error per distribution.
#include <dlfcn.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/byte_io.h"
#include "common/ddsketch.h"
#include "taba/handler.h"

namespace {

void test_log(int, const char*, size_t) {}

const taba_host kTestHost = {sizeof(taba_host), TABA_ABI_MAJOR, TABA_ABI_MINOR, test_log, {}};

const taba_handler& percentile_counter() {
  static const taba_handler* h = [] {
    const std::string path = std::string(TABA_TEST_PLUGIN_DIR) + "/percentile_counter.so";
    void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    INFO(path << ": " << (dl == nullptr ? dlerror() : "loaded"));
    REQUIRE(dl != nullptr);
    auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
    REQUIRE(entry != nullptr);
    const taba_plugin* plugin = entry(&kTestHost);
    REQUIRE(plugin != nullptr);
    REQUIRE(plugin->handler_count == 1);
    return plugin->handlers[0];
  }();
  return *h;
}

int collect(taba_output* out, const char* data, size_t len) {
  static_cast<std::string*>(out->host_data)->append(data, len);
  return 0;
}

struct StateDeleter {
  void operator()(taba_state* s) const { percentile_counter().free_state(s); }
};
using StatePtr = std::unique_ptr<taba_state, StateDeleter>;

constexpr double kNow = 1400000000;

StatePtr new_state(const std::string& client) {
  StatePtr s(percentile_counter().new_state(client.data(), client.size(), kNow));
  REQUIRE(s != nullptr);
  return s;
}

std::string render(const taba_state* s) {
  std::string text;
  taba_output out{&text, collect};
  REQUIRE(percentile_counter().render(s, TABA_FORMAT_JSON, kNow, &out) == TABA_OK);
  return text;
}

std::string serialize(const taba_state* s) {
  std::string bytes;
  taba_output out{&bytes, collect};
  REQUIRE(percentile_counter().serialize(s, &out) == TABA_OK);
  return bytes;
}

// A PercentileCounter render split into its parts.
struct Rendered {
  uint64_t count = 0;
  double total = 0;
  std::vector<double> pct;
};

Rendered parse_render(const std::string& text) {
  Rendered r;
  const std::string count_key = "{\"count\": ";
  const std::string total_key = ", \"total\": ";
  const std::string pct_key = ", \"pct\": [";
  REQUIRE(text.rfind(count_key, 0) == 0);
  const size_t total_at = text.find(total_key);
  const size_t pct_at = text.find(pct_key);
  REQUIRE(total_at != std::string::npos);
  REQUIRE(pct_at != std::string::npos);
  r.count = std::strtoull(text.c_str() + count_key.size(), nullptr, 10);
  r.total = std::strtod(text.c_str() + total_at + total_key.size(), nullptr);
  const char* p = text.c_str() + pct_at + pct_key.size();
  for (int j = 0; j < 7; ++j) {
    char* end = nullptr;
    r.pct.push_back(std::strtod(p, &end));
    REQUIRE(end != p);
    p = end + (j < 6 ? 2 : 0);  // skip ", "
  }
  REQUIRE(std::string(p) == "]}");
  return r;
}

struct Distribution {
  const char* name;
  std::function<double(std::mt19937_64&, size_t)> draw;  // (rng, index)
};

std::vector<Distribution> distributions() {
  return {
      {"lognormal",  // latencies in ms: median e^3 ~ 20, spanning ~6 decades
       [](std::mt19937_64& rng, size_t) { return std::lognormal_distribution<double>(3.0, 1.5)(rng); }},
      {"pareto",  // x_m = 1, alpha = 1.5: a heavy tail
       [](std::mt19937_64& rng, size_t) {
         return 1.0 / std::pow(1.0 - std::uniform_real_distribution<double>(0.0, 1.0)(rng), 1.0 / 1.5);
       }},
      {"uniform",
       [](std::mt19937_64& rng, size_t) { return std::uniform_real_distribution<double>(0, 1000)(rng); }},
      {"bimodal",  // a third near 5, two thirds near 5000
       [](std::mt19937_64& rng, size_t i) {
         return i % 3 == 0 ? std::normal_distribution<double>(5.0, 0.1)(rng)
                           : std::normal_distribution<double>(5000.0, 50.0)(rng);
       }},
      {"constant", [](std::mt19937_64&, size_t) { return 42.5; }},
      {"signed-normal",  // N(-3, 10) with every 5th value exactly 0: p50 lands on the zeros
       [](std::mt19937_64& rng, size_t i) {
         const double x = std::normal_distribution<double>(-3.0, 10.0)(rng);
         return i % 5 == 0 ? 0.0 : x;
       }},
  };
}

constexpr size_t kClients = 1000;
constexpr size_t kMaxValues = 1000000;
constexpr uint32_t kPerMille[7] = {250, 500, 750, 900, 950, 990, 999};

// Folds values[0, n) into kClients client states, each value going to a
// random client; every client gets one fold call with all its values.
std::vector<StatePtr> client_states(const std::vector<double>& values, size_t n, std::mt19937_64& rng) {
  std::vector<uint32_t> owner(n);
  std::vector<size_t> start(kClients + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    owner[i] = static_cast<uint32_t>(rng() % kClients);
    ++start[owner[i] + 1];
  }
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<taba_event> events(n);
  std::vector<size_t> next(start.begin(), start.end() - 1);
  static const char kText[] = "0";  // the plugin reads only the number
  for (size_t i = 0; i < n; ++i) {
    taba_event& e = events[next[owner[i]]++];
    e = taba_event{};
    e.timestamp = kNow;
    e.payload.kind = TABA_VALUE_NUMBER;
    e.payload.number = values[i];
    e.payload.json = kText;
    e.payload.json_len = 1;
  }
  std::vector<StatePtr> states;
  states.reserve(kClients);
  for (size_t c = 0; c < kClients; ++c) {
    states.push_back(new_state("client-" + std::to_string(c)));
    percentile_counter().fold(states.back().get(), events.data() + start[c], start[c + 1] - start[c], kNow);
  }
  return states;
}

StatePtr merge_in_order(const std::vector<StatePtr>& states, std::mt19937_64& rng) {
  std::vector<size_t> order(states.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  StatePtr aggregate = new_state("");
  for (const size_t i : order) percentile_counter().merge(aggregate.get(), states[i].get(), kNow);
  return aggregate;
}

// Pairwise reduction: ((s0 s1) (s2 s3)) ((s4 s5) ...) ...
StatePtr merge_as_tree(const std::vector<StatePtr>& states) {
  std::vector<StatePtr> level;
  for (size_t i = 0; i < states.size(); i += 2) {
    level.push_back(new_state(""));
    for (size_t j = i; j < std::min(i + 2, states.size()); ++j)
      percentile_counter().merge(level.back().get(), states[j].get(), kNow);
  }
  while (level.size() > 1) {
    std::vector<StatePtr> up;
    for (size_t i = 0; i < level.size(); i += 2) {
      up.push_back(new_state(""));
      for (size_t j = i; j < std::min(i + 2, level.size()); ++j)
        percentile_counter().merge(up.back().get(), level[j].get(), kNow);
    }
    level = std::move(up);
  }
  return std::move(level.front());
}

double relative_error(double got, double exact) {
  if (exact == 0) return got == 0 ? 0.0 : INFINITY;
  return std::fabs(got - exact) / std::fabs(exact);
}

}  // namespace

TEST_CASE("PercentileCounter accuracy: 1000 merged client states within 1% of exact nearest rank",
          "[plugins][percentile_counter][accuracy]") {
  const bool report = std::getenv("TABA_ACCURACY_REPORT") != nullptr;
  for (const Distribution& dist : distributions()) {
    std::mt19937_64 rng(std::hash<std::string>{}(dist.name) ^ 20240601);
    std::vector<double> values(kMaxValues);
    for (size_t i = 0; i < kMaxValues; ++i) values[i] = dist.draw(rng, i);
    double worst = 0;           // full-precision sketch percentiles
    double worst_rendered = 0;  // the %.2f render, relative
    // 3 and 5: the sketch holds every value; 6: the first count it does not.
    for (const size_t n :
         {size_t{1}, size_t{3}, size_t{5}, size_t{6}, size_t{10}, size_t{1000}, size_t{100000}, kMaxValues}) {
      INFO(dist.name << ", n = " << n);
      std::vector<double> sorted(values.begin(), values.begin() + static_cast<ptrdiff_t>(n));
      std::sort(sorted.begin(), sorted.end());
      long double exact_total = 0;
      for (const double v : sorted) exact_total += v;

      const std::vector<StatePtr> states = client_states(values, n, rng);
      const StatePtr first = merge_in_order(states, rng);
      const StatePtr second = merge_in_order(states, rng);
      const StatePtr tree = merge_as_tree(states);

      // Same result whatever the order.
      const std::string text = render(first.get());
      const Rendered r = parse_render(text);
      const std::string bytes = serialize(first.get());
      for (const taba_state* other : {second.get(), tree.get()}) {
        const std::string other_text = render(other);
        const Rendered o = parse_render(other_text);
        CHECK(other_text == text);
        CHECK(o.pct == r.pct);
        CHECK(serialize(other) == bytes);
      }

      // Count and total.
      CHECK(r.count == n);
      CHECK(std::fabs(r.total - static_cast<double>(exact_total)) <=
            1e-9 * std::fabs(static_cast<double>(exact_total)) + 1e-6);

      // The seven percentiles at full precision (the state's sketch) and as
      // rendered (%.2f: within 1 % plus half a unit of the last digit).
      taba::builtin::DDSketch sketch;
      taba::builtin::ByteReader reader(bytes.data(), bytes.size());
      const char* why = nullptr;
      REQUIRE(sketch.deserialize(&reader, taba::builtin::DDSketch::kForm, &why));
      REQUIRE(reader.at_end());
      REQUIRE(sketch.count() == n);
      for (int j = 0; j < 7; ++j) {
        const uint64_t rank = (n * kPerMille[j] + 999) / 1000;  // ceil(q n), 1-based
        const double exact = sorted[rank - 1];
        const double got = sketch.value_at_rank(taba::builtin::DDSketch::nearest_rank(n, kPerMille[j], 1000));
        INFO("p" << kPerMille[j] / 10.0 << ": rank " << rank << " exact " << exact << " sketch " << got
                 << " rendered " << r.pct[j]);
        CHECK(std::fabs(got - exact) <= 0.01 * std::fabs(exact) * (1 + 1e-9));
        // Exact: the lowest and highest rank, and every rank of a few values.
        if (rank == 1 || rank == n || n <= taba::builtin::DDSketch::kExactCount) CHECK(got == exact);
        CHECK(std::fabs(r.pct[j] - exact) <= 0.01 * std::fabs(exact) + 0.005 + 1e-9);
        worst = std::max(worst, relative_error(got, exact));
        if (std::fabs(exact) >= 1) worst_rendered = std::max(worst_rendered, relative_error(r.pct[j], exact));
      }
    }
    if (report) {
      std::printf("accuracy %-14s worst relative error %.5f%% (rendered %%.2f, values >= 1: %.5f%%)\n",
                  dist.name, 100 * worst, 100 * worst_rendered);
    }
  }
}
