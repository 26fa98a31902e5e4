#include "common/latest_values.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "common/json_canonical.h"
#include "common/metric_families.h"
#include "common/text.h"
#include "common/value_labels.h"

namespace taba::builtin {
namespace {

// Limits read() enforces (client IDs are at most 256 bytes).
constexpr size_t kMaxClientBytes = 4096;
constexpr size_t kMaxValueBytes = size_t{1} << 20;

void append_key(std::string_view value, std::string* key) {
  if (!value.empty() && value.front() == '"') {
    key->assign(value.data(), value.size());
  } else {
    key->assign(1, '"');
    append_json_escaped(value, key);
    key->push_back('"');
  }
}

}  // namespace

LatestValues::LatestValues(std::string_view client, double tombstone_seconds, double fixed_lifetime)
    : client_(client), tombstone_seconds_(tombstone_seconds), fixed_lifetime_(fixed_lifetime) {}

void LatestValues::note_added(const LatestEntry& e, bool own) {
  max_expiry_ = std::max(max_expiry_, e.expiry);
  if (!own) min_other_retain_ = std::min(min_other_retain_, e.retain_until);
}

void LatestValues::offer(std::string_view client, std::string_view value, double timestamp, double expiry,
                         double now) {
  const bool own = client == client_;
  LatestEntry* slot = nullptr;
  auto it = others_.end();
  if (own) {
    if (has_own_) slot = &own_;
  } else {
    it = others_.find(client);
    if (it != others_.end()) slot = &it->second;
  }
  if (slot != nullptr && slot->timestamp > timestamp) return;  // ours is newer
  const double retain_until = std::max(expiry, timestamp + tombstone_seconds_);
  if (!(retain_until > now)) {
    // Newer than what we hold, but past its retention: it only removes
    // the older entry.
    if (slot == nullptr) return;
    if (slot->expiry >= max_expiry_) max_expiry_exact_ = false;
    if (own) {
      has_own_ = false;
    } else {
      others_.erase(it);
    }
    return;
  }
  if (slot != nullptr && slot->expiry >= max_expiry_ && expiry < slot->expiry) max_expiry_exact_ = false;
  if (slot == nullptr) {
    if (own) {
      slot = &own_;
      has_own_ = true;
    } else {
      slot = &others_.emplace(std::string(client), LatestEntry{}).first->second;
    }
  }
  slot->value.assign(value.data(), value.size());  // reuses the string's capacity
  slot->timestamp = timestamp;
  slot->expiry = expiry;
  slot->retain_until = retain_until;
  note_added(*slot, own);
}

void LatestValues::sweep(double now) {
  if (has_own_ && !(own_.retain_until > now)) {
    has_own_ = false;
    if (own_.expiry >= max_expiry_) max_expiry_exact_ = false;
  }
  if (!(min_other_retain_ <= now)) return;
  double earliest = std::numeric_limits<double>::infinity();
  double latest = has_own_ ? own_.expiry : -std::numeric_limits<double>::infinity();
  for (auto it = others_.begin(); it != others_.end();) {
    if (!(it->second.retain_until > now)) {
      it = others_.erase(it);
    } else {
      earliest = std::min(earliest, it->second.retain_until);
      latest = std::max(latest, it->second.expiry);
      ++it;
    }
  }
  min_other_retain_ = earliest;
  max_expiry_ = latest;
  max_expiry_exact_ = true;
}

void LatestValues::merge_from(const LatestValues& from, double now) {
  sweep(now);
  if (from.has_own_) {
    const LatestEntry& e = from.own_;
    offer(from.client_, e.value, e.timestamp, e.expiry, now);
  }
  for (const auto& [client, e] : from.others_) offer(client, e.value, e.timestamp, e.expiry, now);
}

bool LatestValues::any_live(double now) const {
  if (!(max_expiry_ > now)) return false;
  if (max_expiry_exact_) return true;
  if (has_own_ && own_.expiry > now) return true;
  for (const auto& entry : others_) {
    if (entry.second.expiry > now) return true;
  }
  return false;
}

taba_status LatestValues::render_counts(double now, taba_output* out) const {
  std::map<std::string, uint64_t> clients_by_key;
  std::string key;
  auto count = [&](const LatestEntry& e) {
    if (!(e.expiry > now)) return;
    append_key(e.value, &key);
    ++clients_by_key[key];
  };
  if (has_own_) count(own_);
  for (const auto& entry : others_) count(entry.second);
  TextBuffer text;
  text.raw("{");
  bool first = true;
  for (const auto& [k, n] : clients_by_key) {
    text.raw(first ? "" : ", ").raw(k).raw(": ").u64(n);
    first = false;
  }
  text.raw("}");
  return text.flush_to(out);
}

taba_status LatestValues::render_metrics(double now, taba_output* out) const {
  std::vector<std::pair<std::string_view, const LatestEntry*>> live;
  live.reserve(others_.size() + 1);
  if (has_own_ && own_.expiry > now) live.emplace_back(client_, &own_);
  for (const auto& [client, entry] : others_) {
    if (entry.expiry > now) live.emplace_back(client, &entry);
  }
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  struct Numeric {
    std::string_view client;
    double value;
  };
  std::vector<Numeric> numbers;
  std::vector<std::pair<std::string_view, const LatestEntry*>> others;
  const LatestEntry* last = nullptr;
  double last_value = 0;
  double min = 0;
  double max = 0;
  for (const auto& [client, entry] : live) {
    double v;
    if (!canonical_number(entry->value, &v)) {
      others.emplace_back(client, entry);
      continue;
    }
    min = numbers.empty() ? v : std::min(min, v);
    max = numbers.empty() ? v : std::max(max, v);
    numbers.push_back({client, v});
    // In client order, so a tie goes to the client that sorts last.
    if (last == nullptr || entry->timestamp >= last->timestamp) {
      last = entry;
      last_value = v;
    }
  }

  MetricFamilies families;
  families.family("_clients", "gauge", "Clients whose value is live.");
  families.sample(static_cast<double>(live.size()));
  if (!numbers.empty()) {
    families.family("_min", "gauge", "Least live numeric value.");
    families.sample(min);
    families.family("_max", "gauge", "Greatest live numeric value.");
    families.sample(max);
    families.family("_last", "gauge", "The live numeric value set last (by event time).");
    families.sample(last_value);
  }
  families.family("", "gauge", "Each client's live numeric value.");
  for (const Numeric& n : numbers) families.sample({{"client", cut_label(n.client)}}, n.value);
  families.family("_info", "info", "Each client's live value that is not a number.");
  for (const auto& [client, entry] : others) {
    const std::string text = value_label(entry->value);
    families.sample({{"client", cut_label(client)}, {"value", text}}, 1);
  }
  return families.flush_to(out);
}

void LatestValues::write(ByteWriter* w) const {
  std::vector<std::pair<std::string_view, const LatestEntry*>> entries;
  entries.reserve(others_.size() + 1);
  if (has_own_) entries.emplace_back(client_, &own_);
  for (const auto& [client, entry] : others_) entries.emplace_back(client, &entry);
  std::sort(entries.begin(), entries.end());
  w->put_bytes(client_);
  w->put_varint(entries.size());
  for (const auto& [client, entry] : entries) {
    w->put_bytes(client);
    w->put_bytes(entry->value);
    w->put_double(entry->timestamp);
    if (!(fixed_lifetime_ > 0)) w->put_double(entry->expiry);
  }
}

bool LatestValues::read(ByteReader* r, bool values_canonical, const char** why) {
  const bool with_expiry = !(fixed_lifetime_ > 0);
  // Each entry takes at least two lengths, a value byte and 8 bytes per
  // double.
  const size_t min_entry = with_expiry ? 19 : 11;
  std::string_view client;
  uint64_t n;
  if (!r->get_bytes(kMaxClientBytes, &client) || !r->get_varint_max(r->remaining() / min_entry, &n)) {
    *why = "header truncated or entry count too large";
    return false;
  }
  client_.assign(client.data(), client.size());
  std::string scratch;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key;
    std::string_view value;
    double ts;
    double expiry = 0;
    if (!r->get_bytes(kMaxClientBytes, &key) || !r->get_bytes(kMaxValueBytes, &value) ||
        !r->get_double(&ts) || (with_expiry && !r->get_double(&expiry))) {
      *why = "entry truncated";
      return false;
    }
    if (!with_expiry) expiry = ts + fixed_lifetime_;
    if (!std::isfinite(ts) || !std::isfinite(expiry)) {
      *why = "entry with a non-finite timestamp or expiry";
      return false;
    }
    if (!read_stored_value(value, values_canonical, &scratch, &value) || value.front() == '[' ||
        value.front() == '{') {
      *why = values_canonical ? "entry value is not a canonical JSON scalar"
                              : "entry value is not a JSON scalar";
      return false;
    }
    const bool own = key == client_;
    if ((own && has_own_) || (!own && others_.count(key) != 0)) {
      *why = "duplicate client entry";
      return false;
    }
    LatestEntry* slot = own ? &own_ : &others_.emplace(std::string(key), LatestEntry{}).first->second;
    has_own_ = has_own_ || own;
    slot->value.assign(value.data(), value.size());
    slot->timestamp = ts;
    slot->expiry = expiry;
    slot->retain_until = std::max(expiry, ts + tombstone_seconds_);
    note_added(*slot, own);
  }
  if (!r->at_end()) {
    *why = "trailing bytes";
    return false;
  }
  return true;
}

}  // namespace taba::builtin
