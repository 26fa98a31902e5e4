// The forms a spooled segment is forwarded in (agent/segment_forms.h): v1
// blocks folded into one delta per (client, name, type) at each record's
// receive time, delta records copied, blocks of unknown types kept as v1
// leftovers, the main part as v1 for an older fe, and refused delta blocks
// traced back to what they were made of. Also the endpoints' /post_delta
// state (agent/endpoint_pool.h).
#include "agent/segment_forms.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "agent/endpoint_pool.h"
#include "plugin_batches.h"
#include "protocol/batch.h"
#include "protocol/delta_batch.h"
#include "protocol/delta_fold.h"
#include "protocol/payload.h"

using namespace taba;

namespace {

struct Ev {
  std::string client, name, type;
  std::vector<double> values;
};

// A v1 batch received at `t` (the agent's ingest writes these), one block
// per Ev, every event stamped `t`.
std::string v1_batch(double t, const std::vector<Ev>& blocks) {
  protocol::BatchWriter w;
  w.reset(t);
  for (const Ev& b : blocks) {
    w.begin_block(b.client, b.name, b.type);
    for (double v : b.values) {
      std::string text = fmt::format("{}", v);
      taba_event ev;
      REQUIRE(protocol::parse_payload(text, &ev).empty());
      w.add_event(t, ev.payload);
    }
  }
  return w.finish();
}

// A delta batch folded from `blocks` at `t` (a client-proxy's post).
std::string delta_batch(double t, const std::vector<Ev>& blocks) {
  protocol::DeltaFolder f(&test::built_plugins());
  REQUIRE(f.fold_batch(v1_batch(t, blocks), true, nullptr).ok());
  auto r = f.finish(t);
  REQUIRE(r.ok());
  return r.value();
}

// The records point into `batches`, which must outlive the contents.
agent::SegmentContents contents_of(const std::vector<std::string>& batches) {
  agent::SegmentContents c;
  c.batch_id = std::string(32, 'a');
  for (const std::string& b : batches) c.records.push_back({"", 0, b});
  return c;
}

std::vector<protocol::DeltaBlock> blocks_of(std::string_view batch) {
  std::vector<protocol::DeltaBlock> out;
  protocol::DeltaReader r(batch);
  REQUIRE(r.open().ok());
  protocol::DeltaBlock b;
  Status s;
  while (r.next(&b, &s)) out.push_back(b);
  REQUIRE(s.ok());
  return out;
}

const agent::HandlerMap& handlers() {
  static const agent::HandlerMap map = agent::handler_map(test::built_plugins());
  return map;
}

}  // namespace

TEST_CASE("segment forms: v1 blocks fold per (client, name, type), delta records are copied, unknown types are left over",
          "[agent-forms]") {
  const double t0 = 1763830000.0, t1 = 1763830001.5;
  std::string a = v1_batch(t0, {{"c1", "a", "CounterGroup", {1, 2}},
                                {"c1", "u", "NoPluginHere", {5}},
                                {"c2", "a", "CounterGroup", {3}}});
  std::string b = delta_batch(t0, {{"c3", "b", "TotalsCounter", {7}}});
  std::string c = v1_batch(t1, {{"c1", "a", "CounterGroup", {4}}, {"c1", "p", "PercentileGroup", {9}}});
  const std::vector<std::string> batches{a, b, c};
  agent::SegmentContents contents = contents_of(batches);
  agent::SegmentForms forms(contents, handlers());
  CHECK(forms.corrupt() == 0);
  CHECK(forms.holds_deltas());
  CHECK(forms.main_events() == 6);
  CHECK(forms.leftover_events() == 1);
  CHECK(forms.events() == 7);
  REQUIRE(forms.v1_blocks().size() == 5);
  CHECK_FALSE(forms.v1_blocks()[1].foldable);
  CHECK(forms.v1_blocks()[3].record == 2);
  CHECK(forms.v1_blocks()[3].index == 0);

  agent::DeltaBody body;
  REQUIRE(forms.fold(&body).ok());
  CHECK(body.folded_blocks == 3);
  CHECK(body.blocks == 4);
  CHECK(body.events == 6);
  auto blocks = blocks_of(body.batch);
  REQUIRE(blocks.size() == 4);
  CHECK((blocks[0].client == "c1" && blocks[0].name == "a" && blocks[0].type == "CounterGroup"));
  CHECK(blocks[0].events == 3);
  CHECK((blocks[1].client == "c2" && blocks[1].name == "a"));
  CHECK((blocks[2].name == "p" && blocks[2].type == "PercentileGroup"));
  CHECK((blocks[3].client == "c3" && blocks[3].type == "TotalsCounter"));
  // The same states the events make folded each at its record's receive
  // time, and the copied block byte for byte.
  protocol::DeltaFolder direct(&test::built_plugins());
  REQUIRE(direct.fold_batch(v1_batch(t0, {{"c1", "a", "CounterGroup", {1, 2}}}), true, nullptr).ok());
  REQUIRE(direct.fold_batch(v1_batch(t1, {{"c1", "a", "CounterGroup", {4}}}), true, nullptr).ok());
  auto expected = direct.finish(t1);
  REQUIRE(expected.ok());
  CHECK(blocks[0].state == blocks_of(expected.value())[0].state);
  CHECK(blocks[3].state == blocks_of(b)[0].state);
  // Stamped with the latest receive time: the same bytes on every fold.
  protocol::DeltaReader header(body.batch);
  REQUIRE(header.open().ok());
  CHECK(header.time() == t1);
  agent::DeltaBody again;
  REQUIRE(forms.fold(&again).ok());
  CHECK(again.batch == body.batch);

  agent::V1Body main_v1 = forms.main_v1();
  CHECK(main_v1.events == 5);
  CHECK(main_v1.blocks == std::vector<size_t>{0, 2, 3, 4});
  CHECK(main_v1.lines.size() == 4);
  CHECK(main_v1.text.find("NoPluginHere") == std::string::npos);
  agent::V1Body left = forms.leftovers();
  CHECK(left.events == 1);
  CHECK(left.blocks == std::vector<size_t>{1});
  CHECK(left.text == fmt::format("1\n\nc1\n\nu\n[\"NoPluginHere\",{},\"5\"]\n\n\n", t0));
}

