// Drives the ingest routes (routes/ingest.h) the way the HTTP server drives
// a route: start() once the headers are complete, the body in chunks,
// on_complete(), the reply recorded by the request's Exchange. Shared by the
// tests of /post (ingest_test.cpp) and /post_delta (delta_ingest_test.cpp).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "http/server.h"
#include "plugin_batches.h"
#include "routes/ingest.h"

namespace taba::test {

// The reply side of one request, as the server's connection would hold it.
class RecordingExchange final : public http::Exchange {
 public:
  explicit RecordingExchange(http::Request request) : request_(std::move(request)) {}
  const http::Request& request() const override { return request_; }
  void reply(http::Response response) override {
    ++replies_;
    if (!response_) response_ = std::move(response);
  }
  bool replied() const override { return response_.has_value(); }
  bool alive() const override { return true; }

  int replies() const { return replies_; }
  const http::Response& response() const {
    REQUIRE(response_);
    return *response_;
  }
  // The reply's header `name` (as the route spelled it), or "(none)".
  std::string header(std::string_view name) const {
    for (const http::Header& h : response().headers) {
      if (h.name == name) return h.value;
    }
    return "(none)";
  }

 private:
  http::Request request_;
  std::optional<http::Response> response_;
  int replies_ = 0;
};

struct Post {
  std::string path = "/post";
  std::string method = "POST";
  std::vector<http::Header> headers;  // lower-case names, as the server delivers them
};

// Hands `body` to the route as the server would: in 7-byte chunks while the
// route has not replied, then on_complete unless it has. The handler is
// kept (the server keeps it until the connection's next request).
class IngestDriver {
 public:
  explicit IngestDriver(store::Store* store, Config::Ingest options = {}) : ingest(store, &built_plugins(), options) {}
  // Posts go to `sink` (an agent's spool, say) instead of a store.
  explicit IngestDriver(routes::IngestSink* sink, Config::Ingest options = {})
      : ingest(sink, &built_plugins(), options) {}

  std::shared_ptr<RecordingExchange> post(std::string_view body, const Post& how = {}) {
    http::Request req;
    req.method = how.method;
    req.target = how.path;
    req.path = how.path;
    req.headers = how.headers;
    req.content_length = body.size();
    req.peer = "127.0.0.1:40000";
    auto exchange = std::make_shared<RecordingExchange>(std::move(req));
    handlers_.push_back(ingest.start(exchange));
    http::RequestHandler* handler = handlers_.back().get();
    if (handler == nullptr) {
      REQUIRE(exchange->replied());  // a route that declines replies itself
      return exchange;
    }
    for (size_t i = 0; i < body.size() && !exchange->replied(); i += 7) handler->on_body(body.substr(i, 7));
    if (!exchange->replied()) handler->on_complete();
    return exchange;
  }

  routes::Ingest ingest;

 private:
  std::vector<std::unique_ptr<http::RequestHandler>> handlers_;
};

// Blocks of `kind` refused so far (IngestStats::blocks_refused).
inline uint64_t refused(const routes::IngestStats& stats, std::string_view kind) {
  auto it = std::find(routes::kRefusalKinds.begin(), routes::kRefusalKinds.end(), kind);
  REQUIRE(it != routes::kRefusalKinds.end());
  return stats.blocks_refused[static_cast<size_t>(it - routes::kRefusalKinds.begin())];
}

}  // namespace taba::test
