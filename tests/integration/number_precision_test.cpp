// Number precision per reply format, through a real tabad: text/plain keeps
// Taba's rounded numbers; application/json, json-detailed and
// /metrics/tabs carry every digit.
#include <catch2/catch.hpp>

#include <ctime>
#include <string>

#include "harness.h"

using namespace taba::test;

namespace {
std::string body_of(const taba::Result<taba::http::ClientResponse>& r) {
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
  return r.value().body;
}
}  // namespace

TEST_CASE("numbers: text rounds as Taba did, JSON and /metrics keep full precision", "[e2e][precision]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  const double t = static_cast<double>(std::time(nullptr));
  const auto body = v1_body(
      {{"web01",
        {{"jobs_s",
          {event_line("CounterGroup", t, "0.001"), event_line("CounterGroup", t, "0.001"),
           event_line("CounterGroup", t, "0.001")}},
         {"query_s",
          {event_line("PercentileGroup", t, "0.0012"), event_line("PercentileGroup", t, "0.0034")}},
         {"bytes", {event_line("TotalsCounter", t, "0.5"), event_line("TotalsCounter", t, "0.25")}}}}});
  REQUIRE(p.post("/post", body).value().status == 200);

  // text/plain: Taba's printf forms, which its consumers parse.
  const std::string text = body_of(p.get("/tabs?name=jobs_s,query_s,bytes"));
  CHECK(text.find(R"(bytes: {"count": 2, "total": 0.75, "average": 0.38})") != std::string::npos);
  CHECK(text.find(R"(jobs_s: {"1m": {"count": 3, "total": 0.00, "average": 0.00}, )") != std::string::npos);
  CHECK(text.find(R"("pct": {"count": 3, "total": 0.003000, "pct": [0.00, 0.00, )") != std::string::npos);
  CHECK(text.find(R"(query_s: {"1m": {"count": 2, "total": 0.004600, "pct": [0.00, 0.00, )") !=
        std::string::npos);

  // application/json: the same values with every digit.
  const std::string json = body_of(p.get("/tabs?name=jobs_s,query_s,bytes", "application/json"));
  CHECK(json.find(R"("bytes": {"count": 2, "total": 0.75, "average": 0.375})") != std::string::npos);
  CHECK(json.find(R"("jobs_s": {"1m": {"count": 3, "total": 0.003, "average": 0.001}, )") !=
        std::string::npos);
  CHECK(json.find(R"("pct": {"count": 3, "total": 0.003, "pct": [0.001, 0.001, )") != std::string::npos);
  CHECK(json.find(R"("query_s": {"1m": {"count": 2, "total": 0.0046, "pct": [0.0012, 0.0012, )") !=
        std::string::npos);
  CHECK(json.find("0.00,") == std::string::npos);

  // json-detailed: per bucket, also exact; TotalsCounter has no detailed
  // form and gives its exact JSON.
  const std::string detailed = body_of(p.get("/tabs?name=jobs_s,bytes", "application/json-detailed"));
  CHECK(detailed.find(", 3, 0.003]") != std::string::npos);
  CHECK(detailed.find(R"("bytes": {"count": 2, "total": 0.75, "average": 0.375})") != std::string::npos);

  // /projection and /supertabs answer in the same forms.
  CHECK(body_of(p.get("/projection?name=bytes")) ==
        "(bytes, web01): {\"count\": 2, \"total\": 0.75, \"average\": 0.38}\n");
  CHECK(body_of(p.get("/supertabs?name=bytes", "application/json")) ==
        R"({"count": 2, "total": 0.75, "average": 0.375})");

  // /metrics/tabs: the same digits as application/json.
  const std::string metrics = body_of(p.get("/metrics/tabs?name=jobs_s,query_s,bytes"));
  CHECK(metrics.find("jobs_s_sum_in_window{window=\"1m\"} 0.003\n") != std::string::npos);
  CHECK(metrics.find("jobs_s_total 0.003\n") != std::string::npos);
  CHECK(metrics.find("jobs_s{window=\"all\",quantile=\"0.5\"} 0.001\n") != std::string::npos);
  CHECK(metrics.find("query_s{window=\"1m\",quantile=\"0.25\"} 0.0012\n") != std::string::npos);
  CHECK(metrics.find("bytes_total 0.75\n") != std::string::npos);
}
