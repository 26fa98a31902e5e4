// The ingest route (POST /post, /post_zip) against a fake store, driven the
// way the HTTP server drives a route (ingest_driver.h): start() once the
// headers are complete, the body in chunks, on_complete(), the reply
// through the request's Exchange. Partial acceptance, bodies refused whole, the store's
// own refusals (400, 422, 503) and the reply texts.
#include "routes/ingest.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "fake_store.h"
#include "http/client.h"
#include "ingest_driver.h"
#include "plugin_batches.h"

using namespace taba;
using taba::test::Event;
using taba::test::IngestDriver;
using taba::test::Post;
using taba::test::refused;

namespace {

bool is_hex_id(const std::string& id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); });
}

// A body whose second and third blocks are refused: "color" is bound to
// TotalsCounter in the store (line 9), and "bad" has a payload TotalsCounter
// refuses (line 12).
std::string mixed_body(double t) {
  return test::v1_body({{"web01", "hits", "TotalsCounter", "1"},
                        {"web01", "color", "Gauge", "\"red\""},
                        {"web01", "bad", "TotalsCounter", "\"x\""},
                        {"web02", "hits", "TotalsCounter", "2"}},
                       t);
}

const char* const kColorConflict = R"(type "Gauge" conflicts with type "TotalsCounter" bound to name "color")";

}  // namespace

TEST_CASE("ingest: a good body goes to the store whole and is answered 200 once the store has it", "[ingest]") {
  test::FakeStore store;
  store.bound["hits"] = test::handler_of("TotalsCounter");
  store.hold_submits = true;
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string body = test::v1_body({{"web01", "hits", "TotalsCounter", "1"},
                                          {"web01", "hits", "TotalsCounter", "2"},
                                          {"web01", "color", "Gauge", "\"red\""},
                                          {"web02", "hits", "TotalsCounter", "3"}},
                                         t);

  auto exchange = driver.post(body);
  CHECK_FALSE(exchange->replied());  // not before the store says the batch is durable
  REQUIRE(store.submitted.size() == 1);
  const test::FakeStore::Submitted batch = store.submitted[0];
  CHECK(test::batch_blocks(batch.batch) ==
        std::vector<std::string>{"web01/hits/TotalsCounter/2", "web01/color/Gauge/1", "web02/hits/TotalsCounter/1"});
  CHECK(batch.new_bindings == store::Bindings{{"color", test::handler_of("Gauge")}});
  CHECK_FALSE(batch.id.from_client);
  CHECK(is_hex_id(batch.id.value));
  CHECK(driver.ingest.stats().bodies_ok == 0);

  store.release();
  REQUIRE(exchange->replies() == 1);
  CHECK(exchange->response().status == 200);
  CHECK(exchange->response().body.empty());
  CHECK(exchange->header("Taba-Refused-Blocks") == "(none)");
  CHECK(driver.ingest.stats().bodies_ok == 1);
  CHECK(driver.ingest.stats().events_received == 4);
  CHECK(driver.ingest.stats().bytes_received == body.size());

  // The client's batch id goes to the store as the client's; a body
  // without one gets a new id each time.
  store.hold_submits = false;
  CHECK(driver.post(body, {"/post", "POST", {{"taba-batch-id", "retry-7"}}})->response().status == 200);
  REQUIRE(store.submitted.size() == 2);
  CHECK(store.submitted[1].id.value == "retry-7");
  CHECK(store.submitted[1].id.from_client);
  CHECK(driver.post(body)->response().status == 200);
  REQUIRE(store.submitted.size() == 3);
  CHECK(store.submitted[2].id.value != store.submitted[0].id.value);

  // Compressed bodies decode to the same batch.
  CHECK(driver.post(http::gzip_compress(body), {"/post", "POST", {{"content-encoding", "GZIP"}}})->response().status ==
        200);
  CHECK(driver.post(http::zlib_compress(body), {"/post_zip", "POST", {}})->response().status == 200);
  REQUIRE(store.submitted.size() == 5);
  CHECK(test::batch_blocks(store.submitted[3].batch) == test::batch_blocks(batch.batch));
  CHECK(test::batch_blocks(store.submitted[4].batch) == test::batch_blocks(batch.batch));
}

