// The query service (/tabs, /projection, /supertabs, /names, /clients,
// /types) against a fake store whose view holds real plugin states: exact
// and regex name filters, client filters, unknown names, what it asks the
// store to fetch, and its refusals.
#include "query/query_service.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "fake_store.h"
#include "plugin_batches.h"

using namespace taba;

namespace {

// web01 and web02 post "hits" and "color", web01 also "only1"; web03's one
// state ("gone") was pruned, so web03 is a client without states.
class QueryFixture {
 public:
  QueryFixture() : service(&store) {
    const double t = wall_now();
    view.apply(test::decode_v1(test::v1_body({{"web01", "hits", "TotalsCounter", "1"},
                                              {"web01", "hits", "TotalsCounter", "2"},
                                              {"web01", "color", "Gauge", "\"red\""},
                                              {"web01", "only1", "TotalsCounter", "5"},
                                              {"web02", "hits", "TotalsCounter", "3"},
                                              {"web02", "color", "Gauge", "\"red\""},
                                              {"web03", "gone", "TotalsCounter", "9"}},
                                             t),
                               t)
                   .batch,
               t);
    view.erase_state("gone", "web03", t);
    store.view = &view;
  }

  // Sends one request (target "/route?query") as the HTTP server hands it
  // over, and returns the reply (the fake store answers at once).
  http::Response ask(const std::string& target, const std::string& accept = "", const std::string& method = "GET",
                     const std::string& body = "") {
    http::Request req;
    req.method = method;
    req.target = target;
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    req.query = q == std::string::npos ? "" : target.substr(q + 1);
    if (!accept.empty()) req.headers.push_back({"accept", accept});
    std::optional<http::Response> reply;
    service.handle(req, body, [&reply](http::Response r) {
      REQUIRE_FALSE(reply);  // done runs once
      reply = std::move(r);
    });
    REQUIRE(reply);
    return std::move(*reply);
  }
  // The body of a 200 reply.
  std::string ok(const std::string& target, const std::string& accept = "") {
    http::Response r = ask(target, accept);
    INFO(target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return r.body;
  }

  test::FakeView view;
  test::FakeStore store;
  query::QueryService service;
};

const char* const kHits = R"({"count": 3, "total": 6.00, "average": 2.00})";
const char* const kOnly1 = R"({"count": 1, "total": 5.00, "average": 5.00})";

}  // namespace

TEST_CASE("query service: /tabs with exact and regex name filters, text and JSON", "[query_service]") {
  QueryFixture f;
  for (const char* route : {"/tabs", "/projection", "/supertabs", "/names", "/clients", "/types"}) {
    CHECK(query::QueryService::handles(route));
  }
  CHECK_FALSE(query::QueryService::handles("/post"));
  http::Response all = f.ask("/tabs");
  CHECK(all.status == 200);
  CHECK(all.content_type == "text/plain; charset=utf-8");
  CHECK(all.body == std::string("color: {\"red\": 2}\nhits: ") + kHits + "\nonly1: " + kOnly1 + "\n");
  // Without a client filter the aggregates are enough.
  REQUIRE(f.store.needs.size() == 1);
  CHECK(f.store.needs[0].aggregates);
  CHECK_FALSE(f.store.needs[0].states);
  CHECK_FALSE(f.store.needs[0].client_list);

  http::Response json = f.ask("/tabs", "application/json");
  CHECK(json.content_type == "application/json");
  CHECK(json.body == R"({"color": {"red": 2}, "hits": {"count": 3, "total": 6, "average": 2}, )"
                     R"("only1": {"count": 1, "total": 5, "average": 5}})");

  CHECK(f.ok("/tabs?name=hits") == std::string("hits: ") + kHits + "\n");
  CHECK(f.ok("/tabs?name=only1,hits") == std::string("hits: ") + kHits + "\nonly1: " + kOnly1 + "\n");
  CHECK(f.ok("/tabs?name=(hits|only1)&re=1") == std::string("hits: ") + kHits + "\nonly1: " + kOnly1 + "\n");
  CHECK(f.ok("/tabs?name=o.*&re=1") == std::string("only1: ") + kOnly1 + "\n");
  CHECK(f.ok("/tabs?name=hit&re=1").empty());  // a regex matches the whole name

  // Parameters from a JSON body when the query string is empty.
  CHECK(f.ask("/tabs", "", "POST", R"({"name": ["color"]})").body == "color: {\"red\": 2}\n");
}

TEST_CASE("query service: client filters reduce the chosen clients' states", "[query_service]") {
  QueryFixture f;
  CHECK(f.ok("/tabs?name=hits&client=web02") == "hits: {\"count\": 1, \"total\": 3.00, \"average\": 3.00}\n");
  REQUIRE(f.store.needs.size() == 1);
  CHECK_FALSE(f.store.needs[0].aggregates);
  CHECK(f.store.needs[0].states);
  CHECK(f.store.needs[0].client_list);

  CHECK(f.ok("/tabs?client=web0[13]&re=1") ==
        "color: {\"red\": 1}\nhits: {\"count\": 2, \"total\": 3.00, \"average\": 1.50}\nonly1: " + std::string(kOnly1) +
            "\n");
  CHECK(f.ok("/tabs?name=only1&client=web02").empty());  // web02 never posted it
  CHECK(f.ok("/tabs?client=web03").empty());              // a client without states
  CHECK(f.ok("/tabs?client=nobody").empty());

  CHECK(f.ok("/projection?name=hits") == "(hits, web01): {\"count\": 2, \"total\": 3.00, \"average\": 1.50}\n"
                                          "(hits, web02): {\"count\": 1, \"total\": 3.00, \"average\": 3.00}\n");
  CHECK(f.ok("/projection?name=hits,color&client=web02") ==
        "(color, web02): {\"red\": 1}\n(hits, web02): {\"count\": 1, \"total\": 3.00, \"average\": 3.00}\n");
  CHECK(f.ok("/supertabs?name=hits,only1") == "{\"count\": 4, \"total\": 11.00, \"average\": 2.75}\n");
  CHECK(f.ok("/supertabs?name=hits,only1&client=web02") == "{\"count\": 1, \"total\": 3.00, \"average\": 3.00}\n");
}

TEST_CASE("query service: /names, /clients and /types with filters", "[query_service]") {
  QueryFixture f;
  CHECK(f.ok("/names") == "color\nhits\nonly1\n");
  CHECK(f.ok("/names", "application/json") == R"(["color", "hits", "only1"])");
  CHECK(f.ok("/names?client=web02") == "color\nhits\n");
  CHECK(f.ok("/names?client=web03").empty());
  CHECK(f.ok("/names?name=.*1&re=1") == "only1\n");
  CHECK(f.ok("/names?name=hits,only1&client=web02") == "hits\n");

  // A client whose every state was pruned is not listed.
  CHECK(f.ok("/clients") == "web01\nweb02\n");
  CHECK(f.store.needs.back().client_list);
  CHECK(f.ok("/clients", "application/json") == R"(["web01", "web02"])");
  CHECK(f.ok("/clients?client=web02,web03") == "web02\n");
  CHECK(f.ok("/clients?client=web.*&re=1") == "web01\nweb02\n");
  CHECK(f.ok("/clients?client=.*1&re=1") == "web01\n");

  CHECK(f.ok("/types") == "color: Gauge\nhits: TotalsCounter\nonly1: TotalsCounter\n");
  CHECK(f.ok("/types?name=hits,color", "application/json") == R"({"color": "Gauge", "hits": "TotalsCounter"})");
}

TEST_CASE("query service: an unknown name matches nothing, and bad requests are refused", "[query_service]") {
  QueryFixture f;
  CHECK(f.ok("/tabs?name=nope").empty());
  CHECK(f.ok("/tabs?name=nope", "application/json") == "{}");
  CHECK(f.ok("/tabs?name=nope,hits") == std::string("hits: ") + kHits + "\n");
  CHECK(f.ok("/projection?name=nope").empty());
  CHECK(f.ok("/names?name=nope").empty());
  CHECK(f.ok("/names?name=nope", "application/json") == "[]");
  CHECK(f.ok("/types?name=nope").empty());
  http::Response super = f.ask("/supertabs?name=nope");
  CHECK(super.status == 404);
  CHECK(super.body == "no tab matches the name filter\n");

  http::Response mixed = f.ask("/supertabs?name=color,hits");
  CHECK(mixed.status == 400);
  CHECK(mixed.body == "supertabs needs names of one type: color is Gauge but hits is TotalsCounter\n");
  http::Response bad_re = f.ask("/tabs?name=(&re=1");
  CHECK(bad_re.status == 400);
  CHECK(bad_re.body.find("invalid regular expression") != std::string::npos);
  http::Response unknown = f.ask("/clients?name=hits");
  CHECK(unknown.status == 400);
  CHECK(unknown.body.rfind("unknown parameter(s): name", 0) == 0);
  http::Response method = f.ask("/tabs", "", "DELETE");
  CHECK(method.status == 405);
  CHECK(method.body == "/tabs does not accept DELETE; use GET or POST\n");
  http::Response png = f.ask("/names", "image/png");
  CHECK(png.status == 406);
  CHECK(png.body == "none of the types in Accept: image/png is available; offered: text/plain, application/json\n");
  CHECK(f.store.needs.size() == 9);  // the last four were refused before fetching

  f.store.fetch_status = Status::Unavailable("shard 2 is down");
  http::Response down = f.ask("/tabs?name=hits");
  CHECK(down.status == 503);
  CHECK(down.body == "the store did not answer: shard 2 is down\n");
  REQUIRE(down.headers.size() == 1);
  CHECK(down.headers[0].name == "Retry-After");
  CHECK(down.headers[0].value == "1");
}
