// Text building for render hooks: numbers in Taba's printf forms or exact,
// JSON string escaping, and handing the result to the host's taba_output.
#ifndef TABA_PLUGINS_COMMON_TEXT_H
#define TABA_PLUGINS_COMMON_TEXT_H

#include <cstdint>
#include <string>
#include <string_view>

#include "taba/handler.h"

namespace taba::builtin {

// How a render writes its non-integer numbers: Taba's printf forms
// (TABA_FORMAT_JSON, what text replies show), or exactly (the shortest
// round-trip text; TABA_FORMAT_JSON_EXACT and _DETAILED).
enum class Numbers { kTaba, kExact };

// The number form of a render format.
inline Numbers numbers_for(uint32_t format) {
  return format == TABA_FORMAT_JSON ? Numbers::kTaba : Numbers::kExact;
}

class TextBuffer {
 public:
  TextBuffer() = default;
  explicit TextBuffer(Numbers numbers) : numbers_(numbers) {}

  TextBuffer& raw(std::string_view s) {
    buf_.append(s.data(), s.size());
    return *this;
  }
  TextBuffer& u64(uint64_t v);                  // printf "%" PRIu64
  TextBuffer& i64(int64_t v);                   // printf "%" PRId64
  TextBuffer& number2(double v);                // Taba: printf "%.2f"; exact: append_shortest_double
  // A sum known to within tolerance. Taba: printf "%f"; exact:
  // append_shortest_within, so rounding noise below the sum's resolution
  // does not show as digits (0.003, not 0.0029999997373670340).
  TextBuffer& number6(double v, double tolerance);
  TextBuffer& shortest(double v);               // append_shortest_double
  TextBuffer& json_string(std::string_view s);  // quoted and escaped
  // A figure known to within tolerance, such as an ExactSum or an average
  // of one. Taba: printf "%.2f"; exact: append_shortest_within.
  TextBuffer& number2(double v, double tolerance);

  const std::string& str() const { return buf_; }
  // Hands the text to the host. Returns TABA_OK or TABA_ERR_NOMEM.
  taba_status flush_to(taba_output* out) const;

 private:
  std::string buf_;
  Numbers numbers_ = Numbers::kTaba;
};

// Appends s to *out as the body of a JSON string (no surrounding quotes):
// '"' and '\\' are backslash-escaped, control characters become \n, \t, ...
// or \u00XX; every other byte (UTF-8 included) is copied as is.
void append_json_escaped(std::string_view s, std::string* out);

// Appends the shortest decimal text that reads back to exactly v, in the
// form JavaScript's Number#toString (and so JSON.stringify) writes: fixed
// notation for 1e-7 <= |v| < 1e21 ("0.0012", "15.5", "5000000000"), else
// d[.ddd]e[+-]n ("1e-7", "1.5e+300"). -0 is written "0" (it equals 0);
// NaN and infinities, which JSON cannot carry, as "null".
void append_shortest_double(double v, std::string* out);

// Appends, in append_shortest_double's form, the shortest decimal number
// within tolerance of v (of those, the nearest to v): for a figure known
// only to that precision, the digits that mean something. A tolerance of
// 0 (or NaN) writes v itself.
void append_shortest_within(double v, double tolerance, std::string* out);

// s without leading and trailing JSON whitespace (space, tab, CR, LF).
std::string_view trim_json_space(std::string_view s);

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_TEXT_H
