#include "common/text.h"

#include <cinttypes>
#include <cstdio>

namespace taba::builtin {
namespace {

// "%.2f" of the largest double is 309 digits + sign + ".00".
constexpr size_t kNumberBufSize = 352;

}  // namespace

TextBuffer& TextBuffer::u64(uint64_t v) {
  char tmp[24];
  const int n = std::snprintf(tmp, sizeof tmp, "%" PRIu64, v);
  buf_.append(tmp, static_cast<size_t>(n));
  return *this;
}

TextBuffer& TextBuffer::i64(int64_t v) {
  char tmp[24];
  const int n = std::snprintf(tmp, sizeof tmp, "%" PRId64, v);
  buf_.append(tmp, static_cast<size_t>(n));
  return *this;
}

TextBuffer& TextBuffer::fixed2(double v) {
  char tmp[kNumberBufSize];
  const int n = std::snprintf(tmp, sizeof tmp, "%.2f", v);
  buf_.append(tmp, static_cast<size_t>(n));
  return *this;
}

TextBuffer& TextBuffer::fixed6(double v) {
  char tmp[kNumberBufSize];
  const int n = std::snprintf(tmp, sizeof tmp, "%f", v);
  buf_.append(tmp, static_cast<size_t>(n));
  return *this;
}

TextBuffer& TextBuffer::json_string(std::string_view s) {
  buf_.push_back('"');
  append_json_escaped(s, &buf_);
  buf_.push_back('"');
  return *this;
}

taba_status TextBuffer::flush_to(taba_output* out) const {
  if (out == nullptr || out->write == nullptr) return TABA_ERR_INTERNAL;
  return out->write(out, buf_.data(), buf_.size()) == 0 ? TABA_OK : TABA_ERR_NOMEM;
}

void append_json_escaped(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (u < 0x20) {
          const char esc[6] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 0xf]};
          out->append(esc, sizeof esc);
        } else {
          out->push_back(c);
        }
    }
  }
}

std::string_view trim_json_space(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace taba::builtin
