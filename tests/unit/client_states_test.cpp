#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "store/client_states.h"

using taba::store::ClientStates;

TEST_CASE("ClientStates behaves like a map from client index to value", "[store]") {
  ClientStates<int> m;
  std::map<uint32_t, int> model;
  std::mt19937 rng(7);
  CHECK(m.find(3) == nullptr);
  for (int i = 0; i < 20000; ++i) {
    uint32_t key = rng() % 5000 * 7919;  // collisions in the low bits on purpose
    m[key] += i;
    model[key] += i;
  }
  CHECK(m.size() == model.size());
  for (const auto& [k, v] : model) {
    const int* got = m.find(k);
    REQUIRE(got);
    CHECK(*got == v);
  }
  CHECK(m.find(1) == nullptr);
  size_t seen = 0;
  long sum = 0, model_sum = 0;
  m.for_each([&](uint32_t k, const int& v) {
    ++seen;
    sum += v;
    CHECK(model.count(k) == 1);
  });
  for (const auto& [k, v] : model) model_sum += v;
  CHECK(seen == model.size());
  CHECK(sum == model_sum);
}

TEST_CASE("ClientStates erase keeps every other key reachable", "[store]") {
  ClientStates<int> m;
  std::map<uint32_t, int> model;
  std::mt19937 rng(11);
  for (int round = 0; round < 40000; ++round) {
    uint32_t key = rng() % 3000 * 4096;  // long probe chains on purpose
    if (rng() % 3 == 0) {
      CHECK(m.erase(key) == (model.erase(key) == 1));
    } else {
      m[key] = round;
      model[key] = round;
    }
  }
  CHECK(m.size() == model.size());
  for (const auto& [k, v] : model) {
    const int* got = m.find(k);
    REQUIRE(got);
    CHECK(*got == v);
  }
  size_t seen = 0;
  m.for_each([&](uint32_t k, const int&) {
    ++seen;
    CHECK(model.count(k) == 1);
  });
  CHECK(seen == model.size());
  CHECK_FALSE(m.erase(12345));
}
