// The built-in web page (/ui, issue 9): a small page that explores what
// tabad aggregates through the query routes. Its files (ui/ in the source
// tree) are compiled into the binary by ui/embed.cmake, so it works offline
// and needs nothing installed beside tabad.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/server.h"

namespace taba::routes {

// True for "/ui" and every path under "/ui/".
bool is_ui_path(std::string_view path);

// The reply to a request for a /ui path: "/ui" redirects to "/ui/" (the
// page's relative links need the slash), "/ui/" is index.html, "/ui/<file>"
// an embedded file with its Content-Type, an ETag and Cache-Control: no-cache
// (304 for a matching If-None-Match); 404 for files that do not exist, 405
// for methods other than GET and HEAD.
http::Response ui_response(const http::Request& request);

namespace ui_detail {

// One embedded file; the table is generated at build time (ui_assets.cpp).
struct EmbeddedFile {
  const char* name;  // "index.html"
  const char* etag;  // "\"<20 hex digits of its SHA-256>\""
  const unsigned char* data;
  size_t size;
};
extern const EmbeddedFile kFiles[];
extern const size_t kFileCount;

}  // namespace ui_detail

}  // namespace taba::routes
