// The C++ client library's internals: JSON helpers, the recorder's bounds,
// and the v1 body encoder (src/client/), checked byte for byte and by
// decoding its bodies with the server's own decoder.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "client/encoder.h"
#include "client/json_text.h"
#include "client/recorder.h"
#include "core/json_escape.h"
#include "plugin/registry.h"
#include "plugin_batches.h"
#include "protocol/batch.h"
#include "protocol/v1_decoder.h"

using taba::client::Body;
using taba::client::Encoder;
using taba::client::EventBuffer;
using taba::client::PayloadKind;
using taba::client::Recorder;
using taba::client::TypeTable;

namespace {

using Buffers = std::vector<std::unique_ptr<EventBuffer>>;

Buffers take(Recorder* r) {
  Buffers out;
  r->take(&out, false);
  return out;
}

// Decodes `body` with the server's decoder over the built-in plugins: its
// error, or "" and the event count.
std::string server_decode(const std::string& body, uint64_t* events) {
  struct Resolver : taba::protocol::TypeResolver {
    const taba::plugin::Handler* resolve(std::string_view, std::string_view type, std::string* err) override {
      const taba::plugin::Handler* h = taba::test::built_plugins().find(type);
      if (!h) *err = "unknown type " + std::string(type);
      return h;
    }
  } resolver;
  taba::protocol::BatchWriter writer;
  writer.reset(1400000010.0);
  taba::protocol::DecodeOptions opts;
  opts.now = 1400000010.0;
  taba::protocol::V1Decoder dec(&resolver, &writer, opts);
  bool ok = dec.feed(body) && dec.finish();
  *events = dec.events();
  return ok ? std::string() : dec.error();
}

}  // namespace

TEST_CASE("client json: escaping, numbers, UTF-8 and JSON checks", "[client]") {
  std::string out;
  taba::append_json_escaped(&out, "a\"b\\c\nd\x01\xc3\xa9", taba::JsonControls::kLetters);
  CHECK(out == "a\\\"b\\\\c\\nd\\u0001\xc3\xa9");
  out.clear();
  taba::client::append_json_number(&out, 12.5);
  out += ' ';
  taba::client::append_json_number(&out, 1);
  out += ' ';
  taba::client::append_json_number(&out, -0.1);
  CHECK(out == "12.5 1 -0.1");

  CHECK(taba::client::check_utf8("plain \xc3\xa9 \xf0\x9f\x98\x80").empty());
  CHECK(taba::client::check_utf8("bad \xc3") == "invalid UTF-8 at byte 4");
  CHECK(taba::client::check_utf8("\xed\xa0\x80") == "invalid UTF-8 at byte 0");  // a surrogate

  for (const char* ok :
       {"1", " -0.5e3 ", "\"x\\u00e9\"", "[1, \"a\", null, true, false, {\"k\": [ ]}]", "{}"}) {
    INFO(ok);
    CHECK(taba::client::check_json_value(ok).empty());
  }
  CHECK(taba::client::check_json_value("") == "expected a value at byte 0");
  CHECK(taba::client::check_json_value("01") == "unexpected characters after the value at byte 1");
  CHECK(taba::client::check_json_value("[1,]") == "expected a value at byte 3");
  CHECK(taba::client::check_json_value("\"a") == "unterminated string at byte 2");
  CHECK(taba::client::check_json_value("NaN") == "expected a value at byte 0");
  CHECK(taba::client::check_json_value("1 2") == "unexpected characters after the value at byte 2");
  CHECK(taba::client::check_json_value(std::string(100, '[') + std::string(100, ']')) ==
        "nested too deep at byte 65");
}

TEST_CASE("client recorder: text payloads are bounded by bytes, numbers are not", "[client]") {
  Recorder r(1000, 100);
  std::string forty(40, 'x');
  int accepted = 0, full = 0;
  for (int i = 0; i < 5; ++i) {
    auto res = r.add("s", TypeTable::kBuffer, PayloadKind::kText, 1, 0, 0, forty);
    accepted += res == taba::client::AddResult::kAccepted;
    full += res == taba::client::AddResult::kFull;
  }
  CHECK(accepted == 2);  // 80 of 100 bytes
  CHECK(full == 3);
  // Numbers still go in.
  CHECK(r.add("n", TypeTable::kCounterGroup, PayloadKind::kNumber, 1, 1, 0, {}) ==
        taba::client::AddResult::kAccepted);
  // A flush frees the bytes.
  std::vector<std::unique_ptr<taba::client::EventBuffer>> taken;
  r.take(&taken, false);
  CHECK(r.add("s", TypeTable::kBuffer, PayloadKind::kText, 1, 0, 0, forty) == taba::client::AddResult::kAccepted);
  r.recycle(&taken);
}

