#include "plugin/registry.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <system_error>

#include "core/log.h"

namespace taba::plugin {
namespace {

// The one place a plugin's log level (the integer of taba_host::log in
// include/taba/handler.h: 0 debug, 1 info, 2 warn, 3 error) becomes the
// host's log::Level. Out-of-range values clamp to the nearest level.
log::Level level_from_abi(int level) {
  if (level <= 0) return log::Level::kDebug;
  if (level == 1) return log::Level::kInfo;
  if (level == 2) return log::Level::kWarn;
  return log::Level::kError;
}

void host_log(int level, const char* msg, size_t len) {
  log::write(level_from_abi(level), fmt::format("plugin: {}", std::string_view(msg, len)));
}

const taba_host kHost = {sizeof(taba_host), TABA_ABI_MAJOR, TABA_ABI_MINOR, host_log, {}};

// Smallest sizes of the 1.0 layouts: everything up to the last 1.0 field.
constexpr size_t kMinPluginSize = offsetof(taba_plugin, handlers) + sizeof(void*);
constexpr size_t kMinHandlerSize = offsetof(taba_handler, deserialize) + sizeof(void*);
// The handler table up to the ABI 1.1 hooks: fold_many and prefetch are read
// only from a table this long, so a short one is never read past its end.
constexpr size_t kHandlerSize11 = offsetof(taba_handler, prefetch) + sizeof(void*);

bool valid_type_name(const char* name) {
  if (!name) return false;
  size_t n = 0;
  for (const char* p = name; *p; ++p, ++n) {
    char c = *p;
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok || n >= 64) return false;
  }
  return n > 0;
}

// Empty when every required hook is present.
std::string missing_hook(const taba_handler* h) {
  if (!h->new_state) return "new_state";
  if (!h->free_state) return "free_state";
  if (!h->check_event) return "check_event";
  if (!h->fold) return "fold";
  if (!h->merge) return "merge";
  if (!h->render) return "render";
  if (!h->prunable) return "prunable";
  if (!h->serialize) return "serialize";
  if (!h->deserialize) return "deserialize";
  return {};
}

}  // namespace

const taba_host* host_table() { return &kHost; }

Registry::~Registry() {
  by_type_.clear();
  for (void* h : dl_handles_) dlclose(h);
}

bool Registry::load_dir(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so") files.push_back(entry.path().string());
  }
  if (ec) {
    log::error("plugins: cannot read directory {}: {}", dir, ec.message());
    return false;
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) load_file(f);
  return true;
}

