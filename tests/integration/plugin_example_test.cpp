// The plugin ABI in practice: the example plugin of examples/plugins/max_gauge
// compiled with the system C compiler, dropped into a plugins directory next
// to the built-in plugins, served by a real tabad, then upgraded from state
// version 1 to 2 across a restart. Also: broken plugins in the same directory
// are reported in the log and do not stop tabad.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "example_plugin.h"
#include "harness.h"

using namespace taba;
using namespace taba::test;
using Catch::Matchers::Contains;

namespace {

void write_source(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

std::string tabs(TabadProcess& p, std::string_view query) {
  auto r = p.get("/tabs?" + std::string(query));
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
  return r.value().body;
}

// POSTs a v1 body to /post: the status, and the reply body in *reply.
int post_status(TabadProcess& p, const std::string& body, std::string* reply = nullptr) {
  auto r = p.post("/post", body);
  REQUIRE(r.ok());
  if (reply != nullptr) *reply = r.value().body;
  return r.value().status;
}

// Starts tabad; on failure the assertion shows why (with the end of its log).
void start(TabadProcess& p, const std::vector<std::string>& args) {
  Status s = p.start(args);
  INFO(s.message());
  REQUIRE(s.ok());
}

void stop(TabadProcess& p) {
  REQUIRE(p.signal(SIGTERM).ok());
  auto code = p.wait_exit(15000);
  REQUIRE(code.ok());
  REQUIRE(code.value() == 0);
}

// A v1 body: one client posting payloads of one type to one name, stamped now.
std::string body_of(const std::string& client, const std::string& name, std::string_view type,
                    const std::vector<std::string>& payloads) {
  NameBlock block{name, {}};
  for (const std::string& payload : payloads) block.event_lines.push_back(event_line(type, now_s(), payload));
  return v1_body({{client, {block}}});
}

}  // namespace

TEST_CASE("example plugin MaxGauge built with cc serves posts and upgrades its state from version 1 to 2",
          "[e2e][plugin-example]") {
  TempDir plugins("taba-plugins");
  link_builtins(plugins.path);
  compile_max_gauge(plugins.path, 1);
  const std::string so = plugins.path + "/max_gauge.so";
  const std::vector<std::string> args = {"--plugins-dir", plugins.path};

  TabadProcess p;
  start(p, args);
  CHECK_THAT(p.log_text(), Contains("plugin: max_gauge: MaxGauge writes state version 1, reads 1 to 1"));
  CHECK_THAT(p.log_text(), Contains("plugin max_gauge 1.0.0 loaded from " + so + ": types MaxGauge"));
  CHECK_THAT(p.log_text(), Contains("plugin counter_group "));

  REQUIRE(post_status(p, body_of("c1", "peak", "MaxGauge", {"12.5", "[3, \"x\"]"})) == 200);
  REQUIRE(post_status(p, body_of("c2", "peak", "MaxGauge", {"-4", "1000"})) == 200);
  REQUIRE(post_status(p, body_of("c1", "req_ms", "CounterGroup", {"5"})) == 200);
  const std::string v1_all = "peak: {\"count\": 4, \"min\": -4, \"max\": 1000}\n";
  const std::string v1_c1 = "peak: {\"count\": 2, \"min\": 3, \"max\": 12.5}\n";
  CHECK(tabs(p, "name=peak") == v1_all);
  CHECK(tabs(p, "name=peak&client=c1") == v1_c1);
  CHECK(p.get("/types").value().body == "peak: MaxGauge\nreq_ms: CounterGroup\n");
  CHECK(p.get("/tabs?name=peak", "application/json").value().body ==
        "{\"peak\": {\"count\": 4, \"min\": -4, \"max\": 1000}}");

  // check_event refuses a non-numeric payload with its reason, and the whole
  // request is refused: the good event before it is not applied either.
  std::string reply;
  CHECK(post_status(p, body_of("c1", "peak", "MaxGauge", {"7", "\"high\""}), &reply) == 400);
  CHECK_THAT(reply, Contains("rejected: MaxGauge payload must be a number or an array whose first element is "
                             "a number"));
  CHECK(tabs(p, "name=peak") == v1_all);

  // SIGTERM writes a snapshot holding version-1 states.
  stop(p);
  REQUIRE(std::filesystem::exists(p.data_dir() + "/snapshot"));

  // Release 2 of the plugin, same file, same data directory.
  compile_max_gauge(plugins.path, 2);
  start(p, args);
  CHECK_THAT(p.log_text(), Contains("plugin max_gauge 2.0.0 loaded from " + so + ": types MaxGauge"));
  CHECK_THAT(p.log_text(), Contains("plugin: max_gauge: MaxGauge writes state version 2, reads 1 to 2"));
  CHECK_THAT(p.log_text(), Contains("store: recovered 2 names, 2 clients"));
  // Upgraded: count, min and max kept; version 1 kept no sum, so no mean yet.
  CHECK(tabs(p, "name=peak") ==
        "peak: {\"count\": 4, \"min\": -4, \"max\": 1000, \"mean\": null, \"mean_count\": 0}\n");
  CHECK(tabs(p, "name=peak&client=c1") ==
        "peak: {\"count\": 2, \"min\": 3, \"max\": 12.5, \"mean\": null, \"mean_count\": 0}\n");
  CHECK_THAT(tabs(p, "name=req_ms"), Contains("\"count\": 1, \"total\": 5.00"));

  // New events count toward the mean; a new client's mean covers all its events.
  REQUIRE(post_status(p, body_of("c1", "peak", "MaxGauge", {"20"})) == 200);
  REQUIRE(post_status(p, body_of("c3", "peak", "MaxGauge", {"[2]"})) == 200);
  const std::string v2_all =
      "peak: {\"count\": 6, \"min\": -4, \"max\": 1000, \"mean\": 11, \"mean_count\": 2}\n";
  const std::string v2_c1 =
      "peak: {\"count\": 3, \"min\": 3, \"max\": 20, \"mean\": 20, \"mean_count\": 1}\n";
  CHECK(tabs(p, "name=peak") == v2_all);
  CHECK(tabs(p, "name=peak&client=c1") == v2_c1);
  CHECK(tabs(p, "name=peak&client=c3") ==
        "peak: {\"count\": 1, \"min\": 2, \"max\": 2, \"mean\": 2, \"mean_count\": 1}\n");
  CHECK(tabs(p, "name=peak&client=c1,c3") ==
        "peak: {\"count\": 4, \"min\": 2, \"max\": 20, \"mean\": 11, \"mean_count\": 2}\n");

  // Version 2 reads its own states back: the sum survives a restart.
  stop(p);
  start(p, args);
  CHECK(tabs(p, "name=peak") == v2_all);
  CHECK(tabs(p, "name=peak&client=c1") == v2_c1);
  REQUIRE(post_status(p, body_of("c2", "peak", "MaxGauge", {"0.5"})) == 200);
  CHECK(tabs(p, "name=peak") ==
        "peak: {\"count\": 7, \"min\": -4, \"max\": 1000, \"mean\": 7.5, \"mean_count\": 3}\n");

  // Going back to release 1 is refused: it cannot read version-2 states, and
  // tabad does not start rather than lose them.
  stop(p);
  compile_max_gauge(plugins.path, 1);
  CHECK_FALSE(p.start(args).ok());
  CHECK_FALSE(p.running());
  CHECK_THAT(p.log_text(),
             Contains("snapshot: state of name \"peak\" (MaxGauge v2) unreadable: MaxGauge state "
                      "version 2 not supported (this build reads 1 to 1)"));
}

TEST_CASE("broken plugins in the plugins dir are reported in the log and tabad serves the other types",
          "[e2e][plugin-example]") {
  TempDir plugins("taba-plugins");
  TempDir sources("taba-plugin-src");
  link_builtins(plugins.path);
  compile_max_gauge(plugins.path, 2);

  // Built against a future ABI major, returning its table regardless.
  write_source(sources.path + "/bad_abi.c", R"(#include "taba/handler.h"
static const taba_plugin kPlugin = {.struct_size = sizeof(taba_plugin), .abi_major = TABA_ABI_MAJOR + 1,
                                    .abi_minor = 0, .name = "from_the_future", .version = "9.0.0",
                                    .handler_count = 0, .flags = 0, .handlers = 0};
TABA_PLUGIN_EXPORT const taba_plugin* taba_plugin_entry(const taba_host* host) {
  (void)host;
  return &kPlugin;
}
)");
  // Built for ABI major 2 the polite way: it checks the host and declines.
  write_source(sources.path + "/declines.c", R"(#include "taba/handler.h"
#define BUILT_FOR_ABI_MAJOR 2
static const taba_plugin kPlugin = {.struct_size = sizeof(taba_plugin), .abi_major = BUILT_FOR_ABI_MAJOR,
                                    .abi_minor = 0, .name = "polite_future", .version = "9.0.0",
                                    .handler_count = 0, .flags = 0, .handlers = 0};
TABA_PLUGIN_EXPORT const taba_plugin* taba_plugin_entry(const taba_host* host) {
  return host != 0 && host->abi_major == BUILT_FOR_ABI_MAJOR ? &kPlugin : 0;
}
)");
  // The entry point misspelled.
  write_source(sources.path + "/no_entry.c", R"(#include "taba/handler.h"
TABA_PLUGIN_EXPORT const taba_plugin* taba_plugin_entrypoint(const taba_host* host);
const taba_plugin* taba_plugin_entrypoint(const taba_host* host) {
  (void)host;
  return 0;
}
)");
  for (const char* name : {"bad_abi", "declines", "no_entry"}) {
    compile_plugin(sources.path + "/" + name + ".c", plugins.path + "/" + name + ".so", {});
  }
  // Not a shared object at all.
  write_source(plugins.path + "/not_a_plugin.so", "just text\n");

  TabadProcess p;
  start(p, {"--plugins-dir", plugins.path});
  const std::string refused = "ERROR plugin " + plugins.path + "/";
  CHECK_THAT(p.log_text(),
             Contains(refused + "bad_abi.so refused: ABI major version 2 (this tabad speaks 1.3)"));
  CHECK_THAT(p.log_text(),
             Contains(refused + "declines.so refused: entry point returned no plugin table (the "
                                "plugin declined this host)"));
  CHECK_THAT(p.log_text(), Contains(refused + "no_entry.so refused: missing entry symbol taba_plugin_entry"));
  CHECK_THAT(p.log_text(), Contains(refused + "not_a_plugin.so refused: dlopen failed: "));
  CHECK_THAT(p.log_text(), Contains("plugin max_gauge 2.0.0 loaded from " + plugins.path +
                                    "/max_gauge.so: types MaxGauge"));
  CHECK_THAT(p.log_text(), Contains("plugin gauge "));

  REQUIRE(post_status(p, body_of("c1", "peak", "MaxGauge", {"1.25", "-0.5"})) == 200);
  REQUIRE(post_status(p, body_of("c1", "color", "Gauge", {"\"red\""})) == 200);
  REQUIRE(post_status(p, body_of("c1", "n", "TotalsCounter", {"2"})) == 200);
  CHECK(tabs(p, "name=peak") ==
        "peak: {\"count\": 2, \"min\": -0.5, \"max\": 1.25, \"mean\": 0.375, \"mean_count\": 2}\n");
  CHECK(tabs(p, "name=color") == "color: {\"red\": 1}\n");
  CHECK(tabs(p, "name=n") == "n: {\"count\": 1, \"total\": 2.00, \"average\": 2.00}\n");
  std::string reply;
  CHECK(post_status(p, body_of("c1", "x", "FromTheFuture", {"1"}), &reply) == 400);
  CHECK_THAT(reply, Contains("unknown type \"FromTheFuture\""));
}

TEST_CASE("example plugin builds out of tree with its own CMakeLists and loads on its own",
          "[e2e][plugin-example]") {
  TempDir build("taba-example-build");
  TempDir prefix("taba-example-prefix");
  const std::string cc = c_compiler();
  REQUIRE_FALSE(cc.empty());
  auto run = [](const std::vector<std::string>& argv) {
    auto r = run_process(argv, {}, 120000);
    REQUIRE(r.ok());
    INFO(r.value().out << r.value().err);
    REQUIRE(r.value().exit_code == 0);
  };
  run({TABA_CMAKE_COMMAND, "-S", kExampleDir, "-B", build.path, "-DCMAKE_C_COMPILER=" + cc,
       "-DTABA_INCLUDE_DIR=" + kIncludeDir, "-DMAX_GAUGE_STATE_VERSION=1"});
  run({TABA_CMAKE_COMMAND, "--build", build.path});
  run({TABA_CMAKE_COMMAND, "--install", build.path, "--prefix", prefix.path});
  const std::string dir = prefix.path + "/lib/taba/plugins";
  REQUIRE(std::filesystem::exists(dir + "/max_gauge.so"));

  // Only this plugin: tabad serves MaxGauge and nothing else.
  TabadProcess p;
  start(p, {"--plugins-dir", dir});
  CHECK_THAT(p.log_text(),
             Contains("plugin max_gauge 1.0.0 loaded from " + dir + "/max_gauge.so: types MaxGauge"));
  REQUIRE(post_status(p, body_of("c1", "q", "MaxGauge", {"[1e21, 5]"})) == 200);
  CHECK(tabs(p, "name=q") == "q: {\"count\": 1, \"min\": 1e+21, \"max\": 1e+21}\n");
  CHECK(post_status(p, body_of("c1", "n", "TotalsCounter", {"1"})) == 400);
}
