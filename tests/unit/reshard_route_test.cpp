// routes/reshard.h and routes/placement_format.h: the parameters of POST
// /reshard (vbuckets=, to=, cancel=), the answer to each store error, and
// the text and JSON forms of a placement built by hand; which token
// /reshard needs (routes/auth.h); core/byte_size.h's human_bytes.
#include <catch2/catch.hpp>

#include <simdjson.h>

#include <string>
#include <utility>
#include <vector>

#include "core/byte_size.h"
#include "routes/auth.h"
#include "routes/placement_format.h"
#include "routes/reshard.h"

using taba::Status;
using taba::routes::parse_reshard_request;
using taba::routes::parse_vbucket_range;
using taba::routes::placement_json;
using taba::routes::placement_text;
using taba::routes::reshard_error;
using taba::store::MoveStatus;
using taba::store::PlacementStatus;

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

std::string range_error(std::string_view text) {
  auto r = parse_vbucket_range(text);
  INFO("vbuckets=" << text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInvalid);
  return r.status().message();
}

std::string request_error(const Params& params) {
  auto r = parse_reshard_request(params);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

MoveStatus a_move() {
  MoveStatus m;
  m.id = "m-17";
  m.from = "shard1";
  m.to = "shard3";
  m.range = {0, 340};
  m.phase = "states";
  m.started = 1765000000.123;
  m.elapsed_s = 4.2;
  m.names_moved = 120;
  m.names_left = 30;
  m.bytes_moved = 123456;
  m.driver = "fe-host:8300";
  m.driver_alive = true;
  return m;
}

PlacementStatus a_placement() {
  PlacementStatus p;
  p.supported = true;
  p.epoch = 3;
  p.vbuckets = 1024;
  p.shards = {{"shard1", {{0, 340}, {600, 700}}}, {"shard2", {{341, 599}, {701, 1023}}}, {"shard3", {}}};
  p.moving = true;
  p.move = a_move();
  MoveStatus done;
  done.id = "m-16";
  done.from = "shard2";
  done.to = "shard1";
  done.range = {600, 700};
  done.phase = "done";
  done.started = 1764990000;
  done.elapsed_s = 12;
  done.names_moved = 80;
  done.bytes_moved = 65536;
  MoveStatus cancelled = done;
  cancelled.id = "m-15";
  cancelled.range = {5, 5};
  cancelled.phase = "cancelled";
  cancelled.error = "shard1: \"READONLY\"\nreplica";
  p.recent = {done, cancelled};
  return p;
}

}  // namespace

TEST_CASE("vbuckets=: FIRST-LAST or one vbucket, anything else named", "[reshard]") {
  auto ok = [](std::string_view text, uint32_t first, uint32_t last) {
    auto r = parse_vbucket_range(text);
    INFO("vbuckets=" << text);
    REQUIRE(r.ok());
    CHECK(r.value().first == first);
    CHECK(r.value().last == last);
  };
  ok("0-340", 0, 340);
  ok("7", 7, 7);
  ok("5-5", 5, 5);
  ok("0-4294967295", 0, 4294967295u);

  CHECK(range_error("9-1") == "vbuckets \"9-1\": FIRST (9) is greater than LAST (1)");
  const std::string shape = "vbuckets must be FIRST-LAST (two unsigned integers, FIRST <= LAST) or one vbucket N, not ";
  CHECK(range_error("") == shape + "\"\"");
  CHECK(range_error("a") == shape + "\"a\"");
  for (std::string_view bad : {"-", "1-", "-1", "1--2", "1-2-3", "+1", " 1", "1 ", "1-x", "0x10", "4294967296",
                               "1.5", "-1-3"}) {
    CHECK(range_error(bad) == shape + "\"" + std::string(bad) + "\"");
  }
}

