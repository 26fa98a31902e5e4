// End to end on the embedded store: real tabad processes, real sockets.
#include <catch2/catch.hpp>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <chrono>

#include "harness.h"
#include "http/client.h"

using namespace taba;
using namespace taba::test;

namespace {

// The worked example of original-taba.md §2.5 with current timestamps.
std::string example_body(double t, const std::string& client = "web01") {
  return v1_body({{client,
                   {{"req_ms", {event_line("CounterGroup", t + 0.25, "12.5"), event_line("CounterGroup", t + 0.5, "3")}},
                    {"color", {event_line("Gauge", t, "\"red\"")}}}}});
}

std::string body_of(const Result<http::ClientResponse>& r) {
  REQUIRE(r.ok());
  return r.value().body;
}

std::string tab(TabadProcess& p, const std::string& name) {
  auto r = p.get("/tabs?name=" + name);
  REQUIRE(r.ok());
  REQUIRE(r.value().status == 200);
  return r.value().body;
}

const std::string kReq4 =
    "req_ms: {\"1m\": {\"count\": 4, \"total\": 31.00, \"average\": 7.75}, \"10m\": {\"count\": 4, \"total\": 31.00, "
    "\"average\": 7.75}, \"1h\": {\"count\": 4, \"total\": 31.00, \"average\": 7.75}, \"1d\": {\"count\": 4, "
    "\"total\": 31.00, \"average\": 7.75}, \"pct\": {\"count\": 4, \"total\": 31.000000, \"pct\": [3.00, 3.00, 12.50, "
    "12.50, 12.50, 12.50, 12.50]}}\n";

}  // namespace

TEST_CASE("post then query: tabs, names, clients, types in text and JSON", "[e2e]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = now_s();
  auto r = p.post("/post", example_body(t));
  REQUIRE(r.ok());
  CHECK(r.value().status == 200);
  CHECK(r.value().body.empty());
  REQUIRE(p.post("/post", example_body(t, "web02")).value().status == 200);

  CHECK(tab(p, "req_ms") == kReq4);
  auto all = p.get("/tabs");
  CHECK(all.value().header("content-type") == "text/plain; charset=utf-8");
  CHECK(all.value().body.rfind("color: {\"red\": 2}\nreq_ms: ", 0) == 0);

  auto json = p.get("/tabs?name=color", "application/json");
  CHECK(json.value().header("content-type") == "application/json");
  CHECK(json.value().body == "{\"color\": {\"red\": 2}}");
  CHECK(body_of(p.get("/tabs?name=color&client=web01")) == "color: {\"red\": 1}\n");
  CHECK(body_of(p.get("/tabs?name=col.*&re=1")) == "color: {\"red\": 2}\n");

  CHECK(body_of(p.get("/names")) == "color\nreq_ms\n");
  CHECK(body_of(p.get("/names", "application/json")) == "[\"color\", \"req_ms\"]");
  CHECK(body_of(p.get("/clients")) == "web01\nweb02\n");
  CHECK(body_of(p.get("/types", "application/json")) == "{\"color\": \"Gauge\", \"req_ms\": \"CounterGroup\"}");
  CHECK(body_of(p.get("/types")) == "color: Gauge\nreq_ms: CounterGroup\n");

  // Parameters from a JSON body on POST.
  auto viaPost = p.post("/tabs", "{\"name\": [\"color\"]}", {{"Accept", "application/json"}});
  CHECK(viaPost.value().body == "{\"color\": {\"red\": 2}}");

  auto unknown = p.get("/tabs?name=x&colour=1");
  CHECK(unknown.value().status == 400);
  CHECK(unknown.value().body.find("unknown parameter(s): colour") != std::string::npos);
  CHECK(p.get("/nope").value().status == 404);
  CHECK(p.get("/tabs", "image/png").value().status == 406);
}

TEST_CASE("the Java client's compact form and CRLF bodies are accepted", "[e2e]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  std::string ts = std::to_string(static_cast<long>(now_s()));
  std::string java = "1\n\njava1\n\nbids\n[\"CounterGroup\"," + ts + ",\"12.5\"]\n\n\n";
  auto r = p.post("/post", java, {{"Content-Type", "application/json"}});
  REQUIRE(r.value().status == 200);
  std::string crlf = "1\r\n\r\njava2\r\n\r\nbids\r\n[\"CounterGroup\", " + ts + ", \"2.5\"]\r\n\r\n\r\n";
  REQUIRE(p.post("/post", crlf).value().status == 200);
  CHECK(tab(p, "bids").find("\"1m\": {\"count\": 2, \"total\": 15.00, \"average\": 7.50}") != std::string::npos);
}

