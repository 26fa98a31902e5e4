#include "common/plugin_support.h"

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace taba::builtin {

void set_error(char* err, size_t err_cap, std::string_view msg) {
  if (err == nullptr || err_cap == 0) return;
  size_t n = msg.size() < err_cap - 1 ? msg.size() : err_cap - 1;
  // One line: stop at the first line break.
  for (size_t i = 0; i < n; ++i) {
    if (msg[i] == '\n' || msg[i] == '\r') {
      n = i;
      break;
    }
  }
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

void set_errorf(char* err, size_t err_cap, const char* format, ...) {
  if (err == nullptr || err_cap == 0) return;
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(err, err_cap, format, args);
  va_end(args);
  if (n < 0) err[0] = '\0';
  for (char* p = err; *p != '\0'; ++p) {
    if (*p == '\n' || *p == '\r') {
      *p = '\0';
      break;
    }
  }
}

bool host_compatible(const taba_host* host) {
  return host != nullptr && host->struct_size >= offsetof(taba_host, abi_minor) + sizeof(host->abi_minor) &&
         host->abi_major == TABA_ABI_MAJOR;
}

bool event_number(const taba_event& event, double* value) {
  // JSON true and false count as 1 and 0: the original Python client's
  // Counter(name, True) sends `true`, which Taba counted as 1.
  const auto numeric = [](const taba_value& x) { return x.kind == TABA_VALUE_NUMBER || x.kind == TABA_VALUE_BOOL; };
  const taba_value* v = nullptr;
  if (numeric(event.payload)) {
    v = &event.payload;
  } else if (event.payload.kind == TABA_VALUE_ARRAY && numeric(event.elem0)) {
    v = &event.elem0;
  }
  if (v == nullptr || !std::isfinite(v->number)) return false;
  *value = v->number;
  return true;
}

taba_status check_number_event(const taba_event* event, std::string_view type_name, char* err,
                               size_t err_cap) {
  double ignored;
  if (event != nullptr && event_number(*event, &ignored)) return TABA_OK;
  // No allocation here: check_event must not throw.
  char msg[192];
  const int n =
      std::snprintf(msg, sizeof msg,
                    "%.*s payload must be a finite number, true or false, or an array whose first "
                    "element is one",
                    static_cast<int>(type_name.size() > 64 ? 64 : type_name.size()), type_name.data());
  const size_t len =
      n <= 0 ? 0 : (static_cast<size_t>(n) < sizeof msg ? static_cast<size_t>(n) : sizeof msg - 1);
  set_error(err, err_cap, std::string_view(msg, len));
  return TABA_ERR_PAYLOAD;
}

}  // namespace taba::builtin
