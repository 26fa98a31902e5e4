// One POST of a segment's body to an fe's /post_zip (a zlib'd v1 body) or
// /post_delta (a delta batch in its envelope), and what the answer means to
// the forwarder: applied (2xx, perhaps with refused blocks named in its
// body), refused for good (a 4xx the body itself caused: resending it
// cannot help), or to retry later (no answer, or an answer that blames the
// request's moment or credentials, not the body; see forwarder.h). An fe
// that does not know /post_delta (an older tabad: 404, 405 or 415 there) is
// told apart, so that the forwarder sends it v1 instead.
#pragma once

#include <atomic>
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
  // The reply's Taba-Dedup-Window (seconds the fe remembers a batch id),
  // or -1 when it had none.
  int64_t dedup_window_s = -1;
  // The forwarder's: a 5xx to this batch while the endpoint acknowledged
  // other batches (poison_batch.cpp); the batch backs off, not the endpoint.
  bool strike = false;
  // The forwarder's: the batch was moved to the dead letters after too many
  // such answers (outcome kOk: settled).
  bool gave_up = false;
};

// Where and how one post goes.
struct PostTarget {
  const Endpoint& ep;
  const std::string& token;                     // Bearer token ("" = none)
  std::optional<http::ClientConnection>& conn;  // opened if it is not; reset when the request fails
  int timeout_ms;
  // Ends a request in flight early (the forwarder's shutdown deadline; see
  // http::ClientConnection::set_cutoff). nullptr: none.
  const std::atomic<int64_t>* cutoff = nullptr;
  // >= 0: sent as Taba-Batch-Age (the batch was first sent this many
  // seconds ago, close to or past the fe's dedup window).
  int64_t batch_age_s = -1;
  // Set to true once the request goes out on a connection (the fe may then
  // have it, answered or not). nullptr: not wanted.
  bool* sent = nullptr;
};

// First line of a server's reply, for logs.
std::string first_line(std::string_view body);

// POSTs `compressed` (a zlib'd v1 body) to `to`'s /post_zip as batch
// `batch_id`.
Attempt post_zip(const std::string& compressed, const std::string& batch_id, const PostTarget& to);

// POSTs `body` (protocol::wrap_delta_body; zlib'd with Content-Encoding:
// deflate when `compressed`) to `to`'s /post_delta, as post_zip does.
Attempt post_delta(const std::string& body, bool compressed, const std::string& batch_id,
                   const PostTarget& to);

}  // namespace taba::agent
