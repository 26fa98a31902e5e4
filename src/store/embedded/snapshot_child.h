// The forked process that serializes an embedded store snapshot.
//
// Serializing every state takes about a second per 200,000 states; on the
// loop thread that would stall every request. A forked child holds a
// copy-on-write image of the states as of the fork and serializes them
// (snapshot_payload.h) into a pipe, which the WAL's snapshot thread reads
// (WriteAheadLog::snapshot with a producer, wal.h). The child only
// serializes and writes (no logging, no locks but malloc's, which fork
// leaves usable) and leaves with _exit.
//
// Pipe form: u64 payload length (host order), then the payload.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/status.h"
#include "store/embedded/snapshot_payload.h"

namespace taba::store {

// A running snapshot child and the read end of its pipe.
struct SnapshotChild {
  pid_t pid = -1;
  int fd = -1;
};

// Forks a child that encodes `source` into a pipe and exits. False, with a
// warning logged, when no pipe or no process could be made: the caller then
// serializes in-process. Call on the loop thread while nothing changes the
// tables `source` refers to.
bool fork_snapshot_child(const SnapshotSource& source, SnapshotChild* out);

// Reads the child's snapshot (see above), then reaps the child. Runs on the
// WAL's snapshot thread. An error when the child gave less than a whole
// snapshot (it failed, was killed, or stalled and was killed).
Result<std::string> read_snapshot_child(SnapshotChild child);

}  // namespace taba::store
