// The integration harness's own helpers (tests/integration/harness.h).
#include "harness.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

using namespace taba::test;

TEST_CASE("v1_body and event_line reproduce the worked example byte for byte", "[harness]") {
  // original-taba.md §2.5: the Python encoder's 137-byte body.
  const std::string expected =
      "1\n\nweb01\n\nreq_ms\n[\"CounterGroup\", 1400000000.25, \"12.5\"]\n"
      "[\"CounterGroup\", 1400000001.5, \"3\"]\n\ncolor\n[\"Gauge\", 1400000002.0, \"\\\"red\\\"\"]\n\n\n";
  std::string body = v1_body(
      {{"web01",
        {{"req_ms",
          {event_line("CounterGroup", 1400000000.25, "12.5"), event_line("CounterGroup", 1400000001.5, "3")}},
         {"color", {event_line("Gauge", 1400000002.0, "\"red\"")}}}}});
  CHECK(body == expected);
  CHECK(body.size() == 137);
}

TEST_CASE("v1_body with several clients", "[harness]") {
  std::string body = v1_body({{"a", {{"n", {"E1"}}}}, {"b", {{"n", {"E2"}}, {"m", {"E3"}}}}});
  CHECK(body == "1\n\na\n\nn\nE1\n\n\nb\n\nn\nE2\n\nm\nE3\n\n\n");
}

TEST_CASE("json_string escapes like JSON", "[harness]") {
  CHECK(json_string("plain") == "\"plain\"");
  CHECK(json_string("a\"b\\c\n\t\x01") == "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  CHECK(event_line("Buffer", 1e9, "[\"x\", 5]") == "[\"Buffer\", 1000000000.0, \"[\\\"x\\\", 5]\"]");
}

TEST_CASE("make_temp_dir and free_port", "[harness]") {
  std::string dir = make_temp_dir("harness-test");
  CHECK(std::filesystem::is_directory(dir));
  CHECK(std::filesystem::is_empty(dir));
  remove_tree(dir);
  CHECK_FALSE(std::filesystem::exists(dir));
  int port = free_port();
  CHECK(port > 0);
  CHECK(port < 65536);
}

TEST_CASE("run_process feeds stdin and collects output and exit code", "[harness]") {
  auto r = run_process({"/bin/sh", "-c", "cat; echo oops >&2; exit 3"}, "hello\n");
  REQUIRE(r.ok());
  CHECK(r->exit_code == 3);
  CHECK(r->out == "hello\n");
  CHECK(r->err == "oops\n");

  auto killed = run_process({"/bin/sh", "-c", "kill -TERM $$"});
  REQUIRE(killed.ok());
  CHECK(killed->exit_code == 128 + SIGTERM);

  auto slow = run_process({"/bin/sleep", "5"}, {}, 100);
  CHECK_FALSE(slow.ok());

  auto missing = run_process({"/nonexistent/program"});
  REQUIRE(missing.ok());
  CHECK(missing->exit_code == 127);
}

TEST_CASE("TabadProcess reports a server that never becomes healthy", "[harness]") {
  ::setenv("TABAD_PATH", "/bin/false", 1);
  TabadProcess p;
  taba::Status st = p.start();
  ::unsetenv("TABAD_PATH");
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.message(), Catch::Contains("exited with status 1"));
  CHECK_FALSE(p.running());
  CHECK(std::filesystem::is_directory(p.data_dir()));
}
