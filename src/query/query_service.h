// The query API over the embedded store (SPEC §6): /tabs, /projection,
// /supertabs, /names, /clients, /types. Runs on the loop thread.
//
// Windows render "as of now minus the measured pipeline latency", so a 1m
// window is not short by the seconds still in flight.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"
#include "store/embedded/embedded_store.h"

namespace taba::query {

class QueryService {
 public:
  explicit QueryService(const store::EmbeddedStore* store) : store_(store) {}

  // True when `path` is a query route this service answers.
  static bool handles(std::string_view path);
  // Answers one query request (GET or POST) whose body is complete.
  http::Response handle(const http::Request& request, std::string_view body) const;

 private:
  struct Selection;
  // Parses the common parameters; a response when they are bad.
  std::optional<http::Response> select(const http::Request& request, std::string_view body, Selection* sel) const;
  bool reduce_clients(const store::NameEntry& entry, const Selection& sel, taba_state** into) const;
  double render_now() const;

  http::Response tabs(const http::Request& request, std::string_view body) const;
  http::Response projection(const http::Request& request, std::string_view body) const;
  http::Response supertabs(const http::Request& request, std::string_view body) const;
  http::Response names(const http::Request& request, std::string_view body) const;
  http::Response clients(const http::Request& request, std::string_view body) const;
  http::Response types(const http::Request& request, std::string_view body) const;

  const store::EmbeddedStore* store_;
};

// Renders a state through its handler; falls back from a detailed format
// to plain JSON when the handler lacks it.
std::string render_state(const plugin::Handler* handler, const taba_state* state, uint32_t format, double now);

}  // namespace taba::query
