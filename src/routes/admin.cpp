#include "routes/admin.h"

#include <fmt/format.h>

#include <algorithm>

#include "query/params.h"
#include "routes/admin_reply.h"
#include "routes/placement_format.h"

namespace taba::routes {
namespace {

std::string json_number(double v) { return fmt::format("{:.6g}", v); }

http::Response render_report(const std::string& format, const store::Report& report) {
  std::string out;
  if (format == kTextPlain) {
    for (const auto& [k, v] : report.counts) out += fmt::format("{}: {}\n", k, v);
    for (const std::string& d : report.details) out += fmt::format("  {}\n", d);
    return http::Response::text(200, std::move(out));
  }
  out += '{';
  for (const auto& [k, v] : report.counts) out += fmt::format("{}: {}, ", json_string(k), v);
  out += "\"details\": [";
  for (size_t i = 0; i < report.details.size(); ++i) out += (i ? ", " : "") + json_string(report.details[i]);
  out += "]}";
  return http::Response::json(200, std::move(out));
}

std::string roles_list(const std::vector<std::string>& roles, bool json) {
  std::string out;
  for (size_t i = 0; i < roles.size(); ++i) {
    if (i) out += json ? ", " : ",";
    out += json ? json_string(roles[i]) : roles[i];
  }
  return out;
}

}  // namespace

bool AdminRoutes::handles(std::string_view path) {
  return path == "/status" || path == "/servers" || path == "/latency" || path == "/delete" || path == "/gc" ||
         path == "/check" || path == "/flush";
}

void AdminRoutes::handle(const http::Request& req, std::string_view body, std::function<void(http::Response)> done) {
  bool is_admin = req.path == "/delete" || req.path == "/gc" || req.path == "/check" || req.path == "/flush";
  if (is_admin && req.method != "POST") {
    http::Response r = http::Response::text(405, fmt::format("{} changes the store; use POST\n", req.path));
    r.headers.push_back({"Allow", "POST"});
    return done(std::move(r));
  }
  if (!is_admin && req.method != "GET") {
    http::Response r = http::Response::text(405, fmt::format("{} accepts only GET\n", req.path));
    r.headers.push_back({"Allow", "GET"});
    return done(std::move(r));
  }
  if (is_admin) return admin(req, body, std::move(done));
  ops(req, std::move(done));
}

void AdminRoutes::admin(const http::Request& req, std::string_view body, std::function<void(http::Response)> done) {
  http::Response not_acceptable;
  std::string format = pick_reply_format(req, &not_acceptable);
  if (format.empty()) return done(std::move(not_acceptable));
  auto reply = [format, done](const Status& s, const store::Report& report) {
    if (!s.ok()) return done(store_error(s));
    done(render_report(format, report));
  };
  if (req.path == "/delete") {
    auto params = query::parse_params(req.query, body, {"name", "re"});
    if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
    if (!params->has_name || params->names.empty()) {
      return done(http::Response::text(400, "/delete needs name=NAME[,NAME…] (or name=REGEX&re=1)\n"));
    }
    auto names = Matcher::make(params->names, params->re, true);
    if (!names.ok()) return done(http::Response::text(400, names.status().message() + "\n"));
    return store_->delete_names(names.value(), reply);
  }
  if (req.path == "/check") {
    auto params = query::parse_params(req.query, body, {"dry"});
    if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
    bool dry = true;
    for (const auto& [k, v] : params->extra) {
      if (v == "false" || v == "0") {
        dry = false;
      } else if (v != "true" && v != "1") {
        return done(http::Response::text(400, fmt::format("dry must be true or false, not \"{}\"\n", v)));
      }
    }
    return store_->check(!dry, reply);
  }
  auto params = query::parse_params(req.query, body, {});
  if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
  if (req.path == "/gc") return store_->gc(reply);
  store_->flush(reply);
}

void AdminRoutes::ops(const http::Request& req, std::function<void(http::Response)> done) {
  auto params = query::parse_params(req.query, "", {});  // these routes take none (docs/api.md §5.1: unknown -> 400)
  if (!params.ok()) return done(http::Response::text(400, params.status().message() + "\n"));
  http::Response not_acceptable;
  std::string format = pick_reply_format(req, &not_acceptable);
  if (format.empty()) return done(std::move(not_acceptable));
  std::string route = req.path;
  store::Store* store = store_;
  store_->status([store, format, route, done = std::move(done)](const Status& s, const store::ClusterStatus& cs) {
    if (!s.ok()) return done(store_error(s));
    bool json = format == kApplicationJson;
    std::vector<const store::ServerInfo*> servers;
    for (const auto& sv : cs.servers) servers.push_back(&sv);
    std::sort(servers.begin(), servers.end(), [](auto* a, auto* b) { return a->id < b->id; });
    std::string out;
    if (route == "/servers") {
      if (json) out += '{';
      for (size_t i = 0; i < servers.size(); ++i) {
        if (json) {
          out += fmt::format("{}{}: [{}]", i ? ", " : "", json_string(servers[i]->id), roles_list(servers[i]->roles, true));
        } else {
          // The placement epoch first: "ID: roles" stays the end of the line.
          out += fmt::format("epoch {}  {}: {}\n", servers[i]->placement_epoch, servers[i]->id,
                             roles_list(servers[i]->roles, false));
        }
      }
      if (json) out += '}';
    } else if (route == "/latency") {
      // Every be's measured enqueue -> applied latency over the last minute.
      double p50 = 0, p99 = 0;
      int64_t samples = 0;
      for (const auto* sv : servers) {
        if (sv->latency_samples == 0) continue;
        p50 = std::max(p50, sv->latency_p50_s);
        p99 = std::max(p99, sv->latency_p99_s);
        samples += sv->latency_samples;
      }
      if (json) {
        out += fmt::format("{{\"pipeline_latency_s\": {}, \"p50_s\": {}, \"p99_s\": {}, \"samples\": {}, \"servers\": {{",
                           json_number(cs.pipeline_latency_s), json_number(p50), json_number(p99), samples);
        bool first = true;
        for (const auto* sv : servers) {
          if (sv->latency_samples == 0) continue;
          out += fmt::format("{}{}: {{\"p50_s\": {}, \"p99_s\": {}, \"samples\": {}}}", first ? "" : ", ",
                             json_string(sv->id), json_number(sv->latency_p50_s), json_number(sv->latency_p99_s),
                             sv->latency_samples);
          first = false;
        }
        out += "}}";
      } else {
        out += fmt::format("pipeline_latency_s: {:.3f}\np50_s: {:.3f}\np99_s: {:.3f}\nsamples: {}\n",
                           cs.pipeline_latency_s, p50, p99, samples);
        for (const auto* sv : servers) {
          if (sv->latency_samples == 0) continue;
          out += fmt::format("  {}: p50 {:.3f} s, p99 {:.3f} s over {} samples\n", sv->id, sv->latency_p50_s,
                             sv->latency_p99_s, sv->latency_samples);
        }
      }
    } else {  // /status
      if (json) {
        out += fmt::format("{{\"store\": {}, \"pipeline_latency_s\": {}, \"shards\": [", json_string(cs.store),
                           json_number(cs.pipeline_latency_s));
        for (size_t i = 0; i < cs.shards.size(); ++i) {
          const auto& sh = cs.shards[i];
          out += fmt::format(
              "{}{{\"name\": {}, \"master\": {}, \"up\": {}, \"stream_length\": {}, \"pending\": {}, "
              "\"oldest_pending_age_s\": {}, \"error\": {}}}",
              i ? ", " : "", json_string(sh.name), json_string(sh.master), sh.up ? "true" : "false", sh.stream_length,
              sh.pending, json_number(sh.oldest_pending_age_s), json_string(sh.error));
        }
        out += "], \"servers\": [";
        for (size_t i = 0; i < servers.size(); ++i) {
          const auto* sv = servers[i];
          out += fmt::format(
              "{}{{\"id\": {}, \"roles\": [{}], \"listen\": {}, \"last_seen_age_s\": {}, \"events_per_s\": {}, "
              "\"deltas_per_s\": {}, \"latency_p50_s\": {}, \"latency_p99_s\": {}, \"placement_epoch\": {}}}",
              i ? ", " : "", json_string(sv->id), roles_list(sv->roles, true), json_string(sv->listen),
              json_number(sv->last_seen_age_s), json_number(sv->events_per_s), json_number(sv->deltas_per_s),
              json_number(sv->latency_p50_s), json_number(sv->latency_p99_s), sv->placement_epoch);
        }
        out += "]";  // the placement and the closing brace follow
      } else {
        out += fmt::format("store: {}\npipeline_latency_s: {:.3f}\n", cs.store, cs.pipeline_latency_s);
        for (const auto& sh : cs.shards) {
          out += fmt::format("shard {}: {} master {}, stream {} entries, pending {}, oldest pending {:.1f} s{}\n",
                             sh.name, sh.up ? "up" : "DOWN", sh.master.empty() ? "?" : sh.master, sh.stream_length,
                             sh.pending, sh.oldest_pending_age_s, sh.error.empty() ? "" : " (" + sh.error + ")");
        }
        for (const auto* sv : servers) {
          out += fmt::format("server {} [{}] {}: seen {:.1f} s ago, {:.0f} events/s in, {:.0f} deltas/s applied\n",
                             sv->id, roles_list(sv->roles, false), sv->listen, sv->last_seen_age_s, sv->events_per_s,
                             sv->deltas_per_s);
        }
      }
    }
    if (route != "/status") {
      return done(json ? http::Response::json(200, std::move(out)) : http::Response::text(200, std::move(out)));
    }
    // The placement after the rest (docs/api.md, "/reshard"); a store that
    // cannot tell it now still answers the rest.
    store->placement([json, out = std::move(out), done](const Status& ps, const store::PlacementStatus& p) mutable {
      if (json) {
        out += ps.ok() ? ", \"placement\": " + placement_json(p)
                       : ", \"placement\": null, \"placement_error\": " + json_string(ps.message());
        out += '}';
        return done(http::Response::json(200, std::move(out)));
      }
      out += ps.ok() ? placement_text(p, false) : fmt::format("placement: unavailable ({})\n", ps.message());
      done(http::Response::text(200, std::move(out)));
    });
  });
}

}  // namespace taba::routes
