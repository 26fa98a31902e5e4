// StatsD / DogStatsD line parsing and name mapping (src/protocol/statsd.h).
#include "protocol/statsd.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using taba::protocol::statsd::Kind;
using taba::protocol::statsd::Line;
using taba::protocol::statsd::map_name;
using taba::protocol::statsd::parse_datagram;
using taba::protocol::statsd::parse_line;
using taba::protocol::statsd::taba_type;

namespace {

// What parse_datagram delivered. Lines view into the datagram, which the
// test keeps alive.
struct Parsed {
  std::vector<Line> lines;
  std::vector<std::pair<std::string, std::string>> bad;  // line, reason
};

Parsed parse(std::string_view datagram) {
  Parsed p;
  parse_datagram(
      datagram, [&](const Line& l) { p.lines.push_back(l); },
      [&](std::string_view line, const char* why) { p.bad.emplace_back(std::string(line), why); });
  return p;
}

// parse_line's reason for a line, "" when it is good.
std::string reason(std::string_view text) {
  Line l;
  const char* why = parse_line(text, &l);
  return why ? why : "";
}

// The single good line of `text`.
Line one(std::string_view text) {
  Line l;
  const char* why = parse_line(text, &l);
  INFO(text);
  REQUIRE(why == nullptr);
  return l;
}

// The Taba name of a good line, or "<false>" when map_name refuses it.
std::string mapped(std::string_view text) {
  std::string out = "garbage that must be cleared";
  return map_name(one(text), &out) ? out : "<false>";
}

}  // namespace

TEST_CASE("statsd: every type", "[statsd]") {
  Line c = one("hits:3|c");
  CHECK(c.name == "hits");
  CHECK(c.value == "3");
  CHECK(c.values == "3");
  CHECK(c.number == 3);
  CHECK(c.kind == Kind::kCounter);
  CHECK(c.sample_rate == 1);
  CHECK(c.timestamp == 0);
  CHECK(c.tags.empty());

  CHECK(one("t:2.5|ms").kind == Kind::kTimer);
  CHECK(one("t:2.5|ms").number == 2.5);
  CHECK(one("h:7|h").kind == Kind::kHistogram);
  CHECK(one("d:0.125|d").kind == Kind::kDistribution);
  CHECK(one("d:0.125|d").number == 0.125);
  Line g = one("temp:21.5|g");
  CHECK(g.kind == Kind::kGauge);
  CHECK(g.number == 21.5);
  Line s = one("users:alice|s");
  CHECK(s.kind == Kind::kSet);
  CHECK(s.value == "alice");
  CHECK(s.number == 0);

  CHECK(taba_type(Kind::kCounter) == "CounterGroup");
  CHECK(taba_type(Kind::kTimer) == "PercentileGroup");
  CHECK(taba_type(Kind::kHistogram) == "PercentileGroup");
  CHECK(taba_type(Kind::kDistribution) == "PercentileGroup");
  CHECK(taba_type(Kind::kGauge) == "Gauge");
  CHECK(taba_type(Kind::kGaugeDelta) == "Gauge");
  CHECK(taba_type(Kind::kSet) == "Set");
}

TEST_CASE("statsd: number syntax", "[statsd]") {
  CHECK(one("a:.5|c").number == 0.5);
  CHECK(one("a:1.|c").number == 1);
  CHECK(one("a:1e3|c").number == 1000);
  CHECK(one("a:-0.25|ms").number == -0.25);
  CHECK(one("a:+4|c").number == 4);
  // A sign only makes a delta of a gauge.
  CHECK(one("a:-2|c").kind == Kind::kCounter);
  CHECK(one("a:-2|c").number == -2);
}

TEST_CASE("statsd: views point into the input", "[statsd]") {
  std::string text = "api.hits:1:2|c|#env:prod";
  Line l = one(text);
  CHECK(l.name.data() == text.data());
  CHECK(l.values.data() == text.data() + 9);
  CHECK(l.tags.data() == text.data() + 16);
}

