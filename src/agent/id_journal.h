// The agent's memory of client batch ids whose posts it already forwarded.
//
// While a post's record is in the spool, its Taba-Batch-Id is found again
// at startup. Once the segment is forwarded and deleted, only this journal
// remembers the id, so that a client retrying after a lost 200 *and* an
// agent restart is still spooled once. Two files, client-ids.0 and
// client-ids.1, each lines of "<expiry epoch s> <id>"; appends go to one of
// them until it is ttl old, then the other is emptied and takes over, so
// every id stays readable for at least ttl and the files stay bounded by
// about two ttl's worth of ids.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::agent {

class IdJournal {
 public:
  // Reads both files (calling on_id for every id not yet expired at `now`)
  // and opens the current one for appending.
  Status open(const std::string& dir, double ttl_s, double now,
              const std::function<void(std::string_view id, double expires)>& on_id);
  // Appends ids (fdatasync'd before returning) that expire at `expires`.
  // Any thread. An error is logged and returned; the caller goes on.
  Status append(const std::vector<std::string>& ids, double expires, double now);
  ~IdJournal();

 private:
  Status switch_to(int index, bool truncate);
  std::mutex mu_;
  std::string dir_;
  double ttl_s_ = 0;
  int current_ = 0;
  double current_since_ = 0;  // when the current file was started
  int fd_ = -1;
};

}  // namespace taba::agent
