// URL parsing, percent-encoding, query strings and host:port addresses
// (src/http/url.h).
#include "http/url.h"

#include <catch2/catch.hpp>

using taba::http::parse_query;
using taba::http::parse_url;
using taba::http::percent_decode;
using taba::http::percent_encode;
using taba::http::split_host_port;

TEST_CASE("parse_url splits host, port and target", "[url]") {
  auto u = parse_url("http://127.0.0.1:8300/tabs?name=a,b");
  REQUIRE(u.ok());
  CHECK(u->scheme == "http");
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 8300);
  CHECK(u->target == "/tabs?name=a,b");
}

TEST_CASE("parse_url defaults", "[url]") {
  auto u = parse_url("HTTP://example.com");
  REQUIRE(u.ok());
  CHECK(u->host == "example.com");
  CHECK(u->port == 80);
  CHECK(u->target == "/");

  auto q = parse_url("http://h:1?x=1");
  REQUIRE(q.ok());
  CHECK(q->port == 1);
  CHECK(q->target == "/?x=1");

  auto frag = parse_url("http://h/p#frag");
  REQUIRE(frag.ok());
  CHECK(frag->target == "/p");
}

TEST_CASE("parse_url handles bracketed IPv6 hosts", "[url]") {
  auto u = parse_url("http://[::1]:8300/healthz");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == 8300);
  CHECK(u->target == "/healthz");

  auto v = parse_url("http://[fe80::1]");
  REQUIRE(v.ok());
  CHECK(v->host == "fe80::1");
  CHECK(v->port == 80);
}

TEST_CASE("parse_url rejects malformed URLs with a reason", "[url]") {
  struct Case {
    const char* url;
    const char* reason;
  };
  const Case cases[] = {
      {"127.0.0.1:8300", "http://"},   {"https://h/", "scheme 'https'"}, {"http://", "no host"},
      {"http://:80/", "no host"},      {"http://h:/", "empty port"},     {"http://h:0/", "1..65535"},
      {"http://h:65536/", "1..65535"}, {"http://h:8x/", "not a number"}, {"http://[::1/", "unterminated"},
      {"http://[::1]x/", "after ']'"}, {"http://user@h/", "user info"},  {"http://h/a b", "space"},
  };
  for (const Case& c : cases) {
    INFO(c.url);
    auto u = parse_url(c.url);
    REQUIRE_FALSE(u.ok());
    CHECK_THAT(u.status().message(), Catch::Contains(c.reason));
  }
}

TEST_CASE("percent_encode escapes all but unreserved bytes", "[url]") {
  CHECK(percent_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(percent_encode("a,b c/d") == "a%2Cb%20c%2Fd");
  CHECK(percent_encode(std::string("\x00\xff", 2)) == "%00%FF");
  CHECK(percent_encode("") == "");
}

TEST_CASE("percent_decode reverses percent_encode", "[url]") {
  std::string raw;
  for (int i = 0; i < 256; ++i) raw.push_back(static_cast<char>(i));
  std::string out;
  REQUIRE(percent_decode(percent_encode(raw), &out));
  CHECK(out == raw);
}

TEST_CASE("percent_decode keeps '+' and refuses malformed escapes", "[url]") {
  std::string out;
  REQUIRE(percent_decode("a+b%2c%2C%2B%20", &out));
  CHECK(out == "a+b,,+ ");
  CHECK_FALSE(percent_decode("%", &out));
  CHECK_FALSE(percent_decode("ab%4", &out));
  CHECK_FALSE(percent_decode("%zz", &out));
  CHECK_FALSE(percent_decode("%4g", &out));
}

TEST_CASE("parse_query splits and decodes in order", "[url]") {
  auto q = parse_query("name=a%2Cb&&client=x+y&flag&empty=&=v");  // '+' is literal
  REQUIRE(q.ok());
  REQUIRE(q->size() == 5);
  CHECK((*q)[0].key == "name");
  CHECK((*q)[0].value == "a,b");
  CHECK((*q)[1].key == "client");
  CHECK((*q)[1].value == "x+y");
  CHECK((*q)[2].key == "flag");
  CHECK((*q)[2].value == "");
  CHECK((*q)[3].key == "empty");
  CHECK((*q)[3].value == "");
  CHECK((*q)[4].key == "");
  CHECK((*q)[4].value == "v");

  auto empty = parse_query("");
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  auto eq_in_value = parse_query("re=a=b");
  REQUIRE(eq_in_value.ok());
  CHECK((*eq_in_value)[0].value == "a=b");
}

TEST_CASE("parse_query names the malformed segment", "[url]") {
  auto q = parse_query("a=1&name=bad%zz&c=3");
  REQUIRE_FALSE(q.ok());
  CHECK_THAT(q.status().message(), Catch::Contains("name=bad%zz"));
}

TEST_CASE("http helpers: split_host_port", "[http]") {
  std::string host;
  int port = 0;
  CHECK(split_host_port("127.0.0.1:8300", &host, &port));
  CHECK(host == "127.0.0.1");
  CHECK(port == 8300);
  CHECK(split_host_port("[::1]:80", &host, &port));
  CHECK(host == "::1");
  CHECK(port == 80);
  CHECK(split_host_port("example.com:0", &host, &port));
  CHECK(host == "example.com");
  CHECK(port == 0);
  CHECK_FALSE(split_host_port("127.0.0.1", &host, &port));
  CHECK_FALSE(split_host_port("127.0.0.1:", &host, &port));
  CHECK_FALSE(split_host_port(":80", &host, &port));
  CHECK_FALSE(split_host_port("::1:80", &host, &port));
  CHECK_FALSE(split_host_port("[::1]80", &host, &port));
  CHECK_FALSE(split_host_port("[::1]", &host, &port));
  CHECK_FALSE(split_host_port("host:65536", &host, &port));
  CHECK_FALSE(split_host_port("host:8a", &host, &port));
  CHECK_FALSE(split_host_port("", &host, &port));
}
