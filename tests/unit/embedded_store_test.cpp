// The embedded store in-process, on a libuv loop with a temporary data
// directory and the built plugins: batches decoded as the ingest route
// decodes them are submitted and read back through fetch's ReadView; a
// snapshot plus the WAL after it recover the same state in a reopened store;
// type-binding conflicts, the name limits, and the delete and GC reports;
// delta batches (folded at the edge) give the states their events give.
#include "store/embedded/embedded_store.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "plugin_batches.h"
#include "protocol/delta_batch.h"
#include "query/params.h"
#include "query/query_service.h"
#include "temp_dir.h"

using namespace taba;
using taba::test::Event;

namespace {

// Runs one EmbeddedStore at a time over a data directory that lives as long
// as the run; the store can be closed and reopened on the same directory.
class StoreRun {
 public:
  StoreRun() {
    REQUIRE(uv_loop_init(&loop_) == 0);
  }
  ~StoreRun() {
    if (store_) {
      bool closed = false;
      store_->close([&closed] { closed = true; });
      run_until([&closed] { return closed; });
      store_.reset();
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);  // fails if the store leaked a handle
  }
  StoreRun(const StoreRun&) = delete;
  StoreRun& operator=(const StoreRun&) = delete;

  std::string data_dir() const { return dir_.path() + "/data"; }
  // Takes the files of another run's open store as they are now: what a
  // process killed at this moment would leave (every record acknowledged so
  // far is written; kill -9 loses nothing the page cache holds).
  void copy_data_of(const StoreRun& other) {
    REQUIRE_FALSE(store_);
    std::filesystem::copy(other.data_dir(), data_dir(), std::filesystem::copy_options::recursive);
  }

  store::EmbeddedStore& open() {
    REQUIRE_FALSE(store_);
    store::StoreOptions options;
    options.dir = data_dir();
    store_ = std::make_unique<store::EmbeddedStore>(&loop_, &test::built_plugins(), options);
    Status s = store_->open();
    INFO(s.message());
    REQUIRE(s.ok());
    return *store_;
  }
  // Closes the store (final snapshot, WAL closed) and destroys it.
  void close() {
    REQUIRE(store_);
    bool closed = false;
    store_->close([&closed] { closed = true; });
    REQUIRE(run_until([&closed] { return closed; }));
    store_.reset();
  }
  store::EmbeddedStore& store() {
    REQUIRE(store_);
    return *store_;
  }

  // Decodes `body` against the store's bindings, submits it and waits for
  // the outcome.
  Status submit(const std::string& body, store::BatchId id = {}) {
    return submit_decoded(test::decode_v1(body, wall_now(), store_.get()), std::move(id));
  }
  // The events of `body`, received at `t`, folded into a delta batch (as
  // the edge folds them) and submitted with the bindings the body makes.
  Status submit_folded(const std::string& body, double t, store::BatchId id = {}) {
    test::DecodedBody folded = test::decode_v1(body, t, store_.get());
    folded.batch = test::delta_batch(body, t);
    return submit_decoded(std::move(folded), std::move(id));
  }
  Status submit_decoded(test::DecodedBody decoded, store::BatchId id = {}) {
    Status result = Status::Internal("submit did not answer");
    bool done = false;
    store().submit(std::move(decoded.batch), std::move(id), std::move(decoded.new_bindings),
                   [&](const Status& s) {
                     result = s;
                     done = true;
                   });
    REQUIRE(run_until([&done] { return done; }));
    return result;
  }
  Status snapshot() {
    Status result = Status::Internal("snapshot did not answer");
    bool done = false;
    store().snapshot_now([&](const Status& s) {
      result = s;
      done = true;
    });
    REQUIRE(run_until([&done] { return done; }));
    return result;
  }
  store::Report delete_names(const Matcher& names) {
    return report_of([&](store::ReportCallback cb) { store().delete_names(names, std::move(cb)); });
  }
  store::Report gc() {
    return report_of([&](store::ReportCallback cb) { store().gc(std::move(cb)); });
  }

