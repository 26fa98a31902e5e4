#include "query/query_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

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
  return path == "/tabs" || path == "/names" || path == "/clients" || path == "/types";
}

http::Response QueryService::handle(const http::Request& req, std::string_view body) const {
  if (req.method != "GET" && req.method != "POST") {
    http::Response r = http::Response::text(405, fmt::format("{} does not accept {}; use GET or POST\n", req.path,
                                                              req.method));
    r.headers.push_back({"Allow", "GET, POST"});
    return r;
  }
  if (req.path == "/tabs") return tabs(req, body);
  if (req.path == "/names") return names(req, body);
  if (req.path == "/clients") return clients(req, body);
  return types(req, body);
}

http::Response QueryService::tabs(const http::Request& req, std::string_view body) const {
  auto params = parse_params(req.query, body, {"name", "client", "re"});
  if (!params.ok()) return bad_request(params.status().message());
  http::Response not_acceptable;
  std::string format = pick_format(req, true, &not_acceptable);
  if (format.empty()) return not_acceptable;
  auto names = Matcher::make(params->names, params->re, params->has_name);
  if (!names.ok()) return bad_request(names.status().message());
  auto clients = Matcher::make(params->clients, params->re, params->has_client);
  if (!clients.ok()) return bad_request(clients.status().message());

  const double now = wall_now();
  const uint32_t fmt_code = format == kJsonDetailed ? TABA_FORMAT_JSON_DETAILED : TABA_FORMAT_JSON;
  // Client filter as indices (exact lists resolve directly).
  std::vector<store::ClientIndex> client_ids;
  if (!clients->any()) {
    const auto& all = store_->clients();
    for (store::ClientIndex i = 0; i < all.size(); ++i) {
      if (clients->matches(all[i])) client_ids.push_back(i);
    }
  }
  std::string out;
  bool first = true;
  if (format != kText) out += '{';
  for (const store::NameEntry* e : matching_names(*store_, *names)) {
    std::string rendered;
    if (clients->any()) {
      rendered = render_state(e->handler, e->aggregate.get(), fmt_code, now);
    } else {
      const taba_handler* h = e->handler->table;
      taba_state* reduced = nullptr;
      for (store::ClientIndex ci : client_ids) {
        const store::State* st = e->states.find(ci);
        if (!st) continue;
        if (!reduced) reduced = h->new_state("", 0, now);
        h->merge(reduced, st->get(), now);
      }
      if (!reduced) continue;
      rendered = render_state(e->handler, reduced, fmt_code, now);
      h->free_state(reduced);
    }
    if (format == kText) {
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
  if (format != kText) out += "}";
  return reply(format, std::move(out));
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
