// The body of /metrics/tabs built tab by tab (routes/tab_exposition.h):
// families of one base name joined across its tags with one header, the
// two exposition formats' metadata, the fallback for a handler without a
// metrics form, and every kind of sample left out counted by its reason.
#include "routes/tab_exposition.h"

#include <catch2/catch.hpp>

#include <string>

using taba::routes::Exposition;
using taba::routes::LeftOut;
using taba::routes::TabExposition;

namespace {

TabExposition::Limits limits(int64_t per_tab = 1000, int64_t total = 1'000'000) {
  return TabExposition::Limits{"", per_tab, total};
}

uint64_t left(const TabExposition& e, LeftOut why) { return e.left_out()[static_cast<size_t>(why)]; }

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const char* kTotals =
    R"([["_total", "counter", "Sum of the values.", [[{}, 12.5]]],)"
    R"( ["_events_total", "counter", "Events recorded.", [[{}, 3]]]])";

}  // namespace

TEST_CASE("tab exposition: tabs of one base name share each family, with one header", "[prometheus]") {
  TabExposition e(limits());
  e.add("api.hits;env=dev", "TotalsCounter", kTotals, false);
  e.add("api.hits;env=prod", "TotalsCounter", kTotals, false);
  const std::string text = e.finish(Exposition::kText);
  CHECK(count(text, "# TYPE api_hits_total counter\n") == 1);
  CHECK(count(text, "# TYPE api_hits_events_total counter\n") == 1);
  CHECK(text.find("# HELP api_hits_total TotalsCounter api.hits: Sum of the values.\n") != std::string::npos);
  CHECK(text.find("api_hits_total{env=\"dev\",tab=\"api.hits\"} 12.5\n") != std::string::npos);
  CHECK(text.find("api_hits_total{env=\"prod\",tab=\"api.hits\"} 12.5\n") != std::string::npos);
  CHECK(text.find("api_hits_events_total{env=\"prod\",tab=\"api.hits\"} 3\n") != std::string::npos);
  // Each family's samples follow its header.
  CHECK(text.find("api_hits_events_total{env=\"dev\"") > text.find("# TYPE api_hits_events_total"));
  CHECK(e.samples() == 4);
}

TEST_CASE("tab exposition: OpenMetrics names counter and info families without their suffix and ends in EOF",
          "[prometheus]") {
  TabExposition e(limits());
  e.add("jobs", "TotalsCounter", kTotals, false);
  e.add("version", "Gauge",
        R"([["_clients", "gauge", "Clients.", [[{}, 1]]], ["_info", "info", "Values.", [[{"client": "c1", "value": "v\"7"}, 1]]]])",
        false);
  const std::string om = e.finish(Exposition::kOpenMetrics);
  CHECK(om.find("# TYPE jobs counter\njobs_total 12.5\n") != std::string::npos);
  CHECK(om.find("# TYPE version info\nversion_info{client=\"c1\",value=\"v\\\"7\"} 1\n") != std::string::npos);
  CHECK(om.ends_with("# EOF\n"));
  TabExposition t(limits());
  t.add("version", "Gauge", R"([["_info", "info", "Values.", [[{"client": "c1", "value": "v7"}, 1]]]])", false);
  const std::string text = t.finish(Exposition::kText);
  CHECK(text.find("# TYPE version_info gauge\nversion_info{client=\"c1\",value=\"v7\"} 1\n") != std::string::npos);
  CHECK(text.find("# EOF") == std::string::npos);
}

