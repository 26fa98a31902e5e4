#include "query/query_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <optional>

#include "core/clock.h"
#include "protocol/payload.h"
#include "query/accept.h"
#include "query/params.h"

namespace taba::query {
namespace {

constexpr std::string_view kText = "text/plain";
constexpr std::string_view kJson = "application/json";
constexpr std::string_view kJsonDetailed = "application/json-detailed";

http::Response bad_request(const std::string& why) { return http::Response::text(400, why + "\n"); }

// Negotiates the reply format; "" means 406 (the response is filled in).
std::string pick_format(const http::Request& req, bool detailed, http::Response* not_acceptable) {
  std::vector<std::string> offered{std::string(kText), std::string(kJson)};
  if (detailed) offered.emplace_back(kJsonDetailed);
  std::string f = negotiate(req.header("accept"), offered);
  if (f.empty()) {
    *not_acceptable = http::Response::text(
        406, fmt::format("none of the types in Accept: {} is available; offered: {}\n", req.header("accept"),
                         fmt::join(offered, ", ")));
  }
  return f;
}

http::Response reply(const std::string& format, std::string body) {
  if (format == kText) return http::Response::text(200, std::move(body));
  http::Response r = http::Response::json(200, std::move(body));
  if (format == kJsonDetailed) r.content_type = "application/json-detailed";
  return r;
}

// A list of identifiers: one per line, or a JSON array of strings.
http::Response list_reply(const std::string& format, const std::vector<std::string_view>& items) {
  std::string out;
  if (format == kText) {
    for (std::string_view item : items) {
      out += item;
      out += '\n';
    }
    return reply(format, std::move(out));
  }
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    protocol::append_json_string(&out, items[i]);
  }
  out += ']';
  return reply(format, std::move(out));
}

// The names matched by the name filter, sorted.
std::vector<const store::NameEntry*> matching_names(const store::EmbeddedStore& store, const Matcher& m) {
  std::vector<const store::NameEntry*> out;
  if (!m.any() && !m.is_regex()) {
    for (const std::string& n : m.values()) {
      if (const store::NameEntry* e = store.find_name(n)) out.push_back(e);
    }
    return out;  // values() is sorted
  }
  for (const store::NameEntry* e : store.names()) {
    if (m.matches(e->name)) out.push_back(e);
  }
  return out;
}

}  // namespace

std::string render_state(const plugin::Handler* handler, const taba_state* state, uint32_t format, double now) {
  std::string out;
  taba_output sink = plugin::string_output(&out);
  taba_status rc = handler->table->render(state, format, now, &sink);
  if (rc == TABA_ERR_UNSUPPORTED && format != TABA_FORMAT_JSON) {
    out.clear();
    rc = handler->table->render(state, TABA_FORMAT_JSON, now, &sink);
  }
  if (rc != TABA_OK) return "null";
  return out;
}

bool QueryService::handles(std::string_view path) {
  return path == "/tabs" || path == "/projection" || path == "/supertabs" || path == "/names" || path == "/clients" ||
         path == "/types";
}

http::Response QueryService::handle(const http::Request& req, std::string_view body) const {
  if (req.method != "GET" && req.method != "POST") {
    http::Response r = http::Response::text(405, fmt::format("{} does not accept {}; use GET or POST\n", req.path,
                                                              req.method));
    r.headers.push_back({"Allow", "GET, POST"});
    return r;
  }
  if (req.path == "/tabs") return tabs(req, body);
  if (req.path == "/projection") return projection(req, body);
  if (req.path == "/supertabs") return supertabs(req, body);
  if (req.path == "/names") return names(req, body);
  if (req.path == "/clients") return clients(req, body);
  return types(req, body);
}

// What a tabs-like query selects: names, clients, format and time.
struct QueryService::Selection {
  std::string format;
  uint32_t render_format = TABA_FORMAT_JSON;
  double now = 0;
  std::vector<const store::NameEntry*> names;
  bool all_clients = true;
  std::vector<store::ClientIndex> clients;  // when !all_clients, sorted
};

