#include "routes/body_resolver.h"

#include <fmt/format.h>

#include "core/validation.h"

namespace taba::routes {

const plugin::Handler* BodyResolver::resolve(std::string_view name, std::string_view type, std::string* err) {
  const plugin::Handler* wanted = registry_->find(type);
  if (!wanted) {
    *err = fmt::format("unknown type \"{}\" (no loaded plugin serves it)", quote_for_error(type));
    return nullptr;
  }
  const plugin::Handler* bound = sink_->bound_handler(name);
  NewBinding* fresh = nullptr;
  if (!bound) {
    auto it = new_bindings_.find(name);
    if (it == new_bindings_.end()) {
      new_bindings_.emplace(std::string(name), NewBinding{wanted, 1});
      return wanted;
    }
    fresh = &it->second;
    bound = fresh->handler;
  }
  if (bound != wanted) {
    *err = fmt::format("type \"{}\" conflicts with type \"{}\" bound to name \"{}\"", wanted->type_name,
                       bound->type_name, name);
    return nullptr;
  }
  if (fresh) ++fresh->blocks;
  return wanted;
}

void BodyResolver::refused(std::string_view name) {
  auto it = new_bindings_.find(name);
  if (it != new_bindings_.end() && --it->second.blocks == 0) new_bindings_.erase(it);
}

store::Bindings BodyResolver::take_bindings() {
  store::Bindings out;
  out.reserve(new_bindings_.size());
  for (const auto& [name, b] : new_bindings_) out.emplace_back(name, b.handler);
  return out;
}

}  // namespace taba::routes