TEST_CASE("tab exposition: a family name another metric or type holds is left out as a conflict", "[prometheus]") {
  TabExposition e(limits());
  // a_b first (byte order): its gauge family a_b; a.b's counter a_b_total is
  // the OpenMetrics family a_b too.
  e.add("a_b", "Gauge", R"([["", "gauge", "Value.", [[{"client": "c"}, 4]]]])", false);
  e.add("a.b", "TotalsCounter", kTotals, false);
  const std::string text = e.finish(Exposition::kText);
  CHECK(text.find("a_b{client=\"c\"} 4\n") != std::string::npos);
  CHECK(text.find("a_b_total") == std::string::npos);
  CHECK(text.find("a_b_events_total{tab=\"a.b\"} 3\n") != std::string::npos);
  CHECK(left(e, LeftOut::kConflict) == 1);
  // One metric name with two types: the second type's families conflict.
  TabExposition t(limits());
  t.add("q;env=a", "TotalsCounter", kTotals, false);
  t.add("q;env=b", "Gauge", R"([["_total", "gauge", "x", [[{}, 1]]]])", false);  // invalid anyway: gauge _total
  t.add("q;env=c", "Gauge", R"([["_events_total", "counter", "x", [[{}, 1], [{"client": "z"}, 2]]]])", false);
  CHECK(left(t, LeftOut::kInvalid) == 1);
  CHECK(left(t, LeftOut::kConflict) == 0);  // same metric, same type and name: it joins
  CHECK(t.finish(Exposition::kText).find("q_events_total{client=\"z\",env=\"c\"} 2\n") != std::string::npos);
}

TEST_CASE("tab exposition: what is not in the form is left out as invalid", "[prometheus]") {
  TabExposition e(limits());
  e.add("a", "X", "not json", false);
  e.add("b", "X", R"({"not": "an array"})", false);
  e.add("c", "X",
        R"([["Bad", "gauge", "x", [[{}, 1]]],)"            // suffix not _[a-z0-9_]
        R"( ["_x", "gauge", "x", [[{"quantile": "0.5"}, 1]]],)"  // quantile on a gauge
        R"( ["_y_total", "counter", "x", [[{}, -1]]],)"     // negative counter
        R"( ["_z", "gauge", "x", [[{"host": "h"}, 1]]],)"   // a label the export does not use
        R"( ["_w", "gauge", "x", [[{"client": "a"}, 1], [{"client": "a"}, 2]]],)"  // one label set twice
        R"( ["_w", "gauge", "x", [[{"client": "b"}, 1]]],)"  // a suffix twice
        R"( ["", "summary", "x", [[{"quantile": "0.5", "window": "1m"}, 7]]],)"  // fine
        R"( ["_v_sum", "gauge", "x", [[{}, 1]]]])",          // a gauge ending in _sum
        false);
  const std::string text = e.finish(Exposition::kText);
  CHECK(left(e, LeftOut::kInvalid) == 2 + 6 + 1);
  CHECK(text.find("c_w{client=\"a\"} 1\n") != std::string::npos);
  CHECK(text.find("c{quantile=\"0.5\",window=\"1m\"} 7\n") != std::string::npos);
  CHECK(text.find("# TYPE c summary\n") != std::string::npos);
  CHECK(e.samples() == 2);
}

TEST_CASE("tab exposition: the per-tab and per-reply limits keep the first samples", "[prometheus]") {
  TabExposition e(limits(2, 5));
  const char* three = R"([["", "gauge", "x", [[{"client": "a"}, 1], [{"client": "b"}, 2], [{"client": "c"}, 3]]]])";
  e.add("g1", "Gauge", three, false);  // 2 kept
  e.add("g2", "Gauge", three, false);  // 2 kept
  e.add("g3", "Gauge", three, false);  // 2 more would pass 5: left out whole
  const std::string text = e.finish(Exposition::kText);
  CHECK(text.find("g1{client=\"b\"} 2\n") != std::string::npos);
  CHECK(text.find("g1{client=\"c\"}") == std::string::npos);
  CHECK(text.find("g3") == std::string::npos);
  CHECK(left(e, LeftOut::kTabLimit) == 3);
  CHECK(left(e, LeftOut::kReplyLimit) == 2);
  CHECK(e.samples() == 4);
}

TEST_CASE("tab exposition: a handler without the form is exported from its JSON numbers", "[prometheus]") {
  TabExposition e(limits());
  e.add("old.type", "MaxGauge", R"({"max": 9.5, "by": {"a": [1, "x", 2]}, "s": "text"})", true);
  const std::string text = e.finish(Exposition::kText);
  CHECK(text.find("# TYPE old_type gauge\n") != std::string::npos);
  CHECK(text.find("old_type{field=\"max\",tab=\"old.type\"} 9.5\n") != std::string::npos);
  CHECK(text.find("old_type{field=\"by.a.2\",tab=\"old.type\"} 2\n") != std::string::npos);
  CHECK(e.samples() == 3);
}
