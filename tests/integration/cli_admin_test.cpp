// taba-cli's post, operations and admin subcommands against a real tabad on
// the embedded store.
#include <catch2/catch.hpp>

#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "harness.h"

using namespace taba;
using namespace taba::test;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs taba-cli against `p` and returns its output.
ProcessOutput cli(const TabadProcess& p, std::vector<std::string> args, std::string_view stdin_data = {}) {
  args.insert(args.begin(), {TABA_CLI_PATH, "--server", p.url()});
  auto r = run_process(args, stdin_data);
  REQUIRE(r.ok());
  INFO("taba-cli " << Catch::Detail::stringify(args) << "\nstdout: " << r.value().out
                   << "\nstderr: " << r.value().err);
  return r.value();
}

// Runs taba-cli and requires exit 0 and an empty stderr; returns stdout.
std::string cli_ok(const TabadProcess& p, std::vector<std::string> args, std::string_view stdin_data = {}) {
  ProcessOutput out = cli(p, args, stdin_data);
  INFO("taba-cli " << Catch::Detail::stringify(args) << "\nstdout: " << out.out << "\nstderr: " << out.err);
  CHECK(out.exit_code == 0);
  CHECK(out.err.empty());
  return out.out;
}

}  // namespace

TEST_CASE("taba-cli post: events from arguments, a file and stdin, then agg shows them", "[e2e][cli]") {
  TabadProcess p;
  REQUIRE(p.start().ok());

  CHECK(cli_ok(p, {"post", "--client", "web01", "req_ms", "CounterGroup", "12.5", "3"}).empty());
  CHECK(cli_ok(p, {"post", "--client", "web02", "color", "Gauge", "\"red\""}).empty());
  CHECK(cli_ok(p, {"post", "--client", "web02", "delta", "TotalsCounter", "-2.5", "[4, \"x\"]"}).empty());
  CHECK(cli_ok(p, {"agg", "req_ms", "color", "delta"}) ==
        "req_ms: {\n\"1m\": {\"count\": 2, \"total\": 15.50},\n\"10m\": {\"count\": 2, \"total\": 15.50},\n"
        "\"1h\": {\"count\": 2, \"total\": 15.50},\n\"1d\": {\"count\": 2, \"total\": 15.50},\n"
        "\"pct\": [3.00, 3.00, 12.50, 12.50, 12.50, 12.50, 12.50]}\n"
        "color: {\"red\": 1}\n"
        "delta: {\"count\": 2, \"total\": 1.5, \"average\": 0.75}\n");
  std::string clients = cli_ok(p, {"clients"});  // also tabad's own client, once it reports its taba_* tabs
  CHECK(contains(clients, "web01\nweb02\n"));

  // A ready v1 body, from a file and from stdin.
  double now = static_cast<double>(std::time(nullptr));
  std::string body = v1_body({{"web03", {{"color", {event_line("Gauge", now, "\"blue\"")}}}}});
  std::string dir = make_temp_dir("taba-cli-post");
  std::string file = dir + "/body.txt";
  FILE* f = std::fopen(file.c_str(), "w");
  REQUIRE(f != nullptr);
  std::fputs(body.c_str(), f);
  std::fclose(f);
  CHECK(cli_ok(p, {"post", "--file", file}).empty());
  CHECK(cli_ok(p, {"post", "--file", "-"}, v1_body({{"web04", {{"color", {event_line("Gauge", now, "\"blue\"")}}}}}))
            .empty());
  remove_tree(dir);
  CHECK(cli_ok(p, {"agg", "color"}) == "color: {\"blue\": 2, \"red\": 1}\n");
  CHECK(cli_ok(p, {"--json", "agg", "color"}) == "{\"color\": {\"blue\": 2, \"red\": 1}}\n");

  // The server refuses a conflicting type: exit 1 with its reason.
  ProcessOutput conflict = cli(p, {"post", "--client", "web01", "color", "CounterGroup", "1"});
  CHECK(conflict.exit_code == 1);
  CHECK(conflict.out.empty());
  CHECK(conflict.err.rfind("taba-cli: 400 Bad Request: line 6: type \"CounterGroup\" conflicts with type \"Gauge\" "
                           "bound to name \"color\" (POST " + p.url() + "/post)", 0) == 0);
  // A VALUE that is not JSON never reaches the server: exit 2.
  ProcessOutput not_json = cli(p, {"post", "--client", "web01", "color", "Gauge", "red"});
  CHECK(not_json.exit_code == 2);
  CHECK(contains(not_json.err, "VALUE \"red\" is not JSON text"));
}

TEST_CASE("taba-cli status, servers and latency in text and JSON", "[e2e][cli]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  REQUIRE(cli(p, {"post", "--client", "c1", "n", "TotalsCounter", "1"}).exit_code == 0);
  const std::string port = std::to_string(p.port());

  std::string status = cli_ok(p, {"status"});
  CHECK(status.rfind("store: embedded\npipeline_latency_s: ", 0) == 0);
  CHECK(contains(status, "\nserver "));
  std::string status_json = cli_ok(p, {"status", "--json"});
  CHECK(status_json.rfind("{\"store\": \"embedded\", ", 0) == 0);
  CHECK(status_json.back() == '\n');

  std::string servers = cli_ok(p, {"servers"});
  CHECK(contains(servers, ":" + port + ": fe,be\n"));
  CHECK(contains(cli_ok(p, {"--json", "servers"}), ":" + port + "\": [\"fe\", \"be\"]}"));

  std::string latency = cli_ok(p, {"latency"});
  CHECK(latency.rfind("pipeline_latency_s: ", 0) == 0);
  CHECK(contains(latency, "\nsamples: "));
  CHECK(contains(cli_ok(p, {"latency", "--json"}), "\"samples\": "));

  // A token is sent and harmless when the server requires none.
  CHECK(cli_ok(p, {"--token", "s3cret", "servers"}) == servers);
}