std::optional<http::Response> QueryService::select(const http::Request& req, std::string_view body,
                                                   Selection* sel) const {
  auto params = parse_params(req.query, body, {"name", "client", "re"});
  if (!params.ok()) return bad_request(params.status().message());
  http::Response not_acceptable;
  sel->format = pick_format(req, true, &not_acceptable);
  if (sel->format.empty()) return not_acceptable;
  sel->render_format = sel->format == kJsonDetailed ? TABA_FORMAT_JSON_DETAILED : TABA_FORMAT_JSON;
  auto names = Matcher::make(params->names, params->re, params->has_name);
  if (!names.ok()) return bad_request(names.status().message());
  auto clients = Matcher::make(params->clients, params->re, params->has_client);
  if (!clients.ok()) return bad_request(clients.status().message());
  sel->now = render_now();
  sel->names = matching_names(*store_, *names);
  sel->all_clients = clients->any();
  if (!sel->all_clients) {
    const auto& all = store_->clients();
    for (store::ClientIndex i = 0; i < all.size(); ++i) {
      if (clients->matches(all[i])) sel->clients.push_back(i);
    }
  }
  return std::nullopt;
}

double QueryService::render_now() const { return wall_now() - store_->pipeline_latency_s(); }

// Merges the selected clients' states of `e` into *into (created on first
// use). False when none of them has a state.
bool QueryService::reduce_clients(const store::NameEntry& e, const Selection& sel, taba_state** into) const {
  const taba_handler* h = e.handler->table;
  bool any = false;
  for (store::ClientIndex ci : sel.clients) {
    const store::State* st = e.states.find(ci);
    if (!st) continue;
    if (!*into) *into = h->new_state("", 0, sel.now);
    if (!*into) return false;
    h->merge(*into, st->get(), sel.now);
    any = true;
  }
  return any;
}

http::Response QueryService::tabs(const http::Request& req, std::string_view body) const {
  Selection sel;
  if (auto error = select(req, body, &sel)) return *error;
  std::string out;
  bool first = true;
  if (sel.format != kText) out += '{';
  for (const store::NameEntry* e : sel.names) {
    std::string rendered;
    if (sel.all_clients) {
      rendered = render_state(e->handler, e->aggregate.get(), sel.render_format, sel.now);
    } else {
      taba_state* reduced = nullptr;
      if (!reduce_clients(*e, sel, &reduced)) continue;
      rendered = render_state(e->handler, reduced, sel.render_format, sel.now);
      e->handler->table->free_state(reduced);
    }
    if (sel.format == kText) {
      out += e->name;
      out += ": ";
      out += rendered;
      out += '\n';
    } else {
      if (!first) out += ", ";
      protocol::append_json_string(&out, e->name);
      out += ": ";
      out += rendered;
    }
    first = false;
  }
  if (sel.format != kText) out += "}";
  return reply(sel.format, std::move(out));
}

http::Response QueryService::projection(const http::Request& req, std::string_view body) const {
  Selection sel;
  if (auto error = select(req, body, &sel)) return *error;
  std::string out;
  if (sel.format != kText) out += '{';
  bool first_name = true;
  for (const store::NameEntry* e : sel.names) {
    // This name's (client, state) pairs, sorted by client ID.
    std::vector<std::pair<std::string_view, const store::State*>> rows;
    auto add = [&](store::ClientIndex ci, const store::State& st) { rows.emplace_back(store_->client_name(ci), &st); };
    if (sel.all_clients) {
      e->states.for_each(add);
    } else {
      for (store::ClientIndex ci : sel.clients) {
        if (const store::State* st = e->states.find(ci)) add(ci, *st);
      }
    }
    if (rows.empty()) continue;
    std::sort(rows.begin(), rows.end());
    if (sel.format != kText) {
      if (!first_name) out += ", ";
      protocol::append_json_string(&out, e->name);
      out += ": {";
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      std::string rendered = render_state(e->handler, rows[i].second->get(), sel.render_format, sel.now);
      if (sel.format == kText) {
        out += fmt::format("({}, {}): {}\n", e->name, rows[i].first, rendered);
      } else {
        if (i) out += ", ";
        protocol::append_json_string(&out, rows[i].first);
        out += ": ";
        out += rendered;
      }
    }
    if (sel.format != kText) out += '}';
    first_name = false;
  }
  if (sel.format != kText) out += '}';
  return reply(sel.format, std::move(out));
}

