#include "query/query_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <optional>

#include "core/clock.h"
#include "core/utf8.h"
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


// Whatever a plugin writes, a reply is valid UTF-8.
std::string valid_utf8(std::string text) {
  if (is_valid_utf8(text)) return text;
  std::string clean;
  append_sanitized_utf8(text, &clean);
  return clean;
}

}  // namespace

std::vector<const store::NameEntry*> matching_names(const store::ReadView& store, const Matcher& m) {
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

bool reduce_states(const store::NameEntry& e, const std::vector<store::ClientIndex>& clients, double now,
                   taba_state** into) {
  const plugin::Handler* h = e.handler;
  bool any = false;
  for (store::ClientIndex ci : clients) {
    const store::State* st = e.states.find(ci);
    if (!st) continue;
    if (!*into) *into = h->new_state(now);
    if (!*into) return false;
    h->merge(*into, st->get(), now);
    any = true;
  }
  return any;
}

std::string render_state(const plugin::Handler* handler, const taba_state* state, uint32_t format, double now) {
  std::string out;
  if (!handler->render(state, format, now, &out).ok()) return "null";
  return valid_utf8(std::move(out));
}

bool QueryService::handles(std::string_view path) {
  return path == "/tabs" || path == "/projection" || path == "/supertabs" || path == "/names" || path == "/clients" ||
         path == "/types";
}

// A parsed query: its route, format, filters and time.
struct QueryService::Plan {
  std::string route;
  std::string format;
  uint32_t render_format = TABA_FORMAT_JSON;
  double now = 0;
  Matcher names;
  Matcher clients;
};

// What a tabs-like query selects from a view.
struct QueryService::Selection {
  std::vector<const store::NameEntry*> names;
  bool all_clients = true;
  std::vector<store::ClientIndex> clients;  // when !all_clients, sorted
  double now = 0;
};

void QueryService::handle(const http::Request& req, std::string_view body,
                          std::function<void(http::Response)> done) const {
  if (req.method != "GET" && req.method != "POST") {
    http::Response r = http::Response::text(405, fmt::format("{} does not accept {}; use GET or POST\n", req.path,
                                                              req.method));
    r.headers.push_back({"Allow", "GET, POST"});
    done(std::move(r));
    return;
  }
  auto p = std::make_shared<Plan>();
  if (auto error = plan(req, body, p.get())) {
    done(std::move(*error));
    return;
  }
  store::QueryNeed need;
  need.names = &p->names;
  need.clients = &p->clients;
  const std::string& route = p->route;
  bool per_client = !p->clients.any();
  if (route == "/tabs" || route == "/supertabs") {
    need.aggregates = !per_client;
    need.states = per_client;
    need.client_list = per_client;
  } else if (route == "/projection") {
    need.states = true;
    need.client_list = true;
  } else if (route == "/names") {
    need.states = per_client;
    need.client_list = per_client;
  } else if (route == "/clients") {
    need.client_list = true;
  }
  store_->fetch(need, [p, done = std::move(done)](const Status& s, const store::ReadView* view) {
    if (!s.ok()) {
      http::Response r = http::Response::text(503, fmt::format("the store did not answer: {}\n", s.message()));
      r.headers.push_back({"Retry-After", "1"});
      done(std::move(r));
      return;
    }
    const std::string& r = p->route;
    if (r == "/tabs") return done(tabs(*view, *p));
    if (r == "/projection") return done(projection(*view, *p));
    if (r == "/supertabs") return done(supertabs(*view, *p));
    if (r == "/names") return done(names(*view, *p));
    if (r == "/clients") return done(clients(*view, *p));
    done(types(*view, *p));
  });
}

std::optional<http::Response> QueryService::plan(const http::Request& req, std::string_view body, Plan* p) const {
  p->route = req.path;
  bool detailed = p->route == "/tabs" || p->route == "/projection" || p->route == "/supertabs";
  Result<Params> params = p->route == "/clients" ? parse_params(req.query, body, {"client", "re"})
                          : p->route == "/types" ? parse_params(req.query, body, {"name", "re"})
                                                 : parse_params(req.query, body, {"name", "client", "re"});
  if (!params.ok()) return bad_request(params.status().message());
  http::Response not_acceptable;
  p->format = pick_format(req, detailed, &not_acceptable);
  if (p->format.empty()) return not_acceptable;
  // Text replies keep Taba's rounded numbers (their consumers parse that
  // form); JSON replies carry every number in full precision.
  p->render_format = p->format == kJsonDetailed ? TABA_FORMAT_JSON_DETAILED
                     : p->format == kJson       ? TABA_FORMAT_JSON_EXACT
                                                : TABA_FORMAT_JSON;
  auto names = Matcher::make(params->names, params->re, params->has_name);
  if (!names.ok()) return bad_request(names.status().message());
  auto clients = Matcher::make(params->clients, params->re, params->has_client);
  if (!clients.ok()) return bad_request(clients.status().message());
  p->names = std::move(names.value());
  p->clients = std::move(clients.value());
  p->now = wall_now() - store_->pipeline_latency_s();
  return std::nullopt;
}

void QueryService::select(const store::ReadView& view, const Plan& p, Selection* sel) {
  sel->now = p.now;
  sel->names = matching_names(view, p.names);
  sel->all_clients = p.clients.any();
  if (!sel->all_clients) {
    const auto& all = view.clients();
    for (store::ClientIndex i = 0; i < all.size(); ++i) {
      if (p.clients.matches(all[i])) sel->clients.push_back(i);
    }
  }
}

http::Response QueryService::tabs(const store::ReadView& view, const Plan& plan) {
  Selection sel;
  select(view, plan, &sel);
  std::string out;
  bool first = true;
  if (plan.format != kText) out += '{';
  for (const store::NameEntry* e : sel.names) {
    std::string rendered;
    // A state with nothing to show as of now (every value expired, every
    // window empty) is left out, as its name will be at the next GC.
    if (sel.all_clients) {
      if (!e->aggregate) continue;  // a store could not provide it
      if (e->handler->prunable(e->aggregate.get(), sel.now)) continue;
      rendered = render_state(e->handler, e->aggregate.get(), plan.render_format, sel.now);
    } else {
      taba_state* reduced = nullptr;
      if (!reduce_states(*e, sel.clients, sel.now, &reduced)) continue;
      bool empty = e->handler->prunable(reduced, sel.now);
      if (!empty) rendered = render_state(e->handler, reduced, plan.render_format, sel.now);
      e->handler->free_state(reduced);
      if (empty) continue;
    }
    if (plan.format == kText) {
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
  if (plan.format != kText) out += "}";
  return reply(plan.format, std::move(out));
}

http::Response QueryService::projection(const store::ReadView& view, const Plan& plan) {
  Selection sel;
  select(view, plan, &sel);
  std::string out;
  if (plan.format != kText) out += '{';
  bool first_name = true;
  for (const store::NameEntry* e : sel.names) {
    // This name's (client, state) pairs, sorted by client ID.
    std::vector<std::pair<std::string_view, const store::State*>> rows;
    auto add = [&](store::ClientIndex ci, const store::State& st) {
      if (!e->handler->prunable(st.get(), sel.now)) rows.emplace_back(view.clients()[ci], &st);
    };
    if (sel.all_clients) {
      e->states.for_each(add);
    } else {
      for (store::ClientIndex ci : sel.clients) {
        if (const store::State* st = e->states.find(ci)) add(ci, *st);
      }
    }
    if (rows.empty()) continue;
    std::sort(rows.begin(), rows.end());
    if (plan.format != kText) {
      if (!first_name) out += ", ";
      protocol::append_json_string(&out, e->name);
      out += ": {";
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      std::string rendered = render_state(e->handler, rows[i].second->get(), plan.render_format, sel.now);
      if (plan.format == kText) {
        out += fmt::format("({}, {}): {}\n", e->name, rows[i].first, rendered);
      } else {
        if (i) out += ", ";
        protocol::append_json_string(&out, rows[i].first);
        out += ": ";
        out += rendered;
      }
    }
    if (plan.format != kText) out += '}';
    first_name = false;
  }
  if (plan.format != kText) out += '}';
  return reply(plan.format, std::move(out));
}

http::Response QueryService::supertabs(const store::ReadView& view, const Plan& plan) {
  Selection sel;
  select(view, plan, &sel);
  if (sel.names.empty()) return http::Response::text(404, "no tab matches the name filter\n");
  const plugin::Handler* handler = sel.names.front()->handler;
  for (const store::NameEntry* e : sel.names) {
    if (e->handler != handler) {
      return bad_request(fmt::format("supertabs needs names of one type: {} is {} but {} is {}",
                                     sel.names.front()->name, handler->type_name, e->name, e->handler->type_name));
    }
  }
  taba_state* reduced = handler->new_state(sel.now);
  if (!reduced) return http::Response::text(500, fmt::format("the {} handler could not create a state\n", handler->type_name));
  for (const store::NameEntry* e : sel.names) {
    if (sel.all_clients) {
      if (e->aggregate) handler->merge(reduced, e->aggregate.get(), sel.now);
    } else {
      reduce_states(*e, sel.clients, sel.now, &reduced);
    }
  }
  std::string rendered = render_state(handler, reduced, plan.render_format, sel.now);
  handler->free_state(reduced);
  if (plan.format == kText) rendered += '\n';
  return reply(plan.format, std::move(rendered));
}

http::Response QueryService::names(const store::ReadView& view, const Plan& plan) {
  const Matcher& clients = plan.clients;
  std::vector<store::ClientIndex> client_ids;
  if (!clients.any()) {
    const auto& all = view.clients();
    for (store::ClientIndex i = 0; i < all.size(); ++i) {
      if (clients.matches(all[i])) client_ids.push_back(i);
    }
  }
  std::vector<std::string_view> out_names;
  for (const store::NameEntry* e : view.names()) {
    if (!plan.names.matches(e->name)) continue;
    if (!clients.any()) {
      bool posted = std::any_of(client_ids.begin(), client_ids.end(),
                                [&](store::ClientIndex ci) { return e->states.find(ci) != nullptr; });
      if (!posted) continue;
    }
    out_names.push_back(e->name);
  }
  return list_reply(plan.format, out_names);
}

http::Response QueryService::clients(const store::ReadView& view, const Plan& plan) {
  std::vector<std::string_view> out_clients;
  const auto& all = view.clients();
  for (store::ClientIndex i = 0; i < all.size(); ++i) {
    if (view.client_has_states(i) && plan.clients.matches(all[i])) out_clients.push_back(all[i]);
  }
  std::sort(out_clients.begin(), out_clients.end());
  return list_reply(plan.format, out_clients);
}

http::Response QueryService::types(const store::ReadView& view, const Plan& plan) {
  const std::string& format = plan.format;
  std::string out;
  if (format != kText) out += '{';
  bool first = true;
  for (const store::NameEntry* e : matching_names(view, plan.names)) {
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