TEST_CASE("POST /reshard's parameters make the store's request", "[reshard]") {
  auto move = parse_reshard_request({{"to", "shard3"}, {"vbuckets", "0-340"}});
  REQUIRE(move.ok());
  CHECK_FALSE(move.value().cancel);
  CHECK(move.value().to == "shard3");
  CHECK(move.value().range.first == 0);
  CHECK(move.value().range.last == 340);

  for (const char* yes : {"1", "true"}) {
    auto cancel = parse_reshard_request({{"cancel", yes}});
    REQUIRE(cancel.ok());
    CHECK(cancel.value().cancel);
  }

  CHECK(request_error({}) ==
        "POST /reshard needs to=SHARD (the target shard) with vbuckets=FIRST-LAST, or cancel=1");
  CHECK(request_error({{"to", ""}, {"vbuckets", "1"}}) == request_error({}));
  CHECK(request_error({{"to", "shard3"}}) ==
        "POST /reshard needs vbuckets=FIRST-LAST (the vbuckets to move) with to=SHARD");
  CHECK(request_error({{"to", "shard3"}, {"vbuckets", "9-1"}}) ==
        "vbuckets \"9-1\": FIRST (9) is greater than LAST (1)");
  CHECK(request_error({{"cancel", "1"}, {"to", "shard3"}}) ==
        "cancel=1 takes no to= or vbuckets= (it cancels the move in progress)");
  CHECK(request_error({{"cancel", "0"}}) == "cancel must be 1 (or true), not \"0\"");
}

TEST_CASE("the store's errors of /reshard answer 400, 404, 409 or 503", "[reshard]") {
  auto invalid = reshard_error(Status::Invalid("no shard named shard9"));
  CHECK(invalid.status == 400);
  CHECK(invalid.body == "no shard named shard9\n");
  CHECK(reshard_error(Status::NotFound("no move in progress")).status == 404);

  auto busy = reshard_error(Status::Unavailable("a move is in progress: m-17 (shard1 -> shard3), driven by fe-1"));
  CHECK(busy.status == 409);
  CHECK(busy.body == "a move is in progress: m-17 (shard1 -> shard3), driven by fe-1\n");
  CHECK(busy.headers.empty());

  auto down = reshard_error(Status::Unavailable("shard2: no reachable master"));
  CHECK(down.status == 503);
  REQUIRE(down.headers.size() == 1);
  CHECK(down.headers[0].name == "Retry-After");
  CHECK(reshard_error(Status::IoError("lost")).status == 503);
}

TEST_CASE("a placement in text: epoch, shards, the move, the recent moves", "[reshard]") {
  const PlacementStatus p = a_placement();
  CHECK(placement_text(p) ==
        "placement epoch 3 (1024 vbuckets)\n"
        "  shard1  0-340, 600-700\n"
        "  shard2  341-599, 701-1023\n"
        "  shard3  (none)\n"
        "move m-17: shard1 -> shard3, vbuckets 0-340, states, 120 names moved, 30 left, 120.6 KiB, 4.2 s, "
        "driver fe-host:8300 (alive)\n"
        "recent m-16: shard2 -> shard1, vbuckets 600-700, 80 names moved, 64.0 KiB, 12.0 s, done\n"
        "recent m-15: shard2 -> shard1, vbuckets 5, 80 names moved, 64.0 KiB, 12.0 s, cancelled "
        "(last error: shard1: \"READONLY\" replica)\n");
  // /status shows no recent moves.
  CHECK(placement_text(p, false) ==
        "placement epoch 3 (1024 vbuckets)\n"
        "  shard1  0-340, 600-700\n"
        "  shard2  341-599, 701-1023\n"
        "  shard3  (none)\n"
        "move m-17: shard1 -> shard3, vbuckets 0-340, states, 120 names moved, 30 left, 120.6 KiB, 4.2 s, "
        "driver fe-host:8300 (alive)\n");

  PlacementStatus idle = p;
  idle.moving = false;
  idle.recent.clear();
  CHECK(placement_text(idle).ends_with("  shard3  (none)\nno move in progress\n"));

  PlacementStatus stuck = p;
  stuck.move.driver_alive = false;
  stuck.move.error = "shard3: timed out";
  CHECK(placement_text(stuck, false).ends_with(", 4.2 s, driver fe-host:8300 (gone), last error: shard3: timed out\n"));
  stuck.move.driver.clear();
  CHECK(placement_text(stuck, false).ends_with(", 4.2 s, no driver, last error: shard3: timed out\n"));

  CHECK(placement_text(PlacementStatus{}) ==
        "placement: none (the embedded store is one store; re-sharding needs the Redis store)\n");
}

