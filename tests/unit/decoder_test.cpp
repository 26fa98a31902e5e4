// The v1 body decoder against the real built-in plugins.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "plugin/registry.h"
#include "protocol/batch.h"
#include "protocol/v1_decoder.h"

using namespace taba;

namespace {

plugin::Registry& plugins() {
  static plugin::Registry r;
  static bool loaded = r.load_dir(TABA_TEST_PLUGIN_DIR);
  (void)loaded;
  return r;
}

// Binds nothing in advance; names bind to the type of their first block,
// and a fixed binding can be preset.
class TestResolver : public protocol::TypeResolver {
 public:
  std::vector<std::pair<std::string, std::string>> preset;
  const plugin::Handler* resolve(std::string_view name, std::string_view type, std::string* err) override {
    for (auto& [n, t] : preset) {
      if (n == name && t != type) {
        *err = "conflict with " + t;
        return nullptr;
      }
    }
    const plugin::Handler* h = plugins().find(type);
    if (!h) *err = "unknown type " + std::string(type);
    return h;
  }
};

struct Decoded {
  bool ok;
  std::string error;
  std::string batch;
  uint64_t events;
  uint64_t clamped;
};

Decoded decode(const std::string& body, size_t chunk = 0, double now = 1400000010.0) {
  TestResolver resolver;
  protocol::BatchWriter writer;
  writer.reset(now);
  protocol::DecodeOptions opts;
  opts.now = now;
  protocol::V1Decoder dec(&resolver, &writer, opts);
  bool ok = true;
  if (chunk == 0) {
    ok = dec.feed(body);
  } else {
    for (size_t i = 0; i < body.size() && ok; i += chunk) ok = dec.feed(std::string_view(body).substr(i, chunk));
  }
  ok = ok && dec.finish();
  return {ok, dec.error(), writer.finish(), dec.events(), dec.clamped()};
}

struct Row {
  std::string client, name, type;
  std::vector<std::pair<double, std::string>> events;
};

std::vector<Row> read_batch(const std::string& batch) {
  protocol::BatchReader reader(batch);
  REQUIRE(reader.open().ok());
  std::vector<Row> rows;
  protocol::BatchBlock b;
  std::vector<taba_event> evs;
  Status s;
  while (reader.next(&b, &evs, &s)) {
    Row r{std::string(b.client), std::string(b.name), std::string(b.type), {}};
    for (auto& e : evs) r.events.emplace_back(e.timestamp, std::string(e.payload.json, e.payload.json_len));
    rows.push_back(r);
  }
  REQUIRE(s.ok());
  return rows;
}

// original-taba.md §2.5, byte for byte.
const std::string kWorkedExample =
    "1\n\nweb01\n\nreq_ms\n[\"CounterGroup\", 1400000000.25, \"12.5\"]\n[\"CounterGroup\", 1400000001.5, \"3\"]\n\n"
    "color\n[\"Gauge\", 1400000002.0, \"\\\"red\\\"\"]\n\n\n";

}  // namespace

TEST_CASE("the original's worked example decodes as is", "[decoder]") {
  REQUIRE(kWorkedExample.size() == 137);
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}, size_t{64}}) {
    Decoded d = decode(kWorkedExample, chunk);
    INFO("chunk " << chunk << " error " << d.error);
    REQUIRE(d.ok);
    CHECK(d.events == 3);
    auto rows = read_batch(d.batch);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].client == "web01");
    CHECK(rows[0].name == "req_ms");
    CHECK(rows[0].type == "CounterGroup");
    REQUIRE(rows[0].events.size() == 2);
    CHECK(rows[0].events[0].first == 1400000000.25);
    CHECK(rows[0].events[0].second == "12.5");
    CHECK(rows[0].events[1].second == "3");
    CHECK(rows[1].name == "color");
    CHECK(rows[1].type == "Gauge");
    CHECK(rows[1].events[0].second == "\"red\"");
  }
}

TEST_CASE("Java compact form, CRLF lines and missing trailing blank lines are accepted", "[decoder]") {
  Decoded java = decode("1\n\nj1\n\nbids\n[\"CounterGroup\",1400000000,\"12.5\"]\n\n\n");
  REQUIRE(java.ok);
  CHECK(java.events == 1);
  Decoded crlf = decode("1\r\n\r\nc1\r\n\r\nbids\r\n[\"CounterGroup\", 1400000000, \"2\"]\r\n\r\n\r\n");
  INFO(crlf.error);
  REQUIRE(crlf.ok);
  CHECK(crlf.events == 1);
  Decoded trimmed = decode("1\n\nc1\n\nbids\n[\"CounterGroup\", 1400000000, \"2\"]");
  REQUIRE(trimmed.ok);
  CHECK(trimmed.events == 1);
}

