// The C-ABI glue of a built-in handler: turns a C++ handler description (a
// state type and its hooks, as static members of one class) into the
// taba_handler table of include/taba/handler.h, and a plugin serving it
// into its taba_plugin table.
//
// The adapter owns what every handler would otherwise repeat: casting
// taba_state* to the state type; allocating and freeing states (one `new`,
// one `delete`); an exception guard around the hooks (the ABI says hooks
// never throw); refusing the render formats the handler does not write
// and the state versions it does not read; framing serialize and
// deserialize with a ByteWriter / ByteReader; and the optional ABI 1.1
// hooks, which stay NULL unless the handler defines them (the host takes
// a non-NULL fold_many or prefetch as present). The hooks are static
// functions that call the handler's static members directly (the compiler
// inlines them), so the host's call through the table is the only
// indirect call, as it was with handwritten tables.
//
// A handler H provides:
//
//   static constexpr char kPluginName[]    the plugin's name ("gauge");
//   static constexpr char kTypeName[]      the tab type it serves;
//   static constexpr char kDescription[]   one line for humans;
//   static constexpr uint32_t kStateVersion  the form `write` writes;
//   static constexpr uint32_t kFormats     the render formats it writes
//                                          (format_bits(...)); render is
//                                          only asked those, the host gets
//                                          TABA_ERR_UNSUPPORTED for others;
//   using State = ...;                     its state type;
//   static State make(std::string_view client, double now);
//       a new empty state (new_state; `client` is "" for aggregates, and
//       deserialize reads into make("", 0));
//   static taba_status check_event(const taba_event* event, char* err, size_t err_cap);
//       goes into the table as it is, without a guard: it runs once per
//       event, where a guard would cost a stack frame, so it must not throw
//       (nor allocate);
//   static void fold(State& s, const taba_event* events, size_t n, double now);
//   static void merge(State& into, const State& from, double now);
//   static taba_status render(const State& s, uint32_t format, double now, taba_output* out);
//   static bool prunable(const State& s, double now);
//   static void write(const State& s, ByteWriter* w);
//       the serialized form, version kStateVersion;
//   static bool read(ByteReader* r, uint32_t version, State* s, const char** why);
//       reads a form of `version` (1..kStateVersion) into s, a make("", 0);
//       *why is NULL on entry; false with the reason in *why when corrupt
//       (the error text is "corrupt <type> state: <why>");
//
// and optionally (ABI 1.1; absent means a NULL hook, as the host expects):
//
//   static void fold_many(StateSpan<State> states, std::string_view client,
//                         const taba_event* events, size_t n, double now);
//   static void prefetch(const taba_state* const* states, size_t count, const taba_event* events,
//                        size_t n, double now);
//       goes into the table as it is, without a guard (it must not throw;
//       StateSpan<const State>(states, count) types the states): GCC finds
//       a function that only reads and prefetches "pure" and deletes a call
//       to it whose result is unused, so a wrapper calling it would
//       compile to nothing.
//
// A handler that keeps nothing declares `static constexpr bool kStateless
// = true` instead of make, write and read: every state is then one shared
// object that is never allocated or freed, serialize writes nothing and
// deserialize accepts only the empty form.
#ifndef TABA_PLUGINS_COMMON_HANDLER_ADAPTER_H
#define TABA_PLUGINS_COMMON_HANDLER_ADAPTER_H

#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <type_traits>

#include "common/byte_io.h"
#include "common/plugin_support.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace taba::builtin {

// The kFormats bit set of the given render formats.
constexpr uint32_t format_bits(std::initializer_list<taba_format> formats) {
  uint32_t bits = 0;
  for (const taba_format f : formats) bits |= uint32_t{1} << f;
  return bits;
}

// The states of a fold_many or prefetch call, as S& (S is the state type,
// const for prefetch).
template <class S>
class StateSpan {
 public:
  using Handle = std::conditional_t<std::is_const_v<S>, const taba_state*, taba_state*>;

  StateSpan(Handle const* states, size_t count) : states_(states), count_(count) {}

  size_t size() const { return count_; }
  S& operator[](size_t i) const { return *reinterpret_cast<S*>(states_[i]); }

 private:
  Handle const* states_;
  size_t count_;
};

template <class H>
class HandlerAdapter {
 public:
  using State = typename H::State;

  static constexpr bool kStateless = requires { requires H::kStateless; };
  static constexpr bool kHasFoldMany = requires { &H::fold_many; };
  static constexpr bool kHasPrefetch = requires { &H::prefetch; };

  static constexpr taba_handler table() {
    return {
        sizeof(taba_handler),
        H::kStateVersion,
        H::kTypeName,
        H::kDescription,
        new_state,
        free_state,
        H::check_event,
        fold,
        merge,
        render,
        prunable,
        serialize,
        deserialize,
        fold_many_hook(),
        prefetch_hook(),
        {},
    };
  }

