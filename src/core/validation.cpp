#include "core/validation.h"

#include <fmt/format.h>

#include <array>

namespace taba {
namespace {

constexpr std::array<bool, 256> make_table() {
  std::array<bool, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (char c : std::string_view("._~:/?@!$()*+;=-")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kAllowed = make_table();

}  // namespace

bool is_identifier_char(unsigned char c) { return kAllowed[c]; }

std::string check_identifier(std::string_view value) {
  if (value.empty()) return "is empty";
  if (value.size() > kMaxIdentifierBytes) {
    return fmt::format("is {} bytes long (at most {} allowed)", value.size(), kMaxIdentifierBytes);
  }
  for (size_t i = 0; i < value.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (!kAllowed[c]) {
      if (c >= 0x20 && c < 0x7f) return fmt::format("contains '{}' (0x{:02x}) at byte {}", static_cast<char>(c), c, i);
      return fmt::format("contains byte 0x{:02x} at byte {}", c, i);
    }
  }
  return {};
}

std::string quote_for_error(std::string_view value) {
  std::string out;
  size_t n = value.size() < 64 ? value.size() : 64;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (value.size() > n) out += "...";
  return out;
}

}  // namespace taba
