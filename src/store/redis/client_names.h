// The distinct names each client of a body carries, for
// ingest.max_names_per_client in Redis mode (redis_client_limit.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace taba::redis {

class ClientNames {
 public:
  void add(std::string_view client, std::string_view name) {
    std::string key(client);
    key.push_back('\0');
    key.append(name);
    if (!pairs_.insert(std::move(key)).second) return;
    auto [it, fresh] = index_.emplace(std::string(client), list_.size());
    if (fresh) list_.emplace_back(std::string(client), std::vector<std::string>{});
    list_[it->second].second.emplace_back(name);
  }
  void clear() {
    pairs_.clear();
    index_.clear();
    list_.clear();
  }
  // Clients in the order they first appear, each with its names.
  const std::vector<std::pair<std::string, std::vector<std::string>>>& list() const { return list_; }

 private:
  std::unordered_set<std::string> pairs_;  // client \0 name
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::pair<std::string, std::vector<std::string>>> list_;
};

}  // namespace taba::redis
