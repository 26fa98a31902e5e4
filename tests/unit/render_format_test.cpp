// query::render_state: which render format the host asks a handler for,
// and the fallbacks of handler.h (JSON_DETAILED -> JSON_EXACT -> JSON),
// with formats newer than the handler's plugin never asked.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "plugin/registry.h"
#include "query/query_service.h"

namespace {

// A handler whose render writes the format's number for the formats it
// supports and records every format it is asked for.
std::vector<uint32_t> asked;
std::vector<uint32_t> supported;

taba_status recording_render(const taba_state*, uint32_t format, double, taba_output* out) {
  asked.push_back(format);
  for (const uint32_t f : supported) {
    if (f == format) {
      const std::string text = std::to_string(format);
      return out->write(out, text.data(), text.size()) == 0 ? TABA_OK : TABA_ERR_NOMEM;
    }
  }
  // A partial write before refusing must not reach the reply.
  out->write(out, "partial", 7);
  return TABA_ERR_UNSUPPORTED;
}

taba_handler recording_table() {
  taba_handler t{};
  t.struct_size = sizeof t;
  t.render = recording_render;
  return t;
}

std::string render_with(uint16_t abi_minor, std::vector<uint32_t> formats, uint32_t format) {
  static const taba_handler table = recording_table();
  taba::plugin::Handler h;
  h.table = &table;
  h.abi_minor = abi_minor;
  asked.clear();
  supported = std::move(formats);
  return taba::query::render_state(&h, nullptr, format, 0);
}

}  // namespace

TEST_CASE("render_state asks the format, then its fallbacks the handler supports", "[render_format]") {
  // A 1.2 handler with every format.
  const std::vector<uint32_t> all = {TABA_FORMAT_JSON, TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_JSON_EXACT};
  CHECK(render_with(2, all, TABA_FORMAT_JSON_EXACT) == "2");
  CHECK(asked == std::vector<uint32_t>{TABA_FORMAT_JSON_EXACT});
  CHECK(render_with(2, all, TABA_FORMAT_JSON_DETAILED) == "1");
  CHECK(render_with(2, all, TABA_FORMAT_JSON) == "0");
  CHECK(asked == std::vector<uint32_t>{TABA_FORMAT_JSON});

  // No detailed form: json-detailed falls back to the exact form, not to
  // Taba's rounded one.
  CHECK(render_with(2, {TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT}, TABA_FORMAT_JSON_DETAILED) == "2");
  CHECK(asked == std::vector<uint32_t>{TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_JSON_EXACT});

  // JSON only (its JSON is exact already, or has no numbers).
  CHECK(render_with(2, {TABA_FORMAT_JSON}, TABA_FORMAT_JSON_DETAILED) == "0");
  CHECK(asked == std::vector<uint32_t>{TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_JSON});
  CHECK(render_with(2, {TABA_FORMAT_JSON}, TABA_FORMAT_JSON_EXACT) == "0");

  // Nothing at all: null, not the partial text.
  CHECK(render_with(2, {}, TABA_FORMAT_JSON_EXACT) == "null");
}

TEST_CASE("render_state never asks a plugin built for ABI 1.1 a format of 1.2", "[render_format]") {
  // (Such a plugin may well render every format but JSON as its detailed one.)
  const std::vector<uint32_t> all = {TABA_FORMAT_JSON, TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_JSON_EXACT};
  CHECK(render_with(1, all, TABA_FORMAT_JSON_EXACT) == "0");
  CHECK(asked == std::vector<uint32_t>{TABA_FORMAT_JSON});
  CHECK(render_with(1, {TABA_FORMAT_JSON}, TABA_FORMAT_JSON_DETAILED) == "0");
  CHECK(asked == std::vector<uint32_t>{TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_JSON});
  CHECK(render_with(0, all, TABA_FORMAT_JSON_DETAILED) == "1");
}

TEST_CASE("the registry records the ABI minor each plugin was built for", "[render_format]") {
  taba::plugin::Registry r;
  REQUIRE(r.load_dir(TABA_TEST_PLUGIN_DIR));
  const taba::plugin::Handler* h = r.find("CounterGroup");
  REQUIRE(h != nullptr);
  CHECK(h->abi_minor == TABA_ABI_MINOR);
}