http::Response QueryService::supertabs(const http::Request& req, std::string_view body) const {
  Selection sel;
  if (auto error = select(req, body, &sel)) return *error;
  if (sel.names.empty()) return http::Response::text(404, "no tab matches the name filter\n");
  const plugin::Handler* handler = sel.names.front()->handler;
  for (const store::NameEntry* e : sel.names) {
    if (e->handler != handler) {
      return bad_request(fmt::format("supertabs needs names of one type: {} is {} but {} is {}",
                                     sel.names.front()->name, handler->type_name, e->name, e->handler->type_name));
    }
  }
  const taba_handler* h = handler->table;
  taba_state* reduced = h->new_state("", 0, sel.now);
  if (!reduced) return http::Response::text(500, fmt::format("the {} handler could not create a state\n", handler->type_name));
  for (const store::NameEntry* e : sel.names) {
    if (sel.all_clients) {
      h->merge(reduced, e->aggregate.get(), sel.now);
    } else {
      reduce_clients(*e, sel, &reduced);
    }
  }
  std::string rendered = render_state(handler, reduced, sel.render_format, sel.now);
  h->free_state(reduced);
  if (sel.format == kText) rendered += '\n';
  return reply(sel.format, std::move(rendered));
}

http::Response QueryService::names(const http::Request& req, std::string_view body) const {
  auto params = parse_params(req.query, body, {"name", "client", "re"});
  if (!params.ok()) return bad_request(params.status().message());
  http::Response not_acceptable;
  std::string format = pick_format(req, false, &not_acceptable);
  if (format.empty()) return not_acceptable;
  auto names = Matcher::make(params->names, params->re, params->has_name);
  if (!names.ok()) return bad_request(names.status().message());
  auto clients = Matcher::make(params->clients, params->re, params->has_client);
  if (!clients.ok()) return bad_request(clients.status().message());
  std::vector<store::ClientIndex> client_ids;
  if (!clients->any()) {
    const auto& all = store_->clients();
    for (store::ClientIndex i = 0; i < all.size(); ++i) {
      if (clients->matches(all[i])) client_ids.push_back(i);
    }
  }
  std::vector<std::string_view> out_names;
  for (const store::NameEntry* e : store_->names()) {
    if (!names->matches(e->name)) continue;
    if (!clients->any()) {
      bool posted = std::any_of(client_ids.begin(), client_ids.end(),
                                [&](store::ClientIndex ci) { return e->states.find(ci) != nullptr; });
      if (!posted) continue;
    }
    out_names.push_back(e->name);
  }
  return list_reply(format, out_names);
}

http::Response QueryService::clients(const http::Request& req, std::string_view body) const {
  auto params = parse_params(req.query, body, {"client", "re"});
  if (!params.ok()) return bad_request(params.status().message());
  http::Response not_acceptable;
  std::string format = pick_format(req, false, &not_acceptable);
  if (format.empty()) return not_acceptable;
  auto clients = Matcher::make(params->clients, params->re, params->has_client);
  if (!clients.ok()) return bad_request(clients.status().message());
  std::vector<std::string_view> out_clients;
  for (const std::string& c : store_->clients()) {
    if (clients->matches(c)) out_clients.push_back(c);
  }
  std::sort(out_clients.begin(), out_clients.end());
  return list_reply(format, out_clients);
}

http::Response QueryService::types(const http::Request& req, std::string_view body) const {
  auto params = parse_params(req.query, body, {"name", "re"});
  if (!params.ok()) return bad_request(params.status().message());
  http::Response not_acceptable;
  std::string format = pick_format(req, false, &not_acceptable);
  if (format.empty()) return not_acceptable;
  auto names = Matcher::make(params->names, params->re, params->has_name);
  if (!names.ok()) return bad_request(names.status().message());
  std::string out;
  if (format != kText) out += '{';
  bool first = true;
  for (const store::NameEntry* e : matching_names(*store_, *names)) {
    if (format == kText) {
      out += fmt::format("{}: {}\n", e->name, e->handler->type_name);
    } else {
      if (!first) out += ", ";
      protocol::append_json_string(&out, e->name);
      out += ": ";
      protocol::append_json_string(&out, e->handler->type_name);
    }
    first = false;
  }
  if (format != kText) out += '}';
  return reply(format, std::move(out));
}

}  // namespace taba::query