TEST_CASE("statsd: sample rates", "[statsd]") {
  CHECK(one("a:1|c|@0.1").sample_rate == 0.1);
  CHECK(one("a:1|c|@1").sample_rate == 1);
  CHECK(one("a:1|c|@.25").sample_rate == 0.25);
  CHECK(one("a:1|ms|@1e-2").sample_rate == 0.01);
  CHECK(one("a:1|g|@0.5").sample_rate == 0.5);  // carried for every type
  for (const char* bad : {"a:1|c|@", "a:1|c|@0", "a:1|c|@1.5", "a:1|c|@-0.5", "a:1|c|@abc", "a:1|c|@nan",
                          "a:1|c|@inf", "a:1|c|@0.5x", "a:1|c|@ 0.5", "a:1|c|@+0.5"}) {
    INFO(bad);
    CHECK(reason(bad) == "bad sample rate");
  }
}

TEST_CASE("statsd: gauge deltas", "[statsd]") {
  Line up = one("g:+3|g");
  CHECK(up.kind == Kind::kGaugeDelta);
  CHECK(up.number == 3);
  // StatsD semantics: a leading '-' is a decrement, not a negative value.
  Line down = one("g:-5.5|g");
  CHECK(down.kind == Kind::kGaugeDelta);
  CHECK(down.number == -5.5);
  Line abs = one("g:5|g");
  CHECK(abs.kind == Kind::kGauge);
  CHECK(abs.number == 5);
  CHECK(one("g:-0|g").kind == Kind::kGaugeDelta);
}

TEST_CASE("statsd: DogStatsD fields in any order, unknown ones ignored", "[statsd]") {
  Line l = one("a:1|c|#x:y|c:abc123|@0.5|T1700000000|zzz||");
  CHECK(l.kind == Kind::kCounter);
  CHECK(l.sample_rate == 0.5);
  CHECK(l.tags == "x:y");
  CHECK(l.timestamp == 1700000000);

  Line m = one("a:1|ms|T17|@0.25|#b");
  CHECK(m.timestamp == 17);
  CHECK(m.sample_rate == 0.25);
  CHECK(m.tags == "b");

  // A repeated field: the last one counts.
  Line r = one("a:1|c|@0.5|#one|@0.25|#two");
  CHECK(r.sample_rate == 0.25);
  CHECK(r.tags == "two");

  CHECK(one("a:1|c|#").tags.empty());
  CHECK(one("a:1|c|").kind == Kind::kCounter);
}

TEST_CASE("statsd: timestamps", "[statsd]") {
  for (const char* bad : {"a:1|c|T", "a:1|c|T0", "a:1|c|T-5", "a:1|c|T+5", "a:1|c|Tabc", "a:1|c|T12.5",
                          "a:1|c|T99999999999999999999"}) {
    INFO(bad);
    CHECK(reason(bad) == "bad timestamp");
  }
}

TEST_CASE("statsd: multi-value lines", "[statsd]") {
  // parse_line: the first value, and the whole list.
  Line l = one("lat:1:2.5:3|ms|@0.5|#env:prod");
  CHECK(l.value == "1");
  CHECK(l.number == 1);
  CHECK(l.values == "1:2.5:3");

  // parse_datagram: one Line per value, the rest shared.
  std::string text = "lat:1:2.5:3|ms|@0.5|#env:prod";
  Parsed p = parse(text);
  REQUIRE(p.bad.empty());
  REQUIRE(p.lines.size() == 3);
  CHECK(p.lines[0].value == "1");
  CHECK(p.lines[1].value == "2.5");
  CHECK(p.lines[2].value == "3");
  CHECK(p.lines[0].number == 1);
  CHECK(p.lines[1].number == 2.5);
  CHECK(p.lines[2].number == 3);
  for (const Line& x : p.lines) {
    CHECK(x.name == "lat");
    CHECK(x.values == "1:2.5:3");
    CHECK(x.kind == Kind::kTimer);
    CHECK(x.sample_rate == 0.5);
    CHECK(x.tags == "env:prod");
  }

  // Each gauge value carries its own sign.
  std::string gauges = "g:5:+1:-2|g";
  Parsed g = parse(gauges);
  REQUIRE(g.lines.size() == 3);
  CHECK(g.lines[0].kind == Kind::kGauge);
  CHECK(g.lines[0].number == 5);
  CHECK(g.lines[1].kind == Kind::kGaugeDelta);
  CHECK(g.lines[1].number == 1);
  CHECK(g.lines[2].kind == Kind::kGaugeDelta);
  CHECK(g.lines[2].number == -2);
  CHECK(one("g:-1:5|g").kind == Kind::kGaugeDelta);  // parse_line: the first value's kind

  // A set member is the whole text, ':' included.
  std::string sets = "u:a:b|s";
  Parsed s = parse(sets);
  REQUIRE(s.lines.size() == 1);
  CHECK(s.lines[0].value == "a:b");

  // One bad value spoils the line.
  CHECK(reason("a:1::2|c") == "bad value");
  CHECK(reason("a:1:|c") == "bad value");
  CHECK(reason("a::1|c") == "bad value");
  CHECK(reason("a:1:x|h") == "bad value");
  Parsed bad = parse("a:1:nan:3|d");
  CHECK(bad.lines.empty());
  REQUIRE(bad.bad.size() == 1);
  CHECK(bad.bad[0].second == "bad value");
}

