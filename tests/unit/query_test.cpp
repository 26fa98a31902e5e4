#include <catch2/catch.hpp>

#include "core/validation.h"
#include "core/matcher.h"
#include "query/accept.h"
#include "query/params.h"

using namespace taba;

TEST_CASE("Accept negotiation reads lists, q-values and wildcards", "[accept]") {
  std::vector<std::string> offered{"text/plain", "application/json", "application/json-detailed"};
  CHECK(query::negotiate("", offered) == "text/plain");
  CHECK(query::negotiate("*/*", offered) == "text/plain");
  CHECK(query::negotiate("application/json", offered) == "application/json");
  CHECK(query::negotiate("APPLICATION/JSON", offered) == "application/json");
  CHECK(query::negotiate("application/json, text/plain", offered) == "application/json");
  CHECK(query::negotiate("text/plain;q=0.5, application/json", offered) == "application/json");
  CHECK(query::negotiate("application/json-detailed", offered) == "application/json-detailed");
  CHECK(query::negotiate("application/*;q=0.9, text/plain;q=0.1", offered) == "application/json");
  CHECK(query::negotiate("text/*", offered) == "text/plain");
  CHECK(query::negotiate("image/png", offered).empty());
  CHECK(query::negotiate("application/json;q=0, */*;q=0.1", offered) == "text/plain");
}

TEST_CASE("query parameters: lists, regexes, JSON bodies, unknown keys", "[params]") {
  auto p = query::parse_params("name=a,b&client=c%2Cd", "", {"name", "client", "re"});
  REQUIRE(p.ok());
  CHECK(p->names == std::vector<std::string>{"a", "b"});
  CHECK(p->clients == std::vector<std::string>{"c", "d"});
  CHECK_FALSE(p->re);

  auto bad = query::parse_params("name=a&bogus=1&other", "", {"name", "client", "re"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().rfind("unknown parameter(s): bogus, other", 0) == 0);

  auto re = query::parse_params("name=a{1,2}&re=1", "", {"name", "re"});
  REQUIRE(re.ok());
  CHECK(re->re);
  REQUIRE(re->names.size() == 1);
  CHECK(re->names[0] == "a{1,2}");
  auto m = Matcher::make(re->names, true, true);
  REQUIRE(m.ok());
  CHECK(m->matches("aa"));
  CHECK_FALSE(m->matches("aaa"));  // whole-string match, not a prefix

  auto body = query::parse_params("", R"({"name": ["x", "y"], "re": false})", {"name", "re"});
  REQUIRE(body.ok());
  CHECK(body->names == std::vector<std::string>{"x", "y"});

  auto badre = Matcher::make({"(unclosed"}, true, true);
  REQUIRE_FALSE(badre.ok());
  CHECK(badre.status().message().find("invalid regular expression") != std::string::npos);

  auto badjson = query::parse_params("", "{not json", {"name"});
  CHECK_FALSE(badjson.ok());
}

TEST_CASE("identifiers follow the rules of docs/api.md 4.1", "[validation]") {
  CHECK(check_identifier("web01.example:8080/a?b@c!$()*+;=-_~").empty());
  CHECK(check_identifier("") == "is empty");
  CHECK(check_identifier(std::string(257, 'a')).find("257 bytes") != std::string::npos);
  CHECK(check_identifier(std::string(256, 'a')).empty());
  for (char c : std::string(" #&,'[]%\"|")) {
    INFO("char " << c);
    CHECK_FALSE(check_identifier(std::string("a") + c).empty());
  }
  CHECK(check_identifier("caf\xc3\xa9") == "contains byte 0xc3 at byte 3");
}
