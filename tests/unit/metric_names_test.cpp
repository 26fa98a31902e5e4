// Tab names to Prometheus metric names and labels (routes/metric_names.h,
// docs/prometheus.md "Metric names"): the documented examples, and that no
// two tab names give the same series (the `tab` label is there exactly
// when the name would not read back).
#include "routes/metric_names.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>
#include <string>

using taba::routes::metric_name;
using taba::routes::MetricName;

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// The series a name gives: the metric name and the labels, sorted.
std::string series(const MetricName& m) {
  Labels l = m.labels;
  std::sort(l.begin(), l.end());
  std::string out = m.metric + "{";
  for (const auto& [k, v] : l) out += k + "=\"" + v + "\",";
  return out + "}";
}

bool valid_metric(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
}

}  // namespace

TEST_CASE("metric names: a valid base name without tags is itself, with no labels", "[prometheus]") {
  MetricName m = metric_name("bids_won", "");
  CHECK(m.metric == "bids_won");
  CHECK(m.labels.empty());
  CHECK(metric_name("bids_won", "taba_").metric == "taba_bids_won");
}

TEST_CASE("metric names: other bytes become _, and the tab label keeps the base name", "[prometheus]") {
  CHECK(metric_name("api.hits", "").metric == "api_hits");
  CHECK(metric_name("api.hits", "").labels == Labels{{"tab", "api.hits"}});
  CHECK(metric_name("http/2-errors", "").metric == "http_2_errors");
  MetricName digit = metric_name("5xx", "");
  CHECK(digit.metric == "_5xx");
  CHECK(digit.labels == Labels{{"tab", "5xx"}});
  CHECK(metric_name("a~b:c?d@e!f$g(h)i*j+k=l", "").metric == "a_b_c_d_e_f_g_h_i_j_k_l");
}

TEST_CASE("metric names: sorted key=value tags are labels", "[prometheus]") {
  MetricName m = metric_name("api_latency;env=prod;region=us", "");
  CHECK(m.metric == "api_latency");
  CHECK(m.labels == Labels{{"env", "prod"}, {"region", "us"}});
  MetricName dotted = metric_name("api.latency;env=prod;region=us", "");
  CHECK(dotted.labels == Labels{{"env", "prod"}, {"region", "us"}, {"tab", "api.latency"}});
  // A value keeps every byte (url=http://h:80).
  CHECK(metric_name("x;url=http://h:80", "").labels == Labels{{"url", "http://h:80"}});
}

TEST_CASE("metric names: tags that cannot read back put the whole name in tab", "[prometheus]") {
  // A tag without a value, an empty value, a key twice, unsorted keys.
  CHECK(metric_name("hits;a;b", "").labels == Labels{{"tab", "hits;a;b"}});
  CHECK(metric_name("hits;env=", "").labels == Labels{{"tab", "hits;env="}});
  CHECK(metric_name("hits;env=a;env=b", "").labels == Labels{{"env", "a"}, {"tab", "hits;env=a;env=b"}});
  CHECK(metric_name("hits;z=1;a=2", "").labels == Labels{{"z", "1"}, {"a", "2"}, {"tab", "hits;z=1;a=2"}});
  // Keys the export uses itself, keys Prometheus reserves, keys made valid.
  CHECK(metric_name("q;client=c1", "").labels == Labels{{"tag_client", "c1"}, {"tab", "q;client=c1"}});
  CHECK(metric_name("q;quantile=x", "").labels == Labels{{"tag_quantile", "x"}, {"tab", "q;quantile=x"}});
  CHECK(metric_name("q;__name__=x", "").labels == Labels{{"tag___name__", "x"}, {"tab", "q;__name__=x"}});
  CHECK(metric_name("q;my.key=x", "").labels == Labels{{"my_key", "x"}, {"tab", "q;my.key=x"}});
  CHECK(metric_name("q;9=x", "").labels == Labels{{"_9", "x"}, {"tab", "q;9=x"}});
}

TEST_CASE("metric names: no two tab names give one series", "[prometheus]") {
  // Every name of up to 5 bytes over an alphabet that holds each case: name
  // bytes, bytes made `_`, digits, the tag separators.
  const std::string alphabet = "a_.;=1-";
  std::set<std::string> names;
  std::vector<std::string> frontier{""};
  for (int len = 1; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const std::string& p : frontier) {
      for (char c : alphabet) next.push_back(p + c);
    }
    for (const std::string& n : next) names.insert(n);
    frontier = std::move(next);
  }
  // And random longer ones.
  std::mt19937 rng(20);
  for (int i = 0; i < 50000; ++i) {
    std::string n;
    const int len = 1 + static_cast<int>(rng() % 12);
    for (int j = 0; j < len; ++j) n += alphabet[rng() % alphabet.size()];
    names.insert(n);
  }
  std::set<std::string> seen;
  for (const std::string& n : names) {
    MetricName m = metric_name(n, "");
    INFO(n);
    REQUIRE(valid_metric(m.metric));
    for (const auto& [k, v] : m.labels) {
      REQUIRE(valid_metric(k));
      REQUIRE_FALSE(v.empty());
    }
    REQUIRE(seen.insert(series(m)).second);
  }
  CHECK(seen.size() == names.size());
}