TEST_CASE("ingest: refused blocks are listed in a 200 and the rest of the body is submitted", "[ingest]") {
  test::FakeStore store;
  store.bound["color"] = test::handler_of("TotalsCounter");
  IngestDriver driver(&store);
  const double t = wall_now();
  const std::string payload_reason =
      R"(TotalsCounter payload "\"x\"" rejected: TotalsCounter payload must be a finite number, true or false, or an )"
      R"(array whose first element is one)";

  auto text = driver.post(mixed_body(t));
  REQUIRE(text->replies() == 1);
  CHECK(text->response().status == 200);
  CHECK(text->response().content_type == "text/plain; charset=utf-8");
  CHECK(text->response().body == "line 9: " + std::string(kColorConflict) + "\nline 12: " + payload_reason + "\n");
  CHECK(text->header("Taba-Refused-Blocks") == "2");
  REQUIRE(store.submitted.size() == 1);
  CHECK(test::batch_blocks(store.submitted[0].batch) ==
        std::vector<std::string>{"web01/hits/TotalsCounter/1", "web02/hits/TotalsCounter/1"});
  // "bad" was refused, so it binds nothing.
  CHECK(store.submitted[0].new_bindings == store::Bindings{{"hits", test::handler_of("TotalsCounter")}});

  const routes::IngestStats& stats = driver.ingest.stats();
  CHECK(stats.bodies_ok == 1);
  CHECK(stats.bodies_partial == 1);
  CHECK(stats.events_received == 2);
  CHECK(stats.events_refused == 2);
  CHECK(refused(stats, "type") == 1);
  CHECK(refused(stats, "payload") == 1);
  CHECK(refused(stats, "name") == 0);

  auto json = driver.post(mixed_body(t), {"/post", "POST", {{"accept", "application/json"}}});
  CHECK(json->response().status == 200);
  CHECK(json->response().content_type == "application/json");
  CHECK(json->response().body ==
        R"({"events": 2, "refused": [{"line": 9, "client": "web01", "name": "color", "events": 1, "reason": "type )"
        R"(\"Gauge\" conflicts with type \"TotalsCounter\" bound to name \"color\""}, {"line": 12, "client": )"
        R"("web01", "name": "bad", "events": 1, "reason": "TotalsCounter payload \"\\\"x\\\"\" rejected: )"
        R"(TotalsCounter payload must be a finite number, true or false, or an array whose first element is one"}]})"
        "\n");
  CHECK(json->header("Taba-Refused-Blocks") == "2");
  CHECK(stats.bodies_partial == 2);
}

TEST_CASE("ingest: a body with no block to apply answers 400 and submits nothing", "[ingest]") {
  test::FakeStore store;
  store.bound["color"] = test::handler_of("TotalsCounter");
  IngestDriver driver(&store);
  const double t = wall_now();

  auto all_refused = driver.post(test::v1_body({{"web01", "color", "Gauge", "\"red\""}, {"web01", "x", "Nope", "1"}}, t));
  CHECK(all_refused->response().status == 400);
  CHECK(all_refused->response().body == "line 6: " + std::string(kColorConflict) +
                                            "\nline 9: unknown type \"Nope\" (no loaded plugin serves it)\n");
  CHECK(all_refused->header("Taba-Refused-Blocks") == "2");
  CHECK(refused(driver.ingest.stats(), "type") == 2);

  // Unreadable framing: nothing of the body is applied.
  auto framing = driver.post("2\n\nweb01\n\nhits\n[\"TotalsCounter\", 1400000000, \"1\"]\n\n\n");
  CHECK(framing->response().status == 400);
  CHECK(framing->response().body.rfind("line 1: ", 0) == 0);
  CHECK(framing->header("Taba-Refused-Blocks") == "(none)");

  CHECK(store.submitted.empty());
  CHECK(driver.ingest.stats().bodies_rejected == 2);
  CHECK(driver.ingest.stats().bodies_ok == 0);

  // An empty v1 body has nothing to refuse either: 200, nothing submitted.
  CHECK(driver.post("1\n\n")->response().status == 200);
  CHECK(store.submitted.empty());
}

