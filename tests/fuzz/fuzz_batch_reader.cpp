// libFuzzer: reading WAL batch records (untrusted bytes from disk).
#include <cstdint>
#include <vector>

#include "protocol/batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  taba::protocol::BatchReader reader(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!reader.open().ok()) return 0;
  taba::protocol::BatchBlock b;
  std::vector<taba_event> evs;
  taba::Status s;
  while (reader.next(&b, &evs, &s)) {
  }
  return 0;
}
