// Reads a handler's TABA_FORMAT_METRICS render (include/taba/handler.h) in
// the plugin tests: checks its shape (an array of [suffix, type, help,
// samples] families, each sample [labels, value]) and writes it back as
// one line per sample, `<suffix> <type> {k="v",...} <value>`, so a test
// states the exact families, order, labels and values it expects.
#pragma once

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <charconv>
#include <string>
#include <string_view>

#include "plugin_abi_harness.h"
#include "taba/handler.h"

namespace taba::test_support {

// The lines of the TABA_FORMAT_METRICS render `json` ("" for no family);
// fails the test when the render is not of the form handler.h gives.
inline std::string metrics_lines(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  INFO("metrics render: " << json);
  REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
  simdjson::dom::array families;
  REQUIRE(root.get_array().get(families) == simdjson::SUCCESS);
  std::string lines;
  for (simdjson::dom::element family : families) {
    simdjson::dom::array parts;
    REQUIRE(family.get_array().get(parts) == simdjson::SUCCESS);
    REQUIRE(parts.size() == 4);
    std::string_view suffix;
    std::string_view type;
    std::string_view help;
    simdjson::dom::array samples;
    REQUIRE(parts.at(0).get_string().get(suffix) == simdjson::SUCCESS);
    REQUIRE(parts.at(1).get_string().get(type) == simdjson::SUCCESS);
    REQUIRE(parts.at(2).get_string().get(help) == simdjson::SUCCESS);
    REQUIRE(parts.at(3).get_array().get(samples) == simdjson::SUCCESS);
    CHECK_FALSE(help.empty());
    CHECK(help.find('\n') == std::string_view::npos);
    CHECK(samples.size() > 0);  // a family without samples is left out
    for (simdjson::dom::element sample : samples) {
      simdjson::dom::array pair;
      REQUIRE(sample.get_array().get(pair) == simdjson::SUCCESS);
      REQUIRE(pair.size() == 2);
      simdjson::dom::object labels;
      double value = 0;
      REQUIRE(pair.at(0).get_object().get(labels) == simdjson::SUCCESS);
      REQUIRE(pair.at(1).get_double().get(value) == simdjson::SUCCESS);
      lines.append(suffix).append(" ").append(type).append(" {");
      bool first = true;
      for (simdjson::dom::key_value_pair label : labels) {
        std::string_view text;
        REQUIRE(label.value.get_string().get(text) == simdjson::SUCCESS);
        lines.append(first ? "" : ",").append(label.key).append("=\"").append(text).append("\"");
        first = false;
      }
      char buf[40];
      const auto res = std::to_chars(buf, buf + sizeof buf, value);
      lines.append("} ").append(buf, res.ptr).append("\n");
    }
  }
  return lines;
}

// The lines of s's TABA_FORMAT_METRICS render at now.
inline std::string metrics_lines(const State& s, double now) {
  return metrics_lines(s.render(now, TABA_FORMAT_METRICS));
}

}  // namespace taba::test_support