TEST_CASE("multi-client bodies keep each client's blocks apart", "[decoder]") {
  std::string body =
      "1\n\na\n\nx\n[\"CounterGroup\", 1400000000, \"1\"]\n\n\nb\n\nx\n[\"CounterGroup\", 1400000000, \"2\"]\n"
      "[\"CounterGroup\", 1400000000, \"3\"]\n\ny\n[\"TotalsCounter\", 1400000000, \"[4]\"]\n\n\n";
  Decoded d = decode(body, 5);
  INFO(d.error);
  REQUIRE(d.ok);
  auto rows = read_batch(d.batch);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].client == "a");
  CHECK(rows[1].client == "b");
  CHECK(rows[1].events.size() == 2);
  CHECK(rows[2].name == "y");
  CHECK(rows[2].events[0].second == "[4]");
}

TEST_CASE("malformed bodies are rejected with the line number and reason", "[decoder]") {
  struct Case {
    std::string body;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"", "line 0: empty body"},
      {"2\n\nc\n\nn\n[\"CounterGroup\", 1, \"1\"]\n", "line 1: expected the protocol version \"1\""},
      {"1\nx\n", "line 2: expected a blank line after the protocol version"},
      {"1\n\nbad client\n\n", "line 3: invalid client ID \"bad client\": contains ' '"},
      {"1\n\nc\n\nna,me\n", "line 5: invalid name \"na,me\": contains ','"},
      {"1\n\nc\n\nn\n[\"Nope\", 1400000000, \"1\"]\n", "line 6: unknown type Nope"},
      {"1\n\nc\n\nn\n[\"CounterGroup\", 1400000000, 12]\n", "line 6: payload must be a JSON string"},
      {"1\n\nc\n\nn\n[\"CounterGroup\", 1400000000, \"abc\"]\n", "line 6: payload \"abc\": unexpected 'a'"},
      {"1\n\nc\n\nn\n[\"CounterGroup\", \"x\", \"1\"]\n", "line 6: timestamp must be a number"},
      {"1\n\nc\n\nn\n[\"CounterGroup\", 1400000000, \"1\"]\n[\"Gauge\", 1400000000, \"1\"]\n",
       "line 7: type \"Gauge\" conflicts with type \"CounterGroup\""},
      {"1\n\nc\n\nn\n[\"CounterGroup\", 1400000000, \"\\\"red\\\"\"]\n", "line 6: CounterGroup payload"},
      {"1\n\nc\n\nn\n[\"CounterGroup\", 1400000000, \"1\"] x\n", "line 6: unexpected characters after the event"},
      {"1\n\nc\n\nn\n[\"CounterGroup\", 1400000000, \"NaN\"]\n", "line 6: payload \"NaN\": NaN and Infinity"},
  };
  for (const Case& c : cases) {
    Decoded d = decode(c.body);
    INFO("body: " << c.body << "\nerror: " << d.error);
    CHECK_FALSE(d.ok);
    CHECK(d.error.rfind(c.expect, 0) == 0);
  }
}

TEST_CASE("future timestamps are clamped to the receive time", "[decoder]") {
  const double now = 1400000000.0;
  Decoded d = decode("1\n\nc\n\nn\n[\"CounterGroup\", 1400000059, \"1\"]\n[\"CounterGroup\", 1400009999, \"1\"]\n",
                     0, now);
  REQUIRE(d.ok);
  CHECK(d.clamped == 1);
  auto rows = read_batch(d.batch);
  CHECK(rows[0].events[0].first == 1400000059.0);
  CHECK(rows[0].events[1].first == now);
}

TEST_CASE("a corrupt batch is reported, never over-read", "[batch]") {
  Decoded d = decode(kWorkedExample);
  REQUIRE(d.ok);
  for (size_t len = 0; len < d.batch.size(); ++len) {
    std::string cut = d.batch.substr(0, len);
    protocol::BatchReader reader(cut);
    Status s = reader.open();
    if (!s.ok()) continue;
    protocol::BatchBlock b;
    std::vector<taba_event> evs;
    while (reader.next(&b, &evs, &s)) {
    }
    INFO("length " << len);
    CHECK_FALSE(s.ok());
  }
}
