// The v1 body decoder against the real built-in plugins.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "plugin/registry.h"
#include "protocol/batch.h"
#include "protocol/payload.h"
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
    if (h) resolved.emplace_back(name);
    return h;
  }
  void refused(std::string_view name) override { refused_names.emplace_back(name); }
  std::vector<std::string> resolved;
  std::vector<std::string> refused_names;
};

struct Decoded {
  bool ok;
  std::string error;
  std::string batch;
  uint64_t events;
  uint64_t clamped;
  std::vector<protocol::Refusal> refusals;
  std::string refused_text;
  std::vector<std::string> resolved;
  std::vector<std::string> refused_names;
};

Decoded decode(const std::string& body, size_t chunk = 0, double now = 1400000010.0) {
  TestResolver resolver;
  protocol::BatchWriter writer;
  writer.reset(now);
  protocol::DecodeOptions opts;
  opts.now = now;
  opts.keep_refused_text = true;
  protocol::V1Decoder dec(&resolver, &writer, opts);
  bool ok = true;
  if (chunk == 0) {
    ok = dec.feed(body);
  } else {
    for (size_t i = 0; i < body.size() && ok; i += chunk) ok = dec.feed(std::string_view(body).substr(i, chunk));
  }
  ok = ok && dec.finish();
  return {ok,           dec.error(),        writer.finish(),   dec.events(),
          dec.clamped(), dec.refusals(),     dec.refused_text(), resolver.resolved,
          resolver.refused_names};
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

TEST_CASE("a body whose framing cannot be read is rejected whole", "[decoder]") {
  struct Case {
    std::string body;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"", "line 0: empty body"},
      {"2\n\nc\n\nn\n[\"CounterGroup\", 1, \"1\"]\n", "line 1: expected the protocol version \"1\""},
      {"1\nx\n", "line 2: expected a blank line after the protocol version"},
      {"1\n\nc\nn\n", "line 4: expected a blank line after the client ID"},
      {"1\n", "line 1: body ended before a client ID"},
  };
  for (const Case& c : cases) {
    Decoded d = decode(c.body);
    INFO("body: " << c.body << "\nerror: " << d.error);
    CHECK_FALSE(d.ok);
    CHECK(d.error.rfind(c.expect, 0) == 0);
  }
}

TEST_CASE("a bad block is refused with its line number and reason, and the body goes on", "[decoder]") {
  struct Case {
    std::string block;   // client, name and event lines after "1\n\n"
    std::string expect;  // "line N: reason" prefix
    const char* kind;
  };
  std::vector<Case> cases = {
      {"bad client\n\nn\n[\"CounterGroup\", 1400000000, \"1\"]\n", "line 3: invalid client ID \"bad client\": contains ' '",
       "client"},
      {"c\n\nna,me\n[\"CounterGroup\", 1400000000, \"1\"]\n", "line 5: invalid name \"na,me\": contains ','", "name"},
      {"c\n\nn\n[\"Nope\", 1400000000, \"1\"]\n", "line 6: unknown type Nope", "type"},
      {"c\n\nn\n[\"CounterGroup\", 1400000000, 12]\n", "line 6: payload must be a JSON string", "event"},
      {"c\n\nn\n[\"CounterGroup\", 1400000000, \"abc\"]\n", "line 6: payload \"abc\": unexpected 'a'", "payload"},
      {"c\n\nn\n[\"CounterGroup\", \"x\", \"1\"]\n", "line 6: timestamp must be a number", "event"},
      {"c\n\nn\n[\"CounterGroup\", 1400000000, \"1\"]\n[\"Gauge\", 1400000000, \"1\"]\n",
       "line 7: type \"Gauge\" conflicts with type \"CounterGroup\"", "type"},
      {"c\n\nn\n[\"CounterGroup\", 1400000000, \"\\\"red\\\"\"]\n", "line 6: CounterGroup payload", "payload"},
      {"c\n\nn\n[\"CounterGroup\", 1400000000, \"1\"] x\n", "line 6: unexpected characters after the event", "event"},
      {"c\n\nn\n[\"CounterGroup\", 1400000000, \"NaN\"]\n", "line 6: payload \"NaN\": NaN and Infinity", "payload"},
  };
  // Each bad block sits between two good ones of another client.
  const std::string good = "\n\ngood\n\nok\n[\"CounterGroup\", 1400000000, \"5\"]\n\n\n";
  for (const Case& c : cases) {
    for (bool alone : {true, false}) {
      std::string body = alone ? "1\n\n" + c.block : "1\n\n" + c.block + good;
      Decoded d = decode(body, 3);
      INFO("body: " << body << "\nerror: " << d.error);
      REQUIRE(d.ok);
      REQUIRE(d.refusals.size() == 1);
      const protocol::Refusal& r = d.refusals[0];
      CHECK(fmt::format("line {}: {}", r.line, r.reason).rfind(c.expect, 0) == 0);
      CHECK(std::string(r.kind) == c.kind);
      CHECK(d.events == (alone ? 0u : 1u));
      auto rows = read_batch(d.batch);
      REQUIRE(rows.size() == (alone ? 0u : 1u));
      if (!alone) {
        CHECK(rows[0].client == "good");
        CHECK(rows[0].events[0].second == "5");
      }
    }
  }
}

