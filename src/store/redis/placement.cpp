// The placement's JSON form and its questions. See placement.h.
#include "store/redis/placement.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>

#include "core/json_escape.h"

namespace taba::redis {
namespace {

constexpr size_t kRecentKept = 5;

void put_string(std::string* out, std::string_view s) {
  out->push_back('"');
  append_json_escaped(out, s, JsonControls::kNewlines);
  out->push_back('"');
}

using simdjson::dom::element;
using simdjson::dom::object;

// Readers that leave the target unchanged when the member is absent.
bool get_u64(object o, const char* key, uint64_t* out) {
  element e;
  if (o[key].get(e) != simdjson::SUCCESS) return false;
  if (e.is_uint64()) return e.get_uint64().get(*out) == simdjson::SUCCESS;
  int64_t i = 0;
  if (e.get_int64().get(i) != simdjson::SUCCESS || i < 0) return false;
  *out = static_cast<uint64_t>(i);
  return true;
}
bool get_u32(object o, const char* key, uint32_t* out) {
  uint64_t v = 0;
  if (!get_u64(o, key, &v) || v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}
void get_double(object o, const char* key, double* out) {
  element e;
  if (o[key].get(e) != simdjson::SUCCESS) return;
  if (e.is_double()) {
    double d = 0;
    if (e.get_double().get(d) == simdjson::SUCCESS) *out = d;
  } else if (e.is_int64()) {
    int64_t i = 0;
    if (e.get_int64().get(i) == simdjson::SUCCESS) *out = static_cast<double>(i);
  } else if (e.is_uint64()) {
    uint64_t u = 0;
    if (e.get_uint64().get(u) == simdjson::SUCCESS) *out = static_cast<double>(u);
  }
}
void get_string(object o, const char* key, std::string* out) {
  std::string_view v;
  if (o[key].get_string().get(v) == simdjson::SUCCESS) *out = std::string(v);
}
void get_bool(object o, const char* key, bool* out) {
  bool v = false;
  if (o[key].get_bool().get(v) == simdjson::SUCCESS) *out = v;
}

}  // namespace

Placement Placement::initial(const Config::Redis& config) {
  Placement p;
  p.epoch = 1;
  p.vbuckets = static_cast<uint32_t>(config.vbuckets);
  p.owner.assign(p.vbuckets, 0);
  for (const auto& s : config.shards) {
    uint16_t i = p.shard_index(s.name);
    for (int64_t v = s.first_vbucket; v <= s.last_vbucket && v < config.vbuckets; ++v) {
      p.owner[static_cast<size_t>(v)] = i;
    }
  }
  return p;
}

uint16_t Placement::shard_index(const std::string& name) {
  int i = find_shard(name);
  if (i >= 0) return static_cast<uint16_t>(i);
  shards.push_back(name);
  return static_cast<uint16_t>(shards.size() - 1);
}

int Placement::find_shard(std::string_view name) const {
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::pair<uint32_t, uint32_t>> Placement::ranges_of(std::string_view shard) const {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  int idx = find_shard(shard);
  if (idx < 0) return out;
  for (uint32_t v = 0; v < vbuckets; ++v) {
    if (owner[v] != idx) continue;
    if (!out.empty() && out.back().second + 1 == v) {
      out.back().second = v;
    } else {
      out.emplace_back(v, v);
    }
  }
  return out;
}

std::string Placement::owned_bytes(std::string_view shard) const {
  std::string out(vbuckets, '0');
  int idx = find_shard(shard);
  if (idx < 0) return out;
  for (uint32_t v = 0; v < vbuckets; ++v) {
    if (owner[v] == idx) out[v] = '1';
  }
  if (move && move->from == shard && (move->phase == "bindings" || move->phase == "switching")) {
    for (uint32_t v = move->first; v <= move->last && v < vbuckets; ++v) out[v] = 'm';
  }
  return out;
}

void Placement::previous_owners(uint32_t vbucket, double now, double dedup_ttl_s,
                                std::vector<std::string>* out) const {
  out->clear();
  const std::string& own = owner_of(vbucket);
  auto add = [&](const std::string& s) {
    if (s != own && std::find(out->begin(), out->end(), s) == out->end()) out->push_back(s);
  };
  for (const Owned& h : history) {
    if (vbucket >= h.first && vbucket <= h.last && h.until + dedup_ttl_s >= now) add(h.shard);
  }
  if (move && move->split() && move->contains(vbucket)) add(move->from);
}

void Placement::prune(double now, double dedup_ttl_s) {
  history.erase(std::remove_if(history.begin(), history.end(),
                               [&](const Owned& h) { return h.until + dedup_ttl_s < now; }),
                history.end());
  if (recent.size() > kRecentKept) recent.resize(kRecentKept);
  // A shard that owns nothing and that no move or history names any more
  // (emptied more than dedup_ttl_s ago) leaves the placement.
  std::vector<bool> used(shards.size(), false);
  for (uint16_t o : owner) used[o] = true;
  auto use = [&](std::string_view name) {
    int i = find_shard(name);
    if (i >= 0) used[static_cast<size_t>(i)] = true;
  };
  for (const Owned& h : history) use(h.shard);
  if (move) {
    use(move->from);
    use(move->to);
  }
  std::vector<std::string> kept;
  std::vector<uint16_t> index(shards.size(), 0);
  for (size_t i = 0; i < shards.size(); ++i) {
    if (!used[i]) continue;
    index[i] = static_cast<uint16_t>(kept.size());
    kept.push_back(shards[i]);
  }
  for (uint16_t& o : owner) o = index[o];
  shards = std::move(kept);
}

std::string Placement::to_json() const {
  std::string out = fmt::format("{{\"epoch\":{},\"vbuckets\":{},\"shards\":[", epoch, vbuckets);
  for (size_t i = 0; i < shards.size(); ++i) {
    if (i) out += ',';
    out += "{\"name\":";
    put_string(&out, shards[i]);
    out += ",\"ranges\":[";
    auto ranges = ranges_of(shards[i]);
    for (size_t r = 0; r < ranges.size(); ++r) {
      out += fmt::format("{}[{},{}]", r ? "," : "", ranges[r].first, ranges[r].second);
    }
    out += "]}";
  }
  out += "],\"move\":";
  if (!move) {
    out += "null";
  } else {
    const Move& m = *move;
    out += "{\"id\":";
    put_string(&out, m.id);
    out += ",\"from\":";
    put_string(&out, m.from);
    out += ",\"to\":";
    put_string(&out, m.to);
    out += fmt::format(",\"first\":{},\"last\":{},\"phase\":", m.first, m.last);
    put_string(&out, m.phase);
    out += fmt::format(",\"started\":{:.3f},\"switched_at\":{:.3f},\"drained_at\":{:.3f},\"cancel\":{},\"cancels\":",
                       m.started, m.switched_at, m.drained_at, m.cancel ? "true" : "false");
    put_string(&out, m.cancels);
    out += '}';
  }
  out += ",\"history\":[";
  for (size_t i = 0; i < history.size(); ++i) {
    const Owned& h = history[i];
    out += fmt::format("{}{{\"first\":{},\"last\":{},\"until\":{:.3f},\"shard\":", i ? "," : "", h.first, h.last,
                       h.until);
    put_string(&out, h.shard);
    out += '}';
  }
  out += "],\"recent\":[";
  for (size_t i = 0; i < recent.size(); ++i) {
    const Ended& e = recent[i];
    out += i ? ",{\"id\":" : "{\"id\":";
    put_string(&out, e.id);
    out += ",\"from\":";
    put_string(&out, e.from);
    out += ",\"to\":";
    put_string(&out, e.to);
    out += ",\"outcome\":";
    put_string(&out, e.outcome);
    out += fmt::format(",\"first\":{},\"last\":{},\"started\":{:.3f},\"ended\":{:.3f},\"names\":{},\"bytes\":{}}}",
                       e.first, e.last, e.started, e.ended, e.names, e.bytes);
  }
  out += "]}";
  return out;
}

Result<Placement> Placement::parse(std::string_view json) {
  simdjson::dom::parser parser;
  element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    return Status::Corruption("placement: not valid JSON");
  }
  object o;
  if (root.get_object().get(o) != simdjson::SUCCESS) return Status::Corruption("placement: not a JSON object");
  Placement p;
  if (!get_u64(o, "epoch", &p.epoch) || !get_u32(o, "vbuckets", &p.vbuckets) || p.vbuckets == 0 ||
      p.vbuckets > 65536) {
    return Status::Corruption("placement: missing or bad epoch/vbuckets");
  }
  p.owner.assign(p.vbuckets, UINT16_MAX);
  simdjson::dom::array shards;
  if (o["shards"].get_array().get(shards) != simdjson::SUCCESS) return Status::Corruption("placement: no shards");
  for (element se : shards) {
    object so;
    std::string name;
    if (se.get_object().get(so) != simdjson::SUCCESS) return Status::Corruption("placement: bad shard");
    get_string(so, "name", &name);
    if (name.empty()) return Status::Corruption("placement: a shard without a name");
    uint16_t idx = p.shard_index(name);
    simdjson::dom::array ranges;
    if (so["ranges"].get_array().get(ranges) != simdjson::SUCCESS) return Status::Corruption("placement: bad ranges");
    for (element re : ranges) {
      simdjson::dom::array pair;
      uint64_t a = 0, b = 0;
      if (re.get_array().get(pair) != simdjson::SUCCESS || pair.size() != 2 ||
          pair.at(0).get_uint64().get(a) != simdjson::SUCCESS || pair.at(1).get_uint64().get(b) != simdjson::SUCCESS ||
          a > b || b >= p.vbuckets) {
        return Status::Corruption(fmt::format("placement: bad range of shard {}", name));
      }
      for (uint64_t v = a; v <= b; ++v) p.owner[v] = idx;
    }
  }
  for (uint32_t v = 0; v < p.vbuckets; ++v) {
    if (p.owner[v] == UINT16_MAX) return Status::Corruption(fmt::format("placement: vbucket {} has no shard", v));
  }
  object mo;
  if (o["move"].get_object().get(mo) == simdjson::SUCCESS) {
    Move m;
    get_string(mo, "id", &m.id);
    get_string(mo, "from", &m.from);
    get_string(mo, "to", &m.to);
    get_string(mo, "phase", &m.phase);
    get_string(mo, "cancels", &m.cancels);
    if (!get_u32(mo, "first", &m.first) || !get_u32(mo, "last", &m.last) || m.first > m.last ||
        m.last >= p.vbuckets || m.from.empty() || m.to.empty()) {
      return Status::Corruption("placement: bad move");
    }
    get_double(mo, "started", &m.started);
    get_double(mo, "switched_at", &m.switched_at);
    get_double(mo, "drained_at", &m.drained_at);
    get_bool(mo, "cancel", &m.cancel);
    p.shard_index(m.from);
    p.shard_index(m.to);
    p.move = std::move(m);
  }
  simdjson::dom::array arr;
  if (o["history"].get_array().get(arr) == simdjson::SUCCESS) {
    for (element he : arr) {
      object ho;
      if (he.get_object().get(ho) != simdjson::SUCCESS) continue;
      Owned h;
      get_string(ho, "shard", &h.shard);
      if (!get_u32(ho, "first", &h.first) || !get_u32(ho, "last", &h.last) || h.shard.empty()) continue;
      get_double(ho, "until", &h.until);
      p.shard_index(h.shard);
      p.history.push_back(std::move(h));
    }
  }
  if (o["recent"].get_array().get(arr) == simdjson::SUCCESS) {
    for (element ee : arr) {
      object eo;
      if (ee.get_object().get(eo) != simdjson::SUCCESS) continue;
      Ended e;
      get_string(eo, "id", &e.id);
      get_string(eo, "from", &e.from);
      get_string(eo, "to", &e.to);
      get_string(eo, "outcome", &e.outcome);
      (void)get_u32(eo, "first", &e.first);  // absent: 0, for display only
      (void)get_u32(eo, "last", &e.last);
      get_double(eo, "started", &e.started);
      get_double(eo, "ended", &e.ended);
      (void)get_u64(eo, "names", &e.names);
      (void)get_u64(eo, "bytes", &e.bytes);
      p.recent.push_back(std::move(e));
    }
  }
  return p;
}

void DedupBits::merge_marker(std::string_view marker) {
  if (marker == "1") {
    std::fill(bits_.begin() + 1, bits_.end(), static_cast<char>(0xff));
    return;
  }
  if (marker.empty() || marker[0] != 'b') return;
  for (size_t i = 1; i < marker.size() && i < bits_.size(); ++i) {
    bits_[i] = static_cast<char>(static_cast<uint8_t>(bits_[i]) | static_cast<uint8_t>(marker[i]));
  }
}

}  // namespace taba::redis
