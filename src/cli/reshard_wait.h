// taba-cli reshard --wait: start (or cancel) a move, then poll GET /reshard
// until that move ends, printing its progress, and print the placement it
// left (docs/cli.md, "reshard"). The HTTP exchanges go through a function
// the caller gives (cli.cpp's, over the network), so the waiting is driven
// the same way by run() and by tests.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "cli/request.h"
#include "core/status.h"
#include "http/client.h"

namespace taba::cli {

// What taba-cli reads of a move in GET /reshard's JSON (docs/api.md).
struct MoveSeen {
  std::string id, from, to, phase, driver, error;
  uint64_t first = 0, last = 0;
  uint64_t names_moved = 0, names_left = 0, bytes_moved = 0;
  double elapsed_s = 0;
  bool driver_alive = false;
};

struct PlacementSeen {
  bool supported = false;
  std::optional<MoveSeen> move;  // the move in progress
  std::vector<MoveSeen> recent;  // ended moves, newest first
};

// GET /reshard's JSON. Error: not that JSON (a one-line reason).
Result<PlacementSeen> parse_placement_json(std::string_view json);

// "m-17: states, 120 names moved, 30 left, 120.6 KiB, 4.2 s"
std::string progress_line(const MoveSeen& move);

// One HTTP exchange. Error: no answer (the message is taba-cli's stderr
// line without "taba-cli: ": "cannot connect to ...", "no reply to ...").
using Exchange = std::function<Result<http::ClientResponse>(const HttpCall& call)>;

// Sends `post` (reshard's POST, asking for JSON; for --cancel, after a GET
// that names the move to wait for), then polls GET /reshard every poll_ms
// until the move leaves the move slot, and prints the placement (text, or
// JSON with --json). Returns the exit status: 0 when the move ended
// "done" ("cancelled" for --cancel), kExitServerError when it ended
// otherwise, vanished, or the server refused, kExitGaveUp (cli.h) after
// inv.wait_timeout_s, kExitUsage when the server could not be reached for
// the POST. Polls that get no answer or a 5xx are retried until then.
// Progress lines go to `out`, or to `err` with --json (stdout is then the
// placement's JSON only).
int reshard_and_wait(const Invocation& inv, const HttpCall& post, const Exchange& exchange, int poll_ms,
                     std::ostream& out, std::ostream& err);

}  // namespace taba::cli
