// The agent's dead-letter directory: what the agent or the fes refused, kept
// for an operator to read and replay (docs/operations.md, "Refused blocks and
// dead letters").
//
// A dead letter is two files, `dl-<id>.v1` (the refused blocks or posts as a
// wire-protocol-v1 body; `dl-<id>.delta` for refused delta blocks, in the
// envelope POST /post_delta takes) and `dl-<id>.reason` (who refused what, and why),
// both fsynced before the caller drops its own copy. Written once per id:
// writing an id again (a retry, a restart in the middle of settling) finds
// it and counts nothing. Past `max_bytes` the oldest files are deleted and
// counted. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/spool.h"
#include "protocol/v1_encoder.h"

namespace taba::agent {

class DeadLetters {
 public:
  struct Stats {
    uint64_t letters = 0;    // written by this process
    uint64_t events = 0;     // in them
    uint64_t discarded = 0;  // deleted beyond max_bytes
    uint64_t bytes = 0;      // in the directory now
  };

  DeadLetters(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}

  // Creates the directory if needed and takes stock of what it holds
  // (oldest first, for the cap). Call once, before write().
  void scan();
  // Writes dl-<id><suffix> (the body) and dl-<id>.reason. `id` must be safe
  // as part of a file name. False when they could not be written.
  bool write(const std::string& id, const std::string& v1_body, uint64_t events, const std::string& reason,
             const std::string& suffix = ".v1");
  Stats stats() const;
  const std::string& dir() const { return dir_; }

 private:
  const std::string dir_;
  const uint64_t max_bytes_;
  mutable std::mutex mu_;
  Stats stats_;
  std::deque<std::pair<std::string, uint64_t>> files_;  // path, bytes (oldest first)
};

// The blocks (indices into `lines`) that a reply's "line N: reason" lines
// point into, ascending.
std::vector<size_t> refused_blocks(std::string_view refusals, const std::vector<protocol::V1Encoder::BlockLines>& lines);

}  // namespace taba::agent
