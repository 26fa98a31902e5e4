// One POST of a segment's body to an fe, and its outcome (see fe_post.h).
#include "agent/fe_post.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace taba::agent {

std::string first_line(std::string_view body) {
  size_t nl = body.find('\n');
  std::string_view line =
      body.substr(0, std::min<size_t>(nl == std::string_view::npos ? body.size() : nl, 300));
  return std::string(line);
}

Attempt post_zip(const std::string& compressed, const std::string& batch_id, const Endpoint& ep,
                 const std::string& token, std::optional<http::ClientConnection>& conn, int timeout_ms) {
  Attempt a;
  int64_t t0 = steady_ms();
  if (!conn || !conn->is_open()) {
    auto c = http::ClientConnection::connect(ep.host, ep.port, timeout_ms);
    if (!c.ok()) {
      a.message = c.status().message();
      return a;
    }
    conn.emplace(std::move(c.value()));
  }
  std::vector<http::Header> headers{{"Taba-Batch-Id", batch_id},
                                    {"Content-Type", "application/octet-stream"}};
  if (!token.empty()) headers.push_back({"Authorization", "Bearer " + token});
  int64_t left = timeout_ms - (steady_ms() - t0);
  auto r =
      conn->request("POST", "/post_zip", headers, compressed, static_cast<int>(std::max<int64_t>(left, 1)));
  a.latency_ms = static_cast<double>(steady_ms() - t0);
  if (!r.ok()) {
    conn.reset();
    a.message = r.status().message();
    return a;
  }
  a.status = r->status;
  a.message = first_line(r->body);
  std::string_view ra = r->header("retry-after");
  if (!ra.empty()) {
    int64_t secs = 0;
    for (char ch : ra) {
      if (ch < '0' || ch > '9') break;
      secs = secs * 10 + (ch - '0');
    }
    a.retry_after_ms = std::min<int64_t>(secs, 3600) * 1000;
  }
  if (a.status >= 200 && a.status < 300) {
    a.outcome = Outcome::kOk;
    std::string_view refused = r->header("taba-refused-blocks");
    if (!refused.empty() && refused != "0") a.refusals = r->body;
  } else if (a.status >= 400 && a.status < 500 && a.status != 401 && a.status != 403 && a.status != 404 &&
             a.status != 408 && a.status != 429) {
    // The fe read the body and refused it: resending cannot help.
    a.outcome = Outcome::kDeadLetter;
  }
  return a;
}

}  // namespace taba::agent
