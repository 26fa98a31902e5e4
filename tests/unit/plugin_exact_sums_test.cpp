// Exact sums in every built-in type that adds values (CounterGroup's window
// buckets and sketch, TotalsCounter, PercentileCounter, PercentileGroup;
// plugins/common/exact_sum.h): the same decimal events folded and merged in
// every way the fe and the edge combine them (fold_many, the delta sequence,
// deltas folded at the edge and sent serialized, query-time reductions, in
// shuffled orders) give byte-identical serialized states and renders in every
// format. Also: the states the previous release wrote (sums as doubles) read
// and render sensibly, and the fixed-point form's own edges.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/byte_io.h"
#include "common/exact_sum.h"
#include "common/window.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;
using taba::builtin::ByteReader;
using taba::builtin::ByteWriter;
using taba::builtin::ExactSum;
using taba::builtin::FixedBucketWindow;

namespace {

constexpr double kNow = 1400000400.75;  // every path folds and merges at this time

struct Event {
  size_t client;
  double ts;
  double value;
};

// One block of a request: events of one client.
struct Block {
  size_t client;
  std::vector<Event> events;
};

const std::vector<std::string> kClients = {"web01", "web02", "db@host:5432/x", "batch-7"};

// A value of one of the kinds clients send: cents, thousandths, any double,
// latencies, and large ones whose sums pass 2^21 (a sketch total stored as
// a double loses bits there) and 2^31 (a window bucket's 64-bit fixed-point
// word overflows into its high words).
double random_value(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<int64_t> k(-5000, 200000);
  switch (kind(rng)) {
    case 0:
    case 1:
      return static_cast<double>(k(rng)) / 100;
    case 2:
    case 3:
      return static_cast<double>(k(rng)) / 1000;
    case 4:
      return std::uniform_real_distribution<double>(-1e3, 1e4)(rng);
    case 5:
      return std::round(std::lognormal_distribution<double>(3.0, 1.5)(rng) * 1000) / 1000;
    case 6:
      return 3e6 + static_cast<double>(k(rng)) / 100;
    case 7:
      return 2.5e9 + static_cast<double>(k(rng)) / 1000;
    case 8:
      return 0.01 * static_cast<double>(k(rng) % 7);
    default:
      return -static_cast<double>(k(rng)) / 100;
  }
}

// Events stamped up to 26 hours back (some older than the 1d window),
// split into blocks of 1 to 150 events of one client.
std::vector<Block> random_blocks(std::mt19937_64& rng, size_t events) {
  std::vector<Block> blocks;
  std::uniform_real_distribution<double> age(0, 26 * 3600);
  while (events > 0) {
    Block b;
    b.client = rng() % kClients.size();
    const size_t n = std::min<size_t>(events, 1 + rng() % 150);
    for (size_t i = 0; i < n; ++i) {
      const double ts = rng() % 8 == 0 ? kNow : std::floor((kNow - age(rng)) * 1000) / 1000;
      b.events.push_back({b.client, ts, random_value(rng)});
    }
    events -= n;
    blocks.push_back(std::move(b));
  }
  return blocks;
}

Events events_of(const std::vector<Event>& list) {
  Events ev;
  for (const Event& e : list) ev.number(e.ts, e.value);
  return ev;
}

// Folds the events of one block into the client's state and the aggregate
// as the fe does: fold_many when the handler has it, else the delta
// sequence.
void fe_fold(const taba_handler& h, State* client, State* aggregate, const Block& b) {
  const Events ev = events_of(b.events);
  if (h.fold_many != nullptr) {
    taba_state* const targets[2] = {client->raw(), aggregate->raw()};
    h.fold_many(targets, 2, kClients[b.client].data(), kClients[b.client].size(), ev.data(), ev.size(), kNow);
  } else {
    ingest(h, client, aggregate, kClients[b.client], ev, kNow);
  }
}

// The renders compared: every format at a few times after kNow.
std::vector<std::string> renders(const State& s) {
  std::vector<std::string> out;
  for (const double t : {kNow, kNow + 45, kNow + 700, kNow + 5000, kNow + 90000}) {
    for (const uint32_t format :
         {TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_JSON_DETAILED, TABA_FORMAT_METRICS}) {
      taba_status st = TABA_OK;
      const std::string text = s.render(t, format, &st);
      out.push_back(text + " (status " + std::to_string(st) + ")");
    }
  }
  return out;
}

void check_same(const State& a, const State& b, const std::string& what) {
  INFO(what);
  CHECK(a.serialize() == b.serialize());
  const std::vector<std::string> ra = renders(a), rb = renders(b);
  for (size_t i = 0; i < ra.size(); ++i) {
    INFO("render " << i);
    CHECK(ra[i] == rb[i]);
  }
}

const taba_handler& handler_of(const std::string& type) {
  if (type == "CounterGroup") return counter_group();
  if (type == "TotalsCounter") return totals_counter();
  if (type == "PercentileCounter") return percentile_counter();
  return percentile_group();
}

// The text of the "total" that follows `after` in a render.
std::string total_after(const std::string& render, const std::string& after) {
  const size_t at = render.find(after);
  REQUIRE(at != std::string::npos);
  const size_t from = render.find("\"total\": ", at) + 9;
  return render.substr(from, render.find_first_of(",}", from) - from);
}

// States the previous release wrote (the plugins of commit 70ba471, sums
// as doubles): client "c1" folded kOldEvents at kOldNow. Its exact renders
// showed the double sums' artifacts: the 1m total 0.060000000000000005,
// the 1h one 2896.0660000000003.
constexpr double kOldT0 = 1400000400;
constexpr double kOldNow = kOldT0 + 1;

Events old_events() {
  Events ev;
  ev.number(kOldT0, 0.01).number(kOldT0 + 0.5, 0.04).number(kOldT0 + 0.75, 0.01);
  ev.number(kOldT0 - 100, 2895.996).number(kOldT0 - 100, 0.01);
  ev.number(kOldT0 - 4000, 3000000.01).number(kOldT0 - 4000, -0.3);
  return ev;
}

// CounterGroup, state version 2.
const std::string kOldCounterGroup(
    "\x04\x01\x3c\xa2\xbe\x92\xb7\x0a\x01\x06\x03\xb9\x1e\x85\xeb\x51\xb8\xae\x3f\x0a\x3c\xd0\xec\xc1"
    "\x85\x01\x02\x2a\x02\x8e\x97\x6e\x12\x03\xa0\xa6\x40\x2a\x03\xb9\x1e\x85\xeb\x51\xb8\xae\x3f\x1e"
    "\x78\xf0\xce\xc0\x2c\x02\x12\x02\x8e\x97\x6e\x12\x03\xa0\xa6\x40\x12\x03\xb9\x1e\x85\xeb\x51\xb8"
    "\xae\x3f\x84\x07\x60\xc8\xf1\xbd\x01\x03\x16\x02\xae\x47\xe1\xda\x5f\xe3\x46\x41\x12\x02\x8e\x97"
    "\x6e\x12\x03\xa0\xa6\x40\x06\x03\xb9\x1e\x85\xeb\x51\xb8\xae\x3f\x00\xce\xf7\x53\xe3\x07\xe9\x46"
    "\x41\x04\xcb\x03\x03\x46\x01\xaf\x04\x01\xdb\x02\x01\x01\x77\x01\x33\x33\x33\x33\x33\x33\xd3\xbf"
    "\x14\xae\x47\x01\x60\xe3\x46\x41",
    152);

// TotalsCounter, state version 1.
const std::string kOldTotalsCounter("\x07\xcf\xf7\x53\xe3\x07\xe9\x46\x41", 9);

// PercentileCounter, state version 2.
const std::string kOldPercentileCounter(
    "\x00\xce\xf7\x53\xe3\x07\xe9\x46\x41\x04\xcb\x03\x03\x46\x01\xaf\x04\x01\xdb\x02\x01\x01\x77\x01"
    "\x33\x33\x33\x33\x33\x33\xd3\xbf\x14\xae\x47\x01\x60\xe3\x46\x41",
    40);

// PercentileGroup, state version 2.
const std::string kOldPercentileGroup(
    "\x04\x0f\x04\xe0\x9d\x81\x59\x01\x00\x00\x00\x00\x00\xec\x51\xb8\xae\x3f\x02\xcb\x03\x02\x46\x01"
    "\x00\x7b\x14\xae\x47\xe1\x7a\x84\x3f\x7b\x14\xae\x47\xe1\x7a\xa4\x3f\x7b\x14\xae\x47\xe1\x7a\x84"
    "\x3f\x96\x01\x04\xb0\xa9\xf3\x08\x02\x01\x00\x00\x98\x6e\x12\x03\xa0\xa6\x40\x02\xcb\x03\x01\xf5"
    "\x04\x01\x00\x7b\x14\xae\x47\xe1\x7a\x84\x3f\xa2\x45\xb6\xf3\xfd\x9f\xa6\x40\x00\x00\x00\x00\x00"
    "\xec\x51\xb8\xae\x3f\x02\xcb\x03\x02\x46\x01\x00\x7b\x14\xae\x47\xe1\x7a\x84\x3f\x7b\x14\xae\x47"
    "\xe1\x7a\xa4\x3f\x7b\x14\xae\x47\xe1\x7a\x84\x3f\x84\x07\x04\xc8\xf1\xbd\x01\x02\x01\x00\x00\x98"
    "\x6e\x12\x03\xa0\xa6\x40\x02\xcb\x03\x01\xf5\x04\x01\x00\x7b\x14\xae\x47\xe1\x7a\x84\x3f\xa2\x45"
    "\xb6\xf3\xfd\x9f\xa6\x40\x00\x00\x00\x00\x00\xec\x51\xb8\xae\x3f\x02\xcb\x03\x02\x46\x01\x00\x7b"
    "\x14\xae\x47\xe1\x7a\x84\x3f\x7b\x14\xae\x47\xe1\x7a\xa4\x3f\x7b\x14\xae\x47\xe1\x7a\x84\x3f\xe0"
    "\xa8\x01\x04\xdc\xf4\x07\x01\x00\x00\xce\xf7\x53\xe3\x07\xe9\x46\x41\x04\xcb\x03\x03\x46\x01\xaf"
    "\x04\x01\xdb\x02\x01\x01\x77\x01\x33\x33\x33\x33\x33\x33\xd3\xbf\x14\xae\x47\x01\x60\xe3\x46\x41",
    264);

}  // namespace

