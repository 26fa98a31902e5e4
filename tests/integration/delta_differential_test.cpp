// The differential test of folding at the edge: the same random events reach
// one tabad as v1 posts (POST /post) and another as delta batches (POST
// /post_delta) folded from them with protocol::DeltaFolder, as the agent and
// the client-proxy fold; every render of every name must then be
// byte-identical: /tabs and /projection in text, JSON and detailed JSON.
//
// The events (from a fixed seed, or TABA_DELTA_SEED when set, stamped
// around the clock's now): every built-in type and the out-of-tree example
// MaxGauge (compiled from examples/plugins), several clients and names, same
// (client, name) blocks repeated within a body, timestamps out of order,
// recent, minutes, hours and days back, a little ahead and far ahead
// (clamped), and every payload form the types take (numbers in every JSON
// spelling, any decimal and any double, arrays, booleans, null, strings
// with escapes, Latin-1 bytes, objects). The two paths add numbers in
// different orders (a v1 body's blocks one after the other; a delta sums a
// client's blocks first); the built-in types' sums are exact
// (plugins/common/exact_sum.h), so any values must render the same. Each
// body is decoded once, as an edge would, at a receive time T (clamping
// far-future stamps to T): its batch goes to fe A as v1 text (as an agent
// forwards it today) and, folded at T, to fe B as a delta batch. Queries render as of the query's moment,
// so a pair of renders is taken again when the two queries straddle a
// bucket boundary (up to 5 pairs); a difference in the states shows in
// every pair.
//
// Both stores: embedded (B is also killed and recovered from its WAL) and
// Redis (fe,be processes on one cluster, one key prefix per side).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cctype>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "example_plugin.h"
#include "harness.h"
#include "plugin/registry.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "protocol/delta_fold.h"
#include "protocol/v1_decoder.h"
#include "protocol/v1_encoder.h"
#include "redis_harness.h"

using namespace taba;
using namespace taba::test;

namespace {

using Rng = std::mt19937_64;

constexpr uint64_t kDefaultSeed = 0x7ab4de17a5eedull;

// The seed: TABA_DELTA_SEED (decimal or 0x hex) when set, so repeated runs
// can cover other data; shown with every failure.
uint64_t seed() {
  const char* env = std::getenv("TABA_DELTA_SEED");
  return env != nullptr && *env != '\0' ? std::strtoull(env, nullptr, 0) : kDefaultSeed;
}
constexpr int kRounds = 4;

size_t pick(Rng& rng, size_t n) { return static_cast<size_t>(rng() % n); }
double uniform(Rng& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng() >> 11) / static_cast<double>(1ull << 53);
}

// An event timestamp around `now`: whole seconds, quarters or milliseconds.
double stamp(Rng& rng, double now) {
  double t = 0;
  switch (pick(rng, 9)) {
    case 0:
    case 1:
      t = now - uniform(rng, 0, 59);  // this minute
      break;
    case 2:
      t = now - uniform(rng, 60, 3600);  // minutes back
      break;
    case 3:
      t = now - uniform(rng, 3600, 23 * 3600);  // hours back
      break;
    case 4:
      t = now - uniform(rng, 86400, 4 * 86400);  // days back
      break;
    case 5:
      t = now + uniform(rng, 1, 50);  // a little ahead: kept
      break;
    case 6:
      t = now + uniform(rng, 120, 2 * 86400);  // far ahead: clamped to the receive time
      break;
    default:
      t = now - uniform(rng, 0, 600);
  }
  switch (pick(rng, 3)) {
    case 0:
      return static_cast<double>(static_cast<int64_t>(t));
    case 1:
      return static_cast<double>(static_cast<int64_t>(t * 4)) / 4;
    default:
      return static_cast<double>(static_cast<int64_t>(t * 1000)) / 1000;
  }
}

