// The out-of-line hooks of plugin::Handler: render with its format
// fallbacks, serialize and deserialize with their buffers.
#include "plugin/handler.h"

#include <fmt/format.h>

#include "plugin/state.h"

namespace taba::plugin {
namespace {

// What a handler is asked when it does not support `format` (handler.h).
uint32_t render_fallback(uint32_t format) {
  return format == TABA_FORMAT_JSON_DETAILED ? TABA_FORMAT_JSON_EXACT : TABA_FORMAT_JSON;
}

// The ABI minor that introduced each format: a plugin built for an older
// minor has never heard of it and is asked its fallback instead.
uint16_t format_minor(uint32_t format) {
  return format == TABA_FORMAT_METRICS ? 3 : format == TABA_FORMAT_JSON_EXACT ? 2 : 0;
}

}  // namespace

taba_output string_output(std::string* out) {
  return taba_output{out, [](taba_output* o, const char* data, size_t len) {
                       static_cast<std::string*>(o->host_data)->append(data, len);
                       return 0;
                     }};
}

Status Handler::render(const taba_state* state, uint32_t format, double now, std::string* out) const {
  out->clear();
  taba_output sink = string_output(out);
  for (;;) {
    if (abi_minor >= format_minor(format)) {
      const taba_status rc = table->render(state, format, now, &sink);
      if (rc == TABA_OK) return Status::Ok();
      out->clear();
      if (rc != TABA_ERR_UNSUPPORTED || format == TABA_FORMAT_JSON) {
        return Status::Internal(fmt::format("the {} handler could not render a state", type_name));
      }
    }
    // The metrics form has no JSON fallback: its caller builds one.
    if (format == TABA_FORMAT_METRICS) {
      return Status::NotFound(fmt::format("the {} handler does not write metrics", type_name));
    }
    format = render_fallback(format);
  }
}

bool Handler::serialize(const taba_state* state, std::string* out) const {
  out->clear();
  taba_output sink = string_output(out);
  return table->serialize(state, &sink) == TABA_OK;
}

Result<State> Handler::deserialize(std::string_view bytes, uint32_t version) const {
  taba_state* st = nullptr;
  HookError why;
  why.text[0] = '\0';
  if (table->deserialize(bytes.data(), bytes.size(), version, &st, why.text, sizeof why.text) != TABA_OK || !st) {
    return Status::Corruption(why.reason(""));
  }
  return State(this, st);
}

}  // namespace taba::plugin
