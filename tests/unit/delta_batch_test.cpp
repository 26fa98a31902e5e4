#include <catch2/catch.hpp>

#include <fstream>

#include "protocol/delta_batch.h"

using taba::Status;
using namespace taba::protocol;

namespace {

std::string two_blocks() {
  DeltaWriter w(1700000000.25);
  w.add("web01", "api.hits", "CounterGroup", 42, 1, std::string("\x01\x02\x00\x03", 4));
  w.add("", "queue", "Gauge", 1, 3, "");
  return w.finish();
}

}  // namespace

TEST_CASE("delta batch: blocks read back as written, with the batch's time", "[delta]") {
  std::string batch = two_blocks();
  CHECK(is_delta_batch(batch));
  DeltaReader r(batch);
  REQUIRE(r.open().ok());
  CHECK(r.time() == 1700000000.25);
  CHECK(r.block_count() == 2);
  DeltaBlock b;
  Status s;
  REQUIRE(r.next(&b, &s));
  CHECK(b.client == "web01");
  CHECK(b.name == "api.hits");
  CHECK(b.type == "CounterGroup");
  CHECK(b.events == 42);
  CHECK(b.state_version == 1);
  CHECK(b.state == std::string("\x01\x02\x00\x03", 4));
  REQUIRE(r.next(&b, &s));
  CHECK(b.client.empty());
  CHECK(b.state.empty());
  CHECK(b.events == 1);
  CHECK_FALSE(r.next(&b, &s));
  CHECK(s.ok());
}

TEST_CASE("delta batch: every truncation and trailing bytes are errors naming the block", "[delta]") {
  std::string batch = two_blocks();
  for (size_t cut = 0; cut < batch.size(); ++cut) {
    DeltaReader r(std::string_view(batch).substr(0, cut));
    Status s = r.open();
    if (!s.ok()) {
      CHECK(cut < 13);
      continue;
    }
    DeltaBlock b;
    int read = 0;
    while (r.next(&b, &s)) ++read;
    INFO("cut at " << cut);
    CHECK_FALSE(s.ok());
    CHECK(read < 2);
    CHECK(s.message().find("block") != std::string::npos);
  }
  std::string longer = batch + "x";
  DeltaReader extra(longer);
  REQUIRE(extra.open().ok());
  DeltaBlock b;
  Status s;
  while (extra.next(&b, &s)) {
  }
  CHECK(s.message() == "delta batch: 1 bytes after its last block (2)");
}

TEST_CASE("delta batch: a v1 batch is not a delta batch, and the version is checked", "[delta]") {
  CHECK_FALSE(is_delta_batch(std::string("\x01", 1)));
  CHECK_FALSE(is_delta_batch(""));
  std::string batch = two_blocks();
  batch[0] = 3;
  DeltaReader r(batch);
  Status s = r.open();
  CHECK(s.message() == "delta batch: version 3 (this build reads version 2)");
}

TEST_CASE("delta body: the envelope's magic and checksum are checked", "[delta]") {
  std::string batch = two_blocks();
  std::string body = wrap_delta_body(batch);
  auto ok = unwrap_delta_body(body);
  REQUIRE(ok.ok());
  CHECK(ok.value() == batch);
  std::string flipped = body;
  flipped[body.size() - 1] ^= 0x40;
  auto bad = unwrap_delta_body(flipped);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("checksum") != std::string::npos);
  auto text = unwrap_delta_body("1\n\nclient\n\n");
  REQUIRE_FALSE(text.ok());
  CHECK(text.status().message().find("TDLT") != std::string::npos);
}

TEST_CASE("delta batch: the fuzz seed corpus is written from real batches", "[delta][corpus]") {
  // Keeps tests/fuzz/corpus/delta_batch in step with the format: the seeds
  // are these bytes (the test fails when they differ from what is written).
  std::string batch = two_blocks();
  std::string body = wrap_delta_body(batch);
  for (auto [file, bytes] : {std::pair<const char*, std::string*>{"two_blocks", &batch}, {"two_blocks_body", &body}}) {
    std::ifstream in(std::string(TABA_SOURCE_DIR) + "/tests/fuzz/corpus/delta_batch/" + file, std::ios::binary);
    std::string seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(file);
    CHECK(seed == *bytes);
  }
}
