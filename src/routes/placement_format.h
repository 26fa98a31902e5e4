// How the placement of vbuckets over the Redis shards, and the move in
// progress, read for operators: the body of GET and POST /reshard and the
// placement part of /status, as text or as JSON (docs/api.md, "/reshard").
// Pure functions of a store::PlacementStatus, so tests can build one by hand.
#pragma once

#include <string>

#include "store/store.h"

namespace taba::routes {

// "0-340"; one vbucket as "7".
std::string vbucket_range_text(const store::VbucketRange& range);

// {"supported":true,"epoch":3,"vbuckets":1024,"shards":[{"shard":"shard1",
// "ranges":[[0,340],[600,700]]}],"move":<move>|null,"recent":[<move>,...]}
// where <move> is move_json's object. Compact (no spaces), strings through
// the reply escaper (admin_reply.h json_string).
std::string placement_json(const store::PlacementStatus& placement);

// {"id":"..","from":"shard1","to":"shard3","first":0,"last":340,
// "phase":"states","started":1765000000.123,"elapsed_s":4.200,
// "names_moved":120,"names_left":30,"bytes_moved":123456,"driver":"..",
// "driver_alive":true,"error":""}
std::string move_json(const store::MoveStatus& move);

// The text form, each line ending in '\n':
//   placement epoch 3 (1024 vbuckets)
//     shard1  0-340, 600-700
//     shard2  (none)
//   move <id>: shard1 -> shard3, vbuckets 0-340, states, 120 names moved,
//     30 left, 120.6 KiB, 4.2 s, driver fe-1 (alive)[, last error: ...]
//   (or "no move in progress")
//   recent <id>: shard2 -> shard1, vbuckets 700-800, 80 names moved,
//     64.0 KiB, 12.0 s, done[ (last error: ...)]
// (the move and recent lines are one line each: line ends in an error
// become spaces). The recent moves only
// with `with_recent`. A placement that is not supported (the embedded
// store) is one line saying so.
std::string placement_text(const store::PlacementStatus& placement, bool with_recent = true);

// The "move <id>: ..." line of a move in progress, without its '\n'.
std::string move_text(const store::MoveStatus& move);

}  // namespace taba::routes
