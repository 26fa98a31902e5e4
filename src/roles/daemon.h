// The tabad process: one uv loop running the configured roles over the
// embedded store, the HTTP server, and signal handling.
#pragma once

#include <functional>
#include <memory>

#include "core/config.h"

namespace taba::roles {

// Re-reads the configuration (file + flags) for SIGHUP.
using ConfigSource = std::function<Result<Config>()>;

// Runs until SIGTERM/SIGINT; returns the process exit code. SIGHUP reloads
// what can change live (see reload in daemon.cpp).
int run_daemon(const Config& config, ConfigSource reload = {});

}  // namespace taba::roles
