// Handler plugins: loading shared objects through the C ABI of
// include/taba/handler.h, and the registry of type name -> handler.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/string_map.h"
#include "plugin/handler.h"
#include "taba/handler.h"

namespace taba::plugin {

// What happened to one plugin file at load time.
struct LoadReport {
  std::string path;
  bool loaded = false;
  std::string plugin_name;
  std::string plugin_version;
  std::vector<std::string> types;  // type names registered from it
  std::string message;             // reason for a refusal, or warnings
};

class Registry {
 public:
  Registry() = default;
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads every "*.so" in `dir`, in file-name order. A plugin that cannot
  // be loaded is reported (and logged) and skipped; the rest still load.
  // Returns false only when the directory cannot be read.
  bool load_dir(const std::string& dir);
  // Loads one plugin file; false if refused (see reports()).
  bool load_file(const std::string& path);

  // Makes `alias` a type name served by the handler of `target` (a loaded
  // type). When `alias` is already a type, the mapping replaces it (an
  // override of a built-in). Error names what is wrong.
  Status add_alias(const std::string& alias, const std::string& target);

  // The handler for a type name, or nullptr.
  const Handler* find(std::string_view type_name) const;
  std::vector<const Handler*> handlers() const;
  const std::vector<LoadReport>& reports() const { return reports_; }

 private:
  StringMap<std::unique_ptr<Handler>> by_type_;
  std::vector<void*> dl_handles_;
  std::vector<std::unique_ptr<Handler>> replaced_;  // overridden handlers, kept alive
  std::vector<LoadReport> reports_;
};

// The directory tabad loads plugins from when none is configured:
// <exe dir>/plugins if it exists, else <exe dir>/../lib/taba/plugins.
std::string default_plugins_dir();

// The host table handed to every plugin's entry point.
const taba_host* host_table();

}  // namespace taba::plugin
