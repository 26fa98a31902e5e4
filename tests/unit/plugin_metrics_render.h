// Reads a handler's TABA_FORMAT_METRICS render (include/taba/handler.h) in
// the plugin tests: checks its shape (an array of [suffix, type, help,
// samples] families, each sample [labels, value]) and writes it back as
// one line per sample, `<suffix> <type> {k="v",...} <value>`, so a test
// states the exact families, order, labels and values it expects. Also:
// the lines of windowed and percentile families, the exposition tabad
// makes of a render (every sample kept), and the check that merged states
// render as one state of all their events.
#pragma once

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "plugin_abi_harness.h"
#include "routes/tab_exposition.h"
#include "taba/handler.h"

namespace taba::test_support {

// A sample value as metrics_lines writes it (the shortest round trip).
inline std::string metric_number(double value) {
  char buf[40];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, res.ptr);
}

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
      lines.append("} ").append(metric_number(value)).append("\n");
    }
  }
  return lines;
}

// The lines of s's TABA_FORMAT_METRICS render at now.
inline std::string metrics_lines(const State& s, double now) {
  return metrics_lines(s.render(now, TABA_FORMAT_METRICS));
}

// The lines of a gauge family with one sample per window of the windowed
// types (1m, 10m, 1h, 1d), of the values given in that order.
inline std::string window_lines(const std::string& suffix, const std::vector<double>& values) {
  static const char* const kWindows[] = {"1m", "10m", "1h", "1d"};
  REQUIRE(values.size() == 4);
  std::string lines;
  for (size_t w = 0; w < 4; ++w) {
    lines += suffix + " gauge {window=\"" + kWindows[w] + "\"} " + metric_number(values[w]) + "\n";
  }
  return lines;
}

// The lines of the seven percentile samples (p25 ... p99.9) of `window` in
// the summary family "", of the values given in that order.
inline std::string quantile_lines(const std::string& window, const std::vector<double>& values) {
  static const char* const kQuantiles[] = {"0.25", "0.5", "0.75", "0.9", "0.95", "0.99", "0.999"};
  REQUIRE(values.size() == 7);
  std::string lines;
  for (size_t q = 0; q < 7; ++q) {
    lines += std::string(" summary {window=\"") + window + "\",quantile=\"" + kQuantiles[q] + "\"} " +
             metric_number(values[q]) + "\n";
  }
  return lines;
}

// The text exposition GET /metrics/tabs writes for the one tab `name` of
// `type` whose metrics render is `render` (routes/tab_exposition.h); fails
// the test when tabad leaves out any of its samples.
inline std::string host_exposition(const std::string& name, const std::string& type,
                                   const std::string& render) {
  taba::routes::TabExposition e(taba::routes::TabExposition::Limits{"", 1000, 1'000'000});
  e.add(name, type, render, false);
  const std::string text = e.finish(taba::routes::Exposition::kText);
  INFO(render << "\nbecame\n" << text);
  for (const uint64_t left : e.left_out()) CHECK(left == 0);
  return text;
}

// Folds `first` into a state of client "a" and `second` into one of client
// "b" as of now, merges the two in both orders, and checks that each merge
// is the state of every event folded into one: the same bytes and, at each
// of `times`, the same metrics render. Returns one of the merges.
inline State merge_of_two(const taba_handler& h, const Events& first, const Events& second, double now,
                          const std::vector<double>& times) {
  State a(h, now, "a");
  a.fold(first, now);
  State b(h, now, "b");
  b.fold(second, now);
  State single(h, now);
  single.fold(second, now);
  single.fold(first, now);
  State ab(h, now);
  ab.merge(a, now);
  ab.merge(b, now);
  State ba(h, now);
  ba.merge(b, now);
  ba.merge(a, now);
  CHECK(ab.serialize() == single.serialize());
  CHECK(ba.serialize() == single.serialize());
  for (const double t : times) {
    INFO("at " << fmt_double(t));
    CHECK(ab.render(t, TABA_FORMAT_METRICS) == single.render(t, TABA_FORMAT_METRICS));
    CHECK(ba.render(t, TABA_FORMAT_METRICS) == single.render(t, TABA_FORMAT_METRICS));
  }
  return ab;
}

}  // namespace taba::test_support
