// The entry tables of the built-in plugins, loaded from their built .so
// files as tabad loads them: each plugin's name and ABI, its handler's
// table (sizes, state version, hooks), the refusal of a host of another ABI
// major, and that a plugin exports nothing but its entry point.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "plugin_test_helpers.h"
#include "taba/handler.h"

using namespace taba::test_support;

namespace {

constexpr double kT0 = 1400000400;

}  // namespace

TEST_CASE("plugins: entry tables describe their handlers", "[plugins]") {
  for (const auto& [file, type, version] :
       std::vector<std::tuple<std::string, std::string, uint32_t>>{{"counter_group.so", "CounterGroup", 3},
                                                                   {"totals_counter.so", "TotalsCounter", 2},
                                                                   {"gauge.so", "Gauge", 2}}) {
    const taba_handler& h = handler(file, type);
    CHECK(plugin(file).abi_minor == 3);  // built for ABI 1.3 (TABA_FORMAT_METRICS)
    CHECK(h.struct_size == sizeof(taba_handler));
    CHECK(h.state_version == version);
    CHECK(h.description != nullptr);
    CHECK(h.new_state != nullptr);
    CHECK(h.deserialize != nullptr);
  }
  // A host of another ABI major is refused.
  const std::string path = std::string(TABA_TEST_PLUGIN_DIR) + "/counter_group.so";
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(dl != nullptr);
  auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
  REQUIRE(entry != nullptr);
  taba_host other = kTestHost;
  other.abi_major = TABA_ABI_MAJOR + 1;
  CHECK(entry(&other) == nullptr);
  CHECK(entry(nullptr) == nullptr);
  const taba_plugin* p = entry(&kTestHost);
  REQUIRE(p != nullptr);
  CHECK(p->abi_major == TABA_ABI_MAJOR);
  CHECK(std::string(p->name) == "counter_group");
  // Only the entry point is exported: helper symbols stay private.
  CHECK(dlsym(dl, "_ZN4taba7builtin8DDSketch3addEd") == nullptr);
}

TEST_CASE("more plugins: entry tables describe their handlers", "[more_plugins]") {
  for (const auto& [file, name, type, version] :
       std::vector<std::tuple<std::string, std::string, std::string, uint32_t>>{
           {"expiry_gauge.so", "expiry_gauge", "ExpiryGauge", 2},
           {"buffer.so", "buffer", "Buffer", 2},
           {"noop.so", "noop", "Noop", 1},
           {"set.so", "set", "Set", 1}}) {
    const taba_plugin& p = plugin(file);
    CHECK(std::string(p.name) == name);
    CHECK(p.abi_major == TABA_ABI_MAJOR);
    CHECK(p.handler_count == 1);
    const taba_handler& h = handler(file, type);
    CHECK(h.struct_size == sizeof(taba_handler));
    CHECK(h.state_version == version);
    CHECK(h.description != nullptr);
    CHECK(h.new_state != nullptr);
    CHECK(h.fold != nullptr);
    CHECK(h.merge != nullptr);
    CHECK(h.render != nullptr);
    CHECK(h.deserialize != nullptr);
    State s(h, kT0);
    taba_status st;
    s.render(kT0, TABA_FORMAT_JSON_DETAILED, &st);
    CHECK(st == TABA_ERR_UNSUPPORTED);
  }
}

TEST_CASE("Percentile plugins: entry tables", "[plugins][percentile]") {
  for (const auto& [file, type, name, version] :
       std::vector<std::tuple<std::string, std::string, std::string, uint32_t>>{
           {"percentile_group.so", "PercentileGroup", "percentile_group", 4},
           {"percentile_counter.so", "PercentileCounter", "percentile_counter", 3}}) {
    const taba_handler& h = handler(file, type);
    CHECK(plugin(file).abi_minor == 3);
    CHECK(h.struct_size == sizeof(taba_handler));
    CHECK(h.state_version == version);
    CHECK(h.description != nullptr);
    const std::string path = std::string(TABA_TEST_PLUGIN_DIR) + "/" + file;
    void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(dl != nullptr);
    auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
    REQUIRE(entry != nullptr);
    taba_host other = kTestHost;
    other.abi_major = TABA_ABI_MAJOR + 1;
    CHECK(entry(&other) == nullptr);
    const taba_plugin* p = entry(&kTestHost);
    REQUIRE(p != nullptr);
    CHECK(std::string(p->name) == name);
    CHECK(p->handler_count == 1);
    // Only the entry point is exported.
    CHECK(dlsym(dl, "_ZN4taba7builtin8DDSketch3addEd") == nullptr);
  }
}