TEST_CASE("client recorder: bad names, the pending bound, close", "[client]") {
  Recorder r(10, 1 << 20);
  CHECK(r.add("a b", TypeTable::kCounterGroup, PayloadKind::kNumber, 1, 1, 0, {}) ==
        taba::client::AddResult::kBadName);
  CHECK(r.add("", TypeTable::kCounterGroup, PayloadKind::kNumber, 1, 1, 0, {}) ==
        taba::client::AddResult::kBadName);
  int accepted = 0, full = 0;
  for (int i = 0; i < 25; ++i) {
    auto res = r.add("n", TypeTable::kCounterGroup, PayloadKind::kNumber, 1, 1, 0, {});
    accepted += res == taba::client::AddResult::kAccepted;
    full += res == taba::client::AddResult::kFull;
  }
  CHECK(accepted == 10);
  CHECK(full == 15);
  CHECK(r.counts().pending == 10);
  Buffers taken = take(&r);  // frees the bound
  CHECK(r.counts().pending == 0);
  CHECK(r.add("n", TypeTable::kCounterGroup, PayloadKind::kNumber, 1, 1, 0, {}) ==
        taba::client::AddResult::kAccepted);
  r.recycle(&taken);
  r.take(&taken, /*close=*/true);
  CHECK(r.add("n", TypeTable::kCounterGroup, PayloadKind::kNumber, 1, 1, 0, {}) ==
        taba::client::AddResult::kClosed);
  auto c = r.counts();
  CHECK(c.recorded == 11);
  CHECK(c.full == 15);
  CHECK(c.closed == 1);
}

TEST_CASE("client encoder: the worked example's shape, byte for byte", "[client]") {
  Recorder r(100, 1 << 20);
  TypeTable types;
  r.add("req_ms", TypeTable::kCounterGroup, PayloadKind::kNumber, 1400000000.25, 12.5, 0, {});
  r.add("color", TypeTable::kGauge, PayloadKind::kText, 1400000002.0, 0, 0, "red");
  r.add("req_ms", TypeTable::kCounterGroup, PayloadKind::kNumber, 1400000001.5, 3, 0, {});
  Encoder enc("web01", 1 << 20);
  Buffers buffers = take(&r);
  auto res = enc.encode(buffers, types);
  REQUIRE(res.bodies.size() == 1);
  const Body& body = res.bodies[0];
  CHECK(body.bytes ==
        "1\n\nweb01\n\n"
        "req_ms\n"
        "[\"CounterGroup\",1400000000.250,\"12.5\"]\n"
        "[\"CounterGroup\",1400000001.500,\"3\"]\n"
        "\n"
        "color\n"
        "[\"Gauge\",1400000002.000,\"\\\"red\\\"\"]\n"
        "\n"
        "\n");
  CHECK(body.events == 3);
  REQUIRE(body.blocks.size() == 2);
  CHECK(body.blocks[0].first_line == 5);
  CHECK(body.blocks[0].last_line == 8);
  CHECK(body.blocks[1].first_line == 9);
  CHECK(body.blocks[1].last_line == 11);
  uint64_t events = 0;
  CHECK(server_decode(body.bytes, &events).empty());
  CHECK(events == 3);
}

