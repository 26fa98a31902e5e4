// The plugin loader against real shared objects: the built-in plugins and
// deliberately broken ones (tests/fixtures/plugins).
#include <catch2/catch.hpp>

#include <string>

#include "plugin/registry.h"

using namespace taba;

namespace {
const plugin::LoadReport* report_for(const plugin::Registry& r, const std::string& file) {
  for (const auto& rep : r.reports()) {
    if (rep.path.size() >= file.size() && rep.path.compare(rep.path.size() - file.size(), file.size(), file) == 0) {
      return &rep;
    }
  }
  return nullptr;
}
}  // namespace

TEST_CASE("built-in plugins load and serve their types", "[plugin]") {
  plugin::Registry r;
  REQUIRE(r.load_dir(TABA_TEST_PLUGIN_DIR));
  for (const char* type : {"CounterGroup", "TotalsCounter", "Gauge"}) {
    const plugin::Handler* h = r.find(type);
    INFO(type);
    REQUIRE(h);
    CHECK(h->type_name == type);
    CHECK(h->table->state_version >= 1);
  }
  CHECK(r.find("Nope") == nullptr);
  for (const auto& rep : r.reports()) CHECK(rep.loaded);
}

TEST_CASE("broken plugins are refused with a clear reason - the rest load", "[plugin]") {
  plugin::Registry r;
  REQUIRE(r.load_dir(TABA_TEST_PLUGIN_DIR));
  REQUIRE(r.load_dir(TABA_TEST_BAD_PLUGIN_DIR));

  const plugin::LoadReport* ok = report_for(r, "/ok_test.so");
  REQUIRE(ok);
  CHECK(ok->loaded);
  CHECK(r.find("TestType") != nullptr);

  const plugin::LoadReport* abi = report_for(r, "/bad_abi.so");
  REQUIRE(abi);
  CHECK_FALSE(abi->loaded);
  CHECK(abi->message.find("ABI major version 99") != std::string::npos);

  const plugin::LoadReport* entry = report_for(r, "/no_entry.so");
  REQUIRE(entry);
  CHECK_FALSE(entry->loaded);
  CHECK(entry->message == "missing entry symbol taba_plugin_entry");

  const plugin::LoadReport* dup = report_for(r, "/duplicate_type.so");
  REQUIRE(dup);
  CHECK_FALSE(dup->loaded);
  CHECK(dup->message.find("type CounterGroup is already served by plugin counter_group") != std::string::npos);
  CHECK(r.find("CounterGroup")->plugin_name == "counter_group");

  const plugin::LoadReport* hook = report_for(r, "/missing_hook.so");
  REQUIRE(hook);
  CHECK_FALSE(hook->loaded);
  CHECK(hook->message.find("lacks the required hook merge") != std::string::npos);

  CHECK_FALSE(r.load_dir("/nonexistent/plugins"));
}

TEST_CASE("a handler table shorter than the ABI 1.1 layout has no 1.1 hooks, whatever its plugin declares",
          "[plugin]") {
  plugin::Registry r;
  REQUIRE(r.load_dir(TABA_TEST_BAD_PLUGIN_DIR));
  const plugin::LoadReport* rep = report_for(r, "/short_table.so");
  REQUIRE(rep);
  CHECK(rep->loaded);
  const plugin::Handler* h = r.find("ShortTable");
  REQUIRE(h);
  // The fields past its struct_size hold functions that abort: the loader
  // must not have read them.
  CHECK(h->fold_many_hook == nullptr);
  CHECK(h->prefetch_hook == nullptr);
}
