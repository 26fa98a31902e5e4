// canonical_json (plugins/common/json_canonical.h): one text per JSON
// value. The client library's JSON checker (src/client/json_text.h, written
// separately) confirms every output is valid JSON and valid UTF-8.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "client/json_text.h"
#include "common/json_canonical.h"
#include "common/text.h"
#include "protocol/payload.h"
#include "taba/handler.h"

namespace {

using taba::builtin::canonical_json;

// The canonical text of `text`, which must be accepted; checks the result
// is valid JSON and canonical in turn (canonicalizing it changes nothing).
std::string canon(const std::string& text) {
  std::string scratch;
  std::string_view out;
  INFO("input: " << text);
  REQUIRE(canonical_json(text, &scratch, &out));
  const std::string result(out);
  INFO("output: " << result);
  CHECK(taba::client::check_json_value(result).empty());
  std::string again_scratch;
  std::string_view again;
  REQUIRE(canonical_json(result, &again_scratch, &again));
  CHECK(again == result);
  return result;
}

bool accepted(const std::string& text) {
  std::string scratch;
  std::string_view out;
  return canonical_json(text, &scratch, &out);
}

// Whether `text` is recognised as canonical without being copied.
bool kept_in_place(const std::string& text) {
  std::string scratch;
  std::string_view out;
  REQUIRE(canonical_json(text, &scratch, &out));
  return out.data() == text.data() && out.size() == text.size() && scratch.empty();
}

const std::vector<std::string> kNotJson = {
    "",    " 1",    "tru",      "nul",       "truex",       "01",         "-01",       "1.",       ".5",
    "-",   "+1",    "1e",       "1e+",       "0x10",        "NaN",        "Infinity",  "1e400",    "-1e400",
    "1 2", "\"abc", "\"a\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\",       "\"a\x01\"", "\"a\nb\"", "[1,]",
    "[1",  "[1 2]", "{1:2}",    "{\"a\"}",   "{\"a\":}",    "{\"a\":1,}", "]",         "\"a\"b"};

std::string quoted(const std::string& body) {
  return "\"" + body + "\"";
}

}  // namespace

