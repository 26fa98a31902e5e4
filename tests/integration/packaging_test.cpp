// The systemd units and the Debian package, checked with the real tools:
// systemd-analyze (verify, security), cpack and dpkg-deb. Each check is shown
// to reject a deliberately broken input, so that passing it means something.
// Needs the packages systemd, dpkg-dev and file (scripts/install-deps.sh).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "install_build.h"
#include "taba/version.h"

using namespace taba::test;
using Catch::Matchers::Contains;

namespace {

const std::string kSourceDir = TABA_SOURCE_DIR;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

// `text` with every `from` replaced by `to`; fails the test if there is none,
// so a mutation of a unit cannot silently become a no-op.
std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  for (; at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
  return text;
}

// `text` without the lines starting with any of `keys`.
std::string drop_lines(const std::string& text, const std::vector<std::string>& keys) {
  std::istringstream in(text);
  std::string line, kept;
  while (std::getline(in, line)) {
    bool drop = false;
    for (const std::string& key : keys) drop = drop || line.rfind(key, 0) == 0;
    if (!drop) kept += line + "\n";
  }
  return kept;
}

// A tool found on $PATH, run through env (run_process wants a path).
ProcessOutput run_tool(std::vector<std::string> argv, int timeout_ms = 60000) {
  argv.insert(argv.begin(), "/usr/bin/env");
  auto r = run_process(argv, {}, timeout_ms);
  REQUIRE(r.ok());
  return r.value();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The check the units must pass: `systemd-analyze verify` exits 0 and says
// nothing. It exits non-zero for a missing executable but only warns (exit 0)
// about an unknown directive or a value it cannot parse, hence the silence.
struct Verdict {
  bool clean = false;
  std::string output;
};
Verdict verify(const std::vector<std::string>& units) {
  std::vector<std::string> argv = {"systemd-analyze", "verify", "--man=no"};
  argv.insert(argv.end(), units.begin(), units.end());
  ProcessOutput out = run_tool(argv);
  return {out.exit_code == 0 && out.out.empty() && out.err.empty(),
          "exit " + std::to_string(out.exit_code) + ": " + out.out + out.err};
}

// `systemd-analyze security --offline`: passes when the exposure level is
// at most 2.0 (of 10; the units rate about 1.6).
Verdict hardened(const std::string& unit) {
  ProcessOutput out =
      run_tool({"systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", unit});
  size_t at = out.out.find("Overall exposure level");
  std::string summary = at == std::string::npos ? out.out + out.err : out.out.substr(at);
  return {out.exit_code == 0, summary};
}

// The [Service] lines from DynamicUser= to [Install], less comments and
// StateDirectory= (which differs by design).
std::string hardening_of(const std::string& unit_text) {
  size_t from = unit_text.find("\nDynamicUser=");
  size_t to = unit_text.find("\n[Install]");
  REQUIRE(from != std::string::npos);
  REQUIRE(to != std::string::npos);
  return drop_lines(unit_text.substr(from + 1, to - from), {"#", "StateDirectory="});
}

}  // namespace

TEST_CASE("the installed systemd units pass systemd-analyze verify and broken copies fail it",
          "[install][systemd]") {
  TempDir prefix("taba-units");
  install_to(prefix.path);
  const std::string units = prefix.path + "/lib/systemd/system/";
  const std::string tabad = prefix.path + "/bin/tabad";

  // The template is verified through instances, loaded from the same directory.
  for (const char* unit : {"tabad.service", "tabad@fe.service", "tabad@be.service", "tabad@ctrl.service"}) {
    Verdict v = verify({units + unit});
    INFO(unit << " " << v.output);
    CHECK(v.clean);
  }

  // The same check on copies broken three ways: the executable missing, a
  // misspelled directive, a value systemd cannot parse.
  TempDir broken("taba-units-broken");
  const std::string service = read_file(units + "tabad.service");
  struct Breakage {
    const char* what;
    std::string text;
    const char* expected;
  };
  std::vector<Breakage> breakages = {
      {"missing executable",
       replace_all(service, "ExecStart=" + tabad + " ", "ExecStart=" + tabad + "-missing "),
       "is not executable"},
      {"misspelled directive", replace_all(service, "\nProtectSystem=", "\nProtectSystm="), "Unknown key"},
      {"bad value", replace_all(service, "\nRestartSec=2s", "\nRestartSec=soon"), "Failed to parse"},
  };
  for (const Breakage& b : breakages) {
    write_file(broken.path + "/tabad.service", b.text);
    Verdict v = verify({broken.path + "/tabad.service"});
    INFO(b.what << ": " << v.output);
    CHECK_FALSE(v.clean);
    CHECK_THAT(v.output, Contains(b.expected));
  }
}

TEST_CASE("the installed systemd units are hardened and share one hardening block", "[install][systemd]") {
  TempDir prefix("taba-units");
  install_to(prefix.path);
  const std::string units = prefix.path + "/lib/systemd/system/";

  for (const char* unit : {"tabad.service", "tabad@fe.service"}) {
    Verdict v = hardened(units + unit);
    INFO(unit << " " << v.output);
    CHECK(v.clean);
  }
  std::string service = read_file(units + "tabad.service");
  CHECK(hardening_of(service) == hardening_of(read_file(units + "tabad@.service")));
  for (const char* line :
       {"\nDynamicUser=yes\n", "\nProtectSystem=strict\n", "\nProtectHome=yes\n", "\nPrivateTmp=yes\n",
        "\nNoNewPrivileges=yes\n", "\nLimitNOFILE=65536\n",
        "\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n", "\nKillSignal=SIGTERM\n",
        "\nRestart=on-failure\n", "\nExecReload=/bin/kill -HUP $MAINPID\n", "\nStateDirectory=taba/main\n"}) {
    CHECK_THAT(service, Contains(line));
  }

  // The same check on a copy without its sandboxing rates worse than 2.0.
  TempDir weak("taba-units-weak");
  std::string unhardened = drop_lines(service, {"DynamicUser=", "Protect", "Private",
                                                "NoNewPrivileges=", "CapabilityBoundingSet=", "Restrict",
                                                "SystemCall", "MemoryDenyWriteExecute=", "LockPersonality="});
  write_file(weak.path + "/tabad.service", unhardened);
  Verdict v = hardened(weak.path + "/tabad.service");
  INFO(v.output);
  CHECK_FALSE(v.clean);
  CHECK_THAT(v.output, Contains("Overall exposure level"));
}

TEST_CASE("the .deb built by cpack holds tabad with its plugins and units and conffile and runs unpacked",
          "[install][deb]") {
  TempDir work("taba-deb");
  const std::string cpack = std::filesystem::path(TABA_CMAKE_COMMAND).parent_path().string() + "/cpack";
  auto built = run_process({cpack, "-G", "DEB", "--config",
                            std::string(TABA_BUILD_DIR) + "/CPackConfig.cmake", "-B", work.path + "/out"},
                           {}, 300000);
  REQUIRE(built.ok());
  INFO(built.value().out << built.value().err);
  REQUIRE(built.value().exit_code == 0);

  std::string arch = trimmed(run_tool({"dpkg", "--print-architecture"}).out);
  const std::string deb = work.path + "/out/tabad_" TABA_VERSION_STRING "_" + arch + ".deb";
  REQUIRE(std::filesystem::is_regular_file(deb));

  ProcessOutput info = run_tool({"dpkg-deb", "--info", deb});
  INFO(info.out << info.err);
  REQUIRE(info.exit_code == 0);
  CHECK_THAT(info.out, Contains("\n Package: tabad\n"));
  CHECK_THAT(info.out, Contains("\n Version: " TABA_VERSION_STRING "\n"));
  CHECK_THAT(info.out, Contains("\n Architecture: " + arch + "\n"));
  CHECK_THAT(info.out, Contains("\n Maintainer: "));
  for (const char* dep : {"libuv1", "libhiredis0.14", "libre2-9", "libfmt9", "libsimdjson14",
                          "libtomlplusplus3", "zlib1g", "libstdc++6", "libc6"}) {
    CHECK_THAT(info.out, Contains(std::string(" ") + dep + " ("));
  }
  CHECK(trimmed(run_tool({"dpkg-deb", "--info", deb, "conffiles"}).out) == "/etc/taba/taba.toml");

  ProcessOutput contents = run_tool({"dpkg-deb", "--contents", deb});
  REQUIRE(contents.exit_code == 0);
  std::vector<std::string> expected = {"./usr/bin/tabad",
                                       "./usr/bin/taba-cli",
                                       "./usr/lib/systemd/system/tabad.service",
                                       "./usr/lib/systemd/system/tabad@.service",
                                       "./etc/taba/taba.toml",
                                       "./usr/include/taba/handler.h",
                                       "./usr/share/doc/tabad/README.md",
                                       "./usr/share/doc/tabad/systemd.md",
                                       "./usr/share/doc/tabad/taba.toml.example"};
  for (const auto& entry : std::filesystem::directory_iterator(TABA_TEST_PLUGIN_DIR)) {
    if (entry.path().extension() == ".so")
      expected.push_back("./usr/lib/taba/plugins/" + entry.path().filename().string());
  }
  for (const std::string& path : expected) CHECK_THAT(contents.out, Contains(" " + path + "\n"));

  // Unpacked: the control scripts, the files as they would land on a host.
  const std::string root = work.path + "/root";
  REQUIRE(run_tool({"dpkg-deb", "-x", deb, root}).exit_code == 0);
  REQUIRE(run_tool({"dpkg-deb", "-e", deb, root + "/DEBIAN"}).exit_code == 0);
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    std::string path = root + "/DEBIAN/" + script;
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0755);
    ProcessOutput syntax = run_tool({"sh", "-n", path});
    INFO(script << ": " << syntax.err);
    CHECK(syntax.exit_code == 0);
  }
  CHECK(read_file(root + "/etc/taba/taba.toml") == read_file(kSourceDir + "/taba.toml.example"));
  CHECK_THAT(run_tool({"file", "-L", root + "/usr/bin/tabad"}).out, Contains(", stripped"));

  // The packaged units are the ones systemd-analyze verified for a staging
  // prefix (test above), with /usr and /etc in its place.
  TempDir staged("taba-deb-staged");
  install_to(staged.path);
  for (const char* unit : {"tabad.service", "tabad@.service"}) {
    std::string expected_text = read_file(staged.path + "/lib/systemd/system/" + unit);
    expected_text = replace_all(expected_text, staged.path + "/etc/", "/etc/");
    expected_text = replace_all(expected_text, staged.path + "/", "/usr/");
    INFO(unit);
    CHECK(read_file(root + "/usr/lib/systemd/system/" + unit) == expected_text);
  }
  CHECK_THAT(
      read_file(root + "/usr/lib/systemd/system/tabad.service"),
      Contains(
          "\nExecStart=/usr/bin/tabad --config /etc/taba/taba.toml --data-dir %S/taba/main $TABAD_ARGS\n"));

  // The unpacked tabad serves with the unpacked plugins and configuration.
  setenv("TABAD_PATH", (root + "/usr/bin/tabad").c_str(), 1);
  TabadProcess p;
  taba::Status started =
      p.start({"--config", root + "/etc/taba/taba.toml", "--plugins-dir", root + "/usr/lib/taba/plugins"});
  unsetenv("TABAD_PATH");
  REQUIRE(started.ok());
  CHECK_THAT(p.log_text(), Contains("plugins " + root + "/usr/lib/taba/plugins"));
  double t = static_cast<double>(std::time(nullptr));
  auto r = p.post("/post", v1_body({{"c1", {{"lat", {event_line("PercentileGroup", t, "12.5")}}}},
                                    {"c2", {{"n", {event_line("TotalsCounter", t, "[2.5]")}}}}}));
  REQUIRE(r.ok());
  CHECK(r.value().status == 200);
  CHECK(p.get("/tabs?name=n").value().body == "n: {\"count\": 1, \"total\": 2.50, \"average\": 2.50}\n");
  CHECK_THAT(p.get("/tabs?name=lat").value().body, Contains("lat: "));
}