TEST_CASE(
    "exact sums: fold_many, delta sequences, edge deltas and reductions in any order give the same bytes",
    "[plugins][exact_sums]") {
  for (const std::string type : {"CounterGroup", "TotalsCounter", "PercentileCounter", "PercentileGroup"}) {
    const taba_handler& h = handler_of(type);
    for (const uint64_t seed : {1u, 2u, 3u}) {
      INFO(type << ", seed " << seed);
      std::mt19937_64 rng(seed);
      const std::vector<Block> blocks = random_blocks(rng, 1500);

      // A: the fe, blocks in arrival order.
      State agg_a(h, kNow);
      std::vector<State> clients_a;
      for (const std::string& c : kClients) clients_a.emplace_back(h, kNow, c);
      for (const Block& b : blocks) fe_fold(h, &clients_a[b.client], &agg_a, b);

      // B: the delta sequence of handler.h, blocks in reverse order.
      State agg_b(h, kNow);
      std::vector<State> clients_b;
      for (const std::string& c : kClients) clients_b.emplace_back(h, kNow, c);
      for (auto it = blocks.rbegin(); it != blocks.rend(); ++it)
        ingest(h, &clients_b[it->client], &agg_b, kClients[it->client], events_of(it->events), kNow);

      // C: the edge: each client's blocks, shuffled, folded into two deltas,
      // sent serialized, merged by the fe in shuffled order.
      std::vector<Block> shuffled = blocks;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      std::vector<std::pair<size_t, std::unique_ptr<State>>> deltas;  // (client, delta)
      for (size_t half = 0; half < 2; ++half) {
        for (size_t c = 0; c < kClients.size(); ++c) {
          State delta(h, kNow, kClients[c]);
          for (size_t i = half; i < shuffled.size(); i += 2) {
            if (shuffled[i].client == c) delta.fold(events_of(shuffled[i].events), kNow);
          }
          std::unique_ptr<State> sent;
          REQUIRE(deserialize(h, delta.serialize(), h.state_version, &sent) == TABA_OK);
          deltas.emplace_back(c, std::move(sent));
        }
      }
      std::shuffle(deltas.begin(), deltas.end(), rng);
      State agg_c(h, kNow);
      std::vector<State> clients_c;
      for (const std::string& c : kClients) clients_c.emplace_back(h, kNow, c);
      for (const auto& [c, delta] : deltas) {
        clients_c[c].merge(*delta, kNow);
        agg_c.merge(*delta, kNow);
      }

      // D: every event of one client folded straight into its state, in a
      // shuffled order and in chunks of 37.
      std::vector<State> clients_d;
      State single(h, kNow);
      std::vector<Event> all;
      for (const Block& b : blocks) all.insert(all.end(), b.events.begin(), b.events.end());
      std::shuffle(all.begin(), all.end(), rng);
      for (size_t c = 0; c < kClients.size(); ++c) {
        clients_d.emplace_back(h, kNow, kClients[c]);
        std::vector<Event> mine;
        for (const Event& e : all)
          if (e.client == c) mine.push_back(e);
        for (size_t at = 0; at < mine.size(); at += 37)
          clients_d[c].fold(
              events_of(std::vector<Event>(mine.begin() + static_cast<long>(at),
                                           mine.begin() + static_cast<long>(std::min(mine.size(), at + 37)))),
              kNow);
      }
      for (size_t at = 0; at < all.size(); at += 64)
        single.fold(
            events_of(std::vector<Event>(all.begin() + static_cast<long>(at),
                                         all.begin() + static_cast<long>(std::min(all.size(), at + 64)))),
            kNow);

      // E: query-time reduction of the client states, last client first.
      State reduced(h, kNow);
      for (size_t c = kClients.size(); c-- > 0;) reduced.merge(clients_a[c], kNow);

      check_same(agg_a, agg_b, "aggregate: fold_many vs delta sequence");
      check_same(agg_a, agg_c, "aggregate: fe vs deltas folded at the edge");
      check_same(agg_a, single, "aggregate: fe vs one fold of every event");
      check_same(agg_a, reduced, "aggregate: fe vs query-time reduction");
      for (size_t c = 0; c < kClients.size(); ++c) {
        check_same(clients_a[c], clients_b[c], "client " + kClients[c] + ": fold_many vs delta sequence");
        check_same(clients_a[c], clients_c[c], "client " + kClients[c] + ": fe vs deltas folded at the edge");
        check_same(clients_a[c], clients_d[c], "client " + kClients[c] + ": fe vs one fold");
      }
      // The data is one where the order of double additions matters.
      double forward = 0;
      double backward = 0;
      for (const Event& e : all) forward += e.value;
      for (auto it = all.rbegin(); it != all.rend(); ++it) backward += it->value;
      CHECK(forward != backward);
    }
  }
}

