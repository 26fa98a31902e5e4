// FNV-1a 64: the hash that places a name in a Redis vbucket (so its value is
// part of the stored layout and must never change) and that the agent uses
// to give a dead letter a short, stable file name. Not for hash tables fed
// by untrusted keys.
#pragma once

#include <cstdint>
#include <string_view>

namespace taba {

inline uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace taba
