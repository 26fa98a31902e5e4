// The embedded store's snapshot payload: every client, every name with its
// aggregate and per-client states, and the batch ids applied within the
// dedup horizon. The WAL frames it in the snapshot file (wal.h); this is
// what the frame carries, so recovery starts from it and replays only the
// WAL segments after it.
//
// Layout (little-endian):
//   u32 version | u32 client_count | clients: u16 len, bytes
//   u32 name_count | names: u16 len, name | u8 len, type | u32 state_version |
//     u32 len, aggregate | u32 state_count | states: u32 client, u32 len, bytes
//   u32 id_count | ids: f64 time, u16 len, id        (version 2 only)
// Version 2 added the applied batch ids; version 1 is still read.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/string_map.h"
#include "plugin/registry.h"
#include "store/store.h"

namespace taba::store {

// The store's tables a snapshot is written from, by reference: encoding
// reads them in place (in the forked snapshot child, or on the loop thread).
struct SnapshotSource {
  const std::vector<std::string>& clients;  // indexed by ClientIndex
  const StringMap<std::unique_ptr<NameEntry>>& names;
  const std::deque<std::pair<double, std::string>>& applied_ids;  // (receive time, batch id), oldest first
};

// Serializes every state through its handler; an error when a handler
// cannot serialize one. Takes no locks and does not log: it runs in the
// forked snapshot child (snapshot_child.h).
Result<std::string> encode_snapshot(const SnapshotSource& source);

// A payload read back. Clients and ids are views into the payload.
struct LoadedSnapshot {
  std::vector<std::string_view> clients;  // indexed by ClientIndex
  StringMap<std::unique_ptr<NameEntry>> names;
  std::vector<std::pair<double, std::string_view>> applied_ids;  // oldest first
};

// Reads a payload of either version, deserializing every state through the
// handler its type maps to in `registry`. Corruption for damaged bytes
// (with "snapshot: " in front); Invalid for a type no loaded plugin serves.
Status decode_snapshot(std::string_view bytes, const plugin::Registry& registry, LoadedSnapshot* out);

}  // namespace taba::store
