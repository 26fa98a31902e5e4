#include "routes/ui.h"

#include <fmt/format.h>

namespace taba::routes {
namespace {

constexpr std::string_view kPrefix = "/ui/";

std::string_view content_type_of(std::string_view name) {
  auto ends_with = [&](std::string_view ext) { return name.ends_with(ext); };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  if (ends_with(".png")) return "image/png";
  if (ends_with(".json")) return "application/json";
  return "application/octet-stream";
}

const ui_detail::EmbeddedFile* find_file(std::string_view name) {
  for (size_t i = 0; i < ui_detail::kFileCount; ++i) {
    if (name == ui_detail::kFiles[i].name) return &ui_detail::kFiles[i];
  }
  return nullptr;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// If-None-Match: "*" or a comma-separated list of (possibly weak) ETags.
bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    size_t comma = if_none_match.find(',');
    std::string_view item = trim(if_none_match.substr(0, comma));
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

void add_common_headers(http::Response* r, const ui_detail::EmbeddedFile& file) {
  r->headers.push_back({"ETag", file.etag});
  // Revalidate every time: the files change with the binary, and a 304 costs
  // no more than the request.
  r->headers.push_back({"Cache-Control", "no-cache"});
  r->headers.push_back({"X-Content-Type-Options", "nosniff"});
}

}  // namespace

bool is_ui_path(std::string_view path) { return path == "/ui" || path.starts_with(kPrefix); }

http::Response ui_response(const http::Request& request) {
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only GET\n", request.path));
    r.headers.push_back({"Allow", "GET, HEAD"});
    return r;
  }
  if (request.path == "/ui") {
    // Relative, so the page also works behind a proxy that adds a path prefix.
    std::string location = request.query.empty() ? "ui/" : "ui/?" + request.query;
    http::Response r = http::Response::text(301, "the page is at /ui/\n");
    r.headers.push_back({"Location", location});
    return r;
  }
  std::string_view name = std::string_view(request.path).substr(kPrefix.size());
  if (name.empty()) name = "index.html";
  const ui_detail::EmbeddedFile* file = find_file(name);
  if (file == nullptr) return http::Response::text(404, fmt::format("no such file: {}\n", request.path));

  if (etag_matches(request.header("if-none-match"), file->etag)) {
    http::Response r;
    r.status = 304;
    add_common_headers(&r, *file);
    return r;
  }
  http::Response r;
  r.status = 200;
  r.content_type = std::string(content_type_of(name));
  r.body.assign(reinterpret_cast<const char*>(file->data), file->size);
  add_common_headers(&r, *file);
  if (name.ends_with(".html")) {
    // The page loads only its own files and talks only to this server.
    r.headers.push_back({"Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                         "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"});
    r.headers.push_back({"Referrer-Policy", "no-referrer"});
  }
  return r;
}

}  // namespace taba::routes