TEST_CASE("segment forms: past max_deltas triples, the blocks of new (client, name, type)s are left over as v1",
          "[agent-forms]") {
  const double t0 = 1763830000.0, t1 = 1763830001.0;
  std::string a = v1_batch(t0, {{"c1", "a", "CounterGroup", {1}}, {"c2", "a", "CounterGroup", {2}}});
  // c1/a is folded already: it stays foldable; c3/a and c1/b are new.
  std::string b = v1_batch(t1, {{"c3", "a", "CounterGroup", {3, 4}},
                                {"c1", "a", "CounterGroup", {5}},
                                {"c1", "b", "TotalsCounter", {6}}});
  std::string d = delta_batch(t0, {{"c9", "z", "TotalsCounter", {7}}});
  const std::vector<std::string> batches{a, b, d};
  agent::SegmentContents contents = contents_of(batches);
  agent::SegmentForms forms(contents, handlers(), 2);
  REQUIRE(forms.v1_blocks().size() == 5);
  CHECK(forms.v1_blocks()[0].foldable);
  CHECK(forms.v1_blocks()[1].foldable);
  CHECK_FALSE(forms.v1_blocks()[2].foldable);
  CHECK(forms.v1_blocks()[3].foldable);
  CHECK_FALSE(forms.v1_blocks()[4].foldable);
  CHECK(forms.main_events() == 1 + 1 + 1 + 1);  // c1/a twice, c2/a, the copied delta block
  CHECK(forms.leftover_events() == 3);
  agent::DeltaBody body;
  REQUIRE(forms.fold(&body).ok());
  CHECK(body.folded_blocks == 2);  // no more states than the cap, the copied delta block aside
  CHECK(body.blocks == 3);
  CHECK(body.events == 4);
  agent::V1Body left = forms.leftovers();
  CHECK(left.events == 3);
  CHECK(left.blocks == std::vector<size_t>{2, 4});
  // Without a cap every triple folds.
  agent::SegmentForms all(contents, handlers());
  CHECK(all.leftover_events() == 0);
  agent::DeltaBody every;
  REQUIRE(all.fold(&every).ok());
  CHECK(every.folded_blocks == 4);
}

