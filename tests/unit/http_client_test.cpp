// The blocking HTTP client (src/http/client.h) against a scripted server.
#include "http/client.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "canned_http_server.h"

using taba::http::ClientConnection;
using taba::http::fetch;
using taba::test::canned_response;
using taba::test::CannedHttpServer;

namespace {

CannedHttpServer::Reply ok_reply(const std::string& body) {
  return {canned_response("200 OK", "text/plain", body)};
}

std::string inflate_all(const std::string& data, int window_bits) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, window_bits) == Z_OK);
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  REQUIRE(rc == Z_STREAM_END);
  return out;
}

}  // namespace

TEST_CASE("client sends a well-formed request and reads a Content-Length reply", "[http_client]") {
  CannedHttpServer server([](const std::string&) {
    return CannedHttpServer::Reply{"HTTP/1.1 201 Created\r\nX-Thing:  v1 \r\nContent-Length: 5\r\n\r\nhello"};
  });
  auto r = fetch("POST", server.url() + "/post?x=1", {{"Content-Type", "text/plain"}}, "a=b", 2000);
  REQUIRE(r.ok());
  CHECK(r->status == 201);
  CHECK(r->reason == "Created");
  CHECK(r->body == "hello");
  CHECK(r->header("x-thing") == "v1");
  CHECK(r->header("content-length") == "5");
  CHECK(r->header("absent").empty());
  REQUIRE(server.requests().size() == 1);
  const std::string req = server.requests()[0];
  CHECK_THAT(req, Catch::StartsWith("POST /post?x=1 HTTP/1.1\r\n"));
  CHECK_THAT(req, Catch::Contains("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
  CHECK_THAT(req, Catch::Contains("\r\nContent-Type: text/plain\r\n"));
  CHECK_THAT(req, Catch::Contains("\r\nContent-Length: 3\r\n"));
  CHECK_THAT(req, Catch::EndsWith("\r\n\r\na=b"));
}

TEST_CASE("client reads chunked and close-delimited bodies", "[http_client]") {
  SECTION("chunked") {
    CannedHttpServer server([](const std::string&) {
      return CannedHttpServer::Reply{
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"};
    });
    auto r = fetch("GET", server.url() + "/", {}, "", 2000);
    REQUIRE(r.ok());
    CHECK(r->body == "hello, world");
  }
  SECTION("close-delimited") {
    CannedHttpServer server([](const std::string&) {
      return CannedHttpServer::Reply{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true};
    });
    auto r = fetch("GET", server.url() + "/", {}, "", 2000);
    REQUIRE(r.ok());
    CHECK(r->body == "until the end");
  }
  SECTION("HEAD has no body despite Content-Length") {
    CannedHttpServer server([](const std::string&) {
      return CannedHttpServer::Reply{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"};
    });
    auto conn = ClientConnection::connect("127.0.0.1", server.port(), 2000);
    REQUIRE(conn.ok());
    auto r = conn->request("HEAD", "/", {}, "", 2000);
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body.empty());
    CHECK(conn->is_open());
  }
  SECTION("a 100 Continue before the final response is skipped") {
    CannedHttpServer server([](const std::string&) {
      return CannedHttpServer::Reply{
          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"};
    });
    auto r = fetch("POST", server.url() + "/", {}, "x", 2000);
    REQUIRE(r.ok());
    CHECK(r->status == 204);
    CHECK(r->header("x-a") == "b");
  }
}

TEST_CASE("client keeps the connection alive and reconnects once when the server closed it",
          "[http_client]") {
  int n = 0;
  CannedHttpServer server([&](const std::string&) {
    ++n;
    // The second reply closes the connection without saying so, like an
    // idle timeout on the server would.
    return CannedHttpServer::Reply{canned_response("200 OK", "text/plain", std::to_string(n)), n == 2};
  });
  auto conn = ClientConnection::connect("127.0.0.1", server.port(), 2000);
  REQUIRE(conn.ok());
  CHECK(conn->base_url() == server.url());
  for (int i = 1; i <= 4; ++i) {
    auto r = conn->request("GET", "/", {}, "", 2000);
    REQUIRE(r.ok());
    CHECK(r->body == std::to_string(i));
    // Let the server's close arrive before the next request.
    if (i == 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(server.connections() == 2);
  CHECK(server.requests().size() == 4);
}

TEST_CASE("client honours Connection: close", "[http_client]") {
  CannedHttpServer server([](const std::string&) {
    return CannedHttpServer::Reply{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                                   true};
  });
  auto conn = ClientConnection::connect("127.0.0.1", server.port(), 2000);
  REQUIRE(conn.ok());
  REQUIRE(conn->request("GET", "/", {}, "", 2000).ok());
  CHECK_FALSE(conn->is_open());
  REQUIRE(conn->request("GET", "/", {}, "", 2000).ok());
  CHECK(server.connections() == 2);
}

TEST_CASE("client errors are readable", "[http_client]") {
  SECTION("refused") {
    int port = 0;
    {
      CannedHttpServer gone([](const std::string&) { return ok_reply(""); });
      port = gone.port();
    }
    auto r = fetch("GET", "http://127.0.0.1:" + std::to_string(port) + "/x", {}, "", 2000);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message() == "connection refused: http://127.0.0.1:" + std::to_string(port));
  }
  SECTION("timeout") {
    CannedHttpServer server([](const std::string&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      return ok_reply("late");
    });
    auto start = std::chrono::steady_clock::now();
    auto r = fetch("GET", server.url() + "/", {}, "", 100);
    auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("timed out after 100 ms"));
    CHECK_THAT(r.status().message(), Catch::Contains(server.url()));
    CHECK(took < std::chrono::milliseconds(350));
  }
  SECTION("malformed response") {
    CannedHttpServer server([](const std::string&) {
      return CannedHttpServer::Reply{"NOT HTTP\r\n\r\n", true};
    });
    auto r = fetch("GET", server.url() + "/", {}, "", 2000);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("malformed HTTP response from " + server.url()));
  }
  SECTION("truncated body") {
    CannedHttpServer server([](const std::string&) {
      return CannedHttpServer::Reply{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true};
    });
    auto r = fetch("GET", server.url() + "/", {}, "", 2000);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("in the middle of a response"));
  }
  SECTION("bad URL") {
    auto r = fetch("GET", "ftp://x/", {}, "", 2000);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("ftp"));
  }
}

TEST_CASE("zlib and gzip helpers produce streams zlib reads back", "[http_client]") {
  std::string data;
  for (int i = 0; i < 5000; ++i) data += "[\"CounterGroup\", 1400000000.25, \"" + std::to_string(i) + "\"]\n";
  std::string z = taba::http::zlib_compress(data);
  REQUIRE(z.size() > 2);
  CHECK(static_cast<unsigned char>(z[0]) == 0x78);
  CHECK(static_cast<unsigned char>(z[1]) == 0x9c);
  CHECK(z.size() < data.size() / 4);
  CHECK(inflate_all(z, 15) == data);

  std::string g = taba::http::gzip_compress(data, 9);
  REQUIRE(g.size() > 2);
  CHECK(static_cast<unsigned char>(g[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(g[1]) == 0x8b);
  CHECK(inflate_all(g, 15 + 16) == data);

  CHECK(inflate_all(taba::http::zlib_compress(""), 15).empty());
}
