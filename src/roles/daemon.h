// The tabad process: one uv loop running the configured roles over the
// embedded store, the HTTP server, and signal handling.
#pragma once

#include <memory>

#include "core/config.h"

namespace taba::roles {

// Runs until SIGTERM/SIGINT; returns the process exit code.
int run_daemon(const Config& config);

}  // namespace taba::roles
