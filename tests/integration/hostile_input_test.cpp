// The hostile-input table of docs/reliability.md, run against a real tabad:
// every bad input gets its documented status and a one-line reason, good
// posts between them keep being accepted, and after kill -9 and a restart
// everything that was accepted is still there, exactly once, while nothing
// from a refused body is.
//
// The table in docs/reliability.md is checked against this file's cases
// (each row's number, input and status, and that the row shows the reason).
// TABA_HOSTILE_TABLE=<file> writes the rows with the replies actually seen,
// for pasting into the doc after a change.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"
#include "http/client.h"
#include "http/url.h"

using namespace taba;
using namespace taba::test;

namespace {

constexpr const char* kIngestToken = "hostile-ingest-token-0001";
constexpr int kMaxNames = 60;
constexpr int kMaxNamesPerClient = 20;
constexpr int kMaxEventsPerBody = 1000;
constexpr int kMaxBodyBytes = 1 << 20;

struct Case {
  std::string group;   // the doc's category
  std::string input;   // what was sent, in words
  std::string method;  // "POST" or "GET"
  std::string path;
  std::string body;
  std::vector<http::Header> headers;  // the ingest token is added to POSTs unless `no_token`
  bool no_token = false;
  int status = 0;       // expected
  std::string reason;   // expected in the reply's first line ("" for 200)
  std::string kept;     // what is kept, in words (the doc's last column)
};

std::string first_line(const std::string& body) {
  std::string line = body.substr(0, body.find('\n'));
  return line;
}

std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '`') {
      out += '\'';
    } else {
      out += c;
    }
  }
  return out;
}

std::string zlib_of(const std::string& plain) {
  uLongf size = compressBound(plain.size());
  std::string out(size, '\0');
  REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(plain.data()),
                    plain.size(), 9) == Z_OK);
  out.resize(size);
  return out;
}

std::string one_event(const std::string& client, const std::string& name, const std::string& line) {
  return "1\n\n" + client + "\n\n" + name + "\n" + line + "\n\n\n";
}

// The 1d window's count in a CounterGroup's text rendering, or -1 when the
// name has no tab.
long day_count(TabadProcess& p, const std::string& name) {
  auto r = p.get("/tabs?name=" + http::percent_encode(name));
  REQUIRE(r.ok());
  if (r.value().status != 200) return -1;
  static const std::regex re("\"1d\": \\{\"count\": ([0-9]+)");
  std::smatch m;
  if (!std::regex_search(r.value().body, m, re)) return -1;
  return std::stol(m[1]);
}

std::string names_of(TabadProcess& p) {
  auto r = p.get("/names");
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
  return r.value().body;
}

}  // namespace