TEST_CASE("exact sums: the issue's example renders 0.06 both ways", "[plugins][exact_sums]") {
  // CounterGroup x: c1 0.01, c2 0.01, c1 0.04 in one body. The fe adds
  // them in that order; the edge adds c1's two first. As doubles: 0.06 and
  // 0.060000000000000005.
  for (const std::string type : {"CounterGroup", "TotalsCounter", "PercentileCounter", "PercentileGroup"}) {
    INFO(type);
    const taba_handler& h = handler_of(type);
    State fe(h, kNow);
    State fe_c1(h, kNow, "c1");
    State fe_c2(h, kNow, "c2");
    ingest(h, &fe_c1, &fe, "c1", Events().number(kNow, 0.01), kNow);
    ingest(h, &fe_c2, &fe, "c2", Events().number(kNow, 0.01), kNow);
    ingest(h, &fe_c1, &fe, "c1", Events().number(kNow, 0.04), kNow);
    State edge_c1(h, kNow, "c1");
    edge_c1.fold(Events().number(kNow, 0.01).number(kNow, 0.04), kNow);
    State edge_c2(h, kNow, "c2");
    edge_c2.fold(Events().number(kNow, 0.01), kNow);
    State edge(h, kNow);
    edge.merge(edge_c1, kNow);
    edge.merge(edge_c2, kNow);
    check_same(fe, edge, "fe vs edge");
    const std::string exact = edge.render(kNow, TABA_FORMAT_JSON_EXACT);
    CHECK(total_after(exact, "{") == "0.06");
    CHECK(exact.find("0.060000000000000005") == std::string::npos);
  }
}

