// libFuzzer: a POST /post_delta body (envelope and delta batch), the bytes
// an fe or an agent takes from the network.
#include <cstdint>
#include <string>

#include "protocol/delta_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The batch alone (as a spool or WAL record holds it) and the envelope.
  for (int pass = 0; pass < 2; ++pass) {
    std::string_view batch = in;
    if (pass == 1) {
      auto unwrapped = taba::protocol::unwrap_delta_body(in);
      if (!unwrapped.ok()) break;
      batch = unwrapped.value();
    }
    taba::protocol::DeltaReader reader(batch);
    if (!reader.open().ok()) continue;
    taba::protocol::DeltaWriter writer(reader.time());
    taba::protocol::DeltaBlock block;
    taba::Status status;
    while (reader.next(&block, &status)) writer.add(block);
    // A batch read whole re-encodes to the same bytes.
    if (status.ok() && writer.finish() != batch) __builtin_trap();
  }
  return 0;
}
