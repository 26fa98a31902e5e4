// Installing the build under test into a prefix with `cmake --install`, as
// the tests of the installed tree (install_test, packaging_test) start.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "harness.h"

namespace taba::test {

// `cmake --install <build> --prefix <prefix>`; fails the test on error.
inline void install_to(const std::string& prefix) {
  auto install =
      run_process({TABA_CMAKE_COMMAND, "--install", TABA_BUILD_DIR, "--prefix", prefix}, {}, 120000);
  REQUIRE(install.ok());
  INFO(install.value().out << install.value().err);
  REQUIRE(install.value().exit_code == 0);
}

}  // namespace taba::test
