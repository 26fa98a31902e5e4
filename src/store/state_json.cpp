// A state's rounded JSON for the stores' check/repair (see state_json.h).
#include "store/state_json.h"

namespace taba::store {

std::string render_json(const taba_handler* h, const taba_state* st, double now) {
  std::string out;
  taba_output sink = plugin::string_output(&out);
  if (h->render(st, TABA_FORMAT_JSON, now, &sink) != TABA_OK) return "";
  return out;
}

}  // namespace taba::store
