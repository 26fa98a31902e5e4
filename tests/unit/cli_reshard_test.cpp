// taba-cli reshard: its options, the requests it sends, and --wait driven
// through scripted GET /reshard answers (a move that advances and ends
// done, ends otherwise, vanishes, a cancel, a timeout, a 409); then
// run() against a scripted server for the 202 and 409 replies.
#include <catch2/catch.hpp>

#include <deque>
#include <sstream>

#include "canned_http_server.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/request.h"
#include "cli/reshard_wait.h"

using taba::Result;
using taba::Status;
using taba::cli::Env;
using taba::cli::HttpCall;
using taba::cli::Invocation;
using taba::cli::parse_command_line;
using taba::cli::parse_placement_json;
using taba::cli::plan_request;
using taba::cli::reshard_and_wait;
using taba::test::canned_response;
using taba::test::CannedHttpServer;

namespace {

Invocation parse_ok(std::vector<std::string> args) {
  args.insert(args.begin(), "taba-cli");
  auto r = parse_command_line(args, Env{});
  INFO("args: " << Catch::Detail::stringify(args));
  REQUIRE(r.ok());
  return r.value();
}

std::string parse_error(std::vector<std::string> args) {
  args.insert(args.begin(), "taba-cli");
  auto r = parse_command_line(args, Env{});
  INFO("args: " << Catch::Detail::stringify(args));
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

// A move's JSON as GET /reshard writes it (routes/placement_format.h).
std::string move(const std::string& id, const std::string& phase, int moved, int left, const std::string& error = "") {
  return "{\"id\":\"" + id + "\",\"from\":\"shard1\",\"to\":\"shard3\",\"first\":0,\"last\":340,\"phase\":\"" + phase +
         "\",\"started\":1765000000.123,\"elapsed_s\":4.200,\"names_moved\":" + std::to_string(moved) +
         ",\"names_left\":" + std::to_string(left) + ",\"bytes_moved\":" + std::to_string(moved * 1024) +
         ",\"driver\":\"fe-1\",\"driver_alive\":true,\"error\":\"" + error + "\"}";
}

std::string placement(const std::string& move_json, const std::string& recent = "") {
  return "{\"supported\":true,\"epoch\":3,\"vbuckets\":1024,\"shards\":[{\"shard\":\"shard1\",\"ranges\":[[0,340]]}]"
         ",\"move\":" +
         (move_json.empty() ? std::string("null") : move_json) + ",\"recent\":[" + recent + "]}";
}

// Answers each request with the next scripted reply (the last one again
// when they run out); records "METHOD target Accept".
struct Script {
  std::deque<Result<taba::http::ClientResponse>> replies;
  std::vector<std::string> seen;

  void add(int status, std::string body) {
    taba::http::ClientResponse r;
    r.status = status;
    r.reason = status == 200 ? "OK" : status == 202 ? "Accepted" : status == 409 ? "Conflict" : "Service Unavailable";
    r.body = std::move(body);
    replies.push_back(std::move(r));
  }
  void fail(std::string why) { replies.push_back(Status::Unavailable(std::move(why))); }

  Result<taba::http::ClientResponse> operator()(const HttpCall& call) {
    std::string accept;
    for (const auto& h : call.headers) {
      if (h.name == "Accept") accept = h.value;
    }
    seen.push_back(call.method + " " + call.target + " " + accept);
    REQUIRE(!replies.empty());
    Result<taba::http::ClientResponse> r = replies.front();
    if (replies.size() > 1) replies.pop_front();
    return r;
  }
};

struct Waited {
  int code;
  std::string out, err;
};

Waited wait(const std::vector<std::string>& args, Script* script) {
  Invocation inv = parse_ok(args);
  Result<HttpCall> post = plan_request(inv, 0);
  REQUIRE(post.ok());
  std::ostringstream out, err;
  int code = reshard_and_wait(inv, *post, [script](const HttpCall& c) { return (*script)(c); }, 1, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("reshard: one of --to/--vbuckets, --status, --cancel, with --wait and --timeout where they fit", "[cli][reshard]") {
  Invocation start = parse_ok({"reshard", "--to", "shard3", "--vbuckets", "0-340"});
  CHECK(start.to == "shard3");
  CHECK(start.vbuckets == "0-340");
  CHECK_FALSE(start.wait);
  CHECK(start.wait_timeout_s == 3600);
  Invocation waiting = parse_ok({"reshard", "--cancel", "--wait", "--timeout=60"});
  CHECK(waiting.cancel);
  CHECK(waiting.wait);
  CHECK(waiting.wait_timeout_s == 60);
  CHECK(parse_ok({"reshard", "--status"}).placement);

  CHECK(parse_error({"reshard"}) == "reshard needs --to SHARD --vbuckets FIRST-LAST, --status or --cancel");
  CHECK(parse_error({"reshard", "--status", "--cancel"}) ==
        "reshard takes one of --to/--vbuckets, --status and --cancel");
  CHECK(parse_error({"reshard", "--to", "s", "--status"}) ==
        "reshard takes one of --to/--vbuckets, --status and --cancel");
  CHECK(parse_error({"reshard", "--to", "s"}) == "reshard --to needs --vbuckets FIRST-LAST");
  CHECK(parse_error({"reshard", "--vbuckets", "1"}) == "reshard --vbuckets needs --to SHARD");
  CHECK(parse_error({"reshard", "--to=", "--vbuckets", "1"}) == "--to needs a shard name");
  CHECK(parse_error({"reshard", "--status", "--wait"}) == "--wait goes with --to or --cancel, not --status");
  CHECK(parse_error({"reshard", "--cancel", "--timeout", "5"}) == "--timeout goes with --wait");
  CHECK(parse_error({"reshard", "--cancel", "--wait", "--timeout", "0"}) ==
        "--timeout must be a positive number of seconds, not '0'");
  CHECK(parse_error({"reshard", "--status", "extra"}) == "unexpected argument 'extra'");
  CHECK(parse_error({"status", "--cancel"}) == "'status' has no option '--cancel'");
}

TEST_CASE("reshard's requests", "[cli][reshard]") {
  auto plan = [](std::vector<std::string> args) {
    auto r = plan_request(parse_ok(std::move(args)), 0);
    REQUIRE(r.ok());
    std::string accept;
    for (const auto& h : r->headers) {
      if (h.name == "Accept") accept = h.value;
    }
    return r->method + " " + r->target + " " + accept;
  };
  CHECK(plan({"reshard", "--status"}) == "GET /reshard text/plain");
  CHECK(plan({"reshard", "--status", "--json"}) == "GET /reshard application/json");
  CHECK(plan({"reshard", "--to", "shard 3", "--vbuckets", "0-340"}) ==
        "POST /reshard?to=shard%203&vbuckets=0-340 text/plain");
  CHECK(plan({"reshard", "--to", "s", "--vbuckets", "7", "--wait"}) == "POST /reshard?to=s&vbuckets=7 application/json");
  CHECK(plan({"reshard", "--cancel"}) == "POST /reshard?cancel=1 text/plain");
}

TEST_CASE("reshard's JSON: the move and the recent moves", "[cli][reshard]") {
  auto p = parse_placement_json(placement(move("m-2", "states", 3, 4), move("m-1", "done", 9, 0)));
  REQUIRE(p.ok());
  CHECK(p->supported);
  REQUIRE(p->move);
  CHECK(p->move->id == "m-2");
  CHECK(p->move->names_left == 4);
  CHECK(p->move->bytes_moved == 3072);
  CHECK(p->move->last == 340);
  CHECK(p->move->driver_alive);
  REQUIRE(p->recent.size() == 1);
  CHECK(p->recent[0].phase == "done");
  CHECK(taba::cli::progress_line(*p->move) == "m-2: states, 3 names moved, 4 left, 3.0 KiB, 4.2 s");

  auto none = parse_placement_json("{\"supported\":false,\"epoch\":0,\"vbuckets\":0,\"shards\":[],\"move\":null,"
                                   "\"recent\":[]}");
  REQUIRE(none.ok());
  CHECK_FALSE(none->move);
  CHECK_FALSE(parse_placement_json("{\"supported\":true}").ok());
  CHECK_FALSE(parse_placement_json("{\"supported\":true,\"move\":{\"id\":\"x\"},\"recent\":[]}").ok());
  CHECK_FALSE(parse_placement_json("[").ok());
}

TEST_CASE("reshard --wait: progress when something changes, then the placement, and done exits 0", "[cli][reshard]") {
  Script s;
  s.add(202, placement(move("m-2", "bindings", 0, 0)));
  s.add(200, placement(move("m-2", "bindings", 0, 0)));  // nothing new: no line
  s.fail("cannot connect to http://h:1: connection refused");  // a restart: retried
  s.fail("cannot connect to http://h:1: connection refused");
  s.add(200, placement(move("m-2", "states", 10, 5)));
  s.add(503, "no reachable master\n");
  s.add(200, placement("", move("m-2", "done", 15, 0) + "," + move("m-1", "cancelled", 1, 0)));
  s.add(200, "placement epoch 4 (1024 vbuckets)\n  shard1  341-1023\n  shard3  0-340\nno move in progress\n");
  Waited w = wait({"reshard", "--to", "shard3", "--vbuckets", "0-340", "--wait", "--server", "http://h:1"}, &s);
  CHECK(w.code == 0);
  CHECK(w.out ==
        "m-2: bindings, 0 names moved, 0 left, 0 B, 4.2 s\n"
        "m-2: states, 10 names moved, 5 left, 10.0 KiB, 4.2 s\n"
        "m-2: done, 15 names moved, 0 left, 15.0 KiB, 4.2 s\n"
        "placement epoch 4 (1024 vbuckets)\n  shard1  341-1023\n  shard3  0-340\nno move in progress\n");
  // One line per streak of failing polls.
  CHECK(w.err ==
        "taba-cli: polling: cannot connect to http://h:1: connection refused; retrying\n"
        "taba-cli: polling: 503 Service Unavailable: no reachable master; retrying\n");
  REQUIRE(s.seen.size() == 8);
  CHECK(s.seen[0] == "POST /reshard?to=shard3&vbuckets=0-340 application/json");
  CHECK(s.seen[1] == "GET /reshard application/json");
  CHECK(s.seen[7] == "GET /reshard text/plain");
}

TEST_CASE("reshard --wait: a move that ends otherwise, or vanishes, exits 1", "[cli][reshard]") {
  Script cancelled;
  cancelled.add(202, placement(move("m-2", "bindings", 0, 0)));
  cancelled.add(200, placement("", move("m-2", "cancelled", 0, 0, "shard3: READONLY")));
  cancelled.add(200, "placement epoch 3 (1024 vbuckets)\n");
  Waited w = wait({"reshard", "--to", "shard3", "--vbuckets", "0-340", "--wait"}, &cancelled);
  CHECK(w.code == 1);
  CHECK(w.out.ends_with("m-2: cancelled, 0 names moved, 0 left, 0 B, 4.2 s\nplacement epoch 3 (1024 vbuckets)\n"));
  CHECK(w.err == "taba-cli: move m-2 ended cancelled, not done (last error: shard3: READONLY)\n");

  Script gone;
  gone.add(202, placement(move("m-2", "bindings", 0, 0)));
  gone.add(200, placement(move("m-3", "bindings", 0, 0), move("m-1", "done", 1, 0)));
  gone.add(200, "placement epoch 3 (1024 vbuckets)\n");
  w = wait({"reshard", "--to", "shard3", "--vbuckets", "0-340", "--wait"}, &gone);
  CHECK(w.code == 1);
  CHECK(w.err == "taba-cli: move m-2 is no longer in progress and not among the recent moves\n");

  Script none;
  none.add(202, placement(""));
  w = wait({"reshard", "--to", "shard3", "--vbuckets", "0-340", "--wait"}, &none);
  CHECK(w.code == 1);
  CHECK(w.err == "taba-cli: the server's answer shows no move in progress to wait for\n");
}

TEST_CASE("reshard --cancel --wait waits for the move that was in progress to end cancelled", "[cli][reshard]") {
  Script s;
  s.add(200, placement(move("m-2", "states", 5, 5)));   // the GET naming the move
  s.add(202, placement(move("m-2", "states", 5, 5)));   // the cancel
  s.add(200, placement("", move("m-2", "cancelled", 5, 0)));
  s.add(200, "{\"supported\":true}");  // --json: the placement as it is
  Waited w = wait({"reshard", "--cancel", "--wait", "--json"}, &s);
  CHECK(w.code == 0);
  CHECK(w.out == "{\"supported\":true}\n");  // progress goes to stderr with --json
  CHECK(w.err == "m-2: states, 5 names moved, 5 left, 5.0 KiB, 4.2 s\nm-2: cancelled, 5 names moved, 0 left, 5.0 KiB, 4.2 s\n");
  REQUIRE(s.seen.size() == 4);
  CHECK(s.seen[0] == "GET /reshard application/json");
  CHECK(s.seen[1] == "POST /reshard?cancel=1 application/json");
  CHECK(s.seen[3] == "GET /reshard application/json");

  Script idle;
  idle.add(200, placement(""));
  idle.add(202, placement(""));
  w = wait({"reshard", "--cancel", "--wait"}, &idle);
  CHECK(w.code == 1);
  CHECK(w.err == "taba-cli: no move was in progress to cancel\n");
}

TEST_CASE("reshard --wait gives up after --timeout with exit 3, and a 409 exits 1 with the message",
          "[cli][reshard]") {
  Script slow;
  slow.add(202, placement(move("m-2", "states", 1, 9)));
  slow.add(200, placement(move("m-2", "states", 1, 9)));
  Invocation inv = parse_ok({"reshard", "--to", "shard3", "--vbuckets", "0-340", "--wait"});
  inv.wait_timeout_s = 0.02;
  std::ostringstream out, err;
  int code = reshard_and_wait(inv, plan_request(inv, 0).value(), [&](const HttpCall& c) { return slow(c); }, 1, out,
                              err);
  CHECK(code == taba::cli::kExitGaveUp);
  CHECK(err.str() ==
        "taba-cli: gave up waiting for move m-2 after 0.02 s, phase states; it goes on (see 'taba-cli reshard "
        "--status'; 'taba-cli reshard --cancel' stops it)\n");

  Script busy;
  busy.add(409, "a move is in progress: m-1 (shard1 -> shard2), driven by fe-1\n");
  Waited w = wait({"reshard", "--to", "shard3", "--vbuckets", "0-340", "--wait", "--server", "http://h:1"}, &busy);
  CHECK(w.code == 1);
  CHECK(w.out.empty());
  CHECK(w.err == "taba-cli: 409 Conflict: a move is in progress: m-1 (shard1 -> shard2), driven by fe-1 (POST "
                 "http://h:1/reshard?to=shard3&vbuckets=0-340)\n");
}

TEST_CASE("taba-cli reshard against a server: 202 prints the placement, 409 exits 1", "[cli][reshard]") {
  const std::string text = "placement epoch 3 (1024 vbuckets)\n  shard1  0-1023\nno move in progress\n";
  CannedHttpServer server([&](const std::string& request) {
    auto starts = [&](const char* prefix) { return request.rfind(prefix, 0) == 0; };
    if (starts("POST /reshard?to=shard3&vbuckets=0-9 ")) {
      return CannedHttpServer::Reply{canned_response("202 Accepted", "text/plain", text)};
    }
    if (starts("POST /reshard?to=shard2&vbuckets=0-9 ")) {
      return CannedHttpServer::Reply{
          canned_response("409 Conflict", "text/plain", "a move is in progress: m-1 (shard1 -> shard3)\n")};
    }
    if (starts("GET /reshard ")) return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", text)};
    return CannedHttpServer::Reply{canned_response("404 Not Found", "text/plain", "no route\n"), true};
  });
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"taba-cli", "--server", server.url()});
    std::ostringstream out, err;
    int code = taba::cli::run(args, out, err);
    return Waited{code, out.str(), err.str()};
  };
  Waited started = run({"reshard", "--to", "shard3", "--vbuckets", "0-9"});
  CHECK(started.code == 0);
  CHECK(started.out == text);
  CHECK(started.err.empty());
  Waited refused = run({"reshard", "--to", "shard2", "--vbuckets", "0-9"});
  CHECK(refused.code == 1);
  CHECK(refused.err == "taba-cli: 409 Conflict: a move is in progress: m-1 (shard1 -> shard3) (POST " + server.url() +
                           "/reshard?to=shard2&vbuckets=0-9)\n");
  Waited status = run({"reshard", "--status"});
  CHECK(status.code == 0);
  CHECK(status.out == text);
}