// A number in one of its JSON spellings: integers, any decimal (cents,
// thousandths, 0.01 + 0.01 + 0.04, whose double sums differ by order), any
// double in full (17 digits), and large values whose sums pass 2^21 and
// 2^31 (where a double sum, and a 64-bit fixed-point word, run out).
std::string number(Rng& rng) {
  static const std::vector<std::string> fixed = {"0",    "-7",   "42",     "12.5",  "0.125",     "3.75",
                                                 "-0.5", "1e3",  "2.5E-1", "1E+2",  "100.0",     "1000000",
                                                 "-0",   "0.01", "0.04",   "0.001", "2896.006",  "1.1e-2",
                                                 "-0.3", "0.1",  "0.2",    "1e-7",  "3000000.01"};
  switch (pick(rng, 6)) {
    case 0:
      return fixed[pick(rng, fixed.size())];
    case 1:
      return std::to_string(static_cast<int64_t>(pick(rng, 2000)) - 500);
    case 2:
      return fmt::format("{:.2f}", uniform(rng, -50, 950));
    case 3:
      return fmt::format("{:.3f}", uniform(rng, -5, 5000));
    case 4:
      return fmt::format("{}", uniform(rng, -1e4, 1e6));  // shortest round-trip text: up to 17 digits
    default:
      return fmt::format("{:.3f}", (pick(rng, 2) ? 3e6 : 2.5e9) + uniform(rng, 0, 1000));
  }
}

// A number for MaxGauge, the out-of-tree example: a multiple of 1/8 small
// enough for every sum of them to be exact. Its mean is a sum of doubles
// (examples/plugins/max_gauge), which the two paths add in different orders,
// so a sum of decimals could differ in its last bit and, rarely, in the
// mean's 15th digit.
std::string dyadic_number(Rng& rng) {
  static const std::vector<std::string> fixed = {"0",    "-7",   "42",  "12.5",   "0.125",
                                                 "3.75", "-0.5", "1e3", "2.5E-1", "-0"};
  switch (pick(rng, 3)) {
    case 0:
      return fixed[pick(rng, fixed.size())];
    case 1:
      return std::to_string(static_cast<int64_t>(pick(rng, 2000)) - 500);
    default:
      return fmt::format("{:.3f}", static_cast<double>(static_cast<int64_t>(pick(rng, 8000)) - 400) / 8);
  }
}

// A JSON scalar: strings with escapes and non-ASCII text, numbers (any
// decimal: these types keep values as text), true, false, null; some spell
// one value two ways ("1" and "1.0").
std::string scalar(Rng& rng) {
  static const std::vector<std::string> fixed = {
      R"("red")",        R"("blue")",         R"("a\"b")",          R"("tab\there\nnewline")",
      R"("\u00e9t\u00e9")", "\"caf\xc3\xa9\"", "\"latin1 caf\xe9\"", R"("\ud83d\ude00")",
      R"("sl\/ash")",    "1",                 "1.0",                "true",
      "false",           "null",              "-3.5",               R"("")",
      "0.001",           "12.34",             "1.50"};
  return fixed[pick(rng, fixed.size())];
}

std::string any_value(Rng& rng) {
  switch (pick(rng, 4)) {
    case 0:
      return R"({"k": [1, 2], "s": "x\"y"})";
    case 1:
      return "[1, \"two\", null]";
    default:
      return scalar(rng);
  }
}

// A payload of `type` in one of the forms it takes.
std::string payload(Rng& rng, const std::string& type, double now) {
  if (type == "CounterGroup" || type == "PercentileGroup" || type == "PercentileCounter" ||
      type == "TotalsCounter") {
    switch (pick(rng, 6)) {
      case 0:
        return fmt::format("[{}, 2]", number(rng));  // [value, weight]
      case 1:
        return fmt::format("[{}, \"extra\", 3]", number(rng));
      case 2:
        return pick(rng, 2) ? "true" : "false";
      default:
        return number(rng);
    }
  }
  if (type == "MaxGauge")
    return pick(rng, 3) ? dyadic_number(rng) : fmt::format("[{}, \"x\"]", dyadic_number(rng));
  if (type == "Gauge") return pick(rng, 4) ? scalar(rng) : fmt::format("[{}, 5]", scalar(rng));
  if (type == "ExpiryGauge") {
    double expiry = static_cast<double>(static_cast<int64_t>(now + uniform(rng, -3600, 3 * 86400)));
    return fmt::format("[{}, {}]", scalar(rng), expiry);
  }
  if (type == "Buffer") {
    if (pick(rng, 2)) return pick(rng, 4) ? scalar(rng) : R"({"bare": true})";  // expires an hour after its stamp
    return fmt::format("[{}, {}]", any_value(rng), static_cast<int64_t>(now + uniform(rng, -600, 7200)));
  }
  if (type == "Set") return scalar(rng);
  return number(rng);  // Noop takes anything
}

