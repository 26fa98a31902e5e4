// /projection and /supertabs against a real tabad.
#include <catch2/catch.hpp>

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

  auto refused = run_process({TABA_CLI_PATH, "--server", "http://127.0.0.1:" + std::to_string(free_port()), "names"});
  REQUIRE(refused.ok());
  CHECK(refused.value().exit_code == 2);
  CHECK(refused.value().err.find("cannot connect to http://127.0.0.1:") != std::string::npos);
}
