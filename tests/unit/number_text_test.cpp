// append_shortest_double (plugins/common/text.h): the shortest text that
// reads back to the same double, in JavaScript's Number#toString form.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
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

TEST_CASE("shortest within a tolerance drops the digits below it", "[text]") {
  auto within = [](double v, double tolerance) {
    std::string s;
    taba::builtin::append_shortest_within(v, tolerance, &s);
    return s;
  };
  // Sums of 2^-32 fixed-point values (ExactSum): 3 x 0.001 and 1 x 0.0012.
  CHECK(within(12884901 / 4294967296.0, 3 / 4294967296.0) == "0.003");
  CHECK(within(5153961 / 4294967296.0, 1 / 4294967296.0) == "0.0012");
  CHECK(within(123456789.123, 0.01) == "123456789.12");
  CHECK(within(-0.99999, 0.001) == "-1");
  CHECK(within(1e-10, 2.3e-10) == "0");
  // No shorter decimal fits: v itself.
  CHECK(within(0.1 + 0.2, 1e-18) == "0.30000000000000004");
  CHECK(within(0.1 + 0.2, 0) == "0.30000000000000004");
  CHECK(within(std::nan(""), 1) == "null");
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-12, 12);
  for (int i = 0; i < 5000; ++i) {
    const double v = std::pow(10.0, exponent(rng)) * (rng() % 2 ? 1 : -1);
    const double tolerance = std::fabs(v) * std::pow(10.0, -1 - static_cast<double>(rng() % 16));
    const std::string s = within(v, tolerance);
    INFO(shortest(v) << " within " << tolerance << ": " << s);
    REQUIRE(std::fabs(std::strtod(s.c_str(), nullptr) - v) <= tolerance);
  }
}

TEST_CASE("shortest within a tolerance is the fewest digits, as a search of every digit count finds",
          "[text]") {
  // The reference: for d = 1, 2, ... the nearest d-digit decimal (printf's
  // "%.{d-1}e"), the first whose double is within tolerance; v itself when
  // none of up to 16 digits is.
  auto reference = [](double v, double tolerance) {
    std::string s;
    if (std::fabs(v) <= tolerance) return std::string("0");
    char digits[40];
    for (int d = 1; d < 17; ++d) {
      std::snprintf(digits, sizeof digits, "%.*e", d - 1, v);
      const double rounded = std::strtod(digits, nullptr);
      if (std::fabs(rounded - v) <= tolerance) {
        taba::builtin::append_shortest_double(rounded, &s);
        return s;
      }
    }
    taba::builtin::append_shortest_double(v, &s);
    return s;
  };
  auto within = [](double v, double tolerance) {
    std::string s;
    taba::builtin::append_shortest_within(v, tolerance, &s);
    return s;
  };
  std::mt19937_64 rng(17);
  // ExactSum figures (sums of decimals in fixed point, their averages) and
  // any doubles with any tolerance, at every magnitude.
  for (int i = 0; i < 200000; ++i) {
    double v;
    double tolerance;
    const uint64_t n = 1 + rng() % 1000;
    switch (i % 4) {
      case 0: {  // a sum of n decimals of 2 or 3 places, in fixed point
        const double decimal = static_cast<double>(static_cast<int64_t>(rng() % 2000000) - 500000) / 1000;
        const double fixed =
            std::nearbyint(decimal * 4294967296.0) +
            static_cast<double>(static_cast<int64_t>(rng() % (2 * n + 1)) - static_cast<int64_t>(n));
        v = fixed / 4294967296.0;
        tolerance = static_cast<double>(n) / 4294967296.0;
        break;
      }
      case 1:  // an average of such a sum
        v = static_cast<double>(static_cast<int64_t>(rng() % 100000000)) / 1000 / static_cast<double>(n);
        tolerance = 1 / 4294967296.0;
        break;
      case 2:  // huge and tiny
        v = std::pow(10.0, std::uniform_real_distribution<double>(-30, 30)(rng)) * (rng() % 2 ? 1 : -1);
        tolerance = std::fabs(v) * std::pow(10.0, -1 - static_cast<double>(rng() % 17));
        break;
      default:  // any double near 1..1e9, any tolerance
        v = std::uniform_real_distribution<double>(-1e9, 1e9)(rng);
        tolerance = std::pow(10.0, std::uniform_real_distribution<double>(-12, 2)(rng));
    }
    INFO(shortest(v) << " within " << shortest(tolerance));
    REQUIRE(within(v, tolerance) == reference(v, tolerance));
  }
}
