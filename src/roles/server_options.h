// The HTTP server limits of [http], shared by every role that listens.
#pragma once

#include "core/config.h"
#include "http/server.h"

namespace taba::roles {

inline http::ServerOptions server_options(const Config::Http& h) {
  http::ServerOptions o;
  o.max_body_bytes = static_cast<uint64_t>(h.max_body_bytes);
  o.max_header_bytes = static_cast<size_t>(h.max_header_bytes);
  o.header_timeout_ms = static_cast<uint32_t>(h.header_timeout_ms);
  o.body_timeout_ms = static_cast<uint32_t>(h.body_timeout_ms);
  o.min_body_rate = static_cast<uint32_t>(h.min_body_rate);
  o.idle_timeout_ms = static_cast<uint32_t>(h.idle_timeout_ms);
  o.max_connections = static_cast<uint32_t>(h.max_connections);
  return o;
}

}  // namespace taba::roles