TEST_CASE("a refused block takes its earlier events and its new binding with it", "[decoder]") {
  std::string body =
      "1\n\na\n\nx\n[\"CounterGroup\", 1400000000, \"1\"]\n[\"CounterGroup\", 1400000000, \"2\"]\n"
      "[\"CounterGroup\", 1400000000, \"{}\"]\n[\"CounterGroup\", 1400000000, \"3\"]\n\n"
      "y\n[\"CounterGroup\", 1400009999, \"4\"]\n\n\n"
      "b c\n\nx\n[\"CounterGroup\", 1400000000, \"1\"]\n\nz\n[\"Gauge\", 1400000000, \"1\"]\n[\"Gauge\", 1400000000, \"2\"]\n\n\n"
      "d\n\nw\n[\"Gauge\", 1400000000, \"7\"]\n";
  Decoded d = decode(body, 0, 1400000000.0);
  INFO(d.error);
  REQUIRE(d.ok);
  CHECK(d.events == 2);
  CHECK(d.clamped == 1);
  auto rows = read_batch(d.batch);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].client == "a");
  CHECK(rows[0].name == "y");
  CHECK(rows[1].client == "d");
  CHECK(rows[1].name == "w");
  REQUIRE(d.refusals.size() == 2);
  // The block x of client a: two events written before the bad one, one after.
  CHECK(d.refusals[0].line == 8);
  CHECK(d.refusals[0].client == "a");
  CHECK(d.refusals[0].name == "x");
  CHECK(d.refusals[0].events == 4);
  // Client "b c": one refusal for both of its blocks.
  CHECK(d.refusals[1].line == 15);
  CHECK(d.refusals[1].name.empty());
  CHECK(d.refusals[1].events == 3);
  CHECK(std::string(d.refusals[1].kind) == "client");
  // The binding x made is withdrawn; y and w keep theirs.
  CHECK(d.refused_names == std::vector<std::string>{"x"});
  // The refused blocks, as a v1 body: the events written before the bad
  // line read back from the batch (compact), the rest as sent.
  CHECK(d.refused_text ==
        "1\n\na\n\nx\n[\"CounterGroup\",1400000000,\"1\"]\n[\"CounterGroup\",1400000000,\"2\"]\n"
        "[\"CounterGroup\", 1400000000, \"{}\"]\n[\"CounterGroup\", 1400000000, \"3\"]\n\n\n"
        "b c\n\nx\n[\"CounterGroup\", 1400000000, \"1\"]\n\n\nb c\n\nz\n[\"Gauge\", 1400000000, \"1\"]\n"
        "[\"Gauge\", 1400000000, \"2\"]\n\n\n");
}

TEST_CASE("a payload that is not valid UTF-8 is read as Latin-1", "[decoder]") {
  // The original Java client sends "Zürich" as Latin-1 bytes.
  Decoded latin1 = decode("1\n\nj\n\ncity\n[\"Gauge\",1400000000,\"\\\"Z\xfcrich\\\"\"]\n\n\n");
  REQUIRE(latin1.ok);
  REQUIRE(latin1.refusals.empty());
  auto rows = read_batch(latin1.batch);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].events[0].second == "\"Z\xc3\xbcrich\"");
  // Valid UTF-8 (raw or escaped) is kept as sent.
  Decoded utf8 = decode("1\n\np\n\ncity\n[\"Gauge\", 1400000000, \"\\\"Z\xc3\xbcrich\\\"\"]\n\n\n");
  REQUIRE(utf8.ok);
  CHECK(read_batch(utf8.batch)[0].events[0].second == "\"Z\xc3\xbcrich\"");
}