TEST_CASE("canonical JSON: strings are decoded and written one way", "[json_canonical]") {
  // The escapes of the original Python client (cjson writes \/).
  CHECK(canon(R"("a\/b")") == R"("a/b")");
  CHECK(canon(R"("a/b")") == R"("a/b")");
  // Non-ASCII as raw UTF-8, whichever way it came.
  CHECK(canon(R"("Z\u00fcrich")") == "\"Z\xc3\xbcrich\"");
  CHECK(canon(R"("Z\u00FCrich")") == "\"Z\xc3\xbcrich\"");
  CHECK(canon("\"Z\xc3\xbcrich\"") == "\"Z\xc3\xbcrich\"");
  CHECK(canon(R"("\u0061")") == R"("a")");
  CHECK(canon(R"("\u20ac")") == "\"\xe2\x82\xac\"");
  // Only '"' and '\' are backslash-escaped, however they were written.
  CHECK(canon(R"("say \"hi\" \\ bye")") == R"("say \"hi\" \\ bye")");
  CHECK(canon(R"("\u0022\u005c")") == R"("\"\\")");
  // Control characters: the short escapes, else \u00XX in lower case.
  CHECK(canon(R"("\b\f\n\r\t")") == R"("\b\f\n\r\t")");
  CHECK(canon(R"("\u0008\u000C\u000a\u000D\u0009")") == R"("\b\f\n\r\t")");
  CHECK(canon(R"("\u0001\u001F\u0000")") == R"("\u0001\u001f\u0000")");
  // DEL and the line separators are not control characters in JSON: raw.
  CHECK(canon(R"("\u007f\u2028")") == "\"\x7f\xe2\x80\xa8\"");
  CHECK(canon(R"("")") == R"("")");
}

TEST_CASE("canonical JSON: surrogate escapes", "[json_canonical]") {
  const std::string smile = "\xf0\x9f\x98\x80";  // U+1F600
  const std::string fffd = "\xef\xbf\xbd";
  CHECK(canon(R"("\ud83d\ude00")") == quoted(smile));
  CHECK(canon(R"("\uD83D\uDE00!")") == quoted(smile + "!"));
  CHECK(canon(quoted(smile)) == quoted(smile));
  // Unpaired: U+FFFD for the lone half; what follows is read on its own.
  CHECK(canon(R"("\ud83d")") == quoted(fffd));
  CHECK(canon(R"("\ud83dx")") == quoted(fffd + "x"));
  CHECK(canon(R"("\ud83d\u0041")") == quoted(fffd + "A"));
  CHECK(canon(R"("\ud83d\n")") == quoted(fffd + "\\n"));
  CHECK(canon(R"("\ude00")") == quoted(fffd));
  CHECK(canon(R"("\ude00\ud83d")") == quoted(fffd + fffd));
  CHECK(canon(R"("\ud83d\ud83d\ude00")") == quoted(fffd + smile));
}

TEST_CASE("canonical JSON: a string that is not UTF-8 is read as Latin-1", "[json_canonical]") {
  // The Java client's "Zürich" in ISO-8859-1.
  CHECK(canon("\"Z\xfcrich\"") == "\"Z\xc3\xbcrich\"");
  CHECK(canon("\"\xe9t\xe9\"") == "\"\xc3\xa9t\xc3\xa9\"");
  // Every byte of such a string, even one that would be UTF-8 on its own.
  CHECK(canon("\"\xc3\xbc\xfc\"") == "\"\xc3\x83\xc2\xbc\xc3\xbc\"");
  // Escapes still decode.
  CHECK(canon("\"\xfc\\/\\u00fc\"") == "\"\xc3\xbc/\xc3\xbc\"");
  // Not UTF-8: a stray continuation byte, overlong forms, an encoded
  // surrogate, beyond U+10FFFF, a sequence cut short.
  CHECK(canon("\"\x80\"") == "\"\xc2\x80\"");
  CHECK(canon("\"\xc0\xaf\"") == "\"\xc3\x80\xc2\xaf\"");
  CHECK(canon("\"\xe0\x80\xaf\"") == "\"\xc3\xa0\xc2\x80\xc2\xaf\"");
  CHECK(canon("\"\xed\xa0\x80\"") == "\"\xc3\xad\xc2\xa0\xc2\x80\"");
  CHECK(canon("\"\xf4\x90\x80\x80\"") == "\"\xc3\xb4\xc2\x90\xc2\x80\xc2\x80\"");
  CHECK(canon("\"a\xe2\x82\"") == "\"a\xc3\xa2\xc2\x82\"");
  CHECK(canon("\"\xff\"") == "\"\xc3\xbf\"");
  // The edges of well-formed UTF-8 stay as they are.
  for (const std::string ok : {"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                               "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    CHECK(canon(quoted(ok)) == quoted(ok));
  }
  // Per string: one Latin-1 string does not change its neighbour.
  CHECK(canon("[\"\xfc\", \"\xc3\xbc\"]") == "[\"\xc3\xbc\",\"\xc3\xbc\"]");
}

TEST_CASE("canonical JSON: numbers are the double's shortest text", "[json_canonical]") {
  CHECK(canon("1.5") == "1.5");
  CHECK(canon("1.50") == "1.5");
  CHECK(canon("15e-1") == "1.5");
  CHECK(canon("0.15E+1") == "1.5");
  CHECK(canon("-0") == "0");
  CHECK(canon("-0.0e5") == "0");
  CHECK(canon("1e3") == "1000");
  CHECK(canon("1.0") == "1");
  CHECK(canon("100") == "100");
  CHECK(canon("-12") == "-12");
  CHECK(canon("0") == "0");
  CHECK(canon("1234567890123456") == "1234567890123456");
  CHECK(canon("12345678901234567890") == "12345678901234567000");
  CHECK(canon("1e21") == "1e+21");
  CHECK(canon("0.0000001") == "1e-7");
  CHECK(canon("1763830000.123") == "1763830000.123");
  CHECK(canon("0.1e-320") == "1e-321");
  // Whatever the spelling, the same double prints the same.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mag(-30, 30);
  for (int i = 0; i < 2000; ++i) {
    const double v = std::pow(10.0, mag(rng)) * (rng() % 2 ? 1 : -1);
    std::string shortest;
    taba::builtin::append_shortest_double(v, &shortest);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    CHECK(canon(buf) == shortest);
    std::snprintf(buf, sizeof buf, "%.25e", v);
    CHECK(canon(buf) == shortest);
  }
}

TEST_CASE("canonical JSON: literals and containers", "[json_canonical]") {
  CHECK(canon("true") == "true");
  CHECK(canon("false") == "false");
  CHECK(canon("null") == "null");
  CHECK(canon("[ 1 , \"a\" ]") == R"([1,"a"])");
  CHECK(canon("[ ]") == "[]");
  CHECK(canon("{ }") == "{}");
  CHECK(canon(R"({ "k" : 1.50 , "\u006b2" : [ 15e-1, "a\/b", {"x": null} ] })") ==
        R"({"k":1.5,"k2":[1.5,"a/b",{"x":null}]})");
  // Member order is kept; a key repeated after decoding stays repeated.
  CHECK(canon(R"({"b": 1, "a": 2})") == R"({"b":1,"a":2})");
  CHECK(canon(R"({"a": 1, "\u0061": 2})") == R"({"a":1,"a":2})");
  CHECK(canon("{\"\xfc\": \"\xfc\"}") == "{\"\xc3\xbc\":\"\xc3\xbc\"}");
}

TEST_CASE("canonical JSON: nesting as deep as the host accepts", "[json_canonical]") {
  const int depth = taba::builtin::kMaxJsonDepth;
  const std::string deepest = std::string(depth, '[') + " 1.50 " + std::string(depth, ']');
  // (Deeper than the client library's checker goes: compared as text.)
  std::string scratch;
  std::string_view out;
  REQUIRE(canonical_json(deepest, &scratch, &out));
  CHECK(out == std::string(depth, '[') + "1.5" + std::string(depth, ']'));
  CHECK_FALSE(accepted("[" + deepest + "]"));
}

TEST_CASE("canonical JSON: what is not one JSON value is refused", "[json_canonical]") {
  for (const std::string& bad : kNotJson) {
    INFO("input: " << bad);
    CHECK_FALSE(accepted(bad));
  }
}

TEST_CASE("canonical JSON: accepts exactly what the host's payload scanner accepts", "[json_canonical]") {
  // So a value that passed the host always has a canonical form (fold has
  // no way to refuse one).
  std::vector<std::string> inputs = kNotJson;
  for (const std::string more : {"1.50", "-0", "1e-400", "5e-324", "\"\\ud800\"", "\"\xfc\"",
                                 "[1, {\"a\": []}]", " true ", "\"\\u0000\""}) {
    inputs.push_back(more);
  }
  for (int depth : {taba::builtin::kMaxJsonDepth, taba::builtin::kMaxJsonDepth + 1}) {
    inputs.push_back(std::string(depth, '[') + std::string(depth, ']'));
    std::string objects;
    for (int i = 0; i < depth; ++i) objects += "{\"k\":";
    objects += "1" + std::string(depth, '}');
    inputs.push_back(objects);
  }
  for (const std::string& in : inputs) {
    taba_event event{};
    const std::string host_error = taba::protocol::parse_payload(in, &event);
    INFO("input: " << in << "; host: " << host_error);
    // Handlers see the value's text without the whitespace around it.
    CHECK(accepted(std::string(taba::builtin::trim_json_space(in))) == host_error.empty());
  }
}

TEST_CASE("canonical JSON: the common values are kept in place", "[json_canonical]") {
  for (const std::string as_is : {"\"red\"", "\"a/b\"", "\"Z\xc3\xbcrich\"", "\"\"", "0", "5", "-12",
                                  "123456789012345", "true", "false", "null"}) {
    INFO(as_is);
    CHECK(kept_in_place(as_is));
  }
  // Everything else is rewritten (even when the result is the same text).
  for (const std::string copied : {"\"a\\nb\"", "1.5", "1234567890123456", "[1]", "\"\xfc\""}) {
    INFO(copied);
    CHECK_FALSE(kept_in_place(copied));
  }
}

TEST_CASE("canonical JSON: equal strings however spelled are one text", "[json_canonical]") {
  // Each piece in the ways clients write it.
  const std::vector<std::vector<std::string>> pieces = {
      {"a", "\\u0061", "\\u0061"},
      {"/", "\\/", "\\u002f"},
      {"\xc3\xbc", "\\u00fc", "\\u00FC"},
      {"\xe2\x82\xac", "\\u20ac", "\\u20AC"},
      {"\xf0\x9f\x98\x80", "\\ud83d\\ude00", "\\uD83D\\uDE00"},
      {"\\n", "\\u000a", "\\u000A"},
      {"\\u0001", "\\u0001", "\\u0001"},
      {"\\\"", "\\u0022", "\\u0022"},
      {"\\\\", "\\u005c", "\\u005C"},
      {" ", "\\u0020", " "},
      {"\x7f", "\\u007f", "\\u007F"},
  };
  std::mt19937_64 rng(11);
  for (int i = 0; i < 3000; ++i) {
    std::string one = "\"";
    std::string other = "\"";
    const size_t n = rng() % 12;
    for (size_t k = 0; k < n; ++k) {
      const auto& spellings = pieces[rng() % pieces.size()];
      one += spellings[rng() % spellings.size()];
      other += spellings[rng() % spellings.size()];
    }
    one += "\"";
    other += "\"";
    CHECK(canon(one) == canon(other));
  }
}

TEST_CASE("canonical JSON: any string body gives valid UTF-8 JSON", "[json_canonical]") {
  // Random bytes (no '"' or '\' or control bytes, which would end or break
  // the literal) mixed with escapes, lone surrogates included.
  const std::vector<std::string> escapes = {"\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u0000", "\\/", "\\t"};
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5000; ++i) {
    std::string body;
    const size_t n = rng() % 16;
    for (size_t k = 0; k < n; ++k) {
      if (rng() % 4 == 0) {
        body += escapes[rng() % escapes.size()];
      } else {
        auto c = static_cast<char>(0x20 + rng() % 0xE0);
        if (c == '"' || c == '\\') c = 'x';
        body.push_back(c);
      }
    }
    canon(quoted(body));  // checks validity and idempotence
  }
}

TEST_CASE("canonical JSON: stored values", "[json_canonical]") {
  using taba::builtin::read_stored_value;
  std::string scratch;
  std::string_view out;
  // Written before values were canonical: rewritten.
  REQUIRE(read_stored_value("1.50", false, &scratch, &out));
  CHECK(out == "1.5");
  REQUIRE(read_stored_value("\"a\"", false, &scratch, &out));
  CHECK(out == "\"a\"");
  // Written since: must be canonical already.
  REQUIRE(read_stored_value("1.5", true, &scratch, &out));
  CHECK(out == "1.5");
  CHECK_FALSE(read_stored_value("1.50", true, &scratch, &out));
  CHECK_FALSE(read_stored_value("[1, 2]", true, &scratch, &out));
  CHECK(read_stored_value("[1,2]", true, &scratch, &out));
  // Never JSON: refused either way.
  CHECK_FALSE(read_stored_value("[1,", false, &scratch, &out));
  CHECK_FALSE(read_stored_value("", true, &scratch, &out));
}
