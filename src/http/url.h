// URLs, query strings and host:port addresses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::http {

struct Url {
  std::string scheme;  // "http" (the only one supported)
  std::string host;    // without brackets for IPv6
  int port = 80;
  std::string target;  // path + optional "?query"; "/" when empty
};

// Parses "http://host[:port][/path][?query]". Error names what is wrong.
Result<Url> parse_url(std::string_view text);

// Decodes %XX escapes. Returns false on a malformed escape. '+' stays '+'
// (as in a path, RFC 3986): it is a legal character of names and client IDs
// and a quantifier in re= patterns, so the HTML-form reading "+ is a space"
// would silently turn "?name=a+b" into a name that cannot exist.
bool percent_decode(std::string_view in, std::string* out);

// Escapes every byte outside A-Z a-z 0-9 - . _ ~ as %XX.
std::string percent_encode(std::string_view in);

struct QueryParam {
  std::string key;
  std::string value;
};

// Splits "a=1&b=x%2Cy" into decoded pairs, in order. Empty segments are
// skipped; a key without '=' has an empty value. Errors name the bad segment.
Result<std::vector<QueryParam>> parse_query(std::string_view query);

// Splits "host:port" ("[::1]:8300" for IPv6). False if malformed.
bool split_host_port(std::string_view text, std::string* host, int* port);
// The same for a peer to connect to: "host:port" or "http://host:port[/]",
// with a port in 1..65535.
bool split_endpoint(std::string_view text, std::string* host, int* port);

}  // namespace taba::http
