// libFuzzer: reading agent spool segments (untrusted bytes from disk) and
// encoding their batches back into v1 bodies, which must then decode.
#include <cstdint>
#include <string>

#include "agent/spool.h"
#include "protocol/v1_encoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto contents = taba::agent::parse_segment(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!contents.ok()) return 0;
  taba::protocol::V1Encoder enc;
  for (const auto& record : contents->records) {
    (void)enc.add_batch(record.batch);
  }
  std::string body = enc.finish();
  if (body.compare(0, 3, "1\n\n") != 0) __builtin_trap();
  return 0;
}
