// The tabad process: one uv loop running the configured roles (the server
// role for fe/be/ctrl, roles/server.h; the agent; the client-proxy) and the
// signals: SIGTERM/SIGINT stop the roles in order, SIGHUP reloads the
// configuration (roles/reload.h).
#pragma once

#include <functional>
#include <memory>

#include "core/config.h"

namespace taba::roles {

// Re-reads the configuration (file + flags) for SIGHUP.
using ConfigSource = std::function<Result<Config>()>;

// Runs until SIGTERM/SIGINT; returns the process exit code. SIGHUP reloads
// what can change live (see roles/reload.h).
int run_daemon(const Config& config, ConfigSource reload = {});

}  // namespace taba::roles