TEST_CASE("hostile input: every bad input gets its status and reason, and nothing accepted is lost", "[e2e][hostile]") {
  TempDir dir("taba-hostile");
  std::string config = dir.path + "/taba.toml";
  REQUIRE(write_text_file(config, fmt::format(R"([server]
self_tabs_interval_s = 0

[store]
fsync = "always"

[http]
max_body_bytes = {}
max_header_bytes = 8192

[ingest]
max_events_per_body = {}
max_names = {}
max_names_per_client = {}
max_inflate_ratio = 100

[auth]
ingest_token = "{}"
)",
                                              kMaxBodyBytes, kMaxEventsPerBody, kMaxNames, kMaxNamesPerClient,
                                              kIngestToken))
              .ok());
  TabadProcess p;
  REQUIRE_OK(p.start({"--config", config}, dir.path + "/data"));

  const double t = static_cast<double>(std::time(nullptr));
  const http::Header token{"Authorization", std::string("Bearer ") + kIngestToken};
  auto ev = [&](const char* type, const std::string& payload, double ts = -1) {
    return event_line(type, ts < 0 ? t : ts, payload);
  };

  // Set-up, all accepted: a bound name, and a client at its name limit.
  std::map<std::string, long> expect;  // accepted name -> its 1d count
  REQUIRE(p.post("/post", one_event("good", "bound.counter", ev("CounterGroup", "1")), {token}).value().status == 200);
  expect["bound.counter"] = 1;
  {
    ClientBlock greedy{"greedy", {}};
    for (int i = 0; i < kMaxNamesPerClient; ++i) {
      greedy.names.push_back({fmt::format("greedy.{}", i), {ev("CounterGroup", "1")}});
      expect[fmt::format("greedy.{}", i)] = 1;
    }
    REQUIRE(p.post("/post", v1_body({greedy}), {token}).value().status == 200);
  }

  const std::string good = "good";
  std::string big_events = "1\n\nbig\n\nhostile.many_events\n";
  for (int i = 0; i <= kMaxEventsPerBody; ++i) big_events += ev("CounterGroup", "1") + "\n";
  big_events += "\n\n";
  std::string many_names = "1\n\nfresh\n\n";
  for (int i = 0; i < 2 * kMaxNames; ++i) many_names += fmt::format("hostile.new.{}\n{}\n\n", i, ev("CounterGroup", "1"));
  many_names += "\n";
  // A valid body followed by 40 MB of blank lines (which the decoder
  // accepts): ~40 KB compressed, a ratio near 1000.
  std::string bomb = zlib_of(one_event(good, "hostile.bomb", ev("CounterGroup", "1")) + std::string(40 << 20, '\n'));
  std::string long_regex = "name=" + std::string(3000, '(') + "a" + std::string(3000, ')') + "&re=1";

  std::vector<Case> cases = {
      // --- malformed lines ---
      {"malformed", "protocol version line is 2", "POST", "/post", "2\n\ngood\n\nhostile.v\n" + ev("CounterGroup", "1") + "\n\n\n",
       {}, false, 400, "line 1", "nothing from the body"},
      {"malformed", "no blank line after the version", "POST", "/post", "1\ngood\n\nhostile.nb\n" + ev("CounterGroup", "1") + "\n\n\n",
       {}, false, 400, "line 2", "nothing from the body"},
      {"malformed", "event line cut short (no closing ])", "POST", "/post",
       one_event(good, "hostile.cut", "[\"CounterGroup\", 1400000000.0, \"1\""), {}, false, 400, "line 6",
       "nothing from the body"},
      {"malformed", "event array with two elements", "POST", "/post",
       one_event(good, "hostile.two", "[\"CounterGroup\", 1400000000.0]"), {}, false, 400, "line 6", "nothing from the body"},
      {"malformed", "payload not encoded as a JSON string ([type, ts, 12.5])", "POST", "/post",
       one_event(good, "hostile.raw", fmt::format("[\"CounterGroup\", {}, 12.5]", t)), {}, false, 400, "line 6",
       "nothing from the body"},
      {"malformed", "payload string that is not JSON (\"12.5x\")", "POST", "/post",
       one_event(good, "hostile.notjson", ev("CounterGroup", "12.5x")), {}, false, 400, "line 6", "nothing from the body"},
      {"malformed", "NUL and binary bytes in an event line", "POST", "/post",
       one_event(good, "hostile.bin", std::string("[\"CounterGroup\", 1\0\xff\x01, \"1\"]", 22)), {}, false, 400, "line 6",
       "nothing from the body"},
      {"malformed", "a good name block, then a malformed one (the block is the unit of refusal)", "POST", "/post",
       "1\n\ngood\n\nhostile.goodblock\n" + ev("CounterGroup", "1") + "\n\nhostile.bad\n[1, 2\n\n\n", {}, false, 200,
       "line 9", "the good block, not the malformed one"},
      {"malformed", "body ends in the middle of an event line", "POST", "/post",
       "1\n\ngood\n\nhostile.trunc\n[\"CounterGroup\", 14000", {}, false, 400, "line 6", "nothing from the body"},
      {"malformed", "CRLF line ends (valid)", "POST", "/post",
       "1\r\n\r\ngood\r\n\r\nhostile.crlf\r\n" + ev("CounterGroup", "1") + "\r\n\r\n\r\n", {}, false, 200, "",
       "the event"},
      // --- invalid names ---
      {"invalid names", "name with a space", "POST", "/post", one_event(good, "bad name", ev("CounterGroup", "1")), {},
       false, 400, "name", "nothing from the body"},
      {"invalid names", "name of 300 bytes (limit 256)", "POST", "/post",
       one_event(good, std::string(300, 'n'), ev("CounterGroup", "1")), {}, false, 400, "256", "nothing from the body"},
      {"invalid names", "name with invalid UTF-8 / control bytes", "POST", "/post",
       one_event(good, "bad\xc3\x28\x01", ev("CounterGroup", "1")), {}, false, 400, "name", "nothing from the body"},
      {"invalid names", "client ID with a quote", "POST", "/post", one_event("we\"b", "hostile.client", ev("CounterGroup", "1")),
       {}, false, 400, "client", "nothing from the body"},
      // --- NaN / Inf / huge numbers ---
      {"NaN/Inf", "payload NaN", "POST", "/post", one_event(good, "hostile.nan", ev("CounterGroup", "NaN")), {}, false, 400,
       "line 6", "nothing from the body"},
      {"NaN/Inf", "payload Infinity", "POST", "/post", one_event(good, "hostile.inf", ev("CounterGroup", "Infinity")), {},
       false, 400, "line 6", "nothing from the body"},
      {"NaN/Inf", "payload 1e999 (overflows a double)", "POST", "/post",
       one_event(good, "hostile.overflow", ev("CounterGroup", "1e999")), {}, false, 400, "line 6", "nothing from the body"},
      {"huge numbers", "payload 1e308 (finite, huge)", "POST", "/post",
       one_event(good, "hostile.huge", ev("CounterGroup", "1e308")), {}, false, 200, "", "the event"},
      {"huge numbers", "payload with 400 digits", "POST", "/post",
       one_event(good, "hostile.digits", ev("CounterGroup", "1" + std::string(399, '0'))), {}, false, 400, "line 6",
       "nothing from the body"},
      {"huge numbers", "timestamp 1e300", "POST", "/post",
       one_event(good, "hostile.bigts", "[\"CounterGroup\", 1e300, \"1\"]"), {}, false, 200, "",
       "the event, stamped with the receive time (taba_events_clamped_total)"},
      {"huge numbers", "timestamp that is a string", "POST", "/post",
       one_event(good, "hostile.strts", "[\"CounterGroup\", \"1400000000\", \"1\"]"), {}, false, 400, "line 6",
       "nothing from the body"},
      // --- wrong types ---
      {"wrong types", "unknown type NoSuchType", "POST", "/post", one_event(good, "hostile.unknown", ev("NoSuchType", "1")),
       {}, false, 400, "NoSuchType", "nothing from the body"},
      {"wrong types", "a string payload for a CounterGroup", "POST", "/post",
       one_event(good, "hostile.strval", ev("CounterGroup", "\"red\"")), {}, false, 400, "line 6",
       "nothing from the body"},
      {"wrong types", "type given as a number", "POST", "/post", one_event(good, "hostile.numtype", "[5, 1400000000.0, \"1\"]"),
       {}, false, 400, "line 6", "nothing from the body"},
      // --- type conflicts ---
      {"type conflicts", "Gauge event for a name bound to CounterGroup", "POST", "/post",
       one_event(good, "bound.counter", ev("Gauge", "\"red\"")), {}, false, 400, "conflicts", "nothing from the body"},
      {"type conflicts", "two types for one new name in one block", "POST", "/post",
       "1\n\ngood\n\nhostile.mixed\n" + ev("CounterGroup", "1") + "\n" + ev("Gauge", "\"red\"") + "\n\n\n", {}, false, 400,
       "conflicts", "nothing from the body"},
      // --- duplicate batch ids ---
      {"duplicate batch ids", "a body with Taba-Batch-Id dup-1", "POST", "/post",
       one_event(good, "hostile.dup", ev("CounterGroup", "1")), {{"Taba-Batch-Id", "dup-1"}}, false, 200, "",
       "the event"},
      {"duplicate batch ids", "the same body and Taba-Batch-Id again (a retry)", "POST", "/post",
       one_event(good, "hostile.dup", ev("CounterGroup", "1")), {{"Taba-Batch-Id", "dup-1"}}, false, 200, "",
       "nothing more: applied once (taba_store_batches_duplicate_total)"},
      {"duplicate batch ids", "Taba-Batch-Id with a space", "POST", "/post",
       one_event(good, "hostile.badid", ev("CounterGroup", "1")), {{"Taba-Batch-Id", "a b"}}, false, 400, "Taba-Batch-Id",
       "nothing from the body"},
      // --- clock skew ---
      {"clock skew", "events stamped one hour ahead", "POST", "/post",
       one_event(good, "hostile.future", ev("CounterGroup", "1", t + 3600)), {}, false, 200, "",
       "the event, stamped with the receive time (taba_events_clamped_total)"},
      {"clock skew", "events stamped two days ago", "POST", "/post",
       one_event(good, "hostile.past", ev("CounterGroup", "1", t - 2 * 86400)), {}, false, 200, "",
       "the name; the event is older than every window, so no window counts it"},
      {"clock skew", "timestamp 0, then a negative timestamp", "POST", "/post",
       "1\n\ngood\n\nhostile.epoch\n" + ev("CounterGroup", "1", 0) + "\n[\"CounterGroup\", -5, \"1\"]\n\n\n", {}, false,
       400, "negative", "nothing from the body"},
      // --- bad tokens ---
      {"bad tokens", "POST /post without Authorization", "POST", "/post",
       one_event(good, "hostile.notoken", ev("CounterGroup", "1")), {}, true, 401, "Authorization",
       "nothing from the body"},
      {"bad tokens", "POST /post with a wrong token", "POST", "/post",
       one_event(good, "hostile.wrongtoken", ev("CounterGroup", "1")), {{"Authorization", "Bearer nope"}}, true, 403, "token",
       "nothing from the body"},
      {"bad tokens", "Authorization: Basic instead of Bearer", "POST", "/post",
       one_event(good, "hostile.basic", ev("CounterGroup", "1")), {{"Authorization", "Basic dXNlcjpwYXNz"}}, true, 401,
       "Bearer", "nothing from the body"},
      // --- regular expressions in queries ---
      {"regex bombs", "name=(a*)*$ with re=1 (exponential in backtracking engines)", "GET",
       "/tabs?name=" + http::percent_encode("(a*)*$") + "&re=1", "", {}, false, 200, "",
       "answered at once: RE2 runs in linear time"},
      {"regex bombs", "name=(((a{100}){100}){100}) with re=1", "GET",
       "/tabs?name=" + http::percent_encode("(((a{100}){100}){100})") + "&re=1", "", {}, false, 400, "regular expression",
       "refused: nested counts multiply past RE2's repetition limit (1000)"},
      {"regex bombs", "3,000 nested groups with re=1", "GET", "/tabs?" + long_regex, "", {}, false, 200, "",
       "answered: RE2 parses without recursion, within its 8 MB program limit"},
      {"regex bombs", "3,000 unbalanced ( with re=1", "GET", "/tabs?name=" + std::string(3000, '(') + "&re=1", "", {},
       false, 400, "regular expression", "refused; the reason quotes 64 bytes of the pattern"},
      {"regex bombs", "an invalid pattern ([) with re=1", "GET", "/tabs?name=" + http::percent_encode("([") + "&re=1", "", {},
       false, 400, "regular expression", "refused"},
      // --- limits ---
      {"limits", fmt::format("{} events in one body (ingest.max_events_per_body = {})", kMaxEventsPerBody + 1,
                             kMaxEventsPerBody),
       "POST", "/post", big_events, {}, false, 413, "max_events_per_body", "nothing from the body"},
      {"limits", fmt::format("a body adding {} new names (ingest.max_names = {})", 2 * kMaxNames, kMaxNames), "POST",
       "/post", many_names, {}, false, 422, "max_names", "nothing from the body (taba_store_limit_refusals_total)"},
      {"limits", fmt::format("a new name for a client at ingest.max_names_per_client ({})", kMaxNamesPerClient), "POST",
       "/post", one_event("greedy", "greedy.extra", ev("CounterGroup", "1")), {}, false, 422, "max_names_per_client",
       "nothing from the body (taba_store_limit_refusals_total)"},
      {"limits", "an existing name of a client at its name limit", "POST", "/post",
       one_event("greedy", "greedy.0", ev("CounterGroup", "1")), {}, false, 200, "", "the event"},
      {"limits", fmt::format("a body over http.max_body_bytes ({})", kMaxBodyBytes), "POST", "/post",
       std::string(kMaxBodyBytes + 1, '\n'), {}, false, 413, "limit", "nothing; the connection is closed"},
      {"limits", "a header block over http.max_header_bytes (8192)", "POST", "/post",
       one_event(good, "hostile.header", ev("CounterGroup", "1")), {{"X-Padding", std::string(9000, 'x')}}, false, 431,
       "header", "nothing; the connection is closed"},
      {"limits", "a zlib bomb on /post_zip (a valid body, then 40 MB of blank lines, compressed ~1000:1)", "POST", "/post_zip", bomb, {}, false, 400,
       "ratio", "nothing from the body"},
      {"limits", "a gzip body that is not gzip", "POST", "/post", "not gzip at all",
       {{"Content-Encoding", "gzip"}}, false, 400, "", "nothing from the body"},
      {"limits", "Content-Encoding: br", "POST", "/post", one_event(good, "hostile.br", ev("CounterGroup", "1")),
       {{"Content-Encoding", "br"}}, false, 415, "Content-Encoding", "nothing from the body"},
      {"limits", "GET /post (no token: the token is checked first)", "GET", "/post", "", {}, false, 401, "bearer token",
       "nothing"},
  };
  expect["hostile.crlf"] = 1;
  expect["hostile.goodblock"] = 1;
  expect["hostile.huge"] = 1;
  expect["hostile.bigts"] = 1;
  expect["hostile.dup"] = 1;
  expect["hostile.future"] = 1;
  // Accepted, but two days old: nothing in any window, so /tabs leaves the
  // name out (-1) while /names still lists it until GC.
  expect["hostile.past"] = -1;
  expect["greedy.0"] = 2;

  std::string table;
  long good_posts = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    INFO("case " << i + 1 << ": " << c.group << ": " << c.input);
    Result<http::ClientResponse> r = Status::Internal("not sent");
    if (c.method == "GET") {
      r = p.get(c.path);
    } else {
      std::vector<http::Header> headers = c.headers;
      if (!c.no_token) headers.push_back(token);
      r = p.post(c.path, c.body, headers);
    }
    REQUIRE(r.ok());
    std::string reply = first_line(r.value().body);
    CHECK(r.value().status == c.status);
    if (c.status != 200) {
      CHECK(!reply.empty());
      CHECK(r.value().body.find('\n') == r.value().body.size() - 1);  // exactly one line
      CHECK(reply.size() < 400);
    }
    if (!c.reason.empty()) CHECK(reply.find(c.reason) != std::string::npos);
    if (reply.empty()) reply = c.method == "GET" ? "(the tabs)" : "(empty)";
    table += fmt::format("| {} | {} | {} | {} | {} | {} |\n", i + 1, md_cell(c.group), md_cell(c.input), r.value().status,
                         md_cell(reply.substr(0, 200)), md_cell(c.kept));
    // A good post after every case: the server is still taking input.
    auto g = p.post("/post", one_event("good", "good.count", ev("CounterGroup", "1")), {token});
    REQUIRE(g.ok());
    REQUIRE(g.value().status == 200);
    ++good_posts;
  }
  if (const char* out = std::getenv("TABA_HOSTILE_TABLE")) {
    std::ofstream(out) << table;
  }

  // The doc's table matches the cases.
  std::string doc = read_file(std::string(TABA_SOURCE_DIR) + "/docs/reliability.md");
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::string row_start = fmt::format("| {} | {} | {} | {} | ", i + 1, md_cell(c.group), md_cell(c.input), c.status);
    INFO("docs/reliability.md row: " << row_start);
    size_t at = doc.find(row_start);
    CHECK(at != std::string::npos);
    if (at != std::string::npos && !c.reason.empty()) {
      std::string row = doc.substr(at, doc.find('\n', at) - at);
      CHECK(row.find(md_cell(c.reason)) != std::string::npos);
    }
  }

  // Every accepted event is counted exactly once; nothing from a refused
  // block or body became a name.
  auto verify = [&](const char* when) {
    INFO(when);
    CHECK(day_count(p, "good.count") == good_posts);
    for (const auto& [name, count] : expect) {
      INFO("name " << name);
      CHECK(day_count(p, name) == count);
    }
    std::string names = names_of(p);
    for (const char* refused : {"hostile.v", "hostile.nb", "hostile.bad", "hostile.nan", "hostile.overflow",
                                "hostile.digits", "hostile.unknown", "hostile.mixed", "hostile.badid", "hostile.notoken",
                                "hostile.wrongtoken", "hostile.basic", "hostile.many_events", "hostile.new.0",
                                "greedy.extra", "hostile.header", "hostile.br", "hostile.epoch", "hostile.bomb"}) {
      INFO("refused name " << refused);
      CHECK(names.find(std::string(refused) + "\n") == std::string::npos);
    }
  };
  verify("before the restart");
  auto m = p.get("/metrics");
  REQUIRE(m.ok());
  const std::string& metrics = m.value().body;
  CHECK(metrics.find("taba_store_limit_refusals_total{limit=\"max_names\"} 1\n") != std::string::npos);
  CHECK(metrics.find("taba_store_limit_refusals_total{limit=\"max_names_per_client\"} 1\n") != std::string::npos);
  CHECK(metrics.find("taba_events_clamped_total 2\n") != std::string::npos);
  CHECK(metrics.find("taba_bodies_over_limit_total 3\n") != std::string::npos);
  CHECK(metrics.find("taba_store_batches_duplicate_total 1\n") != std::string::npos);
  CHECK(metrics.find("taba_http_oversized_total 2\n") != std::string::npos);

  p.kill9();
  REQUIRE(p.wait_exit(10'000).ok());
  REQUIRE_OK(p.start({"--config", config}, dir.path + "/data"));
  verify("after kill -9 and a restart");
}