TEST_CASE("exact sums: states of the previous release read and render as the same events folded now",
          "[plugins][exact_sums][upgrade]") {
  struct Old {
    std::string type;
    uint32_t version;
    const std::string* bytes;
  };
  for (const Old& old :
       {Old{"CounterGroup", 2, &kOldCounterGroup}, Old{"TotalsCounter", 1, &kOldTotalsCounter},
        Old{"PercentileCounter", 2, &kOldPercentileCounter},
        Old{"PercentileGroup", 2, &kOldPercentileGroup}}) {
    INFO(old.type << " version " << old.version);
    const taba_handler& h = handler_of(old.type);
    REQUIRE(h.state_version > old.version);
    std::unique_ptr<State> read;
    std::string reason;
    REQUIRE(deserialize(h, *old.bytes, old.version, &read, &reason) == TABA_OK);
    // Renders as the same events folded by this release: the double sums
    // read as ExactSum::of(the double) are within their resolution of the
    // exact ones.
    State fresh(h, kOldNow, "c1");
    fresh.fold(old_events(), kOldNow);
    for (const double t : {kOldNow, kOldNow + 200, kOldNow + 4000, kOldNow + 90000}) {
      for (const uint32_t format : {TABA_FORMAT_JSON, TABA_FORMAT_JSON_EXACT, TABA_FORMAT_JSON_DETAILED}) {
        taba_status a;
        taba_status b;
        INFO("at " << fmt_double(t) << ", format " << format);
        CHECK(read->render(t, format, &a) == fresh.render(t, format, &b));
        CHECK(a == b);
      }
    }
    const std::string exact = read->render(kOldNow, TABA_FORMAT_JSON_EXACT);
    CHECK(exact.find("0.060000000000000005") == std::string::npos);
    CHECK(exact.find("2896.0660000000003") == std::string::npos);
    // Written again at this release's version, it reads back the same.
    std::unique_ptr<State> again;
    REQUIRE(deserialize(h, read->serialize(), h.state_version, &again, &reason) == TABA_OK);
    CHECK(again->serialize() == read->serialize());
    // Merged with new events it adds on: twice the events, twice the total.
    State aggregate(h, kOldNow);
    aggregate.merge(*read, kOldNow);
    aggregate.merge(fresh, kOldNow);
    const std::string merged = aggregate.render(kOldNow, TABA_FORMAT_JSON_EXACT);
    if (old.type == "CounterGroup") {
      CHECK(total_after(merged, "\"1m\"") == "0.12");
      CHECK(total_after(merged, "\"1h\"") == "5792.132");
      CHECK(total_after(merged, "\"1d\"") == "6005791.552");
      CHECK(total_after(merged, "\"pct\"") == "6005791.552");
    } else if (old.type == "PercentileGroup") {
      CHECK(total_after(merged, "\"1m\"") == "0.12");
      CHECK(total_after(merged, "\"1d\"") == "6005791.552");
    } else {
      CHECK(total_after(merged, "{") == "6005791.552");
    }
  }
  // The previous release's exact render of that CounterGroup state, for
  // the record: the version 2 bytes hold the double sums.
  std::unique_ptr<State> cg;
  REQUIRE(deserialize(counter_group(), kOldCounterGroup, 2, &cg) == TABA_OK);
  CHECK(
      cg->render(kOldNow, TABA_FORMAT_JSON_EXACT)
          .rfind(
              R"({"1m": {"count": 3, "total": 0.06, "average": 0.02}, "10m": {"count": 5, "total": 2896.066, )",
              0) == 0);
  CHECK(cg->render(kOldNow).rfind(
            R"({"1m": {"count": 3, "total": 0.06, "average": 0.02}, "10m": {"count": 5, "total": 2896.07, )",
            0) == 0);
}

