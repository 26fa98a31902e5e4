// The snapshot payload: encoding the store's tables and decoding them. See
// snapshot_payload.h for the layout.
#include "store/embedded/snapshot_payload.h"

#include <fmt/format.h>

#include <unordered_set>

#include "core/le_bytes.h"
#include "core/validation.h"

namespace taba::store {
namespace {

constexpr uint32_t kSnapshotVersion = 2;  // 2 adds the applied batch ids; 1 is still read

template <typename T>
void put(std::string* buf, T v) {
  put_le(buf, v);
}

}  // namespace

Result<std::string> encode_snapshot(const SnapshotSource& source) {
  std::string out;
  put<uint32_t>(&out, kSnapshotVersion);
  put<uint32_t>(&out, static_cast<uint32_t>(source.clients.size()));
  for (const std::string& c : source.clients) {
    put<uint16_t>(&out, static_cast<uint16_t>(c.size()));
    out += c;
  }
  put<uint32_t>(&out, static_cast<uint32_t>(source.names.size()));
  std::string tmp;
  bool failed = false;
  auto put_state = [&](const plugin::Handler* h, const State& st) {
    if (!h->serialize(st.get(), &tmp)) failed = true;
    put<uint32_t>(&out, static_cast<uint32_t>(tmp.size()));
    out += tmp;
  };
  for (const auto& [name, entry] : source.names) {
    const plugin::Handler* h = entry->handler;
    put<uint16_t>(&out, static_cast<uint16_t>(name.size()));
    out += name;
    put<uint8_t>(&out, static_cast<uint8_t>(entry->handler->type_name.size()));
    out += entry->handler->type_name;
    put<uint32_t>(&out, h->state_version());
    put_state(h, entry->aggregate);
    put<uint32_t>(&out, static_cast<uint32_t>(entry->states.size()));
    entry->states.for_each([&](ClientIndex ci, const State& st) {
      put<uint32_t>(&out, ci);
      put_state(h, st);
    });
    if (failed) {
      return Status::Internal(fmt::format("the {} handler could not serialize a state of name \"{}\"",
                                          entry->handler->type_name, name));
    }
  }
  put<uint32_t>(&out, static_cast<uint32_t>(source.applied_ids.size()));
  for (const auto& [time, id] : source.applied_ids) {
    put<double>(&out, time);
    put<uint16_t>(&out, static_cast<uint16_t>(id.size()));
    out += id;
  }
  return out;
}

Status decode_snapshot(std::string_view bytes, const plugin::Registry& registry, LoadedSnapshot* out) {
  ByteReader r(bytes);
  auto corrupt = [](const std::string& what) { return Status::Corruption("snapshot: " + what); };
  uint32_t version = 0, nclients = 0, nnames = 0;
  if (!r.get(&version)) return corrupt("truncated header");
  if (version != 1 && version != kSnapshotVersion) return corrupt(fmt::format("unknown version {}", version));
  if (!r.get(&nclients)) return corrupt("truncated client count");
  std::unordered_set<std::string_view> seen_clients;
  for (uint32_t i = 0; i < nclients; ++i) {
    uint16_t len = 0;
    std::string_view c;
    if (!r.get(&len) || !r.bytes(len, &c)) return corrupt("truncated client list");
    // A snapshot is written from maps: a repeated entry is damage, and taking
    // it would shift the client indexes its states refer to.
    if (!seen_clients.insert(c).second) {
      return corrupt(fmt::format("client \"{}\" is listed twice", quote_for_error(c)));
    }
    out->clients.push_back(c);
  }
  if (!r.get(&nnames)) return corrupt("truncated name count");
  for (uint32_t i = 0; i < nnames; ++i) {
    uint16_t name_len = 0;
    uint8_t type_len = 0;
    uint32_t state_version = 0, len = 0, nstates = 0;
    std::string_view name, type, blob;
    if (!r.get(&name_len) || !r.bytes(name_len, &name) || !r.get(&type_len) || !r.bytes(type_len, &type) ||
        !r.get(&state_version) || !r.get(&len) || !r.bytes(len, &blob)) {
      return corrupt("truncated name entry");
    }
    if (out->names.find(name) != out->names.end()) {
      return corrupt(fmt::format("name \"{}\" is listed twice", quote_for_error(name)));
    }
    const plugin::Handler* handler = registry.find(type);
    if (!handler) {
      return Status::Invalid(fmt::format(
          "snapshot holds name \"{}\" of type \"{}\", which no loaded plugin serves; install that plugin (or "
          "map the type to one) so its states are not lost",
          name, type));
    }
    auto load = [&](std::string_view data, State* state) -> Status {
      Result<State> st = handler->deserialize(data, state_version);
      if (!st.ok()) {
        return Status::Corruption(fmt::format("snapshot: state of name \"{}\" ({} v{}) unreadable: {}", name, type,
                                              state_version, st.status().message()));
      }
      *state = std::move(*st);
      return Status::Ok();
    };
    auto entry = std::make_unique<NameEntry>();
    entry->name.assign(name);
    entry->handler = handler;
    TABA_RETURN_IF_ERROR(load(blob, &entry->aggregate));
    if (!r.get(&nstates)) return corrupt("truncated state count");
    for (uint32_t k = 0; k < nstates; ++k) {
      uint32_t ci = 0;
      if (!r.get(&ci) || !r.get(&len) || !r.bytes(len, &blob)) return corrupt("truncated state");
      if (ci >= out->clients.size()) return corrupt(fmt::format("state refers to unknown client #{}", ci));
      State st;
      TABA_RETURN_IF_ERROR(load(blob, &st));
      entry->states[ci] = std::move(st);
    }
    out->names.emplace(entry->name, std::move(entry));
  }
  if (version >= 2) {
    uint32_t nids = 0;
    if (!r.get(&nids)) return corrupt("truncated batch id count");
    for (uint32_t i = 0; i < nids; ++i) {
      double time = 0;
      uint16_t len = 0;
      std::string_view id;
      if (!r.get(&time) || !r.get(&len) || !r.bytes(len, &id)) return corrupt("truncated batch id");
      out->applied_ids.emplace_back(time, id);
    }
  }
  if (!r.done()) return corrupt("trailing bytes");
  return Status::Ok();
}

}  // namespace taba::store
