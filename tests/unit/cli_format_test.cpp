// taba-cli: output formats (docs/cli.md), usage errors and exit codes.
#include <catch2/catch.hpp>

#include <sstream>

#include "canned_http_server.h"
#include "cli/cli.h"
#include "cli/format.h"

using taba::cli::format_agg;
using taba::cli::format_agg_block;
using taba::cli::format_string_list;
using taba::cli::format_types;
using taba::test::canned_response;
using taba::test::CannedHttpServer;

namespace {

// A CounterGroup render as the server writes it (docs/api.md §6.1).
const char* const kCounterGroupRender =
    R"({"1m": {"count": 436, "total": 571.64, "average": 1.31}, )"
    R"("10m": {"count": 5285, "total": 6884.57, "average": 1.30}, )"
    R"("1h": {"count": 34265, "total": 44175.47, "average": 1.29}, )"
    R"("1d": {"count": 569787, "total": 744423.871234, "average": 1.31}, )"
    R"("pct": {"count": 569787, "total": 744423.871234, )"
    R"("pct": [0.09, 0.47, 2.19, 3.55, 4.37, 14.09, 17.59]}})";

const char* const kCounterGroupText =
    "winning_bid_price: {\n"
    "\"1m\": {\"count\": 436, \"total\": 571.64},\n"
    "\"10m\": {\"count\": 5285, \"total\": 6884.57},\n"
    "\"1h\": {\"count\": 34265, \"total\": 44175.47},\n"
    "\"1d\": {\"count\": 569787, \"total\": 744423.87},\n"
    "\"pct\": [0.09, 0.47, 2.19, 3.55, 4.37, 14.09, 17.59]}\n";

const char* const kPercentileGroupRender =
    R"({"1m": {"count": 3, "total": 6.000000, "pct": [1.00, 2.00, 3.00, 3.00, 3.00, 3.00, 3.00]},)"
    R"("10m": {"count": 4, "total": 10.500000, "pct": [1.0, 2.5, 3, 4.004, 4.005, 4.0, 4.0]},)"
    R"("1h": {"count": 4, "total": 10.500000, "pct": [1.00, 2.50, 3.00, 4.00, 4.00, 4.00, 4.00]},)"
    R"("1d": {"count": 0, "total": 0.000000, "pct": [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]}})";

const char* const kPercentileGroupText =
    "req_ms: {\n"
    "\"1m\": {\"count\": 3, \"total\": 6.00, \"pct\": [1.00, 2.00, 3.00, 3.00, 3.00, 3.00, 3.00]},\n"
    "\"10m\": {\"count\": 4, \"total\": 10.50, \"pct\": [1.00, 2.50, 3.00, 4.00, 4.00, 4.00, 4.00]},\n"
    "\"1h\": {\"count\": 4, \"total\": 10.50, \"pct\": [1.00, 2.50, 3.00, 4.00, 4.00, 4.00, 4.00]},\n"
    "\"1d\": {\"count\": 0, \"total\": 0.00, \"pct\": [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00]}}\n";

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "taba-cli");
  std::ostringstream out, err;
  int code = taba::cli::run(args, out, err);
  return {code, out.str(), err.str()};
}

// A loopback port with nothing listening on it (bound, then released).
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("agg prints a CounterGroup one window per line with the all-time pct", "[cli]") {
  CHECK(format_agg_block("winning_bid_price", kCounterGroupRender) == kCounterGroupText);
}

TEST_CASE("agg prints a PercentileGroup with per-window pct and no trailing pct line", "[cli]") {
  CHECK(format_agg_block("req_ms", kPercentileGroupRender) == kPercentileGroupText);
}

TEST_CASE("agg prints other renders as the server sent them", "[cli]") {
  CHECK(format_agg_block("color", R"({"red": 2, "blue": 1})") == "color: {\"red\": 2, \"blue\": 1}\n");
  CHECK(format_agg_block("totals", " {\"count\": 3, \"total\": 7.00, \"average\": 2.33}\n") ==
        "totals: {\"count\": 3, \"total\": 7.00, \"average\": 2.33}\n");
  CHECK(format_agg_block("buf", R"([["x", 1400000000.25]])") == "buf: [[\"x\", 1400000000.25]]\n");
  CHECK(format_agg_block("noop", "null") == "noop: null\n");
  // Windows present but not all of them: not a windowed render.
  CHECK(format_agg_block("odd", R"({"1m": {"count": 1, "total": 1}})") ==
        "odd: {\"1m\": {\"count\": 1, \"total\": 1}}\n");
}

TEST_CASE("agg formats names in the order asked and marks missing ones", "[cli]") {
  std::string reply = std::string(R"({"color": {"red": 2}, "winning_bid_price": )") + kCounterGroupRender +
                      R"(, "noop": null, "esc\"aped": [1, 2]})";
  std::vector<std::string> missing;
  auto text = format_agg({"winning_bid_price", "absent", "color", "noop", "esc\"aped"}, reply, &missing);
  REQUIRE(text.ok());
  CHECK(*text == std::string(kCounterGroupText) + "absent: (no data)\ncolor: {\"red\": 2}\nnoop: null\n" +
                     "esc\"aped: [1, 2]\n");
  CHECK(missing == std::vector<std::string>{"absent"});

  CHECK_FALSE(format_agg({"a"}, "[1, 2]", &missing).ok());
  CHECK_FALSE(format_agg({"a"}, "{\"a\": ", &missing).ok());
}

