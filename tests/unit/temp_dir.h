// A temporary directory for a unit test: made fresh (mkdtemp) in the system's
// temporary directory ($TMPDIR, else /tmp), its name starting with `prefix`,
// and removed with all it holds at scope exit. The integration tests have
// their own (tests/integration/harness.h), which can keep the directories
// for inspection.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace taba::test_support {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "XXXXXX")).string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace taba::test_support
