// Streaming decompression of request bodies (zlib, gzip, raw deflate) with
// limits against compression bombs. A zlib body's Adler-32 is checked with
// http/adler32 rather than zlib's own (several times faster); gzip's CRC
// stays zlib's.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace taba::http {

class Inflater {
 public:
  enum class Format {
    kZlibOrGzip,  // RFC 1950 or 1952, detected from the header
    kDeflate,     // Content-Encoding: deflate: RFC 1950, or raw RFC 1951
  };
  struct Limits {
    uint64_t max_output_bytes = 512ull << 20;
    uint64_t max_ratio = 1000;  // output bytes per input byte, checked past 1 MiB of output
    // Named in the errors, e.g. the configuration keys the limits come from.
    std::string output_limit_name = "limit";
    std::string ratio_limit_name = "limit";
  };

  Inflater(Format format, Limits limits);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Decompresses `in`, handing each produced piece to `sink`. A sink
  // returning false stops decompression (feed then returns OK; the caller
  // knows why it stopped). Errors: corrupt data, limits exceeded.
  Status feed(std::string_view in, const std::function<bool(std::string_view)>& sink);
  // Checks that the compressed stream ended properly.
  Status finish();

  uint64_t bytes_in() const { return in_total_; }
  uint64_t bytes_out() const { return out_total_; }

 private:
  Status start(std::string_view first);
  // Remembers the last 4 input bytes inflate consumed (at the end of a
  // zlib stream, its Adler-32).
  void note_consumed(const unsigned char* from, size_t n);
  Format format_;
  Limits limits_;
  z_stream zs_{};
  std::string head_;  // first byte of a "deflate" body, until a second arrives
  bool started_ = false;
  bool ended_ = false;
  bool own_check_ = false;  // a zlib stream: zlib does not check it, adler32_update does
  uint32_t adler_ = 1;      // of the output so far
  unsigned char last_in_[4] = {};  // the last 4 bytes consumed
  uint64_t consumed_ = 0;
  uint64_t in_total_ = 0;
  uint64_t out_total_ = 0;
  char out_buf_[64 * 1024];
};

}  // namespace taba::http
