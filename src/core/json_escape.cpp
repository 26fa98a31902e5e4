// JSON string escaping. See json_escape.h.
#include "core/json_escape.h"

namespace taba {
namespace {

// The letter of a control byte's short escape in `controls`, or 0 for \u00XX.
char escape_letter(unsigned char c, JsonControls controls) {
  if (controls == JsonControls::kHex) return 0;
  switch (c) {
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    case '\b': return controls == JsonControls::kLetters ? 'b' : 0;
    case '\f': return controls == JsonControls::kLetters ? 'f' : 0;
    default: return 0;
  }
}

}  // namespace

void append_json_escaped(std::string* out, std::string_view text, JsonControls controls) {
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(text.data() + run, i - run);
    run = i + 1;
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (char letter = escape_letter(c, controls)) {
      out->push_back('\\');
      out->push_back(letter);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out->append(u, sizeof u);
    }
  }
  out->append(text.data() + run, text.size() - run);
}

}  // namespace taba
