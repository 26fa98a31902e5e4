#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/exact_sum.h"

using taba::builtin::ExactSum;

TEST_CASE("ExactSum gives the same bits in any order where a double sum does not", "[exact_sum]") {
  std::vector<double> values{1e16, 1.0, -1e16, 0.1, 0.2, 0.3, 123456.789, -0.000001, 3.5e9};
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) values.push_back(std::exp(std::normal_distribution<double>(0, 5)(rng)));
  ExactSum reference;
  for (double v : values) reference.add(v);
  bool doubles_differed = false;
  double first_double = 0;
  for (double v : values) first_double += v;
  for (int round = 0; round < 20; ++round) {
    std::shuffle(values.begin(), values.end(), rng);
    // Split into parts summed separately, then merged: like client states.
    ExactSum a, b, merged;
    double plain = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      (i % 3 == 0 ? a : b).add(values[i]);
      plain += values[i];
    }
    merged.merge(b);
    merged.merge(a);
    CHECK(merged == reference);
    CHECK(merged.value() == reference.value());
    doubles_differed = doubles_differed || plain != first_double;
  }
  CHECK(doubles_differed);  // the data is one where order matters for doubles
  CHECK(ExactSum::of(2.5).value() == 2.5);
  CHECK(ExactSum::of(-1e20).value() == -1e20);
}
