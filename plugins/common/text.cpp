#include "common/text.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

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

TextBuffer& TextBuffer::number2(double v) {
  if (numbers_ == Numbers::kExact) return shortest(v);
  char tmp[kNumberBufSize];
  const int n = std::snprintf(tmp, sizeof tmp, "%.2f", v);
  buf_.append(tmp, static_cast<size_t>(n));
  return *this;
}

TextBuffer& TextBuffer::number2(double v, double tolerance) {
  if (numbers_ == Numbers::kExact) {
    append_shortest_within(v, tolerance, &buf_);
    return *this;
  }
  return number2(v);
}

TextBuffer& TextBuffer::number6(double v, double tolerance) {
  if (numbers_ == Numbers::kExact) {
    append_shortest_within(v, tolerance, &buf_);
    return *this;
  }
  char tmp[kNumberBufSize];
  const int n = std::snprintf(tmp, sizeof tmp, "%f", v);
  buf_.append(tmp, static_cast<size_t>(n));
  return *this;
}

TextBuffer& TextBuffer::shortest(double v) {
  append_shortest_double(v, &buf_);
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

void append_shortest_double(double v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  if (v == 0) {
    out->push_back('0');
    return;
  }
  // The shortest round-trip digits, as "d.ddde+XX" or "de-XX".
  char sci[40];
  const auto res = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific);
  const char* p = sci;
  if (*p == '-') {
    out->push_back('-');
    ++p;
  }
  char digits[24];
  int k = 0;
  for (; p < res.ptr && *p != 'e'; ++p) {
    if (*p != '.') digits[k++] = *p;
  }
  int exp10 = 0;
  const bool negative_exp = p + 1 < res.ptr && p[1] == '-';
  for (const char* q = p + 2; q < res.ptr; ++q) exp10 = exp10 * 10 + (*q - '0');
  if (negative_exp) exp10 = -exp10;
  const int n = exp10 + 1;  // v = 0.digits x 10^n
  if (k <= n && n <= 21) {
    out->append(digits, static_cast<size_t>(k));
    out->append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out->append(digits, static_cast<size_t>(n));
    out->push_back('.');
    out->append(digits + n, static_cast<size_t>(k - n));
  } else if (-6 < n && n <= 0) {
    out->append("0.");
    out->append(static_cast<size_t>(-n), '0');
    out->append(digits, static_cast<size_t>(k));
  } else {
    out->push_back(digits[0]);
    if (k > 1) {
      out->push_back('.');
      out->append(digits + 1, static_cast<size_t>(k - 1));
    }
    out->push_back('e');
    out->push_back(n - 1 < 0 ? '-' : '+');
    char e[8];
    const auto er = std::to_chars(e, e + sizeof e, std::abs(n - 1));
    out->append(e, static_cast<size_t>(er.ptr - e));
  }
}

void append_shortest_within(double v, double tolerance, std::string* out) {
  if (!std::isfinite(v) || !(tolerance > 0)) {
    append_shortest_double(v, out);
    return;
  }
  if (std::fabs(v) <= tolerance) {
    out->push_back('0');
    return;
  }
  // With d significant digits, the decimal nearest v is to_chars's (and
  // printf's) "%.{d-1}e" (correctly rounded); if any d-digit decimal is
  // within tolerance, that one is, and the nearest with d + 1 digits is at
  // least as near. within(d) checks that exactly.
  char text[40];
  double found = v;  // the nearest decimal of the fewest digits found within tolerance so far
  auto within = [&](int d) {
    const auto end = std::to_chars(text, text + sizeof text, v, std::chars_format::scientific, d - 1);
    double rounded = 0;
    std::from_chars(text, end.ptr, rounded, std::chars_format::scientific);
    if (!(std::fabs(rounded - v) <= tolerance)) return false;
    found = rounded;
    return true;
  };
  // A guess first, in double arithmetic: the fewest digits d whose nearest
  // multiple of 10^(e - d + 1) (e: v's decimal exponent) lies within
  // tolerance. When within(d) and not within(d - 1) confirm it, d is the
  // answer. The guess's distances are within a few ulps of v of the exact
  // ones, so a d - 1 the guess missed by more than `margin` needs no exact
  // check.
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const double margin = 16 * std::fabs(v) * std::numeric_limits<double>::epsilon();
  const int e = static_cast<int>(std::floor(std::log10(std::fabs(v))));
  double missed_by = 0;  // how far the guess of d - 1 was from v, beyond tolerance
  for (int d = 1; d <= 17; ++d) {
    const int k = e - d + 1;  // the step is 10^k
    double rounded;
    if (k >= 0 && k <= 22) {
      rounded = std::nearbyint(v / kPow10[k]) * kPow10[k];
    } else if (k < 0 && k >= -22) {
      rounded = std::nearbyint(v * kPow10[-k]) / kPow10[-k];
    } else {
      break;  // far from 1: the bisection alone
    }
    if (std::fabs(rounded - v) > tolerance) {
      missed_by = std::fabs(rounded - v) - tolerance;
      continue;
    }
    if (within(d)) {
      const double at_d = found;
      if (d == 1 || missed_by > margin || !within(d - 1)) {
        append_shortest_double(at_d, out);
        return;
      }
    }
    break;
  }
  // Otherwise, bisection between 1 and the digits of v's own shortest text
  // (which reads back to v itself).
  const auto shortest = std::to_chars(text, text + sizeof text, v, std::chars_format::scientific);
  int max_digits = 0;
  for (const char* p = text; p < shortest.ptr && *p != 'e'; ++p) max_digits += *p >= '0' && *p <= '9';
  found = v;
  int lo = 1;
  int hi = max_digits;  // within(max_digits): v itself
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (within(mid)) {
      hi = mid;  // found is the decimal of hi digits
    } else {
      lo = mid + 1;
    }
  }
  append_shortest_double(found, out);
}

std::string_view trim_json_space(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace taba::builtin