TEST_CASE("exact sums: ExactSum's fixed point and its 128-bit varint", "[exact_sum]") {
  // fixed_of rounds to the nearest multiple of 2^-32, ties to even, as
  // std::nearbyint, on its fast path and beyond it.
  std::mt19937_64 rng(99);
  for (int i = 0; i < 100000; ++i) {
    const double v = std::ldexp(std::uniform_real_distribution<double>(-1, 1)(rng),
                                std::uniform_int_distribution<int>(-40, 70)(rng));
    const double scaled = v * 4294967296.0;
    INFO(fmt_double(v));
    REQUIRE(ExactSum::fixed_of(v) == static_cast<__int128>(std::nearbyint(scaled)));
  }
  CHECK(ExactSum::fixed_of(std::ldexp(1, -33)) == 0);  // 0.5: to even
  CHECK(ExactSum::fixed_of(std::ldexp(3, -33)) == 2);  // 1.5: to even
  CHECK(ExactSum::fixed_of(-std::ldexp(3, -33)) == -2);
  CHECK(ExactSum::fixed_of(std::ldexp(1, 30)) == static_cast<__int128>(1)
                                                     << 62);            // the first value past the fast path
  CHECK(ExactSum::fixed_of(1e300) == static_cast<__int128>(1) << 122);  // clamped to 2^90
  CHECK(ExactSum::fixed_of(-std::numeric_limits<double>::infinity()) == -(static_cast<__int128>(1) << 122));
  CHECK(ExactSum::fixed_of(std::numeric_limits<double>::quiet_NaN()) == 0);
  // Saturation at the ends of the 128-bit range.
  ExactSum big = ExactSum::of(1e300);
  for (int i = 0; i < 40; ++i) big.merge(ExactSum::of(1e300));
  CHECK(big.fixed() == std::numeric_limits<__int128>::max());
  // Round trips of the zigzag varint, and its refusals.
  const std::vector<__int128> values = {0,
                                        -1,
                                        1,
                                        63,
                                        -64,
                                        64,
                                        INT64_MAX,
                                        INT64_MIN,
                                        static_cast<__int128>(INT64_MAX) + 1,
                                        ExactSum::fixed_of(-2.5e9),
                                        std::numeric_limits<__int128>::max(),
                                        std::numeric_limits<__int128>::min()};
  ByteWriter w;
  for (const __int128 v : values) w.put_svarint128(v);
  ByteReader r(w.bytes().data(), w.bytes().size());
  for (const __int128 v : values) {
    __int128 got;
    REQUIRE(r.get_svarint128(&got));
    CHECK(got == v);
  }
  CHECK(r.at_end());
  // A value of int64 range has the bytes of put_svarint.
  ByteWriter w64;
  w64.put_svarint(-123456789);
  ByteWriter w128;
  w128.put_svarint128(-123456789);
  CHECK(w64.bytes() == w128.bytes());
  __int128 v;
  const std::string nineteen = std::string(18, '\xff') + "\x03";
  ByteReader top(nineteen.data(), nineteen.size());
  CHECK(top.get_svarint128(&v));
  const std::string too_big = std::string(18, '\xff') + "\x04";
  ByteReader over(too_big.data(), too_big.size());
  CHECK_FALSE(over.get_svarint128(&v));
  const std::string twenty = std::string(19, '\xff') + "\x01";
  ByteReader too_long(twenty.data(), twenty.size());
  CHECK_FALSE(too_long.get_svarint128(&v));
  ByteReader truncated("\x80\x80", 2);
  CHECK_FALSE(truncated.get_svarint128(&v));
  CHECK(truncated.remaining() == 2);
}

