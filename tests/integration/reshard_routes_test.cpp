// /reshard and `taba-cli reshard` on the embedded store, a real tabad: the
// placement says there is nothing to place, a move is refused with 400
// naming why, bad parameters are 400 naming them, the tokens of GET (query)
// and POST (admin) are checked, and /status and /servers show the
// placement. Moves between Redis shards are tested with Redis elsewhere.
#include <catch2/catch.hpp>

#include <fstream>

#include "admin_scenario.h"
#include "harness.h"

using namespace taba::test;

namespace {

constexpr const char* kAdmin = "admin-token-0123456789";
constexpr const char* kQuery = "query-token-0123456789";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<taba::http::Header> bearer(const char* token) { return {{"Authorization", std::string("Bearer ") + token}}; }

ProcessOutput cli(const TabadProcess& p, std::vector<std::string> args) {
  args.insert(args.begin(), {TABA_CLI_PATH, "--server", p.url()});
  auto r = run_process(args);
  REQUIRE(r.ok());
  INFO("taba-cli " << Catch::Detail::stringify(args) << "\nstdout: " << r.value().out
                   << "\nstderr: " << r.value().err);
  return r.value();
}

}  // namespace

TEST_CASE("embedded store: /reshard has nothing to place or move, and says why", "[e2e][reshard]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  const std::string none = "{\"supported\":false,\"epoch\":0,\"vbuckets\":0,\"shards\":[],\"move\":null,\"recent\":[]}";
  CHECK(reply_body(p.get("/reshard", "application/json")) == none);
  CHECK(reply_body(p.get("/reshard?format=json")) == none);
  CHECK(reply_body(p.get("/reshard")) ==
        "placement: none (the embedded store is one store; re-sharding needs the Redis store)\n");

  CHECK(reply_body(p.post("/reshard?to=x&vbuckets=0-9", ""), 400) ==
        "re-sharding needs the Redis store; the embedded store is one store with nothing to move\n");
  CHECK(reply_body(p.post("/reshard", "{\"to\": \"x\", \"vbuckets\": \"3\"}"), 400) ==
        "re-sharding needs the Redis store; the embedded store is one store with nothing to move\n");
  CHECK(reply_body(p.post("/reshard?cancel=1", ""), 400) ==
        "re-sharding needs the Redis store; the embedded store is one store with nothing to move\n");
  CHECK(reply_body(p.post("/reshard?to=x&vbuckets=9-1", ""), 400) ==
        "vbuckets \"9-1\": FIRST (9) is greater than LAST (1)\n");
  CHECK(reply_body(p.post("/reshard?to=x&vbuckets=1-x", ""), 400) ==
        "vbuckets must be FIRST-LAST (two unsigned integers, FIRST <= LAST) or one vbucket N, not \"1-x\"\n");
  CHECK(reply_body(p.post("/reshard?vbuckets=0-9", ""), 400) ==
        "POST /reshard needs to=SHARD (the target shard) with vbuckets=FIRST-LAST, or cancel=1\n");
  CHECK(reply_body(p.post("/reshard?to=x&vbuckets=0-9&force=1", ""), 400) ==
        "unknown parameter(s): force (allowed: to, vbuckets, cancel, format)\n");
  CHECK(reply_body(p.get("/reshard?format=xml"), 400) == "format must be json or text, not \"xml\"\n");
  reply_body(p.get("/reshard", "application/xml"), 406);
  auto put = taba::http::fetch("PUT", p.url() + "/reshard", {}, "", 5000);
  REQUIRE(put.ok());
  CHECK(put.value().status == 405);
  CHECK(put.value().header("allow") == "GET, POST");

  // /status ends with the placement; /servers shows each server's epoch.
  std::string status = reply_body(p.get("/status"));
  CHECK(status.rfind("store: embedded\n", 0) == 0);
  CHECK(status.ends_with("\nplacement: none (the embedded store is one store; re-sharding needs the Redis store)\n"));
  std::string status_json = reply_body(p.get("/status", "application/json"));
  CHECK(contains(status_json, "\"latency_p99_s\": "));
  CHECK(contains(status_json, ", \"placement_epoch\": 0}"));
  CHECK(status_json.ends_with(", \"placement\": " + none + "}"));
  std::string servers = reply_body(p.get("/servers"));
  CHECK(servers.rfind("epoch 0  ", 0) == 0);
  CHECK(servers.ends_with(":" + std::to_string(p.port()) + ": fe,be\n"));

  // taba-cli: --status prints the placement; a move is the server's 400.
  ProcessOutput shown = cli(p, {"reshard", "--status"});
  CHECK(shown.exit_code == 0);
  CHECK(shown.out == "placement: none (the embedded store is one store; re-sharding needs the Redis store)\n");
  CHECK(shown.err.empty());
  CHECK(cli(p, {"reshard", "--status", "--json"}).out == none + "\n");
  ProcessOutput refused = cli(p, {"reshard", "--to", "x", "--vbuckets", "0-9", "--wait"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.out.empty());
  CHECK(refused.err == "taba-cli: 400 Bad Request: re-sharding needs the Redis store; the embedded store is one "
                       "store with nothing to move (POST " +
                           p.url() + "/reshard?to=x&vbuckets=0-9)\n");
  ProcessOutput usage = cli(p, {"reshard", "--to", "x"});
  CHECK(usage.exit_code == 2);
  CHECK(contains(usage.err, "reshard --to needs --vbuckets FIRST-LAST"));
}

TEST_CASE("auth: GET /reshard needs the query token, POST /reshard the admin token", "[e2e][reshard][auth]") {
  TempDir dir("reshard-auth");
  std::string config = dir.path + "/taba.toml";
  std::ofstream(config) << "[auth]\nadmin_token = \"" << kAdmin << "\"\nquery_token = \"" << kQuery << "\"\n";
  TabadProcess p;
  REQUIRE(p.start({"--config", config}).ok());
  auto get_with = [&](std::vector<taba::http::Header> headers) {
    return taba::http::fetch("GET", p.url() + "/reshard", headers, "", 5000);
  };
  auto post_with = [&](std::vector<taba::http::Header> headers) {
    return taba::http::fetch("POST", p.url() + "/reshard?to=x&vbuckets=0-9", headers, "", 5000);
  };
  CHECK(status_of(get_with({})) == 401);
  CHECK(status_of(get_with(bearer(kQuery))) == 200);
  CHECK(status_of(get_with(bearer(kAdmin))) == 200);

  auto no_token = post_with({});
  CHECK(status_of(no_token) == 401);
  CHECK(body_text(no_token) == "admin routes require a bearer token (Authorization: Bearer TOKEN)\n");
  auto query_token = post_with(bearer(kQuery));
  CHECK(status_of(query_token) == 403);
  CHECK(body_text(query_token) == "the bearer token is not valid for admin routes\n");
  CHECK(status_of(post_with(bearer(kAdmin))) == 400);  // past the check: the embedded store's refusal

  ProcessOutput denied = cli(p, {"--token", kQuery, "reshard", "--cancel"});
  CHECK(denied.exit_code == 1);
  CHECK(contains(denied.err, "403 Forbidden: the bearer token is not valid for admin routes"));
  CHECK(cli(p, {"--token", kQuery, "reshard", "--status"}).exit_code == 0);
}
