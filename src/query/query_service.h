// The query API over a store (docs/api.md §6): /tabs, /projection,
// /supertabs, /names, /clients, /types. Runs on the loop thread.
//
// Windows render "as of now minus the measured pipeline latency", so a 1m
// window is not short by the seconds still in flight.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/server.h"
#include <functional>

#include "store/store.h"

namespace taba::query {

class QueryService {
 public:
  explicit QueryService(store::Store* store) : store_(store) {}

  // True when `path` is a query route this service answers.
  static bool handles(std::string_view path);
  // Answers one query request (GET or POST) whose body is complete. `done`
  // runs once, on the loop thread (at once for the embedded store, after
  // the shards answer for Redis).
  void handle(const http::Request& request, std::string_view body, std::function<void(http::Response)> done) const;

 private:
  struct Plan;
  struct Selection;
  // Parses a request into what to fetch; a response when it is bad.
  std::optional<http::Response> plan(const http::Request& request, std::string_view body, Plan* plan) const;
  static void select(const store::ReadView& view, const Plan& plan, Selection* sel);

  static http::Response tabs(const store::ReadView& view, const Plan& plan);
  static http::Response projection(const store::ReadView& view, const Plan& plan);
  static http::Response supertabs(const store::ReadView& view, const Plan& plan);
  static http::Response names(const store::ReadView& view, const Plan& plan);
  static http::Response clients(const store::ReadView& view, const Plan& plan);
  static http::Response types(const store::ReadView& view, const Plan& plan);

  store::Store* store_;
};

// The names a name filter matches, sorted.
std::vector<const store::NameEntry*> matching_names(const store::ReadView& view, const Matcher& names);

// Merges the states of `clients` (indexes into view.clients()) of `entry`
// into *into, created on first use. False when none of them has a state.
bool reduce_states(const store::NameEntry& entry, const std::vector<store::ClientIndex>& clients, double now,
                   taba_state** into);

// Renders a state through its handler in `format`, or else in the first
// fallback the handler supports (handler.h: JSON_DETAILED -> JSON_EXACT ->
// JSON); a format newer than the handler's plugin is skipped without
// asking. "null" when the render fails.
std::string render_state(const plugin::Handler* handler, const taba_state* state, uint32_t format, double now);

}  // namespace taba::query
