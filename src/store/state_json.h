// A state's JSON, as the stores' check/repair compares an aggregate with the
// merge of its client states (embedded_admin.cpp, redis_admin.cpp).
//
// Taba's rounded form, not TABA_FORMAT_JSON_EXACT: window sums added up in
// another order may differ in their last bits, and that is not damage.
#pragma once

#include <string>

#include "plugin/handler.h"

namespace taba::store {

// Renders `st` as JSON at `now` with its handler `h`; "" when the handler
// cannot.
std::string render_json(const plugin::Handler* h, const taba_state* st, double now);

}  // namespace taba::store
