// The built plugins (TABA_TEST_PLUGIN_DIR), loaded once per test process,
// and v1 bodies decoded into binary batches against them the way the ingest
// route decodes a post, or folded into delta batches the way the edge folds
// them: what the unit tests of the store, and of the routes that run on a
// store, feed in.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "plugin/registry.h"
#include "protocol/batch.h"
#include "protocol/delta_fold.h"
#include "protocol/v1_decoder.h"
#include "protocol/v1_encoder.h"
#include "store/store.h"

namespace taba::test {

inline plugin::Registry& built_plugins() {
  static plugin::Registry registry;
  static const bool loaded = registry.load_dir(TABA_TEST_PLUGIN_DIR);
  (void)loaded;
  return registry;
}

// The handler of a type the built plugins serve (the test fails otherwise).
inline const plugin::Handler* handler_of(std::string_view type) {
  const plugin::Handler* h = built_plugins().find(type);
  INFO("type " << type);
  REQUIRE(h != nullptr);
  return h;
}

// One event of a v1 body: `payload` is the payload's JSON text.
struct Event {
  std::string client;
  std::string name;
  std::string type;
  std::string payload;
};

// A v1 body of `events`, each stamped `t`; consecutive events of one
// (client, name) share a name block (protocol/v1_encoder.h writes it).
inline std::string v1_body(const std::vector<Event>& events, double t) {
  protocol::V1Encoder encoder;
  const Event* previous = nullptr;
  for (const Event& e : events) {
    if (previous == nullptr || previous->client != e.client || previous->name != e.name) {
      encoder.begin_block(e.client, e.name);
    }
    encoder.add_event(e.type, t, e.payload);
    previous = &e;
  }
  return encoder.finish();
}

struct DecodedBody {
  std::string batch;
  uint64_t events = 0;
  // The names the body binds for the first time, with their types, sorted
  // by name (what the ingest route hands Store::submit).
  store::Bindings new_bindings;
};

// Decodes a v1 body, received at `now`, whose every block must be valid.
// A name `bound_by` does not bind yet (every name, without a store) is a
// new binding, to the type its block gives.
inline DecodedBody decode_v1(std::string_view body, double now, const store::Store* bound_by = nullptr) {
  class Resolver : public protocol::TypeResolver {
   public:
    explicit Resolver(const store::Store* store) : store_(store) {}
    const plugin::Handler* resolve(std::string_view name, std::string_view type, std::string* err) override {
      const plugin::Handler* h = built_plugins().find(type);
      if (h == nullptr) {
        *err = "unknown type";
        return nullptr;
      }
      bool known = store_ != nullptr && store_->bound_handler(name) != nullptr;
      bool listed = false;
      for (const auto& [n, bound] : bindings) listed = listed || n == name;
      if (!known && !listed) bindings.emplace_back(std::string(name), h);
      return h;
    }
    store::Bindings bindings;

   private:
    const store::Store* store_;
  };
  Resolver resolver(bound_by);
  protocol::BatchWriter writer;
  writer.reset(now);
  protocol::DecodeOptions options;
  options.now = now;
  protocol::V1Decoder decoder(&resolver, &writer, options);
  bool ok = decoder.feed(body) && decoder.finish();
  INFO("body:\n" << body << "error: " << decoder.error());
  REQUIRE(ok);
  REQUIRE(decoder.refusals().empty());
  DecodedBody out{writer.finish(), decoder.events(), std::move(resolver.bindings)};
  std::sort(out.new_bindings.begin(), out.new_bindings.end());
  return out;
}

// The events of a v1 body, decoded at `now`, folded into one delta per
// (client, name) with protocol::DeltaFolder and written as a delta batch
// stamped `now` (protocol/delta_batch.h; no envelope).
inline std::string delta_batch(std::string_view v1, double now) {
  protocol::DeltaFolder folder(&built_plugins());
  Status s = folder.fold_batch(decode_v1(v1, now).batch, true, nullptr);
  INFO(s.message());
  REQUIRE(s.ok());
  REQUIRE(folder.unfoldable_events() == 0);
  Result<std::string> batch = folder.finish(now);
  REQUIRE(batch.ok());
  return std::move(batch.value());
}

// The blocks of a batch as "client/name/type/events" strings, in order.
inline std::vector<std::string> batch_blocks(std::string_view batch) {
  protocol::BatchReader reader(batch);
  REQUIRE(reader.open().ok());
  std::vector<std::string> out;
  protocol::BatchBlock block;
  Status s;
  while (reader.next_header(&block, &s)) {
    out.push_back(std::string(block.client) + "/" + std::string(block.name) + "/" + std::string(block.type) + "/" +
                  std::to_string(block.event_count));
  }
  REQUIRE(s.ok());
  return out;
}

}  // namespace taba::test
