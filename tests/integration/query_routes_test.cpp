// /projection and /supertabs against a real tabad.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <ctime>

#include "harness.h"

using namespace taba::test;

namespace {
std::string body_of(const taba::Result<taba::http::ClientResponse>& r) {
  REQUIRE(r.ok());
  return r.value().body;
}
}  // namespace

TEST_CASE("projection shows each client's state, name outer in JSON", "[e2e][query]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = static_cast<double>(std::time(nullptr));
  auto body = v1_body({{"web02", {{"n", {event_line("TotalsCounter", t, "[5]")}}}},
                       {"web01", {{"n", {event_line("TotalsCounter", t, "[1]"), event_line("TotalsCounter", t, "2")}},
                                  {"g", {event_line("Gauge", t, "\"up\"")}}}}});
  REQUIRE(p.post("/post", body).value().status == 200);

  CHECK(body_of(p.get("/projection?name=n")) ==
        "(n, web01): {\"count\": 2, \"total\": 3.00, \"average\": 1.50}\n"
        "(n, web02): {\"count\": 1, \"total\": 5.00, \"average\": 5.00}\n");
  CHECK(
      body_of(p.get("/projection", "application/json")) ==
      "{\"g\": {\"web01\": {\"up\": 1}}, \"n\": {\"web01\": {\"count\": 2, \"total\": 3, \"average\": 1.5}, "
      "\"web02\": {\"count\": 1, \"total\": 5, \"average\": 5}}}");
  CHECK(body_of(p.get("/projection?client=web02")) ==
        "(n, web02): {\"count\": 1, \"total\": 5.00, \"average\": 5.00}\n");
  CHECK(body_of(p.get("/projection?name=nope")).empty());
}

TEST_CASE("supertabs reduces several names of one type, and refuses mixed types", "[e2e][query]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = static_cast<double>(std::time(nullptr));
  auto body = v1_body({{"c1",
                        {{"req.a", {event_line("TotalsCounter", t, "1")}},
                         {"req.b", {event_line("TotalsCounter", t, "2"), event_line("TotalsCounter", t, "3")}},
                         {"color", {event_line("Gauge", t, "\"red\"")}}}},
                       {"c2", {{"req.a", {event_line("TotalsCounter", t, "10")}}}}});
  REQUIRE(p.post("/post", body).value().status == 200);

  CHECK(body_of(p.get("/supertabs?name=req.a,req.b")) == "{\"count\": 4, \"total\": 16.00, \"average\": 4.00}\n");
  CHECK(body_of(p.get("/supertabs?name=req%5C..*&re=1", "application/json")) ==
        "{\"count\": 4, \"total\": 16, \"average\": 4}");
  CHECK(body_of(p.get("/supertabs?name=req.a,req.b&client=c1")) ==
        "{\"count\": 3, \"total\": 6.00, \"average\": 2.00}\n");

  auto mixed = p.get("/supertabs?name=req.a,color");
  REQUIRE(mixed.ok());
  CHECK(mixed.value().status == 400);
  CHECK(mixed.value().body.find("supertabs needs names of one type") != std::string::npos);
  CHECK(p.get("/supertabs?name=none").value().status == 404);
}

TEST_CASE("'+' is literal in name and client, expired values leave a name out, / lists the routes", "[e2e][query]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = static_cast<double>(std::time(nullptr));
  auto body = v1_body({{"c+1",
                        {{"a+b", {event_line("TotalsCounter", t, "1")}},
                         // Expired 10 s ago: kept (it hides older values) but nothing to show.
                         {"gone", {event_line("ExpiryGauge", t, fmt::format("[\"x\", {}]", t - 10))}},
                         {"live", {event_line("ExpiryGauge", t, fmt::format("[\"y\", {}]", t + 3600))}}}}});
  REQUIRE(p.post("/post", body).value().status == 200);

  // Unencoded '+' is the name's own character, as in a path.
  CHECK(body_of(p.get("/tabs?name=a+b")) == "a+b: {\"count\": 1, \"total\": 1.00, \"average\": 1.00}\n");
  CHECK(body_of(p.get("/tabs?name=a%2Bb&client=c+1")) == "a+b: {\"count\": 1, \"total\": 1.00, \"average\": 1.00}\n");
  CHECK(body_of(p.get("/projection?name=a+b")) == "(a+b, c+1): {\"count\": 1, \"total\": 1.00, \"average\": 1.00}\n");

  // The expired ExpiryGauge has nothing to show: left out of /tabs and
  // /projection, in text and JSON, with and without a client filter.
  CHECK(body_of(p.get("/tabs?name=gone,live")) == "live: {\"y\": 1}\n");
  CHECK(body_of(p.get("/tabs?name=gone,live", "application/json")) == "{\"live\": {\"y\": 1}}");
  CHECK(body_of(p.get("/tabs?name=gone&client=c+1")).empty());
  CHECK(body_of(p.get("/projection?name=gone")).empty());
  CHECK(body_of(p.get("/names")) == "a+b\ngone\nlive\n");  // still held until GC

  // "/" points to the web page and the routes; an unknown route lists them.
  auto root = p.get("/");
  REQUIRE(root.ok());
  CHECK(root.value().status == 200);
  CHECK(root.value().body.find("the web page is /ui") != std::string::npos);
  CHECK(root.value().body.find("/post /post_zip") != std::string::npos);
  CHECK(root.value().body.find("/tabs /projection") != std::string::npos);
  auto unknown = p.get("/nope");
  REQUIRE(unknown.ok());
  CHECK(unknown.value().status == 404);
  CHECK(unknown.value().body.rfind("no such route: /nope (the web page is /ui; routes: /post", 0) == 0);
}

