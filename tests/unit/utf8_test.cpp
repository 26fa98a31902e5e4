// core/utf8.h: the UTF-8 checks behind "nothing invalid is stored or served".
#include <catch2/catch.hpp>

#include <string>

#include "core/utf8.h"

using taba::is_valid_utf8;

namespace {

std::string sanitized(std::string_view s) {
  std::string out;
  taba::append_sanitized_utf8(s, &out);
  return out;
}

std::string latin1(std::string_view s) {
  std::string out;
  taba::append_latin1_as_utf8(s, &out);
  return out;
}

}  // namespace

TEST_CASE("well-formed UTF-8 is told from everything else", "[utf8]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ASCII, long enough for the eight-byte loop"));
  CHECK(is_valid_utf8("Z\xc3\xbcrich"));              // ü
  CHECK(is_valid_utf8("\xe2\x82\xac"));               // €
  CHECK(is_valid_utf8("\xf0\x9f\x98\x80 and more"));  // U+1F600
  CHECK(is_valid_utf8("\xf4\x8f\xbf\xbf"));           // U+10FFFF
  CHECK_FALSE(is_valid_utf8("Z\xfcrich"));            // Latin-1 ü
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));             // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xe0\x80\xaf"));         // overlong, 3 bytes
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));         // a surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));     // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xe2\x82"));             // cut short
  CHECK_FALSE(is_valid_utf8("12345678\x80"));         // stray continuation after the fast loop
}

TEST_CASE("Latin-1 becomes UTF-8, a byte per code point", "[utf8]") {
  CHECK(latin1("Z\xfcrich") == "Z\xc3\xbcrich");
  CHECK(latin1("\xff") == "\xc3\xbf");
  CHECK(latin1("ascii") == "ascii");
  for (int b = 0; b < 256; ++b) CHECK(is_valid_utf8(latin1(std::string(1, static_cast<char>(b)))));
}

TEST_CASE("sanitizing replaces each ill-formed part with U+FFFD and keeps the rest", "[utf8]") {
  CHECK(sanitized("Z\xc3\xbcrich") == "Z\xc3\xbcrich");
  CHECK(sanitized("Z\xfcrich") == "Z\xef\xbf\xbdrich");
  CHECK(sanitized("\xe2\x82" "x") == "\xef\xbf\xbdx");  // a cut-short sequence is one replacement
  CHECK(sanitized("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");
  for (int b = 0; b < 256; ++b) {
    std::string s = "ab" + std::string(1, static_cast<char>(b)) + "\xe2\x82";
    CHECK(is_valid_utf8(sanitized(s)));
  }
}
