// libFuzzer: the placement JSON a Redis store reads from every shard's
// `P placement` (src/store/redis/placement.h), and a dedup marker.
#include <cstdint>
#include <string>

#include "store/redis/placement.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  taba::Result<taba::redis::Placement> p = taba::redis::Placement::parse(in);
  if (p.ok()) {
    // What parses writes back to a form that parses to the same JSON.
    std::string once = p->to_json();
    taba::Result<taba::redis::Placement> again = taba::redis::Placement::parse(once);
    if (!again.ok() || again->to_json() != once) __builtin_trap();
    std::string owned = p->owned_bytes(p->shards.empty() ? "" : p->shards[0]);
    if (owned.size() != p->vbuckets) __builtin_trap();
  }
  taba::redis::DedupBits bits(1024);
  bits.merge_marker(in);
  return 0;
}
