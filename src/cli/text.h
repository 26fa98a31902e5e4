// Small text helpers shared by taba-cli's parts (parsing, request
// planning, formatting, run).
#pragma once

#include <string>
#include <string_view>

namespace taba::cli {

// `s` without leading and trailing spaces, tabs and line ends.
inline std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// `body` ending in '\n' (unless empty).
inline std::string with_newline(std::string_view body) {
  std::string out(body);
  if (!out.empty() && out.back() != '\n') out += '\n';
  return out;
}

}  // namespace taba::cli