 private:
  static State* state_of(taba_state* s) { return reinterpret_cast<State*>(s); }
  static const State* state_of(const taba_state* s) { return reinterpret_cast<const State*>(s); }
  static taba_state* handle(State* s) { return reinterpret_cast<taba_state*>(s); }

  // The one state every hook of a stateless handler sees; never written
  // through (its hooks change nothing).
  static State* shared_state() {
    static State shared;
    return &shared;
  }

  // A new state of H; throws std::bad_alloc.
  static State* allocate(std::string_view client, double now) { return new State(H::make(client, now)); }

  static taba_state* new_state(const char* client, size_t client_len, double now) noexcept {
    if constexpr (kStateless) {
      return handle(shared_state());
    } else {
      try {
        return handle(allocate(std::string_view(client_len != 0 ? client : "", client_len), now));
      } catch (...) {
        return nullptr;
      }
    }
  }

  static void free_state(taba_state* state) noexcept {
    if constexpr (!kStateless) delete state_of(state);
  }

  static void fold(taba_state* state, const taba_event* events, size_t n, double now) noexcept {
    guard_void([&] { H::fold(*state_of(state), events, n, now); });
  }

  static void merge(taba_state* into, const taba_state* from, double now) noexcept {
    guard_void([&] { H::merge(*state_of(into), *state_of(from), now); });
  }

  static taba_status render(const taba_state* state, uint32_t format, double now, taba_output* out) noexcept {
    if (format >= 32 || (H::kFormats >> format & 1) == 0) return TABA_ERR_UNSUPPORTED;
    return guard_status(nullptr, 0, [&] { return H::render(*state_of(state), format, now, out); });
  }

  // An exception (none is expected) keeps the state.
  static int prunable(const taba_state* state, double now) noexcept {
    int result = 0;
    guard_void([&] { result = H::prunable(*state_of(state), now) ? 1 : 0; });
    return result;
  }

  static taba_status serialize(const taba_state* state, taba_output* out) noexcept {
    if constexpr (kStateless) {
      return out == nullptr || out->write == nullptr ? TABA_ERR_INTERNAL : TABA_OK;
    } else {
      return guard_status(nullptr, 0, [&] {
        ByteWriter w;
        H::write(*state_of(state), &w);
        return w.flush_to(out);
      });
    }
  }

  static taba_status deserialize(const char* data, size_t len, uint32_t version, taba_state** out, char* err,
                                 size_t err_cap) noexcept {
    return guard_status(err, err_cap, [&] {
      if (version == 0 || version > H::kStateVersion) {
        set_errorf(err, err_cap, "%s state version %" PRIu32 " not supported (newest is %" PRIu32 ")",
                   H::kTypeName, version, H::kStateVersion);
        return TABA_ERR_VERSION;
      }
      if constexpr (kStateless) {
        if (len != 0) {
          set_errorf(err, err_cap, "corrupt %s state: %zu bytes where none are expected", H::kTypeName, len);
          return TABA_ERR_CORRUPT;
        }
        *out = handle(shared_state());
      } else {
        std::unique_ptr<State> s(allocate("", 0.0));
        ByteReader r(data, len);
        const char* why = nullptr;
        if (!H::read(&r, version, s.get(), &why)) {
          set_errorf(err, err_cap, "corrupt %s state: %s", H::kTypeName, why != nullptr ? why : "malformed");
          return TABA_ERR_CORRUPT;
        }
        *out = handle(s.release());
      }
      return TABA_OK;
    });
  }

  static void fold_many(taba_state* const* states, size_t count, const char* client, size_t client_len,
                        const taba_event* events, size_t n, double now) noexcept {
    guard_void([&] {
      H::fold_many(StateSpan<State>(states, count),
                   std::string_view(client_len != 0 ? client : "", client_len), events, n, now);
    });
  }

  static constexpr decltype(taba_handler::fold_many) fold_many_hook() {
    if constexpr (kHasFoldMany) {
      return fold_many;
    } else {
      return nullptr;
    }
  }

  static constexpr decltype(taba_handler::prefetch) prefetch_hook() {
    if constexpr (kHasPrefetch) {
      return H::prefetch;
    } else {
      return nullptr;
    }
  }
};

// The handler table of H, and the table of the plugin serving H alone.
template <class H>
inline constexpr taba_handler kHandlerTable = HandlerAdapter<H>::table();

template <class H>
inline constexpr const taba_handler* kHandlerList[] = {&kHandlerTable<H>};

template <class H>
inline constexpr taba_plugin kPluginTable = {
    sizeof(taba_plugin),
    TABA_ABI_MAJOR,
    TABA_ABI_MINOR,
    H::kPluginName,
    TABA_VERSION_STRING,
    1,
    0,
    kHandlerList<H>,
    {},
};

// What taba_plugin_entry returns for the plugin serving H: its table, or
// NULL for a host of another ABI major.
template <class H>
const taba_plugin* plugin_entry(const taba_host* host) {
  return host_compatible(host) ? &kPluginTable<H> : nullptr;
}

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_HANDLER_ADAPTER_H