TEST_CASE("segment forms: refused delta blocks become the v1 events they were folded from and the delta blocks copied",
          "[agent-forms]") {
  const double t0 = 1763830000.0, t1 = 1763830002.0;
  std::string a = v1_batch(t0, {{"c1", "a", "CounterGroup", {1, 2}}, {"c2", "g", "TotalsCounter", {3}}});
  std::string b = delta_batch(t0, {{"c3", "b", "TotalsCounter", {7, 8}}});
  std::string c = v1_batch(t1, {{"c1", "a", "CounterGroup", {4}}});
  const std::vector<std::string> batches{a, b, c};
  agent::SegmentContents contents = contents_of(batches);
  agent::SegmentForms forms(contents, handlers());
  agent::DeltaBody body;
  REQUIRE(forms.fold(&body).ok());
  REQUIRE(body.blocks == 3);

  agent::RefusedDeltas none = forms.refused(body, "");
  CHECK(none.blocks == 0);
  CHECK(none.events() == 0);

  // Block 9 is not in the batch: ignored.
  agent::RefusedDeltas r =
      forms.refused(body, "block 1: type \"CounterGroup\" conflicts\nblock 3: cannot read\nblock 9: what\n");
  CHECK(r.blocks == 2);
  CHECK(r.v1.blocks == 1);
  CHECK(r.v1.events == 3);
  CHECK(r.v1.body == fmt::format("1\n\nc1\n\na\n[\"CounterGroup\",{},\"1\"]\n[\"CounterGroup\",{},\"2\"]\n\n"
                                 "a\n[\"CounterGroup\",{},\"4\"]\n\n\n",
                                 t0, t0, t1));
  CHECK(r.v1.reasons == "block 1: client \"c1\" name \"a\" type CounterGroup, 3 events: type \"CounterGroup\" conflicts\n");
  CHECK(r.delta.blocks == 1);
  CHECK(r.delta.events == 2);
  auto copied = blocks_of(r.delta.body);
  REQUIRE(copied.size() == 1);
  CHECK(copied[0].state == blocks_of(b)[0].state);
  CHECK(r.delta.reasons == "block 3: client \"c3\" name \"b\" type TotalsCounter, 2 events: cannot read\n");
  CHECK(r.events() == 5);
}

TEST_CASE("segment forms: unreadable records are counted and sent nowhere, and without handlers all v1 is left over",
          "[agent-forms]") {
  std::string good = v1_batch(1763830000.0, {{"c1", "a", "CounterGroup", {1}}});
  std::string cut_v1 = good.substr(0, good.size() - 3);
  std::string delta = delta_batch(1763830000.0, {{"c1", "d", "TotalsCounter", {1}}});
  std::string cut_delta = delta.substr(0, delta.size() - 2);
  const std::vector<std::string> batches{good, cut_v1, cut_delta};
  agent::SegmentContents contents = contents_of(batches);
  agent::SegmentForms forms(contents, handlers());
  CHECK(forms.corrupt() == 2);
  CHECK_FALSE(forms.holds_deltas());
  CHECK(forms.events() == 1);

  agent::HandlerMap no_handlers;
  const std::vector<std::string> both_batches{good, delta};
  agent::SegmentContents both = contents_of(both_batches);
  agent::SegmentForms bare(both, no_handlers);
  CHECK(bare.main_events() == 1);  // the delta record's
  CHECK(bare.leftover_events() == 1);
  agent::DeltaBody body;
  REQUIRE(bare.fold(&body).ok());
  CHECK(body.folded_blocks == 0);
  CHECK(body.blocks == 1);
  CHECK(bare.main_v1().events == 0);
}

TEST_CASE("segment forms: refusal lines are \"block N: reason\" with N from 1", "[agent-forms]") {
  auto lines = agent::refused_block_lines("block 2: x y\nline 3: v1\nblock 0: none\nblock 12:tight\nblockx: no\n"
                                          "block 99999999999: too big\nblock 4\nblock 5: last");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == std::pair<uint32_t, std::string_view>{2, "x y"});
  CHECK(lines[1] == std::pair<uint32_t, std::string_view>{12, "tight"});
  CHECK(lines[2] == std::pair<uint32_t, std::string_view>{5, "last"});
}

TEST_CASE("endpoint pool: an fe that answered /post_delta with 404 gets no deltas until its probe time",
          "[agent-forms]") {
  agent::EndpointPool pool({"127.0.0.1:1", "127.0.0.1:2"}, 100, 1000);
  int64_t wait = 0;
  const int64_t now = 1'000'000;
  CHECK(agent::EndpointPool::may_take_deltas(pool.at(0), now));  // not tried yet
  CHECK(pool.delta_answered(pool.at(0), false, now, 300'000));
  CHECK_FALSE(pool.delta_answered(pool.at(0), false, now, 300'000));  // nothing new
  CHECK_FALSE(agent::EndpointPool::may_take_deltas(pool.at(0), now + 299'999));
  CHECK(agent::EndpointPool::may_take_deltas(pool.at(0), now + 300'000));
  // Deltas go only to the other endpoint; v1 to either.
  for (int i = 0; i < 4; ++i) CHECK(pool.choose(now + 1, &wait, true) == 1);
  CHECK(pool.delta_answered(pool.at(1), false, now, 60'000));
  CHECK_FALSE(pool.any_takes_deltas(now + 1));
  CHECK(pool.choose(now + 1, &wait, true) == -1);
  CHECK(wait == now + 60'000);  // the first probe time
  CHECK(pool.choose(now + 1, &wait, false) >= 0);
  CHECK(pool.choose(now + 60'000, &wait, true) == 1);
  CHECK(pool.delta_answered(pool.at(1), true, now + 60'000, 60'000));
  CHECK(agent::EndpointPool::may_take_deltas(pool.at(1), now + 60'001));
  CHECK(pool.any_takes_deltas(now + 60'001));
}