TEST_CASE("client encoder: payload shapes and escaping survive the server's decoder", "[client]") {
  Recorder r(100, 1 << 20);
  TypeTable types;
  uint16_t totals;
  REQUIRE(types.intern("TotalsCounter", &totals));
  const std::string nasty = "say \"hi\"\\ \n\t\x01 caf\xc3\xa9";
  r.add("g", TypeTable::kGauge, PayloadKind::kText, 1400000000, 0, 0, nasty);
  r.add("eg", TypeTable::kExpiryGauge, PayloadKind::kNumberExpiry, 1400000000, 2.5, 1400000100, {});
  r.add("eg2", TypeTable::kExpiryGauge, PayloadKind::kTextExpiry, 1400000000, 0, 1400000100, "on");
  r.add("buf", TypeTable::kBuffer, PayloadKind::kTextExpiry, 1400000000, 0, 1400000100.5, "x");
  r.add("tot", totals, PayloadKind::kRawJson, 1400000000, 0, 0, "[5, \"note\"]");
  Encoder enc("c1", 1 << 20);
  Buffers buffers = take(&r);
  auto res = enc.encode(buffers, types);
  REQUIRE(res.bodies.size() == 1);
  const std::string& b = res.bodies[0].bytes;
  CHECK(b.find("[\"Gauge\",1400000000.000,\"\\\"say \\\\\\\"hi\\\\\\\"\\\\\\\\ \\\\n\\\\t\\\\u0001 "
               "caf\xc3\xa9\\\"\"]\n") != std::string::npos);
  CHECK(b.find("[\"ExpiryGauge\",1400000000.000,\"[2.5,1400000100]\"]\n") != std::string::npos);
  CHECK(b.find("[\"ExpiryGauge\",1400000000.000,\"[\\\"on\\\",1400000100]\"]\n") != std::string::npos);
  CHECK(b.find("[\"Buffer\",1400000000.000,\"[\\\"x\\\",1400000100.5]\"]\n") != std::string::npos);
  CHECK(b.find("[\"TotalsCounter\",1400000000.000,\"[5, \\\"note\\\"]\"]\n") != std::string::npos);
  uint64_t events = 0;
  CHECK(server_decode(b, &events).empty());
  CHECK(events == 5);
}

TEST_CASE("client encoder: bodies are cut at the size limit, each one valid", "[client]") {
  Recorder r(10000, 1 << 20);
  TypeTable types;
  for (int i = 0; i < 300; ++i) {
    r.add(i % 3 == 0 ? "a" : "b", TypeTable::kCounterGroup, PayloadKind::kNumber, 1400000000 + i, i, 0, {});
  }
  Encoder enc("c1", 2000);
  Buffers buffers = take(&r);
  auto res = enc.encode(buffers, types);
  REQUIRE(res.bodies.size() > 3);
  uint64_t total = 0;
  for (const Body& body : res.bodies) {
    CHECK(body.bytes.size() < 2000 + 100);
    uint64_t events = 0;
    CHECK(server_decode(body.bytes, &events).empty());
    CHECK(events == body.events);
    total += events;
    for (const auto& span : body.blocks) {
      // The span's first line is the name line.
      std::string_view at = std::string_view(body.bytes).substr(span.begin);
      CHECK((at.substr(0, 2) == "a\n" || at.substr(0, 2) == "b\n"));
      CHECK(body.bytes.substr(span.end - 2, 2) == "\n\n");
    }
  }
  CHECK(total == 300);
}

TEST_CASE("client encoder: a name keeps its first type, and a refused line is traced to its block", "[client]") {
  Recorder r(100, 1 << 20);
  TypeTable types;
  r.add("x", TypeTable::kCounterGroup, PayloadKind::kNumber, 1400000000, 1, 0, {});
  r.add("x", TypeTable::kGauge, PayloadKind::kNumber, 1400000000, 2, 0, {});
  r.add("y", TypeTable::kCounterGroup, PayloadKind::kNumber, 1400000000, 3, 0, {});
  r.add("z", TypeTable::kCounterGroup, PayloadKind::kNumber, 1400000000, 4, 0, {});
  Encoder enc("c1", 1 << 20);
  Buffers buffers = take(&r);
  auto res = enc.encode(buffers, types);
  CHECK(res.conflicts == 1);
  CHECK(res.conflict_note ==
        "name \"x\": type \"Gauge\" conflicts with type \"CounterGroup\" recorded earlier");
  REQUIRE(res.bodies.size() == 1);
  Body body = res.bodies[0];
  // Lines: 5 x, 6 event, 7 blank, 8 y, 9 event, 10 blank, 11 z, 12 event, 13 blank.
  REQUIRE(body.blocks.size() == 3);
  CHECK(taba::client::block_at_line(body, 9) == &body.blocks[1]);
  CHECK(taba::client::block_at_line(body, 8) == &body.blocks[1]);
  CHECK(taba::client::block_at_line(body, 13) == &body.blocks[2]);
  CHECK(taba::client::block_at_line(body, 3) == nullptr);
  CHECK(taba::client::block_at_line(body, 14) == nullptr);
  CHECK(body.blocks[1].events == 1);

  // The binding lasts across flushes.
  r.recycle(&buffers);
  r.add("x", TypeTable::kGauge, PayloadKind::kNumber, 1400000000, 2, 0, {});
  buffers = take(&r);
  res = enc.encode(buffers, types);
  CHECK(res.conflicts == 1);
  CHECK(res.bodies.empty());
}
