// Text building for render hooks: printf-compatible number formats, JSON
// string escaping, and handing the result to the host's taba_output.
#ifndef TABA_PLUGINS_COMMON_TEXT_H
#define TABA_PLUGINS_COMMON_TEXT_H

#include <cstdint>
#include <string>
#include <string_view>

#include "taba/handler.h"

namespace taba::builtin {

class TextBuffer {
 public:
  TextBuffer& raw(std::string_view s) {
    buf_.append(s.data(), s.size());
    return *this;
  }
  TextBuffer& u64(uint64_t v);                  // printf "%" PRIu64
  TextBuffer& i64(int64_t v);                   // printf "%" PRId64
  TextBuffer& fixed2(double v);                 // printf "%.2f"
  TextBuffer& fixed6(double v);                 // printf "%f"
  TextBuffer& shortest(double v);               // append_shortest_double
  TextBuffer& json_string(std::string_view s);  // quoted and escaped

  const std::string& str() const { return buf_; }
  // Hands the text to the host. Returns TABA_OK or TABA_ERR_NOMEM.
  taba_status flush_to(taba_output* out) const;

 private:
  std::string buf_;
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
