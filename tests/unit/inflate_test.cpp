#include <catch2/catch.hpp>
#include <zlib.h>

#include <string>
#include <vector>

#include "http/inflate.h"

using taba::http::Inflater;

namespace {

std::string compress(const std::string& in, int window_bits, int level = 6) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string inflate_all(Inflater& inf, const std::string& in, size_t chunk, taba::Status* status) {
  std::string out;
  for (size_t i = 0; i < in.size(); i += chunk) {
    *status = inf.feed(std::string_view(in).substr(i, chunk), [&](std::string_view piece) {
      out.append(piece);
      return true;
    });
    if (!status->ok()) return out;
  }
  *status = inf.finish();
  return out;
}

}  // namespace

TEST_CASE("zlib, gzip and raw deflate bodies inflate in any chunking", "[inflate]") {
  std::string body;
  for (int i = 0; i < 20000; ++i) body += "[\"CounterGroup\", 1400000000, \"" + std::to_string(i) + "\"]\n";
  struct Case {
    int bits;
    Inflater::Format format;
  };
  for (Case c : {Case{15, Inflater::Format::kZlibOrGzip}, Case{31, Inflater::Format::kZlibOrGzip},
                 Case{15, Inflater::Format::kDeflate}, Case{-15, Inflater::Format::kDeflate}}) {
    std::string z = compress(body, c.bits);
    for (size_t chunk : {size_t{1}, size_t{100}, size_t{1} << 20}) {
      Inflater inf(c.format, {});
      taba::Status s;
      std::string out = inflate_all(inf, z, chunk, &s);
      INFO("bits " << c.bits << " chunk " << chunk << " " << s.message());
      REQUIRE(s.ok());
      CHECK(out == body);
    }
  }
}

TEST_CASE("corrupt, truncated and bomb bodies are refused", "[inflate]") {
  std::string body(4 << 20, 'a');
  std::string z = compress(body, 15);
  {
    std::string varied;
    for (int i = 0; i < 100000; ++i) varied += std::to_string(i * 7919 % 100003) + ",";
    std::string vz = compress(varied, 15);
    Inflater inf(Inflater::Format::kZlibOrGzip, {});
    taba::Status s;
    inflate_all(inf, vz.substr(0, vz.size() / 2), 512, &s);
    CHECK(s.message() == "compressed body is truncated");
  }
  {
    std::string bad = z;
    bad[10] ^= 0x55;
    bad[11] ^= 0x55;
    Inflater inf(Inflater::Format::kZlibOrGzip, {});
    taba::Status s;
    inflate_all(inf, bad, 512, &s);
    CHECK_FALSE(s.ok());
  }
  {
    Inflater::Limits limits;
    limits.max_ratio = 100;  // 4 MiB of 'a' compresses ~1000:1
    Inflater inf(Inflater::Format::kZlibOrGzip, limits);
    taba::Status s;
    inflate_all(inf, z, 1 << 20, &s);
    CHECK(s.message().find("compression ratio exceeds 100:1") != std::string::npos);
  }
  {
    Inflater::Limits limits;
    limits.max_output_bytes = 1 << 20;
    Inflater inf(Inflater::Format::kZlibOrGzip, limits);
    taba::Status s;
    inflate_all(inf, z, 1 << 20, &s);
    CHECK(s.message().find("decompressed body exceeds 1048576 bytes") != std::string::npos);
  }
}

TEST_CASE("a zlib body whose Adler-32 does not match is refused", "[inflate]") {
  std::string body;
  for (int i = 0; i < 3000; ++i) body += "[\"PercentileGroup\", 1400000000, \"" + std::to_string(i) + "\"]\n";
  // Stored blocks (level 0): a changed data byte still inflates, and only
  // the checksum tells.
  for (int level : {0, 6}) {
    const std::string z = compress(body, 15, level);
    for (Inflater::Format format : {Inflater::Format::kZlibOrGzip, Inflater::Format::kDeflate}) {
      // Every chunking of the trailer's 4 bytes.
      for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{7}, size_t{4096}, z.size()}) {
        Inflater inf(format, {});
        taba::Status s;
        std::string out = inflate_all(inf, z, chunk, &s);
        INFO("level " << level << " chunk " << chunk << " " << s.message());
        REQUIRE(s.ok());
        CHECK(out == body);
      }
      std::vector<size_t> changed = {z.size() - 1, z.size() - 2, z.size() - 3, z.size() - 4};
      if (level == 0) changed.push_back(z.size() / 2);
      for (size_t at : changed) {
        for (size_t chunk : {size_t{1}, size_t{3}, z.size()}) {
          std::string bad = z;
          bad[at] ^= 0x10;
          Inflater inf(format, {});
          taba::Status s;
          inflate_all(inf, bad, chunk, &s);
          INFO("level " << level << " byte " << at << " of " << z.size() << " chunk " << chunk);
          CHECK(s.message() == "compressed body is corrupt: incorrect data check");
        }
      }
      // The trailer cut short, or followed by more bytes.
      for (size_t keep : {z.size() - 1, z.size() - 4}) {
        Inflater inf(format, {});
        taba::Status s;
        inflate_all(inf, z.substr(0, keep), 5, &s);
        CHECK(s.message() == "compressed body is truncated");
      }
      Inflater inf(format, {});
      taba::Status s;
      inflate_all(inf, z + "x", 5, &s);
      CHECK(s.message() == "compressed body: data after the end of the compressed stream");
    }
  }
}