TEST_CASE("zlib bodies on /post_zip and gzip/deflate Content-Encoding", "[e2e]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  std::string body = example_body(now_s());
  auto z = p.post("/post_zip", http::zlib_compress(body));
  REQUIRE(z.value().status == 200);
  auto g = p.post("/post", http::gzip_compress(body), {{"Content-Encoding", "gzip"}});
  REQUIRE(g.value().status == 200);
  auto d = p.post("/post", http::zlib_compress(body), {{"Content-Encoding", "deflate"}});
  REQUIRE(d.value().status == 200);
  auto upper = p.post("/post", http::gzip_compress(body), {{"Content-Encoding", "GZIP"}});  // case-insensitive
  REQUIRE(upper.value().status == 200);
  CHECK(tab(p, "color") == "color: {\"red\": 1}\n");
  CHECK(tab(p, "req_ms").find("\"1m\": {\"count\": 8, \"total\": 62.00") != std::string::npos);

  auto corrupt = p.post("/post_zip", body);  // not compressed
  CHECK(corrupt.value().status == 400);
  CHECK(corrupt.value().body.find("compressed body is corrupt") != std::string::npos);
  auto br = p.post("/post", body, {{"Content-Encoding", "br"}});
  CHECK(br.value().status == 415);
}

TEST_CASE("a bad name block is refused alone and named by its line, and the rest of the body applies", "[e2e]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = now_s();
  REQUIRE(p.post("/post", example_body(t)).value().status == 200);
  const std::string color_before = tab(p, "color");

  // Valid events for an existing and a new name, then a block with a bad
  // line: that block (its good first event too) is refused, the rest applies.
  std::string mixed = v1_body({{"web03",
                                {{"req_ms", {event_line("CounterGroup", t, "100")}},
                                 {"fresh", {event_line("TotalsCounter", t, "1")}},
                                 {"color", {event_line("Gauge", t, "\"blue\""), "[\"Gauge\", oops]"}}}}});
  auto r = p.post("/post", mixed);
  REQUIRE(r.ok());
  INFO(r.value().body);
  REQUIRE(r.value().status == 200);
  CHECK(r.value().body == "line 13: timestamp: unexpected 'o'\n");
  CHECK(r.value().header("taba-refused-blocks") == "1");
  CHECK(r.value().header("content-type") == "text/plain; charset=utf-8");
  CHECK(tab(p, "req_ms").find("\"1h\": {\"count\": 3, \"total\": 115.50") != std::string::npos);
  CHECK(tab(p, "fresh") == "fresh: {\"count\": 1, \"total\": 1.00, \"average\": 1.00}\n");
  CHECK(tab(p, "color") == color_before);

  // The same refusal as JSON.
  auto json = p.post("/post", v1_body({{"web03", {{"color", {"[\"Gauge\", oops]"}}, {"fresh", {event_line("TotalsCounter", t, "2")}}}}}),
                     {{"Accept", "application/json"}});
  REQUIRE(json.value().status == 200);
  CHECK(json.value().header("content-type") == "application/json");
  CHECK(json.value().body ==
        "{\"events\": 1, \"refused\": [{\"line\": 6, \"client\": \"web03\", \"name\": \"color\", \"events\": 1, "
        "\"reason\": \"timestamp: unexpected 'o'\"}]}\n");

  // A body whose every block is refused answers 400 with the same lines.
  auto conflict = p.post("/post", v1_body({{"web03", {{"color", {event_line("CounterGroup", t, "1")}}}}}));
  REQUIRE(conflict.value().status == 400);
  CHECK(conflict.value().body.find("conflicts with type \"Gauge\" bound to name \"color\"") != std::string::npos);
  auto unknown = p.post("/post", v1_body({{"web03", {{"x", {event_line("Nope", t, "1")}}}}}));
  CHECK(unknown.value().status == 400);
  CHECK(unknown.value().body.rfind("line 6: unknown type \"Nope\"", 0) == 0);
  auto badname = p.post("/post", v1_body({{"web03", {{"a b", {event_line("CounterGroup", t, "1")}}}}}));
  CHECK(badname.value().status == 400);
  CHECK(badname.value().body.find("line 5: invalid name \"a b\"") != std::string::npos);

  // A body whose framing is broken applies nothing.
  auto framing = p.post("/post", "1\n\nweb04\nreq_ms\n" + event_line("CounterGroup", t, "1") + "\n");
  CHECK(framing.value().status == 400);
  CHECK(framing.value().body == "line 4: expected a blank line after the client ID\n");

  CHECK(tab(p, "color") == color_before);
  CHECK(body_of(p.get("/clients")) == "web01\nweb03\n");
  // No refused block bound its name.
  CHECK(body_of(p.get("/names")) == "color\nfresh\nreq_ms\n");
  auto metrics = body_of(p.get("/metrics"));
  CHECK(metrics.find("taba_blocks_refused_total{kind=\"event\"} 2\n") != std::string::npos);
  CHECK(metrics.find("taba_blocks_refused_total{kind=\"type\"} 2\n") != std::string::npos);
  CHECK(metrics.find("taba_blocks_refused_total{kind=\"name\"} 1\n") != std::string::npos);
  CHECK(metrics.find("taba_events_refused_total 6\n") != std::string::npos);
  CHECK(metrics.find("taba_bodies_partial_total 2\n") != std::string::npos);
}

