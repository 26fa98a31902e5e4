// URLs and query strings: parsing, percent-encoding.
#include "http/url.h"

#include <fmt/format.h>

#include <charconv>

#include "core/ascii.h"

namespace taba::http {

namespace {

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
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
  if (!ascii_iequals(scheme, "http")) {
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
      int hi = hex_digit_value(in[i + 1]);
      int lo = hex_digit_value(in[i + 2]);
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

bool split_host_port(std::string_view text, std::string* host, int* port) {
  std::string_view h;
  std::string_view p;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
    if (h.find(':') == std::string_view::npos) return false;  // brackets are for IPv6 only
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // bare IPv6 needs brackets
  }
  if (h.empty() || p.empty() || p.size() > 5) return false;
  int value = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return false;
  if (host) host->assign(h);
  if (port) *port = value;
  return true;
}

bool split_endpoint(std::string_view text, std::string* host, int* port) {
  if (text.substr(0, 7) == "http://") text.remove_prefix(7);
  if (!text.empty() && text.back() == '/') text.remove_suffix(1);
  return split_host_port(text, host, port) && (!port || *port > 0);
}

}  // namespace taba::http
