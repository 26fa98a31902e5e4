// append_shortest_double (plugins/common/text.h): the shortest text that
// reads back to the same double, in JavaScript's Number#toString form.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "common/text.h"

namespace {

std::string shortest(double v) {
  std::string s;
  taba::builtin::append_shortest_double(v, &s);
  return s;
}

}  // namespace

TEST_CASE("shortest doubles are written as JavaScript writes them", "[text]") {
  CHECK(shortest(0.0) == "0");
  CHECK(shortest(-0.0) == "0");
  CHECK(shortest(1.5) == "1.5");
  CHECK(shortest(15e-1) == "1.5");
  CHECK(shortest(-12.5) == "-12.5");
  CHECK(shortest(0.0012) == "0.0012");
  CHECK(shortest(0.001) == "0.001");
  CHECK(shortest(0.1 + 0.2) == "0.30000000000000004");
  CHECK(shortest(5000000000.0) == "5000000000");
  CHECK(shortest(1796534240.9950206) == "1796534240.9950206");
  CHECK(shortest(1e21) == "1e+21");
  CHECK(shortest(123e18) == "123000000000000000000");
  CHECK(shortest(1e-6) == "0.000001");
  CHECK(shortest(1e-7) == "1e-7");
  CHECK(shortest(-2.5e-9) == "-2.5e-9");
  CHECK(shortest(1.7976931348623157e308) == "1.7976931348623157e+308");
  CHECK(shortest(5e-324) == "5e-324");
  CHECK(shortest(std::numeric_limits<double>::infinity()) == "null");
  CHECK(shortest(std::nan("")) == "null");
}

TEST_CASE("shortest doubles read back to the same value", "[text]") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    uint64_t bits = rng();
    double v;
    static_assert(sizeof v == sizeof bits);
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    std::string s = shortest(v);
    INFO(s);
    REQUIRE(std::strtod(s.c_str(), nullptr) == v);
  }
}
