// URLs and query strings: parsing, percent-encoding.
#include "http/url.h"

#include <fmt/format.h>

#include <charconv>

namespace taba::http {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Parses the authority part ("host", "host:port", "[v6]", "[v6]:port").
Status parse_authority(std::string_view authority, std::string_view whole, Url* url) {
  if (authority.empty()) return Status::Invalid(fmt::format("URL has no host: '{}'", whole));
  if (authority.find('@') != std::string_view::npos) {
    return Status::Invalid(fmt::format("URL user info is not supported: '{}'", whole));
  }
  std::string_view host = authority;
  std::string_view port_text;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Status::Invalid(fmt::format("URL has an unterminated '[' in its host: '{}'", whole));
    }
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return Status::Invalid(fmt::format("URL has junk after ']' in its host: '{}'", whole));
      }
      port_text = rest.substr(1);
      if (port_text.empty()) return Status::Invalid(fmt::format("URL has an empty port: '{}'", whole));
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return Status::Invalid(fmt::format("URL has an empty port: '{}'", whole));
    }
  }
  if (host.empty()) return Status::Invalid(fmt::format("URL has no host: '{}'", whole));
  if (!port_text.empty()) {
    int port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
      return Status::Invalid(
          fmt::format("URL port '{}' is not a number in 1..65535: '{}'", port_text, whole));
    }
    url->port = port;
  }
  url->host = std::string(host);
  return Status::Ok();
}

}  // namespace

Result<Url> parse_url(std::string_view text) {
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return Status::Invalid(fmt::format("URL must start with 'http://': '{}'", text));
  }
  std::string_view scheme = text.substr(0, sep);
  if (!equals_ignore_case(scheme, "http")) {
    return Status::Invalid(fmt::format("URL scheme '{}' is not supported (only http): '{}'", scheme, text));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Status::Invalid(fmt::format("URL contains a space or control character: '{}'", text));
    }
  }
  std::string_view rest = text.substr(sep + 3);
  size_t target_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, target_start);
  std::string_view target = target_start == std::string_view::npos ? "" : rest.substr(target_start);
  if (size_t hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);

  Url url;
  url.scheme = "http";
  TABA_RETURN_IF_ERROR(parse_authority(authority, text, &url));
  if (target.empty()) {
    url.target = "/";
  } else if (target.front() == '?') {
    url.target = "/" + std::string(target);
  } else {
    url.target = std::string(target);
  }
  return url;
}

bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

std::string percent_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    auto u = static_cast<unsigned char>(c);
    if (is_unreserved(u)) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

Result<std::vector<QueryParam>> parse_query(std::string_view query) {
  std::vector<QueryParam> params;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view segment = query.substr(pos, amp - pos);
    pos = amp + 1;
    if (segment.empty()) continue;
    size_t eq = segment.find('=');
    std::string_view key = segment.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : segment.substr(eq + 1);
    QueryParam param;
    if (!percent_decode(key, &param.key) || !percent_decode(value, &param.value)) {
      return Status::Invalid(fmt::format("malformed percent-escape in query parameter '{}'", segment));
    }
    params.push_back(std::move(param));
  }
  return params;
}

}  // namespace taba::http