TEST_CASE("statsd: bad lines and their reasons", "[statsd]") {
  const std::string events = "dogstatsd events/service checks are not supported";
  CHECK(reason("_e{5,4}:title|text") == events);
  CHECK(reason("_e{5,4}:title|text|#a:b") == events);
  CHECK(reason("_sc|db.up|0|#env:prod") == events);

  CHECK(reason("a:1") == "missing '|' type");
  CHECK(reason("garbage") == "missing '|' type");
  CHECK(reason("a|c") == "missing ':' value");
  CHECK(reason("a|b:1|c") == "missing ':' value");  // the name ends before the first '|'
  CHECK(reason(":1|c") == "empty name");

  CHECK(reason("a:1|x") == "unknown type");
  CHECK(reason("a:1|") == "unknown type");
  CHECK(reason("a:1|C") == "unknown type");
  CHECK(reason("a:1|cc") == "unknown type");
  CHECK(reason("a:1|@0.5|c") == "unknown type");

  for (const char* bad :
       {"a:|c",     "a:nan|c",  "a:NaN|g", "a:inf|g", "a:-inf|g", "a:infinity|ms", "a:1e999|c",
        "a:0x10|c", "a:--1|g",  "a:+-1|g", "a:-+1|g", "a: 1|c",   "a:1 |c",        "a:+|g",
        "a:-|c",    "a:abc|ms", "a:1,5|c", "a:.|c",   "a:e5|c",   "a:|s"}) {
    INFO(bad);
    CHECK(reason(bad) == "bad value");
  }
}

TEST_CASE("statsd: datagram splitting", "[statsd]") {
  std::string text = "a:1|c\r\nb:2|ms\n\n\r\nbad\r\nc:3|g\n";
  Parsed p = parse(text);
  REQUIRE(p.lines.size() == 3);
  CHECK(p.lines[0].name == "a");
  CHECK(p.lines[1].name == "b");
  CHECK(p.lines[2].name == "c");
  CHECK(p.lines[2].value == "3");
  REQUIRE(p.bad.size() == 1);
  CHECK(p.bad[0].first == "bad");  // without its '\r'
  CHECK(p.bad[0].second == "missing '|' type");

  std::string unterminated = "a:1|c\nb:2|c";
  CHECK(parse(unterminated).lines.size() == 2);
  CHECK(parse("").lines.empty());
  CHECK(parse("\n\n\r\n").lines.empty());
  CHECK(parse("\n\n\r\n").bad.empty());

  // A line far longer than any name is fine in itself.
  std::string big = "u:" + std::string(100000, 'm') + "|s";
  Parsed b = parse(big);
  REQUIRE(b.lines.size() == 1);
  CHECK(b.lines[0].value.size() == 100000);
}

TEST_CASE("statsd: name mapping with tags", "[statsd]") {
  CHECK(mapped("api.latency:12|ms") == "api.latency");
  CHECK(mapped("api.latency:12|ms|#region:us,env:prod") == "api.latency;env=prod;region=us");
  // Order of the tags as sent does not matter.
  CHECK(mapped("x:1|c|#c,a:1,b") == "x;a=1;b;c");
  CHECK(mapped("x:1|c|#b,c,a:1") == "x;a=1;b;c");
  // Duplicates are kept once; same key with other values are distinct tags.
  CHECK(mapped("x:1|c|#b,a,b,a") == "x;a;b");
  CHECK(mapped("x:1|c|#k:2,k:1,k:2") == "x;k=1;k=2");
  // A tag without a value, with an empty value, and both.
  CHECK(mapped("x:1|c|#env,env:prod,env:") == "x;env;env=;env=prod");
  // Empty entries are skipped.
  CHECK(mapped("x:1|c|#,a,,b,") == "x;a;b");
  CHECK(mapped("x:1|c|#,,") == "x");
  // Only the first ':' separates; later ones stay in the value.
  CHECK(mapped("x:1|c|#url:http://h:80/p") == "x;url=http://h:80/p");
}

