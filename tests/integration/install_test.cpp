// `cmake --install` into a staging prefix: the layout docs/operations.md names (bin/,
// lib/taba/plugins/, include/taba/, share/doc/tabad/, the systemd units,
// etc/taba/taba.toml), and the installed tabad finding the installed plugins
// with no flag and running on the installed configuration.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "harness.h"
#include "install_build.h"

using namespace taba::test;
using Catch::Matchers::Contains;

namespace {

const std::string kSourceDir = TABA_SOURCE_DIR;

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IXOTH) != 0;
}

}  // namespace

TEST_CASE("an installed tabad loads the installed plugins with no flag", "[e2e][install]") {
  TempDir prefix("taba-install");
  install_to(prefix.path);

  // The installed configuration (the harness's --listen and --data-dir override it).
  setenv("TABAD_PATH", (prefix.path + "/bin/tabad").c_str(), 1);
  TabadProcess p;
  taba::Status started = p.start({"--config", prefix.path + "/etc/taba/taba.toml"});
  unsetenv("TABAD_PATH");
  REQUIRE(started.ok());
  CHECK(p.log_text().find("plugins " + prefix.path + "/lib/taba/plugins") != std::string::npos);
  double t = static_cast<double>(std::time(nullptr));
  auto r = p.post("/post", v1_body({{"c1", {{"n", {event_line("TotalsCounter", t, "[2.5]")}}}}}));
  REQUIRE(r.ok());
  CHECK(r.value().status == 200);
  CHECK(p.get("/tabs?name=n").value().body == "n: {\"count\": 1, \"total\": 2.50, \"average\": 2.50}\n");

  auto cli = run_process({prefix.path + "/bin/taba-cli", "--server", p.url(), "agg", "n"});
  REQUIRE(cli.ok());
  INFO(cli.value().out << cli.value().err);
  CHECK(cli.value().exit_code == 0);
  CHECK_THAT(cli.value().out, Contains("n: {\"count\": 1, \"total\": 2.5, "));  // agg reads JSON
}

TEST_CASE(
    "cmake --install lays out the binaries and plugins and headers and docs and units and configuration",
    "[install]") {
  TempDir prefix("taba-install");
  install_to(prefix.path);
  const std::string& p = prefix.path;

  CHECK(is_executable_file(p + "/bin/tabad"));
  CHECK(is_executable_file(p + "/bin/taba-cli"));
  int plugins = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TABA_TEST_PLUGIN_DIR)) {
    if (entry.path().extension() != ".so") continue;
    ++plugins;
    CHECK(std::filesystem::is_regular_file(p + "/lib/taba/plugins/" + entry.path().filename().string()));
  }
  CHECK(plugins >= 9);
  CHECK(read_file(p + "/include/taba/handler.h") == read_file(kSourceDir + "/include/taba/handler.h"));

  const std::string doc = p + "/share/doc/tabad/";
  CHECK(read_file(doc + "README.md") == read_file(kSourceDir + "/README.md"));
  CHECK(read_file(doc + "taba.toml.example") == read_file(kSourceDir + "/taba.toml.example"));
  CHECK(read_file(doc + "systemd.md") == read_file(kSourceDir + "/systemd/README.md"));
  for (const auto& entry : std::filesystem::directory_iterator(kSourceDir + "/docs")) {
    if (entry.path().extension() != ".md") continue;
    INFO(entry.path().filename());
    CHECK(read_file(doc + entry.path().filename().string()) == read_file(entry.path().string()));
  }

  // The units name the paths of this prefix.
  const std::string units = p + "/lib/systemd/system/";
  std::string service = read_file(units + "tabad.service");
  std::string tmpl = read_file(units + "tabad@.service");
  CHECK_THAT(service, Contains("\nExecStart=" + p + "/bin/tabad --config " + p +
                               "/etc/taba/taba.toml --data-dir %S/taba/main $TABAD_ARGS\n"));
  CHECK_THAT(tmpl, Contains("\nExecStart=" + p + "/bin/tabad --config " + p +
                            "/etc/taba/taba.toml --role %i --data-dir %S/taba/%i $TABAD_ARGS\n"));
  CHECK_THAT(service, Contains("\nDocumentation=file:" + doc + "systemd.md"));
  CHECK(service.find('@' + std::string("TABA_")) == std::string::npos);  // every placeholder substituted
  CHECK(tmpl.find('@' + std::string("TABA_")) == std::string::npos);

  CHECK(read_file(p + "/etc/taba/taba.toml") == read_file(kSourceDir + "/taba.toml.example"));
  auto check = run_process({p + "/bin/tabad", "--config", p + "/etc/taba/taba.toml", "--check-config"});
  REQUIRE(check.ok());
  INFO(check.value().err);
  CHECK(check.value().exit_code == 0);
}

TEST_CASE("cmake --install over an installation keeps an edited configuration file", "[install]") {
  TempDir prefix("taba-install");
  install_to(prefix.path);
  const std::string config = prefix.path + "/etc/taba/taba.toml";
  const std::string edited = read_file(config) + "\n# edited by the operator\n";
  {
    std::ofstream out(config, std::ios::binary | std::ios::trunc);
    out << edited;
  }
  install_to(prefix.path);
  CHECK(read_file(config) == edited);
  CHECK(read_file(prefix.path + "/share/doc/tabad/taba.toml.example") ==
        read_file(kSourceDir + "/taba.toml.example"));
}
