// libFuzzer: decompression of request bodies (both formats), with limits.
#include <cstdint>

#include "http/inflate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (auto format : {taba::http::Inflater::Format::kZlibOrGzip, taba::http::Inflater::Format::kDeflate}) {
    taba::http::Inflater::Limits limits;
    limits.max_output_bytes = 8 << 20;
    taba::http::Inflater inf(format, limits);
    size_t half = size / 2;
    auto sink = [](std::string_view) { return true; };
    if (inf.feed(in.substr(0, half), sink).ok() && inf.feed(in.substr(half), sink).ok()) {
      (void)inf.finish();  // the fuzzer looks for crashes; a truncated stream is a fine outcome
    }
  }
  return 0;
}