const std::vector<std::string> kTypes = {"CounterGroup", "PercentileGroup", "PercentileCounter", "TotalsCounter",
                                         "Gauge",        "ExpiryGauge",     "Buffer",            "Set",
                                         "MaxGauge",     "Noop"};
const std::vector<std::string> kClients = {"web01", "web02", "db@host:5432/x", "batch-7", "(edge)+1"};

// The names: two per type, e.g. "countergroup.1".
std::vector<std::pair<std::string, std::string>> names() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& type : kTypes) {
    std::string lower;
    for (char c : type) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    out.emplace_back(lower + ".a", type);
    out.emplace_back(lower + ".b", type);
  }
  return out;
}

// One random body: each client (some twice) posts to a random subset of the
// names, in random order, a name now and then twice, 1 to 6 events a block.
std::string random_body(Rng& rng, double now) {
  const auto all = names();
  std::vector<ClientBlock> clients;
  const size_t client_blocks = kClients.size() + pick(rng, 3);
  for (size_t c = 0; c < client_blocks; ++c) {
    ClientBlock cb;
    cb.client = kClients[c < kClients.size() ? c : pick(rng, kClients.size())];
    const size_t blocks = 3 + pick(rng, all.size());
    for (size_t b = 0; b < blocks; ++b) {
      const auto& [name, type] = all[pick(rng, all.size())];
      NameBlock nb{name, {}};
      const size_t events = 1 + pick(rng, 6);
      for (size_t e = 0; e < events; ++e) nb.event_lines.push_back(event_line(type, stamp(rng, now), payload(rng, type, now)));
      cb.names.push_back(std::move(nb));
    }
    clients.push_back(std::move(cb));
  }
  return v1_body(clients);
}

// Decodes like the ingest route, resolving every type a loaded plugin serves.
class AnyType : public protocol::TypeResolver {
 public:
  explicit AnyType(const plugin::Registry* registry) : registry_(registry) {}
  const plugin::Handler* resolve(std::string_view, std::string_view type, std::string* err) override {
    const plugin::Handler* h = registry_->find(type);
    if (!h) *err = "unknown type " + std::string(type);
    return h;
  }

 private:
  const plugin::Registry* registry_;
};

std::string decode(const plugin::Registry& registry, const std::string& body, double now) {
  AnyType resolver(&registry);
  protocol::BatchWriter writer;
  writer.reset(now);
  protocol::DecodeOptions options;
  options.now = now;
  protocol::V1Decoder decoder(&resolver, &writer, options);
  bool ok = decoder.feed(body) && decoder.finish();
  INFO(body << "\nerror: " << decoder.error());
  REQUIRE(ok);
  std::string refusals;
  for (const protocol::Refusal& r : decoder.refusals()) refusals += fmt::format("line {}: {}\n", r.line, r.reason);
  INFO(refusals);
  REQUIRE(decoder.refusals().empty());
  return writer.finish();
}

// Two servers fed the same events, by /post and by /post_delta.
struct Pair {
  const TabadProcess* v1 = nullptr;
  const TabadProcess* deltas = nullptr;
  bool flush = false;  // Redis: wait for the be before reading
};

