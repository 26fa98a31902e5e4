// tabad finds its plugins without a flag, in the build tree (every other
// integration test) and when installed with `cmake --install`.
#include <catch2/catch.hpp>

#include <ctime>

#include "harness.h"

using namespace taba::test;

TEST_CASE("an installed tabad loads the installed plugins with no flag", "[e2e][install]") {
  std::string prefix = make_temp_dir("taba-install");
  auto install = run_process({TABA_CMAKE_COMMAND, "--install", TABA_BUILD_DIR, "--prefix", prefix}, {}, 120000);
  REQUIRE(install.ok());
  INFO(install.value().out << install.value().err);
  REQUIRE(install.value().exit_code == 0);

  setenv("TABAD_PATH", (prefix + "/bin/tabad").c_str(), 1);
  TabadProcess p;
  taba::Status started = p.start();
  unsetenv("TABAD_PATH");
  REQUIRE(started.ok());
  CHECK(p.log_text().find("plugins " + prefix + "/lib/taba/plugins") != std::string::npos);
  double t = static_cast<double>(std::time(nullptr));
  auto r = p.post("/post", v1_body({{"c1", {{"n", {event_line("TotalsCounter", t, "[2.5]")}}}}}));
  REQUIRE(r.ok());
  CHECK(r.value().status == 200);
  CHECK(p.get("/tabs?name=n").value().body == "n: {\"count\": 1, \"total\": 2.50, \"average\": 2.50}\n");
  remove_tree(prefix);
}
