// The re-sharding route every server role serves (docs/api.md, "/reshard"):
//   GET  /reshard                                the placement and the moves
//   POST /reshard?to=SHARD&vbuckets=FIRST-LAST   start (or resume) a move
//   POST /reshard?cancel=1                       cancel the move in progress
// GET is a query-class route, POST an admin one (routes/auth.h). Replies
// are text (default) or JSON, from Accept or format=json|text; the body of
// both methods is the placement (placement_format.h). The moving itself is
// the store's (Store::reshard); the embedded store has nothing to move.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "http/server.h"
#include "store/store.h"

namespace taba::routes {

class ReshardRoutes {
 public:
  explicit ReshardRoutes(store::Store* store) : store_(store) {}

  static bool handles(std::string_view path) { return path == "/reshard"; }
  // Answers a request whose (small) body is complete.
  void handle(const http::Request& request, std::string_view body, std::function<void(http::Response)> done);

 private:
  store::Store* store_;
};

// vbuckets=: "FIRST-LAST" (two unsigned integers, FIRST <= LAST, inclusive)
// or "N" (N-N). Error: a one-line reason naming the value.
Result<store::VbucketRange> parse_vbucket_range(std::string_view text);

// The request of POST /reshard's parameters (to, vbuckets, cancel; others
// are refused before): cancel=1 alone, or to=SHARD with vbuckets=.
// Error: a one-line reason naming what is missing or wrong.
Result<store::ReshardRequest> parse_reshard_request(const std::vector<std::pair<std::string, std::string>>& params);

// The answer to an error of Store::reshard or Store::placement: Invalid is
// 400, NotFound 404; Unavailable is 409 when its message starts with "a
// move is in progress" (the store's way of saying another live driver moves
// now), else 503 with Retry-After: 1, as are the rest.
http::Response reshard_error(const Status& status);

}  // namespace taba::routes