TEST_CASE("names, clients and types formats", "[cli]") {
  auto list = format_string_list(R"(["a", "b/c", "d"])");
  REQUIRE(list.ok());
  CHECK(*list == "a\nb/c\nd\n");
  CHECK(format_string_list("[]").value().empty());
  CHECK_FALSE(format_string_list("[1]").ok());
  CHECK_FALSE(format_string_list("{}").ok());

  std::vector<std::string> missing;
  auto types = format_types(R"({"zeta": "Gauge", "alpha": "CounterGroup"})", {}, &missing);
  REQUIRE(types.ok());
  CHECK(*types == "alpha: CounterGroup\nzeta: Gauge\n");
  CHECK(missing.empty());

  auto partial = format_types(R"({"zeta": "Gauge"})", {"zeta", "beta"}, &missing);
  REQUIRE(partial.ok());
  CHECK(*partial == "beta: (no data)\nzeta: Gauge\n");
  CHECK(missing == std::vector<std::string>{"beta"});
  CHECK_FALSE(format_types(R"({"a": 1})", {}, &missing).ok());
}

TEST_CASE("usage errors exit 2 with a message on stderr", "[cli]") {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"agg"},
      {"agg", "--bogus", "x"},
      {"--timeout-ms", "abc", "clients"},
      {"--timeout-ms", "0", "clients"},
      {"clients", "extra"},
      {"names", "--client"},
      {"agg", ""},
      {"--server", "https://h:1", "clients"},
      {"--server", "http://h:99999", "clients"},
  };
  for (const auto& args : bad) {
    CliRun r = run_cli(args);
    INFO("args: " << Catch::Detail::stringify(args) << "\nstderr: " << r.err);
    CHECK(r.code == taba::cli::kExitUsage);
    CHECK_FALSE(r.err.empty());
    CHECK(r.out.empty());
  }
}

TEST_CASE("--help exits 0 and describes commands", "[cli]") {
  CliRun top = run_cli({"--help"});
  CHECK(top.code == 0);
  CHECK_THAT(top.out, Catch::Contains("agg NAME..."));
  CHECK_THAT(top.out, Catch::Contains("--server"));

  CliRun agg = run_cli({"agg", "--help"});
  CHECK(agg.code == 0);
  CHECK_THAT(agg.out, Catch::Contains("--timeout-ms"));

  CliRun names = run_cli({"names", "--help"});
  CHECK(names.code == 0);
  CHECK_THAT(names.out, Catch::Contains("--client"));
}

TEST_CASE("a server that cannot be reached exits 2 naming the URL", "[cli]") {
  std::string server = "http://127.0.0.1:" + std::to_string(closed_port());
  CliRun r = run_cli({"--server", server, "agg", "x"});
  CHECK(r.code == taba::cli::kExitUsage);
  CHECK(r.err == "taba-cli: cannot connect to " + server + ": connection refused\n");
  CHECK(r.out.empty());
}

TEST_CASE("agg against a server: request, output and exit codes", "[cli]") {
  std::string reply =
      std::string(R"({"winning_bid_price": )") + kCounterGroupRender + R"(, "color": {"red": 2}})";
  CannedHttpServer server([&](const std::string& request) {
    if (request.rfind("GET /tabs?name=winning_bid_price,color,gone ", 0) == 0 ||
        request.rfind("GET /tabs?name=winning_bid_price,color ", 0) == 0) {
      return CannedHttpServer::Reply{canned_response("200 OK", "application/json", reply)};
    }
    if (request.rfind("GET /names?client=web%2001 ", 0) == 0) {
      return CannedHttpServer::Reply{canned_response("200 OK", "application/json", R"(["b", "a"])")};
    }
    return CannedHttpServer::Reply{
        canned_response("400 Bad Request", "text/plain", "unknown parameter 'x'\n"), true};
  });

  CliRun ok = run_cli({"--server", server.url(), "agg", "winning_bid_price", "color"});
  CHECK(ok.code == 0);
  CHECK(ok.out == std::string(kCounterGroupText) + "color: {\"red\": 2}\n");
  CHECK(ok.err.empty());
  REQUIRE_FALSE(server.requests().empty());
  CHECK_THAT(server.requests().front(), Catch::Contains("\r\nAccept: application/json\r\n"));

  CliRun json = run_cli({"agg", "winning_bid_price", "color", "--json", "--server", server.url()});
  CHECK(json.code == 0);
  CHECK(json.out == reply + "\n");

  CliRun missing = run_cli({"--server", server.url(), "agg", "winning_bid_price", "color", "gone"});
  CHECK(missing.code == taba::cli::kExitServerError);
  CHECK_THAT(missing.out, Catch::EndsWith("gone: (no data)\n"));
  CHECK_THAT(missing.err, Catch::Contains("gone"));

  CliRun names = run_cli({"--server", server.url() + "/", "names", "--client", "web 01"});
  CHECK(names.code == 0);
  CHECK(names.out == "b\na\n");

  CliRun rejected = run_cli({"--server", server.url(), "agg", "other"});
  CHECK(rejected.code == taba::cli::kExitServerError);
  CHECK(rejected.err ==
        "taba-cli: 400 Bad Request: unknown parameter 'x' (GET " + server.url() + "/tabs?name=other)\n");
  CHECK(rejected.out.empty());
}

TEST_CASE("TABA_SERVER sets the default server", "[cli]") {
  CannedHttpServer server([](const std::string&) {
    return CannedHttpServer::Reply{canned_response("200 OK", "application/json", R"(["c1"])")};
  });
  std::string host_port = "127.0.0.1:" + std::to_string(server.port());
  ::setenv("TABA_SERVER", host_port.c_str(), 1);
  CliRun r = run_cli({"clients"});
  ::unsetenv("TABA_SERVER");
  CHECK(r.code == 0);
  CHECK(r.out == "c1\n");
}
