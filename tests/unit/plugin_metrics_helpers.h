// The TABA_FORMAT_METRICS render of a built-in handler's state
// (include/taba/handler.h; docs/prometheus.md, "Families by type"), parsed
// for the plugin tests: the families in the order written, each with its
// type, help and samples, checked on the way against the rules of the
// format (suffixes, types, label keys, distinct label sets, finite values,
// no empty family), so every test that reads a render also checks its form.
#pragma once

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "plugin_abi_harness.h"
#include "taba/handler.h"

namespace taba::test_support {

using MetricLabels = std::map<std::string, std::string>;

struct MetricSample {
  MetricLabels labels;
  double value = 0;
};

struct MetricFamily {
  std::string suffix;
  std::string type;
  std::string help;
  std::vector<MetricSample> samples;
};

class MetricRender {
 public:
  // Parses a render; REQUIREs that it follows the format's rules.
  explicit MetricRender(const std::string& json) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    INFO(json);
    REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
    simdjson::dom::array families;
    REQUIRE(root.get_array().get(families) == simdjson::SUCCESS);
    for (simdjson::dom::element f : families) {
      simdjson::dom::array parts;
      REQUIRE(f.get_array().get(parts) == simdjson::SUCCESS);
      REQUIRE(parts.size() == 4);
      MetricFamily family;
      std::string_view text;
      REQUIRE(parts.at(0).get_string().get(text) == simdjson::SUCCESS);
      family.suffix = std::string(text);
      REQUIRE(parts.at(1).get_string().get(text) == simdjson::SUCCESS);
      family.type = std::string(text);
      REQUIRE(parts.at(2).get_string().get(text) == simdjson::SUCCESS);
      family.help = std::string(text);
      check_family_head(family);
      simdjson::dom::array samples;
      REQUIRE(parts.at(3).get_array().get(samples) == simdjson::SUCCESS);
      std::set<MetricLabels> label_sets;
      for (simdjson::dom::element s : samples) {
        simdjson::dom::array pair;
        REQUIRE(s.get_array().get(pair) == simdjson::SUCCESS);
        REQUIRE(pair.size() == 2);
        simdjson::dom::object labels;
        REQUIRE(pair.at(0).get_object().get(labels) == simdjson::SUCCESS);
        MetricSample sample;
        for (const auto field : labels) {
          const std::string key(field.key);
          CHECK((key == "client" || key == "window" || key == "quantile" || key == "value"));
          REQUIRE(field.value.get_string().get(text) == simdjson::SUCCESS);
          sample.labels[key] = std::string(text);
        }
        REQUIRE(pair.at(1).get_double().get(sample.value) == simdjson::SUCCESS);
        CHECK(std::isfinite(sample.value));
        INFO(family.suffix);
        CHECK(label_sets.insert(sample.labels).second);  // distinct label sets
        family.samples.push_back(sample);
      }
      CHECK_FALSE(family.samples.empty());  // an empty family is left out
      CHECK(find(family.suffix) == nullptr);  // each suffix once
      families_.push_back(family);
    }
  }

  // The suffixes in the order written.
  std::vector<std::string> suffixes() const {
    std::vector<std::string> out;
    for (const MetricFamily& f : families_) out.push_back(f.suffix);
    return out;
  }

  // The family of `suffix`, or nullptr.
  const MetricFamily* find(const std::string& suffix) const {
    for (const MetricFamily& f : families_) {
      if (f.suffix == suffix) return &f;
    }
    return nullptr;
  }

  const MetricFamily& family(const std::string& suffix) const {
    const MetricFamily* f = find(suffix);
    INFO("family \"" << suffix << "\"");
    REQUIRE(f != nullptr);
    return *f;
  }

  // Whether the family of `suffix` has a sample labelled exactly `labels`.
  bool has(const std::string& suffix, const MetricLabels& labels = {}) const {
    const MetricFamily* f = find(suffix);
    if (f == nullptr) return false;
    for (const MetricSample& s : f->samples) {
      if (s.labels == labels) return true;
    }
    return false;
  }

  // The value of the sample of `suffix` labelled exactly `labels`.
  double value(const std::string& suffix, const MetricLabels& labels = {}) const {
    for (const MetricSample& s : family(suffix).samples) {
      if (s.labels == labels) return s.value;
    }
    FAIL("no sample of \"" << suffix << "\" with the labels asked");
    return 0;
  }

 private:
  static void check_family_head(const MetricFamily& f) {
    INFO("family \"" << f.suffix << "\"");
    CHECK((f.type == "counter" || f.type == "gauge" || f.type == "info"));
    if (!f.suffix.empty()) {
      CHECK(f.suffix[0] == '_');
      CHECK(f.suffix.size() > 1);
      for (const char c : f.suffix) CHECK(((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'));
    }
    const auto ends_with = [&](std::string_view tail) {
      return f.suffix.size() >= tail.size() && f.suffix.compare(f.suffix.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (f.type == "counter") CHECK(ends_with("_total"));
    if (f.type == "info") CHECK(ends_with("_info"));
    CHECK_FALSE(f.help.empty());
    CHECK(f.help.find('\n') == std::string::npos);
  }

  std::vector<MetricFamily> families_;
};

// The metrics render of s as of now, parsed.
inline MetricRender metrics_of(const State& s, double now) {
  return MetricRender(s.render(now, TABA_FORMAT_METRICS));
}

// The quantile labels of the seven percentiles, in render order.
inline const std::vector<std::string> kQuantiles = {"0.25", "0.5", "0.75", "0.9", "0.95", "0.99", "0.999"};

}  // namespace taba::test_support