bool Registry::load_file(const std::string& path) {
  LoadReport report;
  report.path = path;
  auto refuse = [&](std::string why) {
    report.message = std::move(why);
    log::error("plugin {} refused: {}", path, report.message);
    reports_.push_back(std::move(report));
    return false;
  };
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) return refuse(fmt::format("dlopen failed: {}", dlerror()));
  auto entry = reinterpret_cast<taba_plugin_entry_fn>(dlsym(dl, TABA_PLUGIN_ENTRY_SYMBOL));
  if (!entry) {
    dlclose(dl);
    return refuse(fmt::format("missing entry symbol {}", TABA_PLUGIN_ENTRY_SYMBOL));
  }
  const taba_plugin* p = entry(&kHost);
  if (!p) {
    dlclose(dl);
    return refuse("entry point returned no plugin table (the plugin declined this host)");
  }
  // (Messages are formatted before dlclose: the table lives in the plugin.)
  if (p->abi_major != TABA_ABI_MAJOR) {
    std::string why = fmt::format("ABI major version {} (this tabad speaks {}.{})", p->abi_major, TABA_ABI_MAJOR,
                                  TABA_ABI_MINOR);
    dlclose(dl);
    return refuse(std::move(why));
  }
  if (p->struct_size < kMinPluginSize) {
    std::string why = fmt::format("plugin table is {} bytes, smaller than the ABI 1.0 layout", p->struct_size);
    dlclose(dl);
    return refuse(std::move(why));
  }
  report.plugin_name = p->name ? p->name : "(unnamed)";
  report.plugin_version = p->version ? p->version : "";
  if (p->abi_minor > TABA_ABI_MINOR) {
    report.message = fmt::format("built for ABI {}.{}, newer than this host's {}.{}; newer hooks are unused",
                                 p->abi_major, p->abi_minor, TABA_ABI_MAJOR, TABA_ABI_MINOR);
    log::warn("plugin {}: {}", path, report.message);
  }
  size_t registered = 0;
  for (uint32_t i = 0; i < p->handler_count; ++i) {
    const taba_handler* h = p->handlers ? p->handlers[i] : nullptr;
    std::string problem;
    if (!h) {
      problem = fmt::format("handler #{} is NULL", i);
    } else if (h->struct_size < kMinHandlerSize) {
      problem = fmt::format("handler #{} table is {} bytes, smaller than the ABI 1.0 layout", i, h->struct_size);
    } else if (!valid_type_name(h->type_name)) {
      problem = fmt::format("handler #{} has an invalid type name", i);
    } else if (std::string m = missing_hook(h); !m.empty()) {
      problem = fmt::format("handler {} lacks the required hook {}", h->type_name, m);
    } else if (const Handler* existing = find(h->type_name)) {
      problem = fmt::format("type {} is already served by plugin {} ({})", h->type_name, existing->plugin_name,
                            existing->plugin_path);
    }
    if (!problem.empty()) {
      log::error("plugin {}: {}; that handler is skipped", path, problem);
      report.message += (report.message.empty() ? "" : "; ") + problem;
      continue;
    }
    auto handler = std::make_unique<Handler>();
    handler->type_name = h->type_name;
    handler->table = h;
    if (p->abi_minor >= 1 && h->struct_size >= kHandlerSize11) {
      handler->fold_many_hook = h->fold_many;
      handler->prefetch_hook = h->prefetch;
    }
    handler->abi_minor = std::min<uint16_t>(p->abi_minor, TABA_ABI_MINOR);
    handler->plugin_name = report.plugin_name;
    handler->plugin_path = path;
    report.types.push_back(handler->type_name);
    by_type_.emplace(handler->type_name, std::move(handler));
    ++registered;
  }
  if (registered == 0) {
    // The reasons for each skipped handler were logged above.
    std::string why = report.message.empty() ? "the plugin serves no types" : report.message;
    dlclose(dl);
    report.message = std::move(why);
    log::error("plugin {} refused: no usable handler", path);
    reports_.push_back(std::move(report));
    return false;
  }
  dl_handles_.push_back(dl);
  report.loaded = true;
  log::info("plugin {} {} loaded from {}: types {}", report.plugin_name, report.plugin_version, path,
            fmt::join(report.types, ", "));
  reports_.push_back(std::move(report));
  return true;
}

Status Registry::add_alias(const std::string& alias, const std::string& target) {
  const Handler* base = find(target);
  if (!base) {
    return Status::Invalid(fmt::format("plugins.types.{}: no loaded plugin serves type \"{}\"", alias, target));
  }
  auto handler = std::make_unique<Handler>(*base);
  handler->type_name = alias;
  auto it = by_type_.find(alias);
  if (it != by_type_.end()) {
    log::warn("plugins: type {} (plugin {}) is overridden by the handler of {} (plugin {})", alias,
              it->second->plugin_name, target, base->plugin_name);
    replaced_.push_back(std::move(it->second));
    it->second = std::move(handler);
  } else {
    log::info("plugins: type {} is served by the handler of {} (plugin {})", alias, target, base->plugin_name);
    by_type_.emplace(alias, std::move(handler));
  }
  return Status::Ok();
}

const Handler* Registry::find(std::string_view type_name) const {
  auto it = by_type_.find(type_name);
  return it == by_type_.end() ? nullptr : it->second.get();
}

std::vector<const Handler*> Registry::handlers() const {
  std::vector<const Handler*> out;
  for (const auto& [k, v] : by_type_) out.push_back(v.get());
  std::sort(out.begin(), out.end(), [](const Handler* a, const Handler* b) { return a->type_name < b->type_name; });
  return out;
}

std::string default_plugins_dir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "plugins";
  std::filesystem::path dir = exe.parent_path();
  std::filesystem::path beside = dir / "plugins";
  if (std::filesystem::is_directory(beside, ec)) return beside.string();
  return (dir / ".." / TABA_PLUGIN_INSTALL_DIR).lexically_normal().string();
}

}  // namespace taba::plugin