  // Runs the loop until `done()` or 20 s have passed; returns done().
  bool run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      if (!done()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
  }

 private:
  store::Report report_of(const std::function<void(store::ReportCallback)>& start) {
    store::Report report;
    Status result = Status::Internal("no report");
    bool done = false;
    start([&](const Status& s, const store::Report& r) {
      result = s;
      report = r;
      done = true;
    });
    REQUIRE(run_until([&done] { return done; }));
    INFO(result.message());
    REQUIRE(result.ok());
    return report;
  }

  uv_loop_t loop_;
  taba::test_support::TempDir dir_{"taba_store_test."};  // removed after the store is closed
  std::unique_ptr<store::EmbeddedStore> store_;
};

Matcher names_matching(std::vector<std::string> values, bool re) {
  auto m = Matcher::make(values, re, true);
  REQUIRE(m.ok());
  return std::move(m.value());
}

// The view fetch hands out for a query of every name, client and state.
const store::ReadView& fetch_all(store::Store& store) {
  static const Matcher kAny = Matcher::make({}, false, false).value();
  store::QueryNeed need;
  need.names = &kAny;
  need.clients = &kAny;
  need.aggregates = need.states = need.client_list = true;
  const store::ReadView* view = nullptr;
  store.fetch(need, [&view](const Status& s, const store::ReadView* v) {
    REQUIRE(s.ok());
    view = v;
  });
  REQUIRE(view != nullptr);  // the embedded store answers at once
  return *view;
}

std::string render(const store::NameEntry& entry, const store::State& state, double now) {
  return query::render_state(entry.handler, state.get(), TABA_FORMAT_JSON_EXACT, now);
}

// Everything a query can read from the store, rendered at `now`, sorted:
// "name Type = <aggregate>", "name/client = <state>", "client C" for each
// client that holds a state.
std::vector<std::string> contents(store::Store& store, double now) {
  const store::ReadView& view = fetch_all(store);
  std::vector<std::string> out;
  for (const store::NameEntry* e : view.names()) {
    out.push_back(e->name + " " + e->handler->type_name + " = " + render(*e, e->aggregate, now));
    e->states.for_each([&](store::ClientIndex ci, const store::State& st) {
      out.push_back(e->name + "/" + view.clients()[ci] + " = " + render(*e, st, now));
    });
  }
  for (store::ClientIndex ci = 0; ci < view.clients().size(); ++ci) {
    if (view.client_has_states(ci)) out.push_back("client " + view.clients()[ci]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> name_list(store::Store& store) {
  std::vector<std::string> out;
  for (const store::NameEntry* e : fetch_all(store).names()) out.push_back(e->name);
  return out;
}

std::vector<std::pair<std::string, int64_t>> counts(std::initializer_list<std::pair<std::string, int64_t>> c) {
  return c;
}

}  // namespace

TEST_CASE("embedded store: submitted batches apply, and a reopened store recovers them from snapshot and WAL",
          "[embedded_store]") {
  StoreRun run;
  run.open();
  const double t = wall_now();
  REQUIRE(run.submit(test::v1_body({{"web01", "hits", "TotalsCounter", "1"},
                                    {"web01", "hits", "TotalsCounter", "2"},
                                    {"web01", "color", "Gauge", "\"red\""},
                                    {"web02", "hits", "TotalsCounter", "3"},
                                    {"web02", "color", "Gauge", "\"blue\""}},
                                   t))
              .ok());

  const store::ReadView& view = fetch_all(run.store());
  REQUIRE(view.names().size() == 2);
  const store::NameEntry* hits = view.find_name("hits");
  REQUIRE(hits != nullptr);
  CHECK(hits->handler == test::handler_of("TotalsCounter"));
  CHECK(render(*hits, hits->aggregate, t) == R"({"count": 3, "total": 6, "average": 2})");
  CHECK(hits->states.size() == 2);
  CHECK(view.find_name("nope") == nullptr);
  CHECK(view.clients() == std::vector<std::string>{"web01", "web02"});
  const std::vector<std::string> first = {
      R"(client web01)",
      R"(client web02)",
      R"(color Gauge = {"blue": 1, "red": 1})",
      R"(color/web01 = {"red": 1})",
      R"(color/web02 = {"blue": 1})",
      R"(hits TotalsCounter = {"count": 3, "total": 6, "average": 2})",
      R"(hits/web01 = {"count": 2, "total": 3, "average": 1.5})",
      R"(hits/web02 = {"count": 1, "total": 3, "average": 3})",
  };
  CHECK(contents(run.store(), t) == first);
  CHECK(run.store().stats().batches_applied == 1);
  CHECK(run.store().stats().events_applied == 5);

  // A snapshot, then a batch that only the WAL after it holds.
  REQUIRE(run.snapshot().ok());
  CHECK(run.store().wal_stats().snapshots_written == 1);
  const std::string second_body =
      test::v1_body({{"web03", "hits", "TotalsCounter", "10"}, {"web03", "queue", "TotalsCounter", "[4, \"x\"]"}}, t);
  REQUIRE(run.submit(second_body, store::BatchId{"batch-2", true}).ok());
  const std::vector<std::string> before = contents(run.store(), t);
  CHECK(before.size() == first.size() + 4);  // client web03, hits/web03, queue, queue/web03
  CHECK(std::find(before.begin(), before.end(), R"(hits TotalsCounter = {"count": 4, "total": 16, "average": 4})") !=
        before.end());

  // Killed now, the store would recover the snapshot and replay the WAL after it.
  StoreRun crashed;
  crashed.copy_data_of(run);
  store::EmbeddedStore& recovered = crashed.open();
  CHECK(contents(recovered, t) == before);
  CHECK(recovered.stats().batches_replayed == 1);  // the snapshot holds the first batch
  CHECK(recovered.bound_handler("queue") == test::handler_of("TotalsCounter"));
  // The batch id came back with the WAL: a retry is acknowledged, not applied again.
  REQUIRE(crashed.submit(second_body, store::BatchId{"batch-2", true}).ok());
  CHECK(recovered.stats().batches_duplicate == 1);
  CHECK(contents(recovered, t) == before);

  // Closed, it writes a final snapshot, which holds everything.
  run.close();
  store::EmbeddedStore& reopened = run.open();
  CHECK(contents(reopened, t) == before);
  CHECK(reopened.stats().batches_replayed == 0);
  REQUIRE(run.submit(second_body, store::BatchId{"batch-2", true}).ok());
  CHECK(reopened.stats().batches_duplicate == 1);
  CHECK(contents(reopened, t) == before);
}

TEST_CASE("embedded store: a name keeps its type, and a batch binding it to another is refused whole",
          "[embedded_store]") {
  StoreRun run;
  run.open();
  const double t = wall_now();
  REQUIRE(run.submit(test::v1_body({{"c1", "x", "TotalsCounter", "1"}}, t)).ok());

  // Decoded before "x" was bound (as another request may have been): the
  // store re-checks the binding and applies nothing of the batch.
  test::DecodedBody late =
      test::decode_v1(test::v1_body({{"c2", "fresh", "TotalsCounter", "1"}, {"c2", "x", "Gauge", "\"on\""}}, t), t);
  REQUIRE(late.new_bindings.size() == 2);
  Status conflict = run.submit_decoded(std::move(late));
  CHECK(conflict.code() == Status::Code::kInvalid);
  CHECK(conflict.message() == R"(type "Gauge" conflicts with type "TotalsCounter" bound to name "x")");
  CHECK(name_list(run.store()) == std::vector<std::string>{"x"});
  CHECK(run.store().bound_handler("fresh") == nullptr);

  // A batch in flight reserves the names it binds: a second one binding
  // them otherwise is refused before the first is applied.
  store::EmbeddedStore& store = run.store();
  test::DecodedBody first = test::decode_v1(test::v1_body({{"c1", "y", "TotalsCounter", "5"}}, t), t, &store);
  test::DecodedBody second = test::decode_v1(test::v1_body({{"c2", "y", "Gauge", "\"on\""}}, t), t, &store);
  std::vector<Status> outcomes;
  store.submit(std::move(first.batch), {}, std::move(first.new_bindings),
               [&](const Status& s) { outcomes.push_back(s); });
  CHECK(store.bound_handler("y") == test::handler_of("TotalsCounter"));
  store.submit(std::move(second.batch), {}, std::move(second.new_bindings),
               [&](const Status& s) { outcomes.push_back(s); });
  REQUIRE(run.run_until([&] { return outcomes.size() == 2; }));
  CHECK(outcomes[0].code() == Status::Code::kInvalid);  // the second, answered at once
  CHECK(outcomes[0].message() == R"(type "Gauge" conflicts with type "TotalsCounter" bound to name "y")");
  CHECK(outcomes[1].ok());
  CHECK(contents(store, t) == std::vector<std::string>{
                                  R"(client c1)",
                                  R"(x TotalsCounter = {"count": 1, "total": 1, "average": 1})",
                                  R"(x/c1 = {"count": 1, "total": 1, "average": 1})",
                                  R"(y TotalsCounter = {"count": 1, "total": 5, "average": 5})",
                                  R"(y/c1 = {"count": 1, "total": 5, "average": 5})",
                              });
}

TEST_CASE("embedded store: name limits refuse a whole body with Status::Limit", "[embedded_store]") {
  StoreRun run;
  store::EmbeddedStore& store = run.open();
  const double t = wall_now();

  store.set_name_limits({2, 0});
  Status over = run.submit(test::v1_body({{"c1", "a", "TotalsCounter", "1"},
                                          {"c1", "b", "TotalsCounter", "1"},
                                          {"c1", "c", "TotalsCounter", "1"}},
                                         t));
  CHECK(over.code() == Status::Code::kLimit);
  CHECK(over.message() ==
        "the store holds 0 names and this body adds 3 new, more than ingest.max_names (2); nothing from it was "
        "applied");
  CHECK(name_list(store).empty());
  CHECK(store.stats().refused_max_names == 1);

  REQUIRE(run.submit(test::v1_body({{"c1", "a", "TotalsCounter", "1"}, {"c2", "b", "TotalsCounter", "1"}}, t)).ok());
  // Names already held cost nothing; one more new name passes the limit.
  CHECK(run.submit(test::v1_body({{"c3", "a", "TotalsCounter", "2"}}, t)).ok());
  Status one_more = run.submit(test::v1_body({{"c3", "a", "TotalsCounter", "2"}, {"c3", "d", "TotalsCounter", "2"}}, t));
  CHECK(one_more.code() == Status::Code::kLimit);
  CHECK(one_more.message() ==
        "the store holds 2 names and this body adds 1 new, more than ingest.max_names (2); nothing from it was "
        "applied");
  CHECK(name_list(store) == std::vector<std::string>{"a", "b"});

  store.set_name_limits({0, 2});
  Status per_client = run.submit(test::v1_body({{"c2", "e", "TotalsCounter", "1"}, {"c2", "f", "TotalsCounter", "1"}}, t));
  CHECK(per_client.code() == Status::Code::kLimit);
  CHECK(per_client.message() ==
        "client \"c2\" has 1 names and this body adds 2 new, more than ingest.max_names_per_client (2); nothing from "
        "it was applied");
  CHECK(store.stats().refused_max_names_per_client == 1);
  CHECK(run.submit(test::v1_body({{"c2", "e", "TotalsCounter", "1"}, {"c4", "f", "TotalsCounter", "1"}}, t)).ok());
  CHECK(name_list(store) == std::vector<std::string>{"a", "b", "e", "f"});

  store.set_name_limits({0, 0});  // no limits
  CHECK(run.submit(test::v1_body({{"c2", "g", "TotalsCounter", "1"}, {"c2", "h", "TotalsCounter", "1"}}, t)).ok());
  CHECK(name_list(store).size() == 6);
}

TEST_CASE("embedded store: delete_names and gc report what they removed, and a WAL replay agrees",
          "[embedded_store]") {
  StoreRun run;
  run.open();
  const double t = wall_now();
  REQUIRE(run.submit(test::v1_body({{"c1", "a.1", "TotalsCounter", "1"},
                                    {"c1", "a.2", "TotalsCounter", "1"},
                                    {"c1", "b", "TotalsCounter", "1"},
                                    {"c1", "quiet", "Noop", "1"},
                                    {"c2", "a.1", "TotalsCounter", "1"},
                                    {"c2", "a.2", "TotalsCounter", "1"},
                                    {"c2", "quiet", "Noop", "1"},
                                    {"c3", "quiet", "Noop", "1"}},
                                   t))
              .ok());
  CHECK(name_list(run.store()) == std::vector<std::string>{"a.1", "a.2", "b", "quiet"});

  store::Report deleted = run.delete_names(names_matching({"a\\..*"}, true));
  CHECK(deleted.counts == counts({{"names_deleted", 2}, {"states_deleted", 4}}));
  CHECK(deleted.details == std::vector<std::string>{"a.1", "a.2"});
  CHECK(name_list(run.store()) == std::vector<std::string>{"b", "quiet"});

  store::Report none = run.delete_names(names_matching({"a.1", "nope"}, false));
  CHECK(none.counts == counts({{"names_deleted", 0}, {"states_deleted", 0}}));
  CHECK(none.details.empty());

  // Noop states are always prunable; TotalsCounter states never are.
  store::Report pruned = run.gc();
  CHECK(pruned.counts == counts({{"states_pruned", 3}, {"names_removed", 1}, {"names_busy", 0}}));
  CHECK(name_list(run.store()) == std::vector<std::string>{"b"});
  const std::vector<std::string> left = {
      R"(b TotalsCounter = {"count": 1, "total": 1, "average": 1})",
      R"(b/c1 = {"count": 1, "total": 1, "average": 1})",
      R"(client c1)",
  };
  CHECK(contents(run.store(), t) == left);

  store::Report nothing = run.gc();
  CHECK(nothing.counts == counts({{"states_pruned", 0}, {"names_removed", 0}, {"names_busy", 0}}));
  CHECK(run.store().stats().admin_records == 2);  // the delete and the first gc; no-ops log nothing

  // The admin records are in the WAL: a store recovered from it now agrees.
  StoreRun crashed;
  crashed.copy_data_of(run);
  CHECK(contents(crashed.open(), t) == left);
  CHECK(crashed.store().stats().batches_replayed == 3);  // the body, the delete, the gc
  CHECK(crashed.store().stats().admin_records == 2);
}

TEST_CASE("embedded store: delta batches give the states their events give, live and replayed from the WAL",
          "[embedded_store]") {
  // Two stores: `events` takes v1 batches, `deltas` the same events folded
  // into delta batches (protocol::DeltaFolder) at the same time. Every type
  // the built plugins serve, new clients (the delta becomes the state) and
  // known ones (merged), a handler with fold_many (CounterGroup) and without.
  StoreRun events, deltas;
  events.open();
  deltas.open();
  const double t = wall_now();
  const std::vector<std::vector<Event>> bodies = {
      {{"web01", "hits", "TotalsCounter", "1"},
       {"web01", "hits", "TotalsCounter", "[2, 3]"},
       {"web01", "lat", "CounterGroup", "12.5"},
       {"web01", "lat", "CounterGroup", "7"},
       {"web02", "lat", "CounterGroup", "[3, 2]"},
       {"web01", "color", "Gauge", "\"red\""},
       {"web02", "eg", "ExpiryGauge", fmt::format("[\"x\", {}]", t + 3600)},
       {"web02", "pg", "PercentileGroup", "5"},
       {"web02", "pc", "PercentileCounter", "[5, 2]"},
       {"web03", "buf", "Buffer", "\"a\\\"b\""},
       {"web03", "set", "Set", "true"},
       {"web03", "quiet", "Noop", "1"}},
      {{"web01", "hits", "TotalsCounter", "10"},
       {"web02", "hits", "TotalsCounter", "4"},
       {"web01", "lat", "CounterGroup", "1"},
       {"web01", "color", "Gauge", "\"blue\""},
       {"web03", "set", "Set", "\"s\""},
       {"web03", "set", "Set", "3"},
       {"web03", "buf", "Buffer", fmt::format("[1, {}]", t + 60)},
       {"web02", "pg", "PercentileGroup", "50"}},
  };
  for (size_t i = 0; i < bodies.size(); ++i) {
    const std::string v1 = test::v1_body(bodies[i], t);
    REQUIRE(events.submit_decoded(test::decode_v1(v1, t, &events.store())).ok());
    REQUIRE(deltas.submit_folded(v1, t).ok());
    if (i == 0) REQUIRE(deltas.snapshot().ok());  // the second batch only in the WAL
  }
  const std::vector<std::string> want = contents(events.store(), t);
  CHECK(want.size() == 9 + 11 + 3);  // aggregates, client states, clients
  CHECK(contents(deltas.store(), t) == want);
  CHECK(deltas.store().stats().events_applied == events.store().stats().events_applied);
  CHECK(deltas.store().stats().blocks_dropped == 0);

  // A delta batch with a client's batch id is applied once.
  const std::string again = test::v1_body({{"web04", "hits", "TotalsCounter", "9"}}, t);
  for (int attempt = 0; attempt < 2; ++attempt) {
    REQUIRE(events.submit_decoded(test::decode_v1(again, t, &events.store()), {"b-9", true}).ok());
    REQUIRE(deltas.submit_folded(again, t, {"b-9", true}).ok());
  }
  CHECK(deltas.store().stats().batches_duplicate == 1);
  const std::vector<std::string> after = contents(events.store(), t);
  CHECK(contents(deltas.store(), t) == after);

  // A block whose state does not deserialize is dropped and counted (its
  // name is not made), the rest of its batch applied; replay does the same.
  const std::string good = test::delta_batch(test::v1_body({{"web05", "hits", "TotalsCounter", "6"}}, t), t);
  protocol::DeltaReader reader(good);
  REQUIRE(reader.open().ok());
  protocol::DeltaBlock block;
  Status read;
  REQUIRE(reader.next(&block, &read));
  protocol::DeltaWriter mixed(t);
  mixed.add("web05", "fresh", "TotalsCounter", 3, block.state_version, "\x01");
  mixed.add(block);
  REQUIRE(deltas.submit_decoded({mixed.finish(), 0, {{"fresh", test::handler_of("TotalsCounter")}}}).ok());
  REQUIRE(events.submit_decoded(test::decode_v1(test::v1_body({{"web05", "hits", "TotalsCounter", "6"}}, t), t,
                                                &events.store()))
              .ok());
  CHECK(deltas.store().stats().blocks_dropped == 1);
  const std::vector<std::string> last = contents(events.store(), t);
  CHECK(contents(deltas.store(), t) == last);
  CHECK(deltas.store().find_name("fresh") == nullptr);
  CHECK(deltas.store().bound_handler("fresh") == nullptr);

  StoreRun crashed;
  crashed.copy_data_of(deltas);
  store::EmbeddedStore& recovered = crashed.open();
  CHECK(recovered.stats().batches_replayed == 3);  // the snapshot holds the first batch
  CHECK(recovered.stats().blocks_dropped == 1);
  CHECK(contents(recovered, t) == last);
  CHECK(recovered.bound_handler("fresh") == nullptr);

  // The name limits read a delta batch's blocks as they read events'.
  recovered.set_name_limits({0, 10});
  std::vector<Event> many;
  for (int i = 0; i < 8; ++i) many.push_back({"web03", fmt::format("n{}", i), "TotalsCounter", "1"});
  Status limited = crashed.submit_folded(test::v1_body(many, t), t);
  CHECK(limited.code() == Status::Code::kLimit);
  CHECK(limited.message() ==
        "client \"web03\" has 3 names and this body adds 8 new, more than ingest.max_names_per_client (10); nothing "
        "from it was applied");
}
