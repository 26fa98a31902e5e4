// When an append-only log that acknowledges writes fsyncs: the embedded
// store's WAL (store.fsync) and the agent's spool (agent.fsync). "always":
// a write is fsynced before it is acknowledged; "everysec": it is
// acknowledged once written, and fsynced within the second. Configuration
// reads the spelling once (core/config.h); everything after holds the enum.
#pragma once

#include <string_view>

namespace taba {

enum class FsyncPolicy { kAlways, kEverySec };

// The configuration spelling: "always" or "everysec".
constexpr std::string_view fsync_policy_name(FsyncPolicy policy) {
  return policy == FsyncPolicy::kAlways ? "always" : "everysec";
}

}  // namespace taba
