// The built-in Noop plugin, loaded from its built .so file and used only
// through the C ABI (include/taba/handler.h), as tabad uses it: it accepts
// anything, keeps nothing, renders null and writes no metrics family.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "plugin_metrics_render.h"
#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400000400;

}  // namespace

TEST_CASE("Noop: accepts anything, keeps nothing, renders null", "[more_plugins][noop]") {
  const taba_handler& h = noop();
  Events any;
  any.value(kT0, str("x"))
      .value(kT0, raw(TABA_VALUE_OBJECT, "{}"))
      .pair(kT0, {}, {})
      .pair(kT0, raw(TABA_VALUE_ARRAY, "[[]]"), str("y"));
  check_events(h, any, Events(), "");
  State aggregate(h, kT0);
  CHECK(aggregate.render(kT0) == "null");
  State client(h, kT0, "a");
  ingest(h, &client, &aggregate, "a", any, kT0);
  CHECK(aggregate.render(kT0) == "null");
  CHECK(client.render(kT0) == "null");
  CHECK(aggregate.prunable(kT0));
  CHECK(client.prunable(kT0 - 100));
  CHECK(aggregate.serialize().empty());
  check_round_trip_json(h, aggregate, {kT0});
  std::unique_ptr<State> ignored;
  std::string reason;
  CHECK(deserialize(h, "x", 1, &ignored, &reason) == TABA_ERR_CORRUPT);
  CHECK_FALSE(reason.empty());
}

TEST_CASE("Noop: the metrics render has no family", "[more_plugins][noop]") {
  const taba_handler& h = noop();
  REQUIRE(plugin("noop.so").abi_minor == TABA_ABI_MINOR);
  State aggregate(h, kT0);
  State client(h, kT0, "a");
  ingest(h, &client, &aggregate, "a", Events().value(kT0, num(5)), kT0);
  CHECK(aggregate.render(kT0, TABA_FORMAT_METRICS) == "[]");
  CHECK(client.render(kT0, TABA_FORMAT_METRICS) == "[]");
  CHECK(metrics_lines(aggregate, kT0).empty());
  CHECK(aggregate.render(kT0) == "null");
}
