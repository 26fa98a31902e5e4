// The operations and admin routes every server role serves (docs/api.md §7, §8), in
// both store modes:
//   GET  /status /servers /latency
//   POST /delete?name=…[&re=1]   POST /gc   POST /check[?dry=false]   POST /flush
// (/reshard is routes/reshard.h). /status ends with the placement
// (routes/placement_format.h).
// Replies are text (default) or JSON, chosen from Accept.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "http/server.h"
#include "store/store.h"

namespace taba::routes {

class AdminRoutes {
 public:
  explicit AdminRoutes(store::Store* store) : store_(store) {}

  static bool handles(std::string_view path);
  // Answers a request whose (small) body is complete.
  void handle(const http::Request& request, std::string_view body, std::function<void(http::Response)> done);

 private:
  void admin(const http::Request& request, std::string_view body, std::function<void(http::Response)> done);
  void ops(const http::Request& request, std::function<void(http::Response)> done);
  store::Store* store_;
};

}  // namespace taba::routes
