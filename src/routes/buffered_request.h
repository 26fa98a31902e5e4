// The request handler of the routes that answer from a small, complete body
// (the query and admin routes, /metrics): it collects the body, refusing
// one over 1 MiB with 413, then hands the request and the body to a
// callback that answers once.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "http/server.h"

namespace taba::routes {

inline constexpr size_t kMaxQueryBodyBytes = 1 << 20;

// Collects a small request body, then answers with `respond`.
class BufferedRequest : public http::RequestHandler {
 public:
  using Respond =
      std::function<void(const http::Request&, std::string_view, std::function<void(http::Response)>)>;
  BufferedRequest(std::shared_ptr<http::Exchange> exchange, Respond respond)
      : exchange_(std::move(exchange)), respond_(std::move(respond)) {}

  void on_body(std::string_view chunk) override {
    if (body_.size() + chunk.size() > kMaxQueryBodyBytes) {
      exchange_->reply(http::Response::text(413, fmt::format("query body exceeds {} bytes\n", kMaxQueryBodyBytes)));
      return;
    }
    body_.append(chunk);
  }
  void on_complete() override {
    if (exchange_->replied()) return;
    std::shared_ptr<http::Exchange> ex = exchange_;
    respond_(ex->request(), body_, [ex](http::Response r) {
      if (!ex->replied()) ex->reply(std::move(r));
    });
  }

 private:
  std::shared_ptr<http::Exchange> exchange_;
  Respond respond_;
  std::string body_;
};

}  // namespace taba::routes
