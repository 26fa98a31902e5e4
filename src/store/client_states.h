// The per-client states of one name (NameEntry::states, store/store.h; both
// stores fill it): an open-addressing hash table keyed by
// client index (power-of-two capacity, multiplicative hashing, linear
// probing). Looked up once per (client, name) block on the ingest path,
// where std::unordered_map's modulo and node chasing showed in profiles.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

namespace taba::store {

template <typename V>
class ClientStates {
 public:
  using Key = uint32_t;

  size_t size() const { return size_; }

  // The value for `key`, or nullptr.
  V* find(Key key) {
    if (capacity_ == 0) return nullptr;
    for (size_t i = slot(key);; i = (i + 1) & (capacity_ - 1)) {
      if (!used_[i]) return nullptr;
      if (keys_[i] == key) return &values_[i];
    }
  }
  const V* find(Key key) const { return const_cast<ClientStates*>(this)->find(key); }

  // The value for `key`, default-constructed when new.
  V& operator[](Key key) {
    if ((size_ + 1) * 4 > capacity_ * 3) grow();
    size_t i = slot(key);
    while (used_[i]) {
      if (keys_[i] == key) return values_[i];
      i = (i + 1) & (capacity_ - 1);
    }
    used_[i] = true;
    keys_[i] = key;
    ++size_;
    return values_[i];
  }

  // Removes `key` (backward-shift deletion keeps every probe chain intact).
  // False when it was absent.
  bool erase(Key key) {
    if (capacity_ == 0) return false;
    size_t mask = capacity_ - 1;
    size_t i = slot(key);
    while (true) {
      if (!used_[i]) return false;
      if (keys_[i] == key) break;
      i = (i + 1) & mask;
    }
    values_[i] = V();
    used_[i] = false;
    --size_;
    for (size_t j = (i + 1) & mask; used_[j]; j = (j + 1) & mask) {
      size_t home = slot(keys_[j]);
      // Move j back into the hole at i unless its home lies cyclically in (i, j].
      bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      keys_[i] = keys_[j];
      values_[i] = std::move(values_[j]);
      used_[i] = true;
      values_[j] = V();
      used_[j] = false;
      i = j;
    }
    return true;
  }

  // Calls f(key, const V&) for every entry, in no particular order.
  template <typename F>
  void for_each(F&& f) const {
    for (size_t i = 0; i < capacity_; ++i) {
      if (used_[i]) f(keys_[i], values_[i]);
    }
  }

 private:
  size_t slot(Key key) const { return (uint64_t{key} * 0x9E3779B97F4A7C15ull) >> (64 - bits_); }

  void grow() {
    size_t old_capacity = capacity_;
    std::unique_ptr<Key[]> old_keys = std::move(keys_);
    std::unique_ptr<V[]> old_values = std::move(values_);
    std::unique_ptr<bool[]> old_used = std::move(used_);
    bits_ = capacity_ == 0 ? 2 : bits_ + 1;
    capacity_ = size_t{1} << bits_;
    keys_.reset(new Key[capacity_]);
    values_.reset(new V[capacity_]());
    used_.reset(new bool[capacity_]());
    size_ = 0;
    for (size_t i = 0; i < old_capacity; ++i) {
      if (old_used[i]) (*this)[old_keys[i]] = std::move(old_values[i]);
    }
  }

  std::unique_ptr<Key[]> keys_;
  std::unique_ptr<V[]> values_;
  std::unique_ptr<bool[]> used_;
  size_t capacity_ = 0;
  size_t size_ = 0;
  unsigned bits_ = 0;
};

}  // namespace taba::store