TEST_CASE("taba-cli delete, gc, check and flush", "[e2e][cli]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double now = static_cast<double>(std::time(nullptr));
  double old = now - 3 * 86400;
  std::string body = v1_body({{"c1",
                               {{"keep", {event_line("CounterGroup", now, "1")}},
                                {"old", {event_line("CounterGroup", old, "5")}},
                                {"drop.me", {event_line("TotalsCounter", now, "7")}},
                                {"drop.too", {event_line("TotalsCounter", now, "1")}},
                                {"gone", {event_line("TotalsCounter", now, "1")}}}}});
  REQUIRE(cli(p, {"post", "--file", "-"}, body).exit_code == 0);

  std::string flushed = cli_ok(p, {"flush"});
  CHECK(contains(flushed, "waited_ms: "));
  CHECK(cli_ok(p, {"--json", "flush"}).rfind("{\"", 0) == 0);
  std::string names = cli_ok(p, {"names"});
  for (const char* n : {"drop.me\n", "drop.too\n", "gone\n", "keep\n", "old\n"}) CHECK(contains(names, n));

  std::string check = cli_ok(p, {"check"});
  CHECK(contains(check, "problems: 0\n"));
  CHECK(contains(cli_ok(p, {"check", "--repair"}), "problems: 0\n"));

  std::string deleted = cli_ok(p, {"delete", "gone"});
  CHECK(contains(deleted, "names_deleted: 1\n"));
  std::string by_regex = cli_ok(p, {"delete", "--re", "drop\\..*"});
  CHECK(contains(by_regex, "names_deleted: 2\n"));
  CHECK(contains(by_regex, "states_deleted: 2\n"));
  names = cli_ok(p, {"names"});
  for (const char* n : {"drop.me\n", "drop.too\n", "gone\n"}) CHECK_FALSE(contains(names, n));
  CHECK(contains(names, "keep\n"));
  ProcessOutput agg_gone = cli(p, {"agg", "gone"});
  CHECK(agg_gone.exit_code == 1);
  CHECK(agg_gone.out == "gone: (no data)\n");

  std::string gc = cli_ok(p, {"gc"});
  CHECK(contains(gc, "states_pruned: 1\n"));
  CHECK(contains(gc, "names_removed: 1\n"));
  CHECK_FALSE(contains(cli_ok(p, {"names"}), "old\n"));
  CHECK(cli_ok(p, {"gc", "--json"}) ==
        "{\"states_pruned\": 0, \"names_removed\": 0, \"names_busy\": 0, \"details\": []}\n");
}

TEST_CASE("taba-cli exit codes: 1 for a server error, 2 for usage and an unreachable server", "[e2e][cli]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  REQUIRE(cli(p, {"post", "--client", "c1", "n", "TotalsCounter", "1"}).exit_code == 0);

  ProcessOutput not_found = cli(p, {"super", "nope"});
  CHECK(not_found.exit_code == 1);
  CHECK(not_found.out.empty());
  CHECK(not_found.err.rfind("taba-cli: 404 Not Found", 0) == 0);
  CHECK(contains(not_found.err, "(GET " + p.url() + "/supertabs?name=nope)\n"));

  ProcessOutput bad_regex = cli(p, {"delete", "--re", "("});
  CHECK(bad_regex.exit_code == 1);
  CHECK(bad_regex.err.rfind("taba-cli: 400 Bad Request: ", 0) == 0);
  CHECK(contains(cli_ok(p, {"names"}), "n\n"));

  ProcessOutput usage = cli(p, {"delete"});
  CHECK(usage.exit_code == 2);
  CHECK(usage.err == "taba-cli: delete needs a NAME or --re PATTERN\nRun 'taba-cli delete --help' for usage.\n");

  const std::string closed = "http://127.0.0.1:" + std::to_string(free_port());
  for (const char* command : {"status", "gc", "flush"}) {
    auto refused = run_process({TABA_CLI_PATH, "--server", closed, command});
    REQUIRE(refused.ok());
    CHECK(refused.value().exit_code == 2);
    CHECK(refused.value().err == "taba-cli: cannot connect to " + closed + ": connection refused\n");
    CHECK(refused.value().out.empty());
  }
}

TEST_CASE("taba-cli --help and SUB --help exit 0", "[e2e][cli]") {
  auto top = run_process({TABA_CLI_PATH, "--help"});
  REQUIRE(top.ok());
  CHECK(top.value().exit_code == 0);
  for (const char* sub : {"agg", "proj", "super", "names", "clients", "types", "status", "servers", "latency",
                          "delete", "gc", "check", "flush", "post"}) {
    CHECK(contains(top.value().out, std::string("\n  ") + sub));
    auto help = run_process({TABA_CLI_PATH, sub, "--help"});
    REQUIRE(help.ok());
    INFO(sub << ": " << help.value().out << help.value().err);
    CHECK(help.value().exit_code == 0);
    CHECK(help.value().out.rfind(std::string("Usage: taba-cli [GLOBAL OPTIONS] ") + sub, 0) == 0);
    CHECK(contains(help.value().out, "Example"));
    CHECK(help.value().err.empty());
  }
}
