// One POST of a segment's body to an fe's /post_zip, and what the answer
// means to the forwarder: applied (2xx, perhaps with refused blocks named in
// its body), refused for good (a 4xx the body itself caused: resending it
// cannot help), or to retry later (no answer, or an answer that blames the
// request's moment or credentials, not the body; see forwarder.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/endpoint_pool.h"
#include "http/client.h"

namespace taba::agent {

enum class Outcome { kOk, kDeadLetter, kRetry };

struct Attempt {
  Outcome outcome = Outcome::kRetry;
  int status = 0;
  std::string message;         // for logs / the dead-letter reason
  int64_t retry_after_ms = 0;  // from a Retry-After header
  double latency_ms = 0;
  std::string refusals;  // a 200's "line N: reason" lines for refused blocks
};

// First line of a server's reply, for logs.
std::string first_line(std::string_view body);

// POSTs `compressed` (a zlib'd v1 body) to `ep` as batch `batch_id`, over
// `conn` (opened if it is not; reset when the request fails), with a Bearer
// `token` unless it is empty.
Attempt post_zip(const std::string& compressed, const std::string& batch_id, const Endpoint& ep,
                 const std::string& token, std::optional<http::ClientConnection>& conn, int timeout_ms);

}  // namespace taba::agent