TEST_CASE("statsd: name and tag sanitizing", "[statsd]") {
  CHECK(mapped("my metric#1:1|c") == "my_metric_1");
  CHECK(mapped("caf\xc3\xa9:1|c") == "caf__");  // UTF-8: one '_' per byte
  CHECK(mapped("a.b-c_d~e/f?g@h!i$j(k)l*m+n=o:1|c") == "a.b-c_d~e/f?g@h!i$j(k)l*m+n=o");
  // ';' would read as a tag separator and '=' in a key as a value separator.
  CHECK(mapped("a;b=c:1|c") == "a_b=c");
  CHECK(mapped("x:1|c|#my tag:a b,k=v:w=z;y") == "x;k_v=w=z_y;my_tag=a_b");
  CHECK(mapped("x:1|c|#a=b") == "x;a_b");
  // Tags that map to the same text are one tag, and sorting uses the mapped
  // text: '-' (0x2d) before '_' (0x5f), though ' ' (0x20) sorts first as sent.
  CHECK(mapped("x:1|c|#a b,a_b") == "x;a_b");
  CHECK(mapped("x:1|c|#a b,a-b") == "x;a-b;a_b");
}

TEST_CASE("statsd: too long names", "[statsd]") {
  std::string n256(256, 'n');
  CHECK(mapped(n256 + ":1|c") == n256);
  CHECK(mapped(n256 + "n:1|c") == "<false>");
  // 250 + ";abcde" = 256 bytes.
  std::string n250(250, 'n');
  CHECK(mapped(n250 + ":1|c|#abcde") == n250 + ";abcde");
  CHECK(mapped(n250 + ":1|c|#abcdef") == "<false>");
  CHECK(mapped(n250 + ":1|c|#abc,d") == n250 + ";abc;d");
  CHECK(mapped(n250 + ":1|c|#abc,de") == "<false>");
  CHECK(mapped(n250 + ":1|c|#abcde,abcde,abcde") == n250 + ";abcde");

  // Many duplicates fit; many distinct tags do not.
  std::string dups;
  for (int i = 0; i < 1000; ++i) dups += "t,";
  CHECK(mapped("x:1|c|#" + dups) == "x;t");
  std::string distinct;
  for (int i = 0; i < 1000; ++i) distinct += "t" + std::to_string(i) + ",";
  CHECK(mapped("x:1|c|#" + distinct) == "<false>");
  // Every one-byte tag that maps to itself, sent in reverse order: 75 of
  // them after a 106-byte name make exactly 256 bytes.
  std::string all = "!$()*+-./0123456789?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
  REQUIRE(all.size() == 75);
  std::string reversed;
  std::string expect(106, 'n');
  for (size_t i = 0; i < all.size(); ++i) {
    reversed += std::string(i ? "," : "") + all[all.size() - 1 - i];
    expect += std::string(";") + all[i];
  }
  std::string out;
  Line l;
  l.name = std::string_view(n256).substr(0, 106);
  l.tags = reversed;
  REQUIRE(map_name(l, &out));
  CHECK(out.size() == 256);
  CHECK(out == expect);
  l.name = std::string_view(n256).substr(0, 107);
  CHECK_FALSE(map_name(l, &out));

  // A Line built by hand with no name.
  Line empty;
  CHECK_FALSE(map_name(empty, &out));
}

TEST_CASE("statsd: map_name reuses its output string", "[statsd]") {
  std::string out;
  REQUIRE(map_name(one("long.metric.name:1|c|#a:b,c:d"), &out));
  CHECK(out == "long.metric.name;a=b;c=d");
  REQUIRE(map_name(one("s:1|c"), &out));
  CHECK(out == "s");
}
