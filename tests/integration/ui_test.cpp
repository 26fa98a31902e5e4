// The built-in web page (/ui, issue 9): served from the binary, and checked
// in a real browser: headless Chromium loads the page from a real tabad,
// runs its JavaScript against the query routes, and the test reads the DOM
// it leaves (--dump-dom) and saves a screenshot (<build>/ui-screenshot.png).
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "harness.h"

using namespace taba::test;

namespace {

constexpr const char* kQueryToken = "query-token-ui-0123456789";


taba::Result<taba::http::ClientResponse> request(const TabadProcess& p, std::string_view method, std::string_view path,
                                                 std::vector<taba::http::Header> headers = {}) {
  return taba::http::fetch(method, p.url() + std::string(path), headers, "", 5000);
}

// A config file in `dir`: self tabs off (so only the posted tabs show), and
// `extra` appended.
std::string write_config(const std::string& dir, const std::string& extra = "") {
  std::string path = dir + "/taba.toml";
  std::ofstream(path) << "[server]\nself_tabs_interval_s = 0\n" << extra;
  return path;
}

// $TABA_CHROMIUM, else Debian's chromium (scripts/install-deps.sh installs it).
std::string chromium_path() {
  if (const char* env = std::getenv("TABA_CHROMIUM"); env != nullptr && *env != '\0') return env;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

// Headless Chromium on `url` with a fresh profile, given `budget_ms` of
// virtual time (the page's fetches complete inside it; its timers run), plus
// `extra` (--dump-dom or --screenshot=…). Its standard output (the DOM, for
// --dump-dom).
std::string run_chromium(const std::string& url, std::vector<std::string> extra, int budget_ms = 5000) {
  std::string browser = chromium_path();
  INFO("headless Chromium is needed: apt-get install chromium (scripts/install-deps.sh), or set TABA_CHROMIUM");
  REQUIRE(!browser.empty());
  std::string profile = make_temp_dir("ui-chromium");
  std::vector<std::string> argv = {browser,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-background-networking",
                                   "--no-first-run",
                                   "--user-data-dir=" + profile,
                                   "--virtual-time-budget=" + std::to_string(budget_ms)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  auto r = run_process(argv, {}, 60000);
  remove_tree(profile);
  REQUIRE(r.ok());
  INFO("chromium stderr: " << r.value().err);
  REQUIRE(r.value().exit_code == 0);
  return r.value().out;
}

// The text of the first element carrying `field` (an attribute, e.g.
// data-field="count") after `owner` (e.g. <tr data-tab="req_ms") and before
// the `end` that closes the owner; a "<…>" note when there is none.
std::string field_text(const std::string& dom, const std::string& owner, const std::string& field,
                       const std::string& end = "</tr>") {
  size_t at = dom.find(owner);
  if (at == std::string::npos) return "<no " + owner + ">";
  size_t stop = dom.find(end, at);
  size_t f = dom.find(field, at);
  if (f == std::string::npos || f > stop) return "<no " + field + " in " + owner + ">";
  size_t open_end = dom.find('>', f);
  size_t close = dom.find('<', open_end);
  if (open_end == std::string::npos || close == std::string::npos) return "<unterminated " + field + ">";
  return dom.substr(open_end + 1, close - open_end - 1);
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// taba_http_requests_total from /metrics (this request included).
long http_requests(const TabadProcess& p) {
  auto r = p.get("/metrics");
  REQUIRE(r.ok());
  const std::string& text = r.value().body;
  std::string key = "\ntaba_http_requests_total ";
  size_t at = text.find(key);
  REQUIRE(at != std::string::npos);
  return std::stol(text.substr(at + key.size()));
}

// Two clients, six types; every number the page must show is known.
void post_example(const TabadProcess& p) {
  double t = static_cast<double>(std::time(nullptr));
  std::string body = v1_body(
      {{"web01",
        {{"req_ms",
          {event_line("CounterGroup", t, "12.5"), event_line("CounterGroup", t, "3"), event_line("CounterGroup", t, "40")}},
         {"latency_ms", {event_line("PercentileGroup", t, "8.2"), event_line("PercentileGroup", t, "11.0"),
                         event_line("PercentileGroup", t, "95.5")}},
         {"query_s", {event_line("PercentileGroup", t, "0.0012"), event_line("PercentileGroup", t, "0.0034")}},
         {"config_version", {event_line("Gauge", t, "\"v7\"")}},
         {"recent_errors", {event_line("Buffer", t, "\"timeout talking to db3\"")}},
         {"bytes_sent", {event_line("TotalsCounter", t, "1500"), event_line("TotalsCounter", t, "2500")}},
         {"users", {event_line("Set", t, "\"alice\""), event_line("Set", t, "\"bob\""), event_line("Set", t, "\"alice\"")}}}},
       {"web02",
        {{"req_ms", {event_line("CounterGroup", t, "7"), event_line("CounterGroup", t, "21.5")}},
         {"config_version", {event_line("Gauge", t, "\"v8\"")}},
         {"bytes_sent", {event_line("TotalsCounter", t, "4000")}}}}});
  auto r = p.post("/post", body);
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
}

}  // namespace

TEST_CASE("ui: the page is served from the binary, with types, ETags and 404s, open when queries need a token",
          "[e2e][ui]") {
  std::string dir = make_temp_dir("ui");
  TabadProcess p;
  REQUIRE(p.start({"--config", write_config(dir, fmt::format("[auth]\nquery_token = \"{}\"\n", kQueryToken))}).ok());

  auto moved = request(p, "GET", "/ui");
  REQUIRE(status_of(moved) == 301);
  CHECK(moved.value().header("location") == "ui/");

  auto page = request(p, "GET", "/ui/");
  REQUIRE(status_of(page) == 200);
  const auto& html = page.value();
  CHECK(html.header("content-type") == "text/html; charset=utf-8");
  CHECK(html.header("cache-control") == "no-cache");
  CHECK(contains(std::string(html.header("content-security-policy")), "script-src 'self'"));
  CHECK(contains(html.body, "<script src=\"app.js\" defer></script>"));
  std::string etag(html.header("etag"));
  REQUIRE(etag.size() == 22);  // "<20 hex digits>"
  auto same = request(p, "GET", "/ui/index.html");
  CHECK(status_of(same) == 200);
  CHECK(same.value().body == html.body);
  CHECK(same.value().header("etag") == etag);

  auto js = request(p, "GET", "/ui/app.js");
  REQUIRE(status_of(js) == 200);
  CHECK(js.value().header("content-type") == "text/javascript; charset=utf-8");
  CHECK(contains(js.value().body, "application/json-detailed"));
  CHECK(js.value().header("etag") != etag);
  auto css = request(p, "GET", "/ui/style.css");
  CHECK(status_of(css) == 200);
  CHECK(css.value().header("content-type") == "text/css; charset=utf-8");
  CHECK(request(p, "GET", "/ui/favicon.svg").value().header("content-type") == "image/svg+xml");

  // Revalidation: 304 without a body for the current ETag (weak or in a list).
  auto cached = request(p, "GET", "/ui/", {{"If-None-Match", etag}});
  CHECK(status_of(cached) == 304);
  CHECK(cached.value().body.empty());
  CHECK(cached.value().header("etag") == etag);
  CHECK(status_of(request(p, "GET", "/ui/", {{"If-None-Match", "\"old\", W/" + etag}})) == 304);
  CHECK(status_of(request(p, "GET", "/ui/", {{"If-None-Match", "\"old\""}})) == 200);

  auto head = request(p, "HEAD", "/ui/app.js");
  CHECK(status_of(head) == 200);
  CHECK(head.value().body.empty());
  auto missing = request(p, "GET", "/ui/nope.js");
  CHECK(status_of(missing) == 404);
  CHECK(missing.value().body == "no such file: /ui/nope.js\n");
  CHECK(status_of(request(p, "GET", "/ui/../tabs")) != 200);
  auto post = request(p, "POST", "/ui/");
  CHECK(status_of(post) == 405);
  CHECK(post.value().header("allow") == "GET, HEAD");

  // Only the page is open: its queries, and look-alike paths, need the token.
  CHECK(status_of(request(p, "GET", "/uix")) == 401);
  CHECK(status_of(request(p, "GET", "/tabs")) == 401);
  CHECK(status_of(request(p, "GET", "/tabs", {{"Authorization", std::string("Bearer ") + kQueryToken}})) == 200);
  remove_tree(dir);
}

TEST_CASE("ui: headless Chromium shows the posted tabs, their numbers, clients, chart and cluster",
          "[e2e][ui][browser]") {
  std::string dir = make_temp_dir("ui");
  TabadProcess p;
  REQUIRE(p.start({"--config", write_config(dir)}).ok());
  post_example(p);

  // Overview and the detail of req_ms (selected through the location hash).
  std::string dom = run_chromium(p.url() + "/ui/#tab=req_ms", {"--dump-dom"});
  INFO("DOM: " << dom);
  CHECK(contains(dom, "<body data-state=\"ok\">"));
  CHECK(contains(dom, "<tr data-tab=\"req_ms\" data-type=\"CounterGroup\""));
  CHECK(field_text(dom, "<tr data-tab=\"req_ms\"", "data-field=\"count\"") == "5");
  CHECK(field_text(dom, "<tr data-tab=\"req_ms\"", "data-field=\"avg\"") == "16.80");
  CHECK(contains(dom, "<tr data-tab=\"latency_ms\" data-type=\"PercentileGroup\""));
  CHECK(field_text(dom, "<tr data-tab=\"latency_ms\"", "data-field=\"count\"") == "3");
  CHECK(field_text(dom, "<tr data-tab=\"latency_ms\"", "data-field=\"p50\"") != "—");
  // Timers in seconds: the page gets JSON in full precision, not 0.00.
  CHECK(field_text(dom, "<tr data-tab=\"query_s\"", "data-field=\"p50\"") == "0.0012");
  CHECK(field_text(dom, "<tr data-tab=\"bytes_sent\"", "data-field=\"count\"") == "3");
  CHECK(field_text(dom, "<tr data-tab=\"bytes_sent\"", "data-field=\"summary\"") == "total 8000");
  CHECK(field_text(dom, "<tr data-tab=\"users\"", "data-field=\"count\"") == "2");
  CHECK(field_text(dom, "<tr data-tab=\"config_version\"", "data-field=\"summary\"") == "v7 ×1 · v8 ×1");
  CHECK(contains(field_text(dom, "<tr data-tab=\"recent_errors\"", "data-field=\"summary\""),
                 "newest: timeout talking to db3"));
  // The detail: per-client split and the per-bucket chart of the 1m window.
  CHECK(contains(dom, "id=\"detail-name\">req_ms<"));
  CHECK(field_text(dom, "<tr data-client=\"web01\"", "data-field=\"count\"") == "3");
  CHECK(field_text(dom, "<tr data-client=\"web02\"", "data-field=\"count\"") == "2");
  CHECK(field_text(dom, "<tr data-window=\"1m\"", "data-field=\"count\"") == "5");
  CHECK(contains(dom, "data-window=\"1m\" data-buckets=\"60\" data-events=\"5\""));
  // The cluster panel.
  CHECK(field_text(dom, "<tr data-shard=\"embedded\"", "data-field=\"up\"") == "up");
  CHECK(field_text(dom, "<tr data-server=", "data-field=\"roles\"") == "fe,be");
  CHECK(field_text(dom, "<dl", "data-field=\"store\"", "</dl>") == "embedded");
  CHECK(field_text(dom, "<dl", "data-field=\"placement\"", "</dl>") == "one store, nothing to place");
  CHECK_FALSE(contains(dom, "<table id=\"placement\""));

  // A gauge as a value → clients table, a buffer as a list.
  std::string gauge = run_chromium(p.url() + "/ui/#tab=config_version", {"--dump-dom"});
  CHECK(field_text(gauge, "<tr data-value=\"v7\"", "data-field=\"client-list\"") == "web01");
  CHECK(field_text(gauge, "<tr data-value=\"v8\"", "data-field=\"client-list\"") == "web02");
  std::string buffer = run_chromium(p.url() + "/ui/#tab=recent_errors", {"--dump-dom"});
  CHECK(field_text(buffer, "<tr data-entry=\"0\"", "data-field=\"value\"") == "timeout talking to db3");
  CHECK(field_text(buffer, "<tr data-entry=\"0\"", "data-field=\"client\"") == "web01");

  // A prefix filter runs on the server (name=…&re=1).
  std::string filtered = run_chromium(p.url() + "/ui/#q=re", {"--dump-dom"});
  CHECK(contains(filtered, "<tr data-tab=\"req_ms\""));
  CHECK(contains(filtered, "<tr data-tab=\"recent_errors\""));
  CHECK_FALSE(contains(filtered, "<tr data-tab=\"bytes_sent\""));
  std::string bad_regex = run_chromium(p.url() + "/ui/#mode=regex&q=(", {"--dump-dom"});
  CHECK(contains(bad_regex, "<body data-state=\"error\">"));
  CHECK(contains(bad_regex, "invalid regular expression"));

  // Live: the page asks again every 5 s (3 or 4 files, then 5 queries a round;
  // 12 s of virtual time hold 3 rounds, at least 2 are required).
  long before = http_requests(p);
  run_chromium(p.url() + "/ui/", {"--dump-dom"}, 12000);
  CHECK(http_requests(p) - before - 1 >= 3 + 2 * 5);

  // The screenshot, kept in the build directory as an artifact.
  std::string shot = std::string(TABA_BUILD_DIR) + "/ui-screenshot.png";
  std::filesystem::remove(shot);
  run_chromium(p.url() + "/ui/#tab=req_ms", {"--hide-scrollbars", "--window-size=1280,900", "--screenshot=" + shot});
  REQUIRE(std::filesystem::exists(shot));
  CHECK(std::filesystem::file_size(shot) > 20000);
  remove_tree(dir);
}

TEST_CASE("ui: when queries need a token the page asks for it, and works with it", "[e2e][ui][browser]") {
  std::string dir = make_temp_dir("ui");
  TabadProcess p;
  REQUIRE(p.start({"--config", write_config(dir, fmt::format("[auth]\nquery_token = \"{}\"\n", kQueryToken))}).ok());
  post_example(p);

  std::string without = run_chromium(p.url() + "/ui/", {"--dump-dom"});
  CHECK(contains(without, "<body data-state=\"auth-required\">"));
  CHECK(contains(without, "This server requires a token for queries"));
  CHECK_FALSE(contains(without, "<tr data-tab=\"req_ms\""));

  std::string wrong = run_chromium(p.url() + "/ui/#token=not-the-token-0000", {"--dump-dom"});
  CHECK(contains(wrong, "<body data-state=\"auth-rejected\">"));

  // A #token= is stored by the page (localStorage) and sent as a bearer token.
  std::string with = run_chromium(p.url() + "/ui/#token=" + kQueryToken, {"--dump-dom"});
  CHECK(contains(with, "<body data-state=\"ok\">"));
  CHECK(field_text(with, "<tr data-tab=\"req_ms\"", "data-field=\"count\"") == "5");
  CHECK_FALSE(contains(with, kQueryToken));  // not left in the DOM's text or the address
  remove_tree(dir);
}
