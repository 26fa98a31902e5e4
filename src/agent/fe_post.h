// One POST of a segment's body to an fe's /post_zip (a zlib'd v1 body) or
// /post_delta (a delta batch in its envelope), and what the answer means to
// the forwarder: applied (2xx, perhaps with refused blocks named in its
// body), refused for good (a 4xx the body itself caused: resending it
// cannot help), or to retry later (no answer, or an answer that blames the
// request's moment or credentials, not the body; see forwarder.h). An fe
// that does not know /post_delta (an older tabad: 404, 405 or 415 there) is
// told apart, so that the forwarder sends it v1 instead.
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
  // The reply's "line N: reason" ("block N: reason" for /post_delta) lines
  // for refused blocks, when it has a Taba-Refused-Blocks header (a 200,
  // or a 400 refusing every block).
  std::string refusals;
  // /post_delta only: the fe does not serve it (404, 405 or 415); outcome
  // is kRetry.
  bool no_delta_route = false;
  // The forwarder's: the segment holds delta records and no endpoint that
  // takes /post_delta is usable now: it waits (not the endpoint's fault).
  bool waiting_for_delta = false;
};

// First line of a server's reply, for logs.
std::string first_line(std::string_view body);

// POSTs `compressed` (a zlib'd v1 body) to `ep` as batch `batch_id`, over
// `conn` (opened if it is not; reset when the request fails), with a Bearer
// `token` unless it is empty.
Attempt post_zip(const std::string& compressed, const std::string& batch_id, const Endpoint& ep,
                 const std::string& token, std::optional<http::ClientConnection>& conn, int timeout_ms);

// POSTs `body` (protocol::wrap_delta_body; zlib'd with Content-Encoding:
// deflate when `compressed`) to `ep`'s /post_delta, as post_zip does.
Attempt post_delta(const std::string& body, bool compressed, const std::string& batch_id, const Endpoint& ep,
                   const std::string& token, std::optional<http::ClientConnection>& conn, int timeout_ms);

}  // namespace taba::agent