TEST_CASE("a placement in JSON: exact fields, escaped strings, valid", "[reshard]") {
  const PlacementStatus p = a_placement();
  const std::string json = placement_json(p);
  CHECK(json ==
        "{\"supported\":true,\"epoch\":3,\"vbuckets\":1024,\"shards\":["
        "{\"shard\":\"shard1\",\"ranges\":[[0,340],[600,700]]},"
        "{\"shard\":\"shard2\",\"ranges\":[[341,599],[701,1023]]},"
        "{\"shard\":\"shard3\",\"ranges\":[]}],"
        "\"move\":{\"id\":\"m-17\",\"from\":\"shard1\",\"to\":\"shard3\",\"first\":0,\"last\":340,"
        "\"phase\":\"states\",\"started\":1765000000.123,\"elapsed_s\":4.200,\"names_moved\":120,"
        "\"names_left\":30,\"bytes_moved\":123456,\"driver\":\"fe-host:8300\",\"driver_alive\":true,\"error\":\"\"},"
        "\"recent\":["
        "{\"id\":\"m-16\",\"from\":\"shard2\",\"to\":\"shard1\",\"first\":600,\"last\":700,\"phase\":\"done\","
        "\"started\":1764990000.000,\"elapsed_s\":12.000,\"names_moved\":80,\"names_left\":0,\"bytes_moved\":65536,"
        "\"driver\":\"\",\"driver_alive\":false,\"error\":\"\"},"
        "{\"id\":\"m-15\",\"from\":\"shard2\",\"to\":\"shard1\",\"first\":5,\"last\":5,\"phase\":\"cancelled\","
        "\"started\":1764990000.000,\"elapsed_s\":12.000,\"names_moved\":80,\"names_left\":0,\"bytes_moved\":65536,"
        "\"driver\":\"\",\"driver_alive\":false,\"error\":\"shard1: \\\"READONLY\\\"\\nreplica\"}]}");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
  std::string_view error;
  REQUIRE(root["recent"].at(1)["error"].get_string().get(error) == simdjson::SUCCESS);
  CHECK(error == "shard1: \"READONLY\"\nreplica");

  PlacementStatus idle;
  CHECK(placement_json(idle) ==
        "{\"supported\":false,\"epoch\":0,\"vbuckets\":0,\"shards\":[],\"move\":null,\"recent\":[]}");
}

TEST_CASE("GET /reshard reads with the query token, POST moves with the admin token", "[reshard][auth]") {
  using taba::routes::Access;
  using taba::routes::access_of;
  CHECK(access_of("GET", "/reshard") == Access::kQuery);
  CHECK(access_of("POST", "/reshard") == Access::kAdmin);
  CHECK(access_of("GET", "/delete") == Access::kAdmin);
  CHECK(access_of("POST", "/status") == Access::kQuery);
}

TEST_CASE("human_bytes: bytes, then binary units with one decimal", "[reshard]") {
  CHECK(taba::human_bytes(0) == "0 B");
  CHECK(taba::human_bytes(1023) == "1023 B");
  CHECK(taba::human_bytes(1024) == "1.0 KiB");
  CHECK(taba::human_bytes(123456) == "120.6 KiB");
  CHECK(taba::human_bytes(1048575) == "1.0 MiB");
  CHECK(taba::human_bytes(uint64_t{3} << 30) == "3.0 GiB");
  CHECK(taba::human_bytes(UINT64_MAX) == "16.0 EiB");
}
