// Small pieces every built-in handler needs at the ABI boundary: error
// text, numeric payloads, epoch-second arithmetic and exception guards.
#ifndef TABA_PLUGINS_COMMON_PLUGIN_SUPPORT_H
#define TABA_PLUGINS_COMMON_PLUGIN_SUPPORT_H

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <string_view>

#include "taba/handler.h"

namespace taba::builtin {

// Writes msg into err as one NUL-terminated line, truncated to err_cap
// bytes (NUL included). Does nothing when err is NULL or err_cap is 0.
void set_error(char* err, size_t err_cap, std::string_view msg);
// Same, printf-style.
void set_errorf(char* err, size_t err_cap, const char* format, ...) __attribute__((format(printf, 3, 4)));

// Whether a plugin built against this header can serve `host` (same ABI
// major). taba_plugin_entry returns NULL otherwise.
bool host_compatible(const taba_host* host);

// The number an event carries: its payload when that is a number, else
// payload[0] when the payload is an array starting with a number; JSON
// true and false are the numbers 1 and 0. Returns false when there is no
// such number or it is NaN or infinite.
bool event_number(const taba_event& event, double* value);

// check_event for the numeric types: TABA_OK, or TABA_ERR_PAYLOAD with
// "<type_name> payload must be ...".
taba_status check_number_event(const taba_event* event, std::string_view type_name, char* err,
                               size_t err_cap);

// Largest magnitude of an epoch second we compute with (2^53 s, about 285
// million years): stamps beyond it are clamped, NaN counts as 0. It keeps
// every later int64 computation (bucket numbers, differences) far from
// overflow.
inline constexpr int64_t kMaxEpochSecond = int64_t{1} << 53;

// floor(t) as an integer epoch second, clamped as above.
inline int64_t epoch_second(double t) {
  constexpr double kLimit = static_cast<double>(kMaxEpochSecond);
  if (!(t > -kLimit)) return t == t ? -kMaxEpochSecond : 0;  // NaN -> 0
  if (t >= kLimit) return kMaxEpochSecond;
  const auto s = static_cast<int64_t>(t);  // truncates toward zero
  return static_cast<double>(s) > t ? s - 1 : s;
}

// Division and remainder rounding toward negative infinity (b > 0).
inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
inline int64_t floor_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// floor_div(a, b) without an integer division (tens of cycles on common
// CPUs, and this runs per event): multiply by inv_b = 1.0 / b, then correct
// the estimate, which is off by at most one for |a| <= 2^53.
inline int64_t floor_div_by(int64_t a, int64_t b, double inv_b) {
  auto q = static_cast<int64_t>(static_cast<double>(a) * inv_b);
  while (q * b > a) --q;
  while ((q + 1) * b <= a) ++q;
  return q;
}

// a + b for counters, saturating at UINT64_MAX instead of wrapping.
inline uint64_t add_saturating(uint64_t a, uint64_t b) {
  const uint64_t s = a + b;
  return s < a ? UINT64_MAX : s;
}

// Runs f (returning taba_status) and turns any exception into an error
// status with its reason in err: hooks never let an exception escape.
template <class F>
taba_status guard_status(char* err, size_t err_cap, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    set_error(err, err_cap, "out of memory");
    return TABA_ERR_NOMEM;
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
    return TABA_ERR_INTERNAL;
  } catch (...) {
    set_error(err, err_cap, "unknown internal error");
    return TABA_ERR_INTERNAL;
  }
}

// Runs f (returning void) and swallows any exception: for hooks that
// cannot report failure (fold, merge), where the ABI says to drop the work.
template <class F>
void guard_void(F&& f) noexcept {
  try {
    f();
  } catch (...) {
  }
}

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_PLUGIN_SUPPORT_H
