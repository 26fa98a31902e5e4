// A state's rounded JSON for the stores' check/repair (see state_json.h).
#include "store/state_json.h"

namespace taba::store {

std::string render_json(const plugin::Handler* h, const taba_state* st, double now) {
  std::string out;
  if (!h->render(st, TABA_FORMAT_JSON, now, &out).ok()) return "";
  return out;
}

}  // namespace taba::store