TEST_CASE("kill -9 after acknowledged posts loses nothing (fsync=always)", "[e2e][durability]") {
  TabadProcess p;
  REQUIRE(p.start({"--fsync", "always"}).ok());
  double t = now_s();
  const int kPosts = 50;
  for (int i = 0; i < kPosts; ++i) {
    std::string body = v1_body({{"c" + std::to_string(i % 5), {{"hits", {event_line("CounterGroup", t, "2")}}}}});
    REQUIRE(p.post("/post", body).value().status == 200);
  }
  p.kill9();
  REQUIRE(p.wait_exit(5000).ok());
  REQUIRE(p.start({"--fsync", "always"}).ok());
  std::string out = tab(p, "hits");
  CHECK(out.find("\"1h\": {\"count\": 50, \"total\": 100.00") != std::string::npos);
  CHECK(body_of(p.get("/clients")) == "c0\nc1\nc2\nc3\nc4\n");
}

TEST_CASE("SIGTERM drains, snapshots and exits 0 - restart recovers from the snapshot", "[e2e][durability]") {
  TabadProcess p;
  REQUIRE(p.start().ok());
  double t = now_s();
  REQUIRE(p.post("/post", example_body(t)).value().status == 200);
  REQUIRE(p.post("/post", example_body(t, "web02")).value().status == 200);
  REQUIRE(p.signal(SIGTERM).ok());
  auto code = p.wait_exit(10000);
  REQUIRE(code.ok());
  CHECK(code.value() == 0);
  CHECK(std::filesystem::exists(p.data_dir() + "/snapshot"));
  REQUIRE(p.start().ok());
  CHECK(tab(p, "req_ms") == kReq4);
  CHECK(tab(p, "color") == "color: {\"red\": 2}\n");
  CHECK(p.log_text().find("recovered") != std::string::npos);
}

