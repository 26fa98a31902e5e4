// The out-of-tree example plugin (examples/plugins/max_gauge) compiled with
// the system C compiler into a plugins directory beside links to the
// built-in plugins: what the tests that run tabad with a plugin built only
// against the installed headers share (plugin_example_test.cpp,
// delta_differential_test.cpp).
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace taba::test {

inline const std::string kExampleDir = std::string(TABA_SOURCE_DIR) + "/examples/plugins/max_gauge";
inline const std::string kIncludeDir = std::string(TABA_SOURCE_DIR) + "/include";

// The C compiler: `cc` on $PATH (run_process wants a path).
inline std::string c_compiler() { return find_on_path("cc"); }

// Compiles one C source into a plugin with the command docs/plugins.md and
// the example's README give, plus warnings as errors.
inline void compile_plugin(const std::string& source, const std::string& output,
                           const std::vector<std::string>& defines) {
  std::string cc = c_compiler();
  REQUIRE_FALSE(cc.empty());
  std::vector<std::string> argv = {cc,      "-std=c11", "-shared", "-fPIC",           "-O2",
                                   "-Wall", "-Wextra",  "-Werror", "-I" + kIncludeDir};
  for (const std::string& d : defines) argv.push_back("-D" + d);
  argv.insert(argv.end(), {source, "-o", output});
  auto r = run_process(argv, {}, 60000);
  REQUIRE(r.ok());
  INFO(source << ":\n" << r.value().out << r.value().err);
  REQUIRE(r.value().exit_code == 0);
  REQUIRE(std::filesystem::exists(output));
}

inline void compile_max_gauge(const std::string& plugins_dir, int state_version) {
  compile_plugin(kExampleDir + "/max_gauge.c", plugins_dir + "/max_gauge.so",
                 {"STATE_VERSION=" + std::to_string(state_version)});
}

// Symlinks to every built-in plugin of the build.
inline void link_builtins(const std::string& plugins_dir) {
  size_t linked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TABA_TEST_PLUGIN_DIR)) {
    if (entry.path().extension() != ".so") continue;
    std::filesystem::create_symlink(entry.path(),
                                    std::filesystem::path(plugins_dir) / entry.path().filename());
    ++linked;
  }
  REQUIRE(linked >= 3);
}

}  // namespace taba::test
