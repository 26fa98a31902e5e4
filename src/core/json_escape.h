// JSON string escaping for the text tabad and the client library write:
// the payload strings of v1 bodies, query and admin replies, taba-cli's
// requests. One implementation; only the spelling of control bytes differs
// by caller, on purpose: each output is compared byte for byte with what
// was written before (v1 bodies with what the original Taba clients send,
// tests/unit/client_encode_test.cpp, client_proxy_buffer_test.cpp,
// tests/integration/real_clients_test.cpp), so each caller keeps its form.
// The handler plugins keep their own copy (plugins/common/text.h) because
// they link nothing of the host.
#pragma once

#include <string>
#include <string_view>

namespace taba {

// How control bytes (below 0x20) are written. '"' and '\' always get a
// backslash; every other byte ('/', DEL, UTF-8 and invalid UTF-8 alike) is
// copied as it is. \u00XX has lowercase hex digits.
enum class JsonControls {
  kHex,       // all as \u00XX: the v1 bodies the agent and the client-proxy write
  kNewlines,  // \n \r \t, the others as \u00XX: replies, taba-cli's bodies
  kLetters,   // \b \f \n \r \t, the others as \u00XX (as Python's json.dumps):
              // the client library's v1 bodies
};

// Appends `text` to *out as the inside of a JSON string literal (no quotes).
void append_json_escaped(std::string* out, std::string_view text, JsonControls controls);

}  // namespace taba