// Posts kRounds random bodies to both servers; the events posted.
uint64_t post_rounds(const Pair& p, const plugin::Registry& registry, Rng& rng) {
  uint64_t events = 0;
  for (int round = 0; round < kRounds; ++round) {
    const double t = wall_now();
    const std::string batch = decode(registry, random_body(rng, t), t);
    protocol::V1Encoder encoder;
    REQUIRE(encoder.add_batch(batch).ok());
    events += encoder.events();
    const std::string v1 = encoder.finish();
    auto a = p.v1->post("/post", v1, {{"Taba-Batch-Id", fmt::format("v1-{}", round)}});
    REQUIRE(status_of(a) == 200);
    CHECK(a.value().body.empty());

    protocol::DeltaFolder folder(&registry);
    REQUIRE(folder.fold_batch(batch, true, nullptr).ok());
    REQUIRE(folder.unfoldable_events() == 0);
    Result<std::string> deltas = folder.finish(t);
    REQUIRE(deltas.ok());
    auto b = p.deltas->post("/post_delta", protocol::wrap_delta_body(deltas.value()),
                            {{"Content-Type", std::string(protocol::kDeltaContentType)},
                             {"Taba-Batch-Id", fmt::format("delta-{}", round)}});
    INFO(body_text(b));
    REQUIRE(status_of(b) == 200);
    CHECK(b.value().body.empty());
  }
  if (p.flush) {
    REQUIRE(status_of(p.v1->post("/flush", "")) == 200);
    REQUIRE(status_of(p.deltas->post("/flush", "")) == 200);
  }
  return events;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Where a and b differ, for the failure message: each line that differs,
// shown around its first differing byte (a JSON reply is one long line).
std::string differences(const std::string& a, const std::string& b) {
  std::vector<std::string> la = lines_of(a), lb = lines_of(b);
  std::string out;
  for (size_t i = 0; i < std::max(la.size(), lb.size()); ++i) {
    const std::string x = i < la.size() ? la[i] : "(none)";
    const std::string y = i < lb.size() ? lb[i] : "(none)";
    if (x == y) continue;
    size_t at = 0;
    while (at < x.size() && at < y.size() && x[at] == y[at]) ++at;
    const size_t from = at > 400 ? at - 400 : 0;
    out += fmt::format("line {}, from byte {} (first difference at {}):\n  v1:    {}\n  delta: {}\n", i + 1, from, at,
                       x.substr(from, 600), y.substr(from, 600));
  }
  return out;
}

std::string render(const TabadProcess& p, const std::string& path, const std::string& accept) {
  auto r = get(p.url(), path, accept);
  INFO(path << " " << accept << ": " << body_text(r));
  REQUIRE(status_of(r) == 200);
  return r.value().body;
}

// Every render of every name, from both servers, byte for byte.
void compare_renders(const Pair& p) {
  const std::string names_a = render(*p.v1, "/names", "text/plain");
  CHECK(names_a == render(*p.deltas, "/names", "text/plain"));
  for (const auto& [name, type] : names()) {
    if (names_a.find(name) == std::string::npos) FAIL_CHECK("no events reached " << name);
  }
  for (const std::string path : {"/tabs", "/projection"}) {
    for (const std::string accept : {"text/plain", "application/json", "application/json-detailed"}) {
      std::string a, b;
      for (int attempt = 0; attempt < 5; ++attempt) {
        a = render(*p.v1, path, accept);
        b = render(*p.deltas, path, accept);
        if (a == b) break;
      }
      INFO(path << " with Accept: " << accept << "\n" << differences(a, b));
      CHECK(a == b);
      CHECK(a.size() > 1000);
    }
  }
}

// The plugins directory both sides load: the built-ins and MaxGauge.
struct Plugins {
  TempDir dir{"taba-delta-plugins"};
  plugin::Registry registry;
  Plugins() {
    link_builtins(dir.path);
    compile_max_gauge(dir.path, 2);
    REQUIRE(registry.load_dir(dir.path));
    for (const std::string& type : kTypes) {
      INFO(type);
      REQUIRE(registry.find(type) != nullptr);
    }
  }
};

}  // namespace