TEST_CASE("taba-cli against a real server: agg, proj, super, names, exit codes", "[e2e][cli]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = static_cast<double>(std::time(nullptr));
  auto body = v1_body({{"c1", {{"lat", {event_line("CounterGroup", t, "2"), event_line("CounterGroup", t, "4")}},
                               {"tot", {event_line("TotalsCounter", t, "1")}}}},
                       {"c2", {{"tot", {event_line("TotalsCounter", t, "3")}}}}});
  REQUIRE(p.post("/post", body).value().status == 200);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {TABA_CLI_PATH, "--server", p.url()});
    auto r = run_process(args);
    REQUIRE(r.ok());
    return r.value();
  };
  auto agg = cli({"agg", "lat"});
  CHECK(agg.exit_code == 0);
  CHECK(agg.out ==
        "lat: {\n\"1m\": {\"count\": 2, \"total\": 6.00},\n\"10m\": {\"count\": 2, \"total\": 6.00},\n"
        "\"1h\": {\"count\": 2, \"total\": 6.00},\n\"1d\": {\"count\": 2, \"total\": 6.00},\n"
        "\"pct\": [2.00, 2.00, 4.00, 4.00, 4.00, 4.00, 4.00]}\n");
  // agg reads JSON: renders it does not lay out by window keep the JSON's
  // full precision. proj and super print the server's text (Taba's form)
  // unless --json asks for JSON.
  CHECK(cli({"agg", "tot"}).out == "tot: {\"count\": 2, \"total\": 4, \"average\": 2}\n");
  auto proj = cli({"proj", "tot", "--client", "c2"});
  CHECK(proj.exit_code == 0);
  CHECK(proj.out == "(tot, c2): {\"count\": 1, \"total\": 3.00, \"average\": 3.00}\n");
  CHECK(cli({"--json", "proj", "tot", "--client", "c2"}).out ==
        "{\"tot\": {\"c2\": {\"count\": 1, \"total\": 3, \"average\": 3}}}\n");
  auto super = cli({"super", "tot"});
  CHECK(super.out == "{\"count\": 2, \"total\": 4.00, \"average\": 2.00}\n");
  CHECK(cli({"names", "--client", "c2"}).out == "tot\n");
  CHECK(cli({"agg"}).exit_code == 2);
  auto missing = cli({"agg", "nope"});
  CHECK(missing.exit_code == 1);

  // A post whose body is applied but for a refused name block: the
  // refusal on stderr, exit 1.
  std::string partial = v1_body({{"c3", {{"tot", {event_line("TotalsCounter", t, "5")}}, {"lat", {event_line("Gauge", t, "1")}}}}});
  auto posted = run_process({TABA_CLI_PATH, "--server", p.url(), "post", "--file", "-"}, partial);
  REQUIRE(posted.ok());
  CHECK(posted.value().exit_code == 1);
  CHECK(posted.value().out.empty());
  CHECK(posted.value().err == "taba-cli: 1 name block(s) refused, the rest applied (POST " + p.url() +
                                  "/post):\nline 9: type \"Gauge\" conflicts with type \"CounterGroup\" bound to name "
                                  "\"lat\"\n");
  CHECK(cli({"super", "tot"}).out == "{\"count\": 3, \"total\": 9.00, \"average\": 3.00}\n");

  auto refused = run_process({TABA_CLI_PATH, "--server", "http://127.0.0.1:" + std::to_string(free_port()), "names"});
  REQUIRE(refused.ok());
  CHECK(refused.value().exit_code == 2);
  CHECK(refused.value().err.find("cannot connect to http://127.0.0.1:") != std::string::npos);
}
