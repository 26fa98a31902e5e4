// The checker of a nemesis run: what the cluster stores, read back through
// /projection (per name and client) and /tabs (per name, all clients), against
// the ledger of what was acknowledged (load.h).
//
//   lost        acknowledged events missing from the store
//   duplicated  events stored beyond the acknowledged ones (and beyond those
//               of batches never answered, which may or may not be stored)
//
// Both must be 0. StatsD counters are checked apart: never more than was
// sent; what is missing is UDP's (or the client-proxy's memory's) loss.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "load.h"

namespace taba::nemesis {

struct CheckResult {
  bool read_ok = false;  // both reads answered
  std::string read_error;
  int64_t pairs = 0;  // (name, client) pairs checked
  int64_t names = 0;
  int64_t expected_events = 0;
  int64_t lost = 0;
  int64_t duplicated = 0;
  int64_t statsd_sent = 0;
  int64_t statsd_stored = 0;
  int64_t statsd_excess = 0;      // stored beyond sent: a failure
  std::vector<std::string> diffs;  // one line per differing name (or pair)

  bool pass() const { return read_ok && lost == 0 && duplicated == 0 && statsd_excess == 0; }
};

// One reading: /projection from projection_url, /tabs from tabs_url.
CheckResult check_once(const std::string& projection_url, const std::string& tabs_url,
                       const std::map<std::pair<std::string, std::string>, Expected>& expected,
                       const std::map<std::string, int64_t>& statsd_sent);

// Reads again every second until the result passes or timeout_ms pass (the
// bes may still be applying); the last result.
CheckResult check_until(const std::string& projection_url, const std::string& tabs_url,
                        const std::map<std::pair<std::string, std::string>, Expected>& expected,
                        const std::map<std::string, int64_t>& statsd_sent, int timeout_ms);

}  // namespace taba::nemesis