TEST_CASE("delta differential in the embedded store: events posted as v1 and as folded deltas render byte-identically",
          "[e2e][delta]") {
  Plugins plugins;
  TabadProcess a, b;
  REQUIRE_OK(a.start({"--plugins-dir", plugins.dir.path}));
  REQUIRE_OK(b.start({"--plugins-dir", plugins.dir.path}));
  const uint64_t used_seed = seed();
  Rng rng(used_seed);
  INFO("seed " << used_seed << " (TABA_DELTA_SEED)");
  const Pair pair{&a, &b, false};
  const uint64_t events = post_rounds(pair, plugins.registry, rng);
  compare_renders(pair);

  // The same events counted on both sides; B counts them as delta events.
  const std::string ma = body_text(a.get("/metrics")), mb = body_text(b.get("/metrics"));
  CHECK(metric(ma, "taba_events_received_total") == static_cast<double>(events));
  CHECK(metric(mb, "taba_events_received_total") == static_cast<double>(events));
  CHECK(metric(mb, "taba_delta_bodies_total") == kRounds);
  CHECK(metric(mb, "taba_delta_events_total") == static_cast<double>(events));
  CHECK(metric(mb, "taba_store_events_applied_total") == static_cast<double>(events));
  CHECK(metric(ma, "taba_delta_bodies_total") == 0);

  // B killed: its WAL of delta batches replays to the same states.
  b.kill9();
  REQUIRE(b.wait_exit(10000).ok());
  REQUIRE_OK(b.start({"--plugins-dir", plugins.dir.path}));
  compare_renders(pair);
  // A retry of a delta body already applied changes nothing.
  const double t = wall_now();
  protocol::DeltaFolder folder(&plugins.registry);
  REQUIRE(folder
              .fold_batch(decode(plugins.registry,
                                 v1_body({{"web01", {{"totalscounter.a", {event_line("TotalsCounter", t, "5")}}}}}), t),
                          true, nullptr)
              .ok());
  const std::string retry = protocol::wrap_delta_body(folder.finish(t).value());
  REQUIRE(status_of(b.post("/post_delta", retry, {{"Taba-Batch-Id", "delta-0"}})) == 200);
  compare_renders(pair);
}

TEST_CASE("delta differential in Redis: events posted as v1 and as folded deltas render byte-identically",
          "[e2e][delta][redis]") {
  Plugins plugins;
  RedisCluster cluster;
  RedisCluster::Options options;
  options.shards = 2;
  options.replicas_per_shard = 0;
  options.sentinels = 1;
  options.quorum = 1;
  REQUIRE_OK(cluster.start(options));
  TempDir configs("taba-delta-redis");
  const std::string config_a = configs.path + "/a.toml", config_b = configs.path + "/b.toml";
  std::ofstream(config_a) << cluster.toml(1024, {"key_prefix = \"v1:\""});
  std::ofstream(config_b) << cluster.toml(1024, {"key_prefix = \"delta:\""});
  TabadProcess a, b;
  REQUIRE_OK(a.start({"--config", config_a, "--role", "fe,be", "--plugins-dir", plugins.dir.path}));
  REQUIRE_OK(b.start({"--config", config_b, "--role", "fe,be", "--plugins-dir", plugins.dir.path}));
  for (const TabadProcess* p : {&a, &b}) {
    REQUIRE(eventually([p] { return status_of(p->get("/readyz")) == 200; }, 15000));
  }
  const uint64_t used_seed = seed();
  Rng rng(used_seed);
  INFO("seed " << used_seed << " (TABA_DELTA_SEED)");
  const Pair pair{&a, &b, true};
  const uint64_t events = post_rounds(pair, plugins.registry, rng);
  compare_renders(pair);
  CHECK(metric(body_text(b.get("/metrics")), "taba_delta_events_total") == static_cast<double>(events));
  // The two sides are two stores: an event posted to A alone shows in A only.
  REQUIRE(status_of(a.post("/post", v1_body({{"web01", {{"only.a", {event_line("TotalsCounter", now_s(), "1")}}}}}))) ==
          200);
  REQUIRE(status_of(a.post("/flush", "")) == 200);
  CHECK(render(a, "/names", "text/plain").find("only.a") != std::string::npos);
  CHECK(render(b, "/names", "text/plain").find("only.a") == std::string::npos);
}
