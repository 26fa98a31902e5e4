// A state's JSON, as the stores' check/repair compares an aggregate with the
// merge of its client states (embedded_admin.cpp, redis_admin.cpp).
//
// Taba's rounded form, not TABA_FORMAT_JSON_EXACT: window sums added up in
// another order may differ in their last bits, and that is not damage.
#pragma once

#include <string>

#include "plugin/registry.h"

namespace taba::store {

// Renders `st` as JSON at `now` with handler table `h`; "" when the handler
// cannot.
std::string render_json(const taba_handler* h, const taba_state* st, double now);

}  // namespace taba::store
