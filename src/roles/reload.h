// SIGHUP: taking a re-read configuration into a running tabad. New plugin
// files, type aliases, auth tokens, the log level, ingest limits and the GC
// / self-tab intervals change live; anything else that changed is named in
// the log as needing a restart and keeps running as it is.
#pragma once

#include <string>

#include "core/config.h"
#include "plugin/registry.h"

namespace taba::roles {

// With `next` invalid: logs why and returns false; nothing changes.
// Otherwise applies the process-wide changes (new plugin files found in
// `plugins_dir` and type aliases to `registry`, the log level), logs what
// was applied and what needs a restart, sets `*running` to `next` with the
// settings that need a restart as they run, and returns true; the roles then
// take `*running` through their reload().
bool reload_config(Config* running, Result<Config> next, plugin::Registry* registry, const std::string& plugins_dir);

}  // namespace taba::roles
