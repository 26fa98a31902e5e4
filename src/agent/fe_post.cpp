// One POST of a segment's body to an fe, and its outcome (see fe_post.h).
#include "agent/fe_post.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "protocol/delta_batch.h"

namespace taba::agent {

std::string first_line(std::string_view body) {
  size_t nl = body.find('\n');
  std::string_view line =
      body.substr(0, std::min<size_t>(nl == std::string_view::npos ? body.size() : nl, 300));
  return std::string(line);
}

namespace {

// A header's value as whole seconds, or -1 when it is not one.
int64_t seconds_of(std::string_view v) {
  if (v.empty() || v.size() > 12) return -1;
  int64_t n = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') return -1;
    n = n * 10 + (ch - '0');
  }
  return n;
}

Attempt post(std::string_view path, std::vector<http::Header> headers, const std::string& body,
             const std::string& batch_id, const PostTarget& to) {
  Attempt a;
  int64_t t0 = steady_ms();
  std::optional<http::ClientConnection>& conn = to.conn;
  const int timeout_ms = to.timeout_ms;
  if (!conn || !conn->is_open()) {
    auto c = http::ClientConnection::connect(to.ep.host, to.ep.port, timeout_ms, std::nullopt, to.cutoff);
    if (!c.ok()) {
      a.message = c.status().message();
      return a;
    }
    conn.emplace(std::move(c.value()));
  }
  conn->set_cutoff(to.cutoff);
  if (to.sent) *to.sent = true;
  headers.push_back({"Taba-Batch-Id", batch_id});
  if (to.batch_age_s >= 0) headers.push_back({"Taba-Batch-Age", std::to_string(to.batch_age_s)});
  if (!to.token.empty()) headers.push_back({"Authorization", "Bearer " + to.token});
  int64_t left = timeout_ms - (steady_ms() - t0);
  auto r = conn->request("POST", path, headers, body, static_cast<int>(std::max<int64_t>(left, 1)));
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
  a.dedup_window_s = seconds_of(r->header("taba-dedup-window"));
  std::string_view refused = r->header("taba-refused-blocks");
  if (!refused.empty() && refused != "0") a.refusals = r->body;
  if (a.status >= 200 && a.status < 300) {
    a.outcome = Outcome::kOk;
  } else if (a.status >= 400 && a.status < 500 && a.status != 401 && a.status != 403 && a.status != 404 &&
             a.status != 408 && a.status != 429) {
    // The fe read the body and refused it: resending cannot help.
    a.outcome = Outcome::kDeadLetter;
  }
  return a;
}

}  // namespace

Attempt post_zip(const std::string& compressed, const std::string& batch_id, const PostTarget& to) {
  return post("/post_zip", {{"Content-Type", "application/octet-stream"}}, compressed, batch_id, to);
}

Attempt post_delta(const std::string& body, bool compressed, const std::string& batch_id, const PostTarget& to) {
  std::vector<http::Header> headers{{"Content-Type", std::string(protocol::kDeltaContentType)}};
  if (compressed) headers.push_back({"Content-Encoding", "deflate"});
  Attempt a = post("/post_delta", std::move(headers), body, batch_id, to);
  // An older fe: no such route (404), or a route it reads as something
  // else (405, 415). Its answer blames neither the body nor the moment.
  if (a.status == 404 || a.status == 405 || a.status == 415) {
    a.outcome = Outcome::kRetry;
    a.no_delta_route = true;
    to.conn.reset();  // it may not have read the body it refused at its headers
  }
  return a;
}

}  // namespace taba::agent
