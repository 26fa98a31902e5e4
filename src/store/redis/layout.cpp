#include "store/redis/layout.h"

#include <fmt/format.h>

#include <cstring>

#include "core/le_bytes.h"

namespace taba::redis {
namespace {

template <typename T>
void put(std::string* buf, T v) {
  put_le(buf, v);
}
using Reader = ByteReader;

}  // namespace

std::string encode_state(uint32_t version, std::string_view bytes) {
  std::string out;
  out.reserve(4 + bytes.size());
  put<uint32_t>(&out, version);
  out += bytes;
  return out;
}

bool decode_state(std::string_view blob, uint32_t* version, std::string_view* bytes) {
  if (blob.size() < 4) return false;
  std::memcpy(version, blob.data(), 4);
  *bytes = blob.substr(4);
  return true;
}

DeltaWriter::DeltaWriter() {
  put<uint8_t>(&buf_, 1);
  put<uint32_t>(&buf_, 0);
}

void DeltaWriter::add(std::string_view name, std::string_view type, std::string_view client, uint32_t version,
                      std::string_view state) {
  put<uint16_t>(&buf_, static_cast<uint16_t>(name.size()));
  buf_ += name;
  put<uint8_t>(&buf_, static_cast<uint8_t>(type.size()));
  buf_ += type;
  put<uint16_t>(&buf_, static_cast<uint16_t>(client.size()));
  buf_ += client;
  put<uint32_t>(&buf_, version);
  put<uint32_t>(&buf_, static_cast<uint32_t>(state.size()));
  buf_ += state;
  ++count_;
}

std::string DeltaWriter::finish() {
  std::memcpy(buf_.data() + 1, &count_, 4);
  return std::move(buf_);
}

Status decode_deltas(std::string_view bytes, std::vector<Delta>* out) {
  out->clear();
  Reader r(bytes);
  uint8_t version = 0;
  uint32_t count = 0;
  if (!r.get(&version) || !r.get(&count)) return Status::Corruption("deltas: truncated header");
  if (version != 1) return Status::Corruption(fmt::format("deltas: unknown version {}", version));
  if (count > bytes.size()) return Status::Corruption("deltas: count exceeds the entry size");
  out->reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    Delta d;
    uint16_t name_len = 0, client_len = 0;
    uint8_t type_len = 0;
    uint32_t len = 0;
    if (!r.get(&name_len) || !r.bytes(name_len, &d.name) || !r.get(&type_len) || !r.bytes(type_len, &d.type) ||
        !r.get(&client_len) || !r.bytes(client_len, &d.client) || !r.get(&d.state_version) || !r.get(&len) ||
        !r.bytes(len, &d.state)) {
      return Status::Corruption(fmt::format("deltas: delta {} of {} is truncated", i + 1, count));
    }
    out->push_back(d);
  }
  if (!r.done()) return Status::Corruption("deltas: trailing bytes");
  return Status::Ok();
}

}  // namespace taba::redis

namespace taba::redis {
namespace {

// KEYS[1]: P cnmax; KEYS[2..]: P cn:<client>. Raises P cnmax to the
// largest SCARD among them, only when P cnmax exists.
constexpr const char* kRaiseNamesMaxScript = R"lua(
local m = redis.call('GET', KEYS[1])
if not m then return 0 end
m = tonumber(m)
local top = m
for i = 2, #KEYS do
  local n = redis.call('SCARD', KEYS[i])
  if n > top then top = n end
end
if top > m then redis.call('SET', KEYS[1], top) end
return top
)lua";

}  // namespace

const char* const kRecountNamesMaxScript = R"lua(
local m = 0
for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local n = redis.call('SCARD', ARGV[1] .. c)
  if n > m then m = n end
end
redis.call('SET', KEYS[1], m)
return m
)lua";

void register_clients(const Keys& keys, const std::map<std::string, std::vector<std::string>>& client_names,
                      std::vector<std::vector<std::string>>* cmds) {
  if (client_names.empty()) return;
  std::vector<std::string> sadd{"SADD", keys.clients()};
  std::vector<std::string> raise{"EVAL", kRaiseNamesMaxScript, std::to_string(client_names.size() + 1),
                                 keys.names_max()};
  for (const auto& [client, names] : client_names) {
    sadd.push_back(client);
    std::vector<std::string> cn{"SADD", keys.client_names(client)};
    cn.insert(cn.end(), names.begin(), names.end());
    cmds->push_back(std::move(cn));
    raise.push_back(keys.client_names(client));
  }
  cmds->push_back(std::move(sadd));
  cmds->push_back(std::move(raise));
}

}  // namespace taba::redis