TEST_CASE("ingest: the store's refusals become 503 (with Retry-After and the batch id), 400 and 422",
          "[ingest]") {
  test::FakeStore store;
  IngestDriver driver(&store);
  const std::string body = test::v1_body({{"web01", "hits", "TotalsCounter", "1"}}, wall_now());

  store.submit_status = Status::Unavailable("the WAL queue is full");
  auto unavailable = driver.post(body);
  CHECK(unavailable->response().status == 503);
  CHECK(unavailable->response().body == "the WAL queue is full\n");
  CHECK(unavailable->header("Retry-After") == "1");
  // The id the route made up, so that a retry with it applies at most once.
  REQUIRE(store.submitted.size() == 1);
  CHECK(unavailable->header("Taba-Batch-Id") == store.submitted[0].id.value);
  CHECK(is_hex_id(store.submitted[0].id.value));
  // A client's own id is not echoed.
  auto with_id = driver.post(body, {"/post", "POST", {{"taba-batch-id", "b-1"}}});
  CHECK(with_id->response().status == 503);
  CHECK(with_id->header("Taba-Batch-Id") == "(none)");
  store.submit_status = Status::IoError("write failed: No space left on device");
  CHECK(driver.post(body)->response().status == 503);
  CHECK(driver.ingest.stats().bodies_unavailable == 3);

  store.submit_status = Status::Invalid(kColorConflict);
  auto conflict = driver.post(body);
  CHECK(conflict->response().status == 400);
  CHECK(conflict->response().body == std::string(kColorConflict) + "\n");
  CHECK(conflict->header("Retry-After") == "(none)");

  store.submit_status = Status::Limit("the store holds 2 names and this body adds 1 new");
  auto limit = driver.post(body);
  CHECK(limit->response().status == 422);
  CHECK(limit->response().body == "the store holds 2 names and this body adds 1 new\n");

  const routes::IngestStats& stats = driver.ingest.stats();
  CHECK(stats.bodies_rejected == 2);
  CHECK(stats.bodies_over_limit == 1);
  CHECK(stats.bodies_ok == 0);
  CHECK(stats.events_received == 0);
}

TEST_CASE("ingest: requests refused before or while their body is read", "[ingest]") {
  test::FakeStore store;
  Config::Ingest options;
  options.max_events_per_body = 2;
  IngestDriver driver(&store, options);
  const double t = wall_now();
  const std::string body = test::v1_body({{"web01", "hits", "TotalsCounter", "1"}}, t);

  CHECK(routes::Ingest::handles("/post"));
  CHECK(routes::Ingest::handles("/post_zip"));
  CHECK_FALSE(routes::Ingest::handles("/tabs"));

  auto get = driver.post("", {"/post", "GET", {}});
  CHECK(get->response().status == 405);
  CHECK(get->response().body == "/post accepts only POST\n");
  CHECK(get->header("Allow") == "POST");

  auto brotli = driver.post(body, {"/post", "POST", {{"content-encoding", "br"}}});
  CHECK(brotli->response().status == 415);
  CHECK(brotli->response().body == "unsupported Content-Encoding \"br\" (use gzip, deflate or none)\n");

  auto bad_id = driver.post(body, {"/post", "POST", {{"taba-batch-id", "two words"}}});
  CHECK(bad_id->response().status == 400);
  CHECK(bad_id->response().body == "Taba-Batch-Id must be 1..128 printable ASCII characters without spaces\n");

  auto corrupt = driver.post(body, {"/post_zip", "POST", {}});  // not compressed
  CHECK(corrupt->response().status == 400);
  CHECK(corrupt->response().body.find("compressed body is corrupt") != std::string::npos);

  auto too_many = driver.post(test::v1_body({{"web01", "hits", "TotalsCounter", "1"},
                                             {"web01", "hits", "TotalsCounter", "2"},
                                             {"web02", "hits", "TotalsCounter", "3"}},
                                            t));
  CHECK(too_many->response().status == 413);
  CHECK(too_many->response().body ==
        "body has more than 2 events (ingest.max_events_per_body); post smaller bodies\n");
  CHECK(too_many->replies() == 1);

  CHECK(store.submitted.empty());
  CHECK(driver.ingest.stats().bodies_rejected == 4);  // the 405 is not a body refused
  CHECK(driver.ingest.stats().bodies_over_limit == 1);
}
