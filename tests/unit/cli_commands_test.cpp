// taba-cli: argument parsing, help, the requests each subcommand sends, v1
// bodies for `post`, reply and error formatting, and the admin subcommands
// against a scripted server.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <sstream>

#include "canned_http_server.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/request.h"

using taba::cli::build_v1_body;
using taba::cli::connect_failure_reason;
using taba::cli::Env;
using taba::cli::format_http_error;
using taba::cli::format_reply;
using taba::cli::help_text;
using taba::cli::HttpCall;
using taba::cli::Invocation;
using taba::cli::parse_command_line;
using taba::cli::plan_request;
using taba::test::canned_response;
using taba::test::CannedHttpServer;

namespace {

Invocation parse_ok(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), "taba-cli");
  auto r = parse_command_line(args, env);
  INFO("args: " << Catch::Detail::stringify(args));
  REQUIRE(r.ok());
  return r.value();
}

std::string parse_error(std::vector<std::string> args, const Env& env = {}) {
  args.insert(args.begin(), "taba-cli");
  auto r = parse_command_line(args, env);
  INFO("args: " << Catch::Detail::stringify(args));
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

HttpCall plan(std::vector<std::string> args, std::string_view file_body = {}) {
  auto r = plan_request(parse_ok(std::move(args)), 1400000000.25, file_body);
  REQUIRE(r.ok());
  return r.value();
}

std::string header(const HttpCall& call, std::string_view name) {
  for (const auto& h : call.headers) {
    if (h.name == name) return h.value;
  }
  return "(none)";
}

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun run_cli(std::vector<std::string> args, const std::string& stdin_text = {}) {
  args.insert(args.begin(), "taba-cli");
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  int code = taba::cli::run(args, in, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("global options go before or after the command, with defaults from the environment", "[cli]") {
  Invocation plain = parse_ok({"status"});
  CHECK(plain.command == "status");
  CHECK(plain.server.origin == "http://127.0.0.1:8300");
  CHECK(plain.server.base_path.empty());
  CHECK(plain.token.empty());
  CHECK(plain.timeout_ms == 10000);
  CHECK_FALSE(plain.json);

  Invocation before = parse_ok({"--server", "http://h:81/taba/", "--json", "--token", "s3cret", "--timeout-ms",
                                "250", "gc"});
  Invocation after = parse_ok({"gc", "--server=http://h:81/taba/", "--json", "--token=s3cret", "--timeout-ms=250"});
  for (const Invocation& inv : {before, after}) {
    CHECK(inv.command == "gc");
    CHECK(inv.server.host == "h");
    CHECK(inv.server.port == 81);
    CHECK(inv.server.origin == "http://h:81");
    CHECK(inv.server.base_path == "/taba");
    CHECK(inv.json);
    CHECK(inv.token == "s3cret");
    CHECK(inv.timeout_ms == 250);
  }

  Env env{.server = "10.0.0.9:8400", .token = "from-env"};
  Invocation from_env = parse_ok({"flush"}, env);
  CHECK(from_env.server.origin == "http://10.0.0.9:8400");
  CHECK(from_env.token == "from-env");
  Invocation flags_win = parse_ok({"flush", "--server", "h2", "--token", "flag"}, env);
  CHECK(flags_win.server.origin == "http://h2:80");
  CHECK(flags_win.token == "flag");
}

TEST_CASE("subcommand arguments and options", "[cli]") {
  Invocation del = parse_ok({"delete", "a", "b.c"});
  CHECK(del.args == std::vector<std::string>{"a", "b.c"});
  CHECK_FALSE(del.regex);
  CHECK(*parse_ok({"delete", "--re", "drop\\..*"}).regex == "drop\\..*");
  CHECK(parse_ok({"check", "--repair"}).repair);
  CHECK_FALSE(parse_ok({"check"}).repair);

  Invocation post = parse_ok({"post", "--client", "web01", "req_ms", "CounterGroup", "12.5", "-3", "-.5", "[1, 2]"});
  CHECK(*post.client == "web01");
  CHECK(post.args == std::vector<std::string>{"req_ms", "CounterGroup", "12.5", "-3", "-.5", "[1, 2]"});
  Invocation dashdash = parse_ok({"post", "--client", "c", "n", "Gauge", "--", "--json"});
  CHECK(dashdash.args == std::vector<std::string>{"n", "Gauge", "--json"});
  CHECK_FALSE(dashdash.json);
  CHECK(*parse_ok({"post", "--file", "-"}).file == "-");
  CHECK(*parse_ok({"--client", "c9", "names"}).client == "c9");

  // --help anywhere wins over missing arguments.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"-h"}, {"agg", "--help"}, {"post", "-h"}, {"--help", "delete"}}) {
    Invocation inv = parse_ok(args);
    CHECK(inv.help);
  }
  CHECK(parse_ok({"delete", "--help"}).command == "delete");
  CHECK(parse_ok({"--help"}).command.empty());
}

TEST_CASE("usage errors name what is wrong", "[cli]") {
  CHECK(parse_error({}) == "no command given");
  CHECK(parse_error({"frobnicate"}) == "unknown command 'frobnicate'");
  CHECK(parse_error({"gc", "--bogus"}) == "unknown option '--bogus'");
  CHECK(parse_error({"gc", "-x"}) == "unknown option '-x'");
  CHECK(parse_error({"gc", "--json=1"}) == "option '--json' takes no value");
  CHECK(parse_error({"status", "--server"}) == "option '--server' needs a value (URL)");
  CHECK(parse_error({"agg", "x", "--re", "y"}) == "'agg' has no option '--re'");
  CHECK(parse_error({"gc", "--repair"}) == "'gc' has no option '--repair'");
  CHECK(parse_error({"--timeout-ms", "-5", "gc"}).find("--timeout-ms must be a positive") == 0);
  CHECK(parse_error({"--timeout-ms", "12x", "gc"}).find("not '12x'") != std::string::npos);
  CHECK(parse_error({"--server", "https://h:1", "gc"}).find("bad server URL 'https://h:1'") == 0);
  CHECK(parse_error({"status", "extra"}) == "unexpected argument 'extra'");
  CHECK(parse_error({"gc", "extra"}) == "unexpected argument 'extra'");
  CHECK(parse_error({"super"}) == "super needs at least one NAME");
  CHECK(parse_error({"delete"}) == "delete needs a NAME or --re PATTERN");
  CHECK(parse_error({"delete", "a", "--re", "b"}) == "delete takes NAMEs or --re PATTERN, not both");
  CHECK(parse_error({"delete", "--re", ""}) == "--re needs a non-empty PATTERN");
  CHECK(parse_error({"delete", "a,b"}) == "'a,b' is not a tab name");
  CHECK(parse_error({"post", "n", "Gauge", "1"}) == "post needs --client C (or --file FILE)");
  CHECK(parse_error({"post", "--client", "c", "n", "Gauge"}) == "post needs NAME, TYPE and at least one VALUE");
  CHECK(parse_error({"post", "--file", "x", "--client", "c"}) ==
        "post takes --file FILE or --client C NAME TYPE VALUE..., not both");
  CHECK(parse_error({"post", "--file", ""}) == "--file needs a file name (or '-' for standard input)");
}

TEST_CASE("help: the command list, and each command's usage, options and example", "[cli]") {
  std::string top = help_text("");
  for (const std::string& name : taba::cli::command_names()) {
    CHECK_THAT(top, Catch::Contains("\n  " + name));
    std::string sub = help_text(name);
    INFO(name << ":\n" << sub);
    CHECK_THAT(sub, Catch::StartsWith("Usage: taba-cli [GLOBAL OPTIONS] " + name));
    CHECK_THAT(sub, Catch::Contains("--server URL"));
    CHECK_THAT(sub, Catch::Contains("--token TOKEN"));
    CHECK_THAT(sub, Catch::Contains("Example"));
    CHECK_THAT(sub, Catch::Contains("  taba-cli " + name));
    CHECK_THAT(sub, Catch::Contains("Exit status: 0 ok"));
  }
  CHECK(taba::cli::command_names() ==
        std::vector<std::string>{"agg", "proj", "super", "names", "clients", "types", "status", "servers",
                                 "latency", "delete", "gc", "check", "flush", "reshard", "post"});
  CHECK_THAT(top, Catch::Contains("TABA_SERVER"));
  CHECK_THAT(top, Catch::Contains("TABA_TOKEN"));
  CHECK_THAT(help_text("delete"), Catch::Contains("--re PATTERN"));
  CHECK_THAT(help_text("check"), Catch::Contains("--repair"));
  CHECK_THAT(help_text("post"), Catch::Contains("--file FILE|-"));
  CHECK_THAT(help_text("post"), Catch::Contains("--client C"));
}

TEST_CASE("each subcommand's request", "[cli]") {
  struct Want {
    std::vector<std::string> args;
    std::string method, target, accept;
  };
  const std::vector<Want> wants = {
      {{"agg", "a", "b c"}, "GET", "/tabs?name=a,b%20c", "application/json"},
      {{"--json", "agg", "a"}, "GET", "/tabs?name=a", "application/json"},
      {{"proj", "a", "--client", "c1,c2"}, "GET", "/projection?name=a&client=c1%2Cc2", "text/plain"},
      {{"super", "a", "b", "--json"}, "GET", "/supertabs?name=a,b", "application/json"},
      {{"names"}, "GET", "/names", "application/json"},
      {{"names", "--client", "web 1"}, "GET", "/names?client=web%201", "application/json"},
      {{"clients"}, "GET", "/clients", "application/json"},
      {{"types"}, "GET", "/types", "application/json"},
      {{"types", "x", "y"}, "GET", "/types?name=x,y", "application/json"},
      {{"status"}, "GET", "/status", "text/plain"},
      {{"status", "--json"}, "GET", "/status", "application/json"},
      {{"servers"}, "GET", "/servers", "text/plain"},
      {{"latency", "--json"}, "GET", "/latency", "application/json"},
      {{"delete", "a", "b"}, "POST", "/delete?name=a,b", "text/plain"},
      {{"delete", "--re", "drop\\..*"}, "POST", "/delete?name=drop%5C..%2A&re=1", "text/plain"},
      {{"gc", "--json"}, "POST", "/gc", "application/json"},
      {{"check"}, "POST", "/check", "text/plain"},
      {{"check", "--repair"}, "POST", "/check?dry=false", "text/plain"},
      {{"flush"}, "POST", "/flush", "text/plain"},
      {{"--server", "http://h:1/base/", "flush"}, "POST", "/base/flush", "text/plain"},
  };
  for (const Want& w : wants) {
    HttpCall call = plan(w.args);
    INFO("args: " << Catch::Detail::stringify(w.args));
    CHECK(call.method == w.method);
    CHECK(call.target == w.target);
    CHECK(header(call, "Accept") == w.accept);
    CHECK(header(call, "Authorization") == "(none)");
    CHECK(call.body.empty());
  }
  HttpCall with_token = plan({"--token", "s3cret", "gc"});
  CHECK(header(with_token, "Authorization") == "Bearer s3cret");

  HttpCall post = plan({"post", "--client", "web01", "req_ms", "CounterGroup", "12.5", "-3"});
  CHECK(post.method == "POST");
  CHECK(post.target == "/post");
  CHECK(header(post, "Accept") == "(none)");
  CHECK(post.body ==
        "1\n\nweb01\n\nreq_ms\n[\"CounterGroup\", 1400000000.25, \"12.5\"]\n"
        "[\"CounterGroup\", 1400000000.25, \"-3\"]\n\n\n");
  HttpCall file = plan({"post", "--file", "body.txt"}, "1\n\nc\n\nn\n[\"Noop\", 1, \"1\"]\n\n\n");
  CHECK(file.body == "1\n\nc\n\nn\n[\"Noop\", 1, \"1\"]\n\n\n");
  CHECK_FALSE(plan_request(parse_ok({"post", "--client", "c", "n", "Gauge", "red"}), 1.0).ok());
}

TEST_CASE("post builds a v1 body as the Python client writes it", "[cli]") {
  auto body = build_v1_body("web01", "color", "Gauge", {"\"red\"", " [1,2] ", "{\"a\": \"b\\\\c\"}"}, 1400000002.0);
  REQUIRE(body.ok());
  CHECK(*body ==
        "1\n\nweb01\n\ncolor\n"
        "[\"Gauge\", 1400000002.0, \"\\\"red\\\"\"]\n"
        "[\"Gauge\", 1400000002.0, \"[1,2]\"]\n"
        "[\"Gauge\", 1400000002.0, \"{\\\"a\\\": \\\"b\\\\\\\\c\\\"}\"]\n\n\n");
  auto bad_value = build_v1_body("c", "n", "Gauge", {"red"}, 1.0);
  REQUIRE_FALSE(bad_value.ok());
  CHECK_THAT(bad_value.status().message(), Catch::StartsWith("VALUE \"red\" is not JSON text"));
  CHECK_FALSE(build_v1_body("c", "n", "Gauge", {""}, 1.0).ok());
  CHECK_FALSE(build_v1_body("c", "n", "Gauge", {"1 2"}, 1.0).ok());
  CHECK_FALSE(build_v1_body("c", "n", "Gauge", {}, 1.0).ok());
  CHECK_FALSE(build_v1_body("c", "n", "", {"1"}, 1.0).ok());
  auto bad_client = build_v1_body("web 01", "n", "Gauge", {"1"}, 1.0);
  REQUIRE_FALSE(bad_client.ok());
  CHECK_THAT(bad_client.status().message(), Catch::StartsWith("invalid client \"web 01\": "));
  auto bad_name = build_v1_body("c", "", "Gauge", {"1"}, 1.0);
  REQUIRE_FALSE(bad_name.ok());
  CHECK_THAT(bad_name.status().message(), Catch::StartsWith("invalid name \"\": "));
}

TEST_CASE("replies: admin text as it is, post prints nothing, errors on one line", "[cli]") {
  std::vector<std::string> missing;
  CHECK(format_reply(parse_ok({"gc"}), "states_pruned: 2\nnames_removed: 1\n", &missing).value() ==
        "states_pruned: 2\nnames_removed: 1\n");
  CHECK(format_reply(parse_ok({"--json", "gc"}), "{\"states_pruned\": 0, \"details\": []}", &missing).value() ==
        "{\"states_pruned\": 0, \"details\": []}\n");
  CHECK(format_reply(parse_ok({"servers"}), "", &missing).value().empty());
  CHECK(format_reply(parse_ok({"post", "--file", "-"}), "", &missing).value().empty());
  CHECK(format_reply(parse_ok({"--json", "names"}), "[\"a\"]", &missing).value() == "[\"a\"]\n");
  CHECK_FALSE(format_reply(parse_ok({"--json", "names"}), "{}", &missing).ok());
  CHECK(missing.empty());
  CHECK(format_reply(parse_ok({"types", "a", "b"}), "{\"a\": \"Gauge\"}", &missing).value() ==
        "a: Gauge\nb: (no data)\n");
  CHECK(missing == std::vector<std::string>{"b"});

  CHECK(format_http_error("POST", "http://h:1/delete?name=(&re=1", 400, "Bad Request",
                          "invalid regex \"(\": missing ): (\nsecond line\n") ==
        "taba-cli: 400 Bad Request: invalid regex \"(\": missing ): ( (POST http://h:1/delete?name=(&re=1)\n");
  CHECK(format_http_error("GET", "http://h:1/x", 404, "Not Found", "") == "taba-cli: 404 Not Found (GET http://h:1/x)\n");
  CHECK(format_http_error("GET", "http://h:1/x", 503, "", "busy\n") == "taba-cli: 503: busy (GET http://h:1/x)\n");

  const std::string url = "http://127.0.0.1:8300";
  CHECK(connect_failure_reason("connection refused: " + url, url) == "connection refused");
  CHECK(connect_failure_reason("timed out after 5 ms connecting to " + url, url) == "timed out after 5 ms");
  CHECK(connect_failure_reason("cannot connect to " + url + ": Network is unreachable", url) ==
        "Network is unreachable");
  CHECK(connect_failure_reason("cannot resolve host 'x': Name or service not known: http://x:80", "http://x:80") ==
        "cannot resolve host 'x': Name or service not known");
  CHECK(connect_failure_reason("something else", url) == "something else");
}

TEST_CASE("admin subcommands against a server: requests, token, output and exit codes", "[cli]") {
  CannedHttpServer server([](const std::string& request) {
    auto starts = [&](const char* prefix) { return request.rfind(prefix, 0) == 0; };
    if (starts("POST /gc ")) {
      return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", "states_pruned: 2\nnames_removed: 1\n")};
    }
    if (starts("POST /check?dry=false ")) {
      return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", "problems: 1\n  fixed x\n")};
    }
    if (starts("GET /servers ")) {
      return CannedHttpServer::Reply{canned_response("200 OK", "application/json", "{\"h:1\": [\"fe\", \"be\"]}")};
    }
    if (starts("POST /post ")) return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", "")};
    if (starts("POST /delete?name=gone ")) {
      return CannedHttpServer::Reply{canned_response("403 Forbidden", "text/plain", "admin token required\n"), true};
    }
    return CannedHttpServer::Reply{canned_response("404 Not Found", "text/plain", "no route\n"), true};
  });

  CliRun gc = run_cli({"--server", server.url(), "--token", "s3cret", "gc"});
  CHECK(gc.code == 0);
  CHECK(gc.out == "states_pruned: 2\nnames_removed: 1\n");
  CHECK(gc.err.empty());
  REQUIRE(server.requests().size() == 1);
  CHECK_THAT(server.requests().back(), Catch::Contains("\r\nAuthorization: Bearer s3cret\r\n"));
  CHECK_THAT(server.requests().back(), Catch::Contains("\r\nAccept: text/plain\r\n"));

  ::setenv("TABA_TOKEN", "envtoken", 1);
  CliRun check = run_cli({"check", "--repair", "--server", server.url()});
  CliRun servers = run_cli({"servers", "--json", "--server", server.url()});
  CliRun forbidden = run_cli({"--server", server.url(), "delete", "gone"});
  CliRun help = run_cli({"--help"});
  ::unsetenv("TABA_TOKEN");
  CHECK(check.code == 0);
  CHECK(check.out == "problems: 1\n  fixed x\n");
  CHECK_THAT(server.requests()[1], Catch::Contains("\r\nAuthorization: Bearer envtoken\r\n"));
  CHECK(servers.out == "{\"h:1\": [\"fe\", \"be\"]}\n");
  CHECK_THAT(server.requests()[2], Catch::Contains("\r\nAccept: application/json\r\n"));
  CHECK(forbidden.code == taba::cli::kExitServerError);
  CHECK(forbidden.out.empty());
  CHECK(forbidden.err ==
        "taba-cli: 403 Forbidden: admin token required (POST " + server.url() + "/delete?name=gone)\n");
  // The token is never printed.
  for (const CliRun* r : {&check, &servers, &forbidden, &help}) {
    CHECK(r->out.find("envtoken") == std::string::npos);
    CHECK(r->err.find("envtoken") == std::string::npos);
  }

  CliRun post = run_cli({"--server", server.url(), "post", "--client", "c1", "n", "TotalsCounter", "2", "-1.5"});
  CHECK(post.code == 0);
  CHECK(post.out.empty());
  CHECK(post.err.empty());
  std::string request = server.requests().back();
  CHECK_THAT(request, Catch::StartsWith("POST /post HTTP/1.1\r\n"));
  CHECK_THAT(request, Catch::Contains("\r\n\r\n1\n\nc1\n\nn\n[\"TotalsCounter\", "));
  CHECK_THAT(request, Catch::EndsWith(", \"-1.5\"]\n\n\n"));

  std::string body = "1\n\nc2\n\nn\n[\"TotalsCounter\", 1400000000, \"1\"]\n\n\n";
  CliRun from_stdin = run_cli({"--server", server.url(), "post", "--file", "-"}, body);
  CHECK(from_stdin.code == 0);
  CHECK_THAT(server.requests().back(), Catch::EndsWith("\r\n\r\n" + body));

  CliRun no_file = run_cli({"--server", server.url(), "post", "--file", "/nonexistent/body.txt"});
  CHECK(no_file.code == taba::cli::kExitUsage);
  CHECK(no_file.err == "taba-cli: cannot read /nonexistent/body.txt: No such file or directory\n");
  CliRun bad_value = run_cli({"--server", server.url(), "post", "--client", "c", "n", "Gauge", "red"});
  CHECK(bad_value.code == taba::cli::kExitUsage);
  CHECK_THAT(bad_value.err, Catch::StartsWith("taba-cli: VALUE \"red\" is not JSON text"));
  CHECK_THAT(bad_value.err, Catch::EndsWith("Run 'taba-cli post --help' for usage.\n"));

  CliRun not_found = run_cli({"--server", server.url(), "flush"});
  CHECK(not_found.code == taba::cli::kExitServerError);
  CHECK(not_found.err == "taba-cli: 404 Not Found: no route (POST " + server.url() + "/flush)\n");

  CliRun sub_help = run_cli({"flush", "--help"});
  CHECK(sub_help.code == 0);
  CHECK_THAT(sub_help.out, Catch::StartsWith("Usage: taba-cli [GLOBAL OPTIONS] flush\n"));
}