TEST_CASE("periodic snapshots are written by a forked process while posts go on - kill -9 recovers exactly",
          "[e2e][durability]") {
  std::string dir = make_temp_dir("taba-fork-snapshot");
  REQUIRE(write_text_file(dir + "/taba.toml", "[store]\nsnapshot_interval_s = 1\n").ok());
  TabadProcess p;
  REQUIRE(p.start({"--config", dir + "/taba.toml", "--log-level", "debug"}).ok());
  auto snapshots = [&] {
    std::string m = body_of(p.get("/metrics"));
    const std::string key = "\ntaba_wal_snapshots_written_total ";
    size_t at = m.find(key);
    return at == std::string::npos ? -1.0 : std::stod(m.substr(at + key.size()));
  };
  // Posts keep arriving while snapshots are taken every second: each one
  // must cover exactly what was applied when its process forked.
  const double t = now_s();
  int posted = 0;
  for (int round = 0; round < 40 && (posted < 200 || snapshots() < 2); ++round) {
    for (int i = 0; i < 10; ++i, ++posted) {
      std::string body = v1_body({{"c" + std::to_string(posted % 7), {{"hits", {event_line("CounterGroup", t, "3")}}}}});
      REQUIRE(p.post("/post", body).value().status == 200);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(snapshots() >= 2);
  CHECK(p.log_text().find("snapshot process") != std::string::npos);
  const std::string expect = "\"1h\": {\"count\": " + std::to_string(posted) + ", \"total\": " +
                             std::to_string(posted * 3) + ".00";
  CHECK(tab(p, "hits").find(expect) != std::string::npos);
  p.kill9();
  REQUIRE(p.wait_exit(5000).ok());
  REQUIRE(p.start({"--config", dir + "/taba.toml"}).ok());
  CHECK(tab(p, "hits").find(expect) != std::string::npos);
  CHECK(body_of(p.get("/clients")) == "c0\nc1\nc2\nc3\nc4\nc5\nc6\n");
  remove_tree(dir);
}

TEST_CASE("types without a plugin are refused - bad configuration stops startup", "[e2e]") {
  std::string empty_plugins = make_temp_dir("taba-noplugins");
  TabadProcess p;
  REQUIRE(p.start({"--plugins-dir", empty_plugins}).ok());
  auto r = p.post("/post", example_body(now_s()));
  CHECK(r.value().status == 400);
  CHECK(r.value().body.find("unknown type \"CounterGroup\"") != std::string::npos);
  remove_tree(empty_plugins);

  std::string dir = make_temp_dir("taba-config");
  std::string cfg = dir + "/taba.toml";
  FILE* f = fopen(cfg.c_str(), "w");
  REQUIRE(f);
  fputs("[store]\nfsync = \"never\"\n", f);
  fclose(f);
  auto out = run_process({tabad_path(), "--config", cfg, "--data-dir", dir});
  REQUIRE(out.ok());
  CHECK(out.value().exit_code == 2);
  CHECK(out.value().err.find("store.fsync: must be \"always\" or \"everysec\"") != std::string::npos);
  remove_tree(dir);
}

TEST_CASE("configured type names map to loaded handlers", "[e2e][plugins]") {
  std::string dir = make_temp_dir("taba-alias");
  std::string cfg = dir + "/taba.toml";
  FILE* f = fopen(cfg.c_str(), "w");
  REQUIRE(f);
  fputs("[plugins]\ntypes = { \"LatencyMs\" = \"CounterGroup\", \"Gauge\" = \"TotalsCounter\" }\n", f);
  fclose(f);
  TabadProcess p;
  REQUIRE(p.start({"--config", cfg}).ok());
  double t = now_s();
  auto r = p.post("/post", v1_body({{"c", {{"lat", {event_line("LatencyMs", t, "5")}},
                                             {"g", {event_line("Gauge", t, "[7]")}}}}}));
  REQUIRE(r.value().status == 200);
  CHECK(body_of(p.get("/types")) == "g: Gauge\nlat: LatencyMs\n");
  CHECK(tab(p, "lat").find("\"1m\": {\"count\": 1, \"total\": 5.00") != std::string::npos);
  CHECK(tab(p, "g") == "g: {\"count\": 1, \"total\": 7.00, \"average\": 7.00}\n");
  CHECK(p.log_text().find("type Gauge (plugin gauge) is overridden by the handler of TotalsCounter") !=
        std::string::npos);

  fputs("", f = fopen(cfg.c_str(), "w"));
  fputs("[plugins]\ntypes = { \"X\" = \"NoSuchType\" }\n", f);
  fclose(f);
  auto out = run_process({tabad_path(), "--config", cfg, "--data-dir", dir + "/d2", "--listen", "127.0.0.1:0"});
  REQUIRE(out.ok());
  CHECK(out.value().exit_code == 2);
  CHECK(out.value().err.find("plugins.types.X: no loaded plugin serves type \"NoSuchType\"") != std::string::npos);
  remove_tree(dir);
}

TEST_CASE("bodies over the configured limit get 413 naming the limit", "[e2e]") {
  std::string dir = make_temp_dir("taba-limit");
  std::string cfg = dir + "/taba.toml";
  FILE* f = fopen(cfg.c_str(), "w");
  REQUIRE(f);
  fputs("[http]\nmax_body_bytes = 1024\n", f);
  fclose(f);
  TabadProcess p;
  REQUIRE(p.start({"--config", cfg}).ok());
  std::vector<std::string> events;
  for (int i = 0; i < 40; ++i) events.push_back(event_line("CounterGroup", now_s(), "1"));
  auto r = p.post("/post", v1_body({{"c", {{"n", events}}}}));
  REQUIRE(r.ok());
  CHECK(r.value().status == 413);
  CHECK(r.value().body.find("exceeds the limit of 1024 bytes") != std::string::npos);
  CHECK(body_of(p.get("/names")).empty());
  remove_tree(dir);
}

TEST_CASE("taba.toml.example is valid and states the defaults", "[e2e][config]") {
  auto example = run_process({tabad_path(), "--config", TABA_SOURCE_DIR "/taba.toml.example", "--check-config"});
  auto defaults = run_process({tabad_path(), "--check-config"});
  REQUIRE(example.ok());
  REQUIRE(defaults.ok());
  CHECK(example.value().exit_code == 0);
  CHECK(example.value().out == defaults.value().out);
}
