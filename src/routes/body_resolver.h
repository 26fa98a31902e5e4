// The type resolver of one ingest body (v1 or delta): a name's type is the
// one the sink has bound it to, or else the first type this body gives it.
// A new binding counts the blocks using it; one whose blocks were all
// refused is forgotten (a refused block binds nothing), so the bindings the
// body hands to the sink are exactly those of its accepted blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/string_map.h"
#include "plugin/registry.h"
#include "protocol/v1_decoder.h"
#include "routes/ingest.h"
#include "store/store.h"

namespace taba::routes {

class BodyResolver : public protocol::TypeResolver {
 public:
  // `unknown_types`: a type no loaded plugin serves resolves to a stand-in
  // handler whose check_event takes every event (a v1 body for a sink that
  // forwards such blocks: IngestSink::forwards_unknown_types); otherwise it
  // is refused.
  BodyResolver(const IngestSink* sink, const plugin::Registry* registry, bool unknown_types = false)
      : sink_(sink), registry_(registry), unknown_types_(unknown_types) {}

  // The handler of `type` for `name`, or nullptr with *err: "unknown type
  // ..." or "type ... conflicts with type ... bound to name ...".
  const plugin::Handler* resolve(std::string_view name, std::string_view type, std::string* err) override;
  // A block that resolve() accepted was refused after all.
  void refused(std::string_view name) override;
  // The names this body binds for the first time (those of accepted blocks).
  store::Bindings take_bindings();

 private:
  struct NewBinding {
    const plugin::Handler* handler;
    uint32_t blocks;  // blocks of this body using it, not refused
  };
  // The stand-in of an unknown type, one per type so that two such types
  // still conflict under one name; nothing but check_event is called on it.
  const plugin::Handler* unchecked(std::string_view type);
  const IngestSink* sink_;
  const plugin::Registry* registry_;
  const bool unknown_types_;
  StringMap<NewBinding> new_bindings_;
  StringMap<std::unique_ptr<plugin::Handler>> unchecked_;
};

}  // namespace taba::routes