TEST_CASE("numeric types count JSON true and false as 1 and 0", "[decoder]") {
  // The original Python client's Counter(name, True).
  Decoded d = decode("1\n\np\n\nflag\n[\"CounterGroup\", 1400000000.5, \"true\"]\n[\"CounterGroup\", 1400000000.5, \"false\"]\n\n\n");
  REQUIRE(d.ok);
  CHECK(d.refusals.empty());
  CHECK(d.events == 2);
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

TEST_CASE("next_header steps over events: the same blocks as next, and the same corruption", "[batch]") {
  Decoded d = decode(kWorkedExample);
  REQUIRE(d.ok);
  std::vector<std::string> full, headers;
  {
    protocol::BatchReader reader(d.batch);
    REQUIRE(reader.open().ok());
    protocol::BatchBlock b;
    std::vector<taba_event> evs;
    Status s;
    while (reader.next(&b, &evs, &s)) {
      full.push_back(fmt::format("{}|{}|{}|{}", b.client, b.name, b.type, b.event_count));
    }
    REQUIRE(s.ok());
  }
  {
    protocol::BatchReader reader(d.batch);
    REQUIRE(reader.open().ok());
    protocol::BatchBlock b;
    Status s;
    while (reader.next_header(&b, &s)) {
      headers.push_back(fmt::format("{}|{}|{}|{}", b.client, b.name, b.type, b.event_count));
    }
    REQUIRE(s.ok());
  }
  CHECK(full.size() == 2);
  CHECK(headers == full);
  for (size_t len = 0; len < d.batch.size(); ++len) {
    std::string cut = d.batch.substr(0, len);
    protocol::BatchReader reader(cut);
    if (!reader.open().ok()) continue;
    protocol::BatchBlock b;
    Status s;
    while (reader.next_header(&b, &s)) {
    }
    INFO("length " << len);
    CHECK_FALSE(s.ok());
  }
}

// Found by fuzz_wal: a WAL record whose number event carried other text
// was applied, and the gauge state it made could not be read back from the
// next snapshot, so the store refused to start.
TEST_CASE("a batch number event must carry its own JSON number text", "[batch]") {
  auto read_one = [](const std::string& text, double number) {
    protocol::BatchWriter w;
    w.reset(1400000000.0);
    w.begin_block("c1", "g", "Gauge");
    w.add_event(1400000000.0, taba_value{TABA_VALUE_NUMBER, 0, number, text.data(), text.size()});
    std::string bytes = w.finish();
    protocol::BatchReader reader(bytes);
    Status s = reader.open();
    REQUIRE(s.ok());
    protocol::BatchBlock b;
    std::vector<taba_event> evs;
    bool got = reader.next(&b, &evs, &s);
    return got && s.ok();
  };
  CHECK(read_one("7", 7.0));
  CHECK(read_one("-0.25", -0.25));
  CHECK(read_one("1.5e3", 1500.0));
  CHECK_FALSE(read_one("\xc2", 7.0));
  CHECK_FALSE(read_one("", 7.0));
  CHECK_FALSE(read_one("7 ", 7.0));
  CHECK_FALSE(read_one("8", 7.0));
  CHECK_FALSE(read_one("NaN", std::nan("")));
}

TEST_CASE("parse_simple_decimal agrees with the general number parser", "[decoder][numbers]") {
  std::mt19937_64 rng(11);
  auto check = [](const std::string& text) {
    double fast = 0;
    double general = 0;
    const size_t n = protocol::parse_simple_decimal(text.data(), text.data() + text.size(), &fast);
    // A valid JSON number token, as the general scanner reads it.
    taba_value scanned{};
    size_t pos = 0;
    const bool valid = protocol::scan_value(text, &pos, &scanned).empty() && pos == text.size() &&
                       scanned.kind == TABA_VALUE_NUMBER && text.find(' ') == std::string::npos;
    general = scanned.number;
    INFO("number: " << text);
    if (n != 0) {
      REQUIRE(n == text.size());
      REQUIRE(valid);
      CHECK(std::memcmp(&fast, &general, sizeof fast) == 0);  // bit for bit, -0 included
    }
    double any = 0;
    const size_t m = protocol::parse_number_prefix(text.data(), text.data() + text.size(), &any);
    CHECK((m != 0 && m == text.size()) == valid);
    if (valid) CHECK(std::memcmp(&any, &general, sizeof any) == 0);
  };
  for (const char* s : {"0", "-0", "1", "12.5", "0.5", "-0.25", "1763830000.123", "999999999999999",
                        "99999999999999.9", "0.000000000000001", "123456789012345", "1234567890123456",
                        "1.7976931348623157", "4.35", "0.1", "0.3", "2.675", "1e3", "1.5E-2", "01", "1.", ".5",
                        "-", "", "+1", "1.2.3", "00.5", "-01", "1e999"}) {
    check(s);
  }
  for (int i = 0; i < 200000; ++i) {
    std::string s;
    if (rng() % 4 == 0) s += '-';
    const int int_digits = 1 + static_cast<int>(rng() % 12);
    for (int d = 0; d < int_digits; ++d) s += static_cast<char>('0' + (d == 0 && int_digits > 1 ? 1 + rng() % 9 : rng() % 10));
    if (rng() % 3 != 0) {
      s += '.';
      const int frac = 1 + static_cast<int>(rng() % 8);
      for (int d = 0; d < frac; ++d) s += static_cast<char>('0' + rng() % 10);
    }
    check(s);
  }
  // The fast reader stops at the token's end; what follows is the caller's.
  double v = 0;
  const std::string tail = "1763830000.5, \"1\"";
  CHECK(protocol::parse_simple_decimal(tail.data(), tail.data() + tail.size(), &v) == 12);
  CHECK(v == 1763830000.5);
  const std::string exponent = "15e2,";
  CHECK(protocol::parse_simple_decimal(exponent.data(), exponent.data() + exponent.size(), &v) == 0);
  CHECK(protocol::parse_number_prefix(exponent.data(), exponent.data() + exponent.size(), &v) == 4);
  CHECK(v == 1500);
}

TEST_CASE("plain and spaced-out event lines give the same batch", "[decoder]") {
  // The first form takes the decoder's fast path, the second the general
  // one; both must produce identical batches, and the fast path must refuse
  // what the general path refuses.
  const std::vector<std::pair<std::string, std::string>> same = {
      {R"(["CounterGroup", 1400000000.25, "12.5"])", R"([ "CounterGroup" , 1400000000.25 ,  "12.5" ] )"},
      {R"(["CounterGroup",1400000000,"-3"])", "[\"CounterGroup\",\t1400000000 , \" -3 \"]"},
      {R"(["CounterGroup", 1400000000.123456789, "1e2"])", R"([ "CounterGroup", 1400000000.123456789, "100.0e0"])"},
      {R"(["CounterGroup", 1400000009, "0"])", R"(["Counter\u0047roup", 1400000009, "-0.0"])"},
  };
  for (const auto& [plain, spaced] : same) {
    Decoded a = decode("1\n\nc\n\nn\n" + plain + "\n" + plain + "\n");
    Decoded b = decode("1\n\nc\n\nn\n" + spaced + "\n" + spaced + "\n");
    INFO(plain << " vs " << spaced << ": " << a.error << " / " << b.error);
    REQUIRE(a.ok);
    REQUIRE(b.ok);
    const auto ra = read_batch(a.batch);
    const auto rb = read_batch(b.batch);
    REQUIRE(ra.size() == 1);
    REQUIRE(rb.size() == 1);
    REQUIRE(ra[0].events.size() == 2);
    REQUIRE(rb[0].events.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CHECK(ra[0].events[i].first == rb[0].events[i].first);
      double x = 0;
      double y = 0;
      REQUIRE(protocol::parse_json_number(ra[0].events[i].second, &x));
      // The spaced payloads keep their own text; their values are equal.
      taba_event ev;
      REQUIRE(protocol::parse_payload(rb[0].events[i].second, &ev).empty());
      y = ev.payload.number;
      CHECK(x == y);
    }
  }
  // Byte-identical batches for identical text on both paths is covered by
  // the fast path reading exactly the text it was given:
  Decoded c = decode("1\n\nc\n\nn\n[\"CounterGroup\", 1400000000.25, \"12.5\"]\n");
  REQUIRE(c.ok);
  CHECK(read_batch(c.batch)[0].events[0].second == "12.5");
  // Lines the fast path must not accept.
  for (const std::string& bad :
       {std::string(R"(["CounterGroup", 1400000000, "01"])"), std::string(R"(["CounterGroup", 1400000000, "1."])"),
        std::string(R"(["CounterGroup", -1400000000, "1"])"), std::string(R"(["CounterGroup", 1400000000, "1"]x)"),
        std::string(R"(["CounterGroup", 1400000000, "1" ])") + "]", std::string(R"(["CounterGroup", 01, "1"])"),
        std::string(R"(["CounterGroup", 1400000000, "1e999"])")}) {
    Decoded d = decode("1\n\nc\n\nn\n" + bad + "\n");
    INFO(bad << ": " << d.error);
    REQUIRE(d.ok);
    CHECK(d.events == 0);
    REQUIRE(d.refusals.size() == 1);
    CHECK(d.refusals[0].line == 6);
  }
}
