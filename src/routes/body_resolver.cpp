#include "routes/body_resolver.h"

#include <fmt/format.h>

#include "core/validation.h"

namespace taba::routes {

const plugin::Handler* BodyResolver::resolve(std::string_view name, std::string_view type, std::string* err) {
  const plugin::Handler* wanted = registry_->find(type);
  if (!wanted && unknown_types_) wanted = unchecked(type);
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

const plugin::Handler* BodyResolver::unchecked(std::string_view type) {
  static const taba_handler table = [] {
    taba_handler t{};
    t.struct_size = sizeof t;
    t.check_event = [](const taba_event*, char*, size_t) { return TABA_OK; };
    return t;
  }();
  auto it = unchecked_.find(type);
  if (it == unchecked_.end()) {
    auto h = std::make_unique<plugin::Handler>();
    h->type_name.assign(type);
    h->table = &table;
    it = unchecked_.emplace(std::string(type), std::move(h)).first;
  }
  return it->second.get();
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
