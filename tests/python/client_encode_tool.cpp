// Encodes events with the C++ client's encoder (src/client/encoder.cpp), for
// the Python client's test that both write the same bytes
// (clients/python/tests/test_encode.py).
//
// Usage: client_encode_tool CLIENT_ID MAX_BODY_BYTES < events > bodies
// One event per input line, tab-separated: name, type, kind (number, text,
// number_expiry, text_expiry, raw), timestamp, number, expiry, text in hex.
// Numbers are decimal texts that read back exactly (Python's repr). Output:
// per body, "body <bytes> <events>\n" and the body's bytes; then
// "conflicts <n>\n".
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/encoder.h"
#include "client/recorder.h"

namespace {

using taba::client::PayloadKind;

[[noreturn]] void fail(const std::string& why) {
  std::cerr << "client_encode_tool: " << why << "\n";
  std::exit(2);
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return out;
    start = tab + 1;
  }
}

double number_of(const std::string& text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) fail("bad number \"" + text + "\"");
  return v;
}

std::string unhex(const std::string& hex) {
  if (hex.size() % 2 != 0) fail("odd hex length");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

PayloadKind kind_of(const std::string& kind) {
  if (kind == "number") return PayloadKind::kNumber;
  if (kind == "text") return PayloadKind::kText;
  if (kind == "number_expiry") return PayloadKind::kNumberExpiry;
  if (kind == "text_expiry") return PayloadKind::kTextExpiry;
  if (kind == "raw") return PayloadKind::kRawJson;
  fail("bad kind \"" + kind + "\"");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) fail("usage: client_encode_tool CLIENT_ID MAX_BODY_BYTES < events");
  taba::client::TypeTable types;
  taba::client::Recorder recorder(1u << 30, size_t{1} << 40);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> f = split_tabs(line);
    if (f.size() != 7) fail("want 7 fields: " + line);
    uint16_t type = 0;
    if (!types.intern(f[1], &type)) fail("too many types");
    std::string text = unhex(f[6]);
    auto r = recorder.add(f[0], type, kind_of(f[2]), number_of(f[3]), number_of(f[4]), number_of(f[5]), text);
    if (r != taba::client::AddResult::kAccepted) fail("event not accepted: " + line);
  }
  std::vector<std::unique_ptr<taba::client::EventBuffer>> buffers;
  recorder.take(&buffers, false);
  taba::client::Encoder encoder(argv[1], static_cast<size_t>(std::strtoull(argv[2], nullptr, 10)));
  auto result = encoder.encode(buffers, types);
  for (const auto& body : result.bodies) {
    std::cout << "body " << body.bytes.size() << " " << body.events << "\n" << body.bytes;
  }
  std::cout << "conflicts " << result.conflicts << "\n";
  return 0;
}