TEST_CASE("exact sums: a window bucket past 2^31 keeps every bit, in any order", "[windows][exact_sums]") {
  // Values whose sums leave the 64-bit fixed-point word (|sum| >= 2^31):
  // the window adds its high words, and the sums stay exact.
  std::mt19937_64 rng(5);
  std::vector<double> values;
  for (int i = 0; i < 300; ++i)
    values.push_back((i % 3 == 0 ? -1 : 1) * (2.5e9 + static_cast<double>(rng() % 100000) / 1000));
  ExactSum expected;
  for (const double v : values) expected.add(v);
  std::string first_bytes;
  for (int round = 0; round < 5; ++round) {
    std::shuffle(values.begin(), values.end(), rng);
    FixedBucketWindow<4> a(1, 100);
    FixedBucketWindow<4> b(1, 100);
    for (size_t i = 0; i < values.size(); ++i) (i % 2 == 0 ? a : b).add(100, 1, ExactSum::of(values[i]));
    a.merge_from(b, 100);
    CHECK(a.bucket(100).count == values.size());
    CHECK(a.bucket(100).sum == expected);
    CHECK(a.heap_bytes() > 0);
    ByteWriter w;
    a.serialize(&w);
    if (round == 0) first_bytes = w.bytes();
    CHECK(w.bytes() == first_bytes);
    FixedBucketWindow<4> copy(1, 0);
    ByteReader r(w.bytes().data(), w.bytes().size());
    const char* why = nullptr;
    REQUIRE(copy.deserialize(&r, FixedBucketWindow<4>::kForm, &why));
    CHECK(copy.bucket(100).sum == expected);
  }
  // A window without high words merged into one with them, and back.
  FixedBucketWindow<4> small(1, 100);
  small.add(99, 2, ExactSum::of(0.03));
  FixedBucketWindow<4> large(1, 100);
  large.add(99, 1, ExactSum::of(3e9));
  large.add(99, 1, ExactSum::of(-3e9));
  CHECK(large.heap_bytes() > 0);
  large.merge_from(small, 100);
  small.merge_from(large, 100);
  CHECK(small.bucket(99).sum == ExactSum::from_fixed(2 * ExactSum::fixed_of(0.03)));
  CHECK(small.bucket(99).count == 6);
  CHECK(large.bucket(99).sum == ExactSum::of(0.03));
}
