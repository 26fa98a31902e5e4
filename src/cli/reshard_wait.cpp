// taba-cli reshard --wait: the POST, the polling and the outcome
// (reshard_wait.h).
#include "cli/reshard_wait.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <ostream>
#include <thread>

#include "cli/cli.h"
#include "cli/format.h"
#include "cli/text.h"
#include "core/byte_size.h"

namespace taba::cli {
namespace {

namespace dom = simdjson::dom;

Status read_move(dom::object m, MoveSeen* out) {
  std::string_view id, from, to, phase, driver, error;
  bool ok = m["id"].get_string().get(id) == simdjson::SUCCESS &&
            m["from"].get_string().get(from) == simdjson::SUCCESS &&
            m["to"].get_string().get(to) == simdjson::SUCCESS &&
            m["phase"].get_string().get(phase) == simdjson::SUCCESS &&
            m["driver"].get_string().get(driver) == simdjson::SUCCESS &&
            m["error"].get_string().get(error) == simdjson::SUCCESS &&
            m["first"].get_uint64().get(out->first) == simdjson::SUCCESS &&
            m["last"].get_uint64().get(out->last) == simdjson::SUCCESS &&
            m["names_moved"].get_uint64().get(out->names_moved) == simdjson::SUCCESS &&
            m["names_left"].get_uint64().get(out->names_left) == simdjson::SUCCESS &&
            m["bytes_moved"].get_uint64().get(out->bytes_moved) == simdjson::SUCCESS &&
            m["elapsed_s"].get_double().get(out->elapsed_s) == simdjson::SUCCESS &&
            m["driver_alive"].get_bool().get(out->driver_alive) == simdjson::SUCCESS;
  if (!ok) return Status::Corruption("a move without its fields (id, from, to, phase, counts, driver, error)");
  out->id = id;
  out->from = from;
  out->to = to;
  out->phase = phase;
  out->driver = driver;
  out->error = error;
  return Status::Ok();
}

// The request of `reshard --status` (GET /reshard), as JSON or text.
HttpCall placement_call(const Invocation& inv, bool json) {
  Invocation get = inv;
  get.to.reset();
  get.vbuckets.reset();
  get.cancel = false;
  get.wait = false;
  get.placement = true;
  get.json = json;
  Result<HttpCall> call = plan_request(get, 0);
  return call.ok() ? *call : HttpCall{};  // a GET without arguments always plans
}

// What happened to one exchange: the reply, or why there is none (already
// written to err, with the exit status in *code).
struct Reply {
  std::optional<http::ClientResponse> response;
  int code = kExitOk;
};

Reply exchange_once(const Invocation& inv, const HttpCall& call, const Exchange& exchange, std::ostream& err) {
  Result<http::ClientResponse> r = exchange(call);
  if (!r.ok()) {
    err << "taba-cli: " << r.status().message() << "\n";
    return {std::nullopt, kExitUsage};
  }
  if (r->status != 200 && r->status != 202) {
    err << format_http_error(call.method, inv.server.origin + call.target, r->status, r->reason, r->body);
    return {std::nullopt, kExitServerError};
  }
  return {std::move(*r), kExitOk};
}

// The placement JSON of a reply, or the exit status after saying why not.
Result<PlacementSeen> placement_of(const Invocation& inv, const HttpCall& call, const http::ClientResponse& r,
                                   std::ostream& err) {
  Result<PlacementSeen> p = parse_placement_json(r.body);
  if (!p.ok()) {
    err << fmt::format("taba-cli: unexpected reply from {}: {}\n", inv.server.origin + call.target,
                       p.status().message());
  }
  return p;
}

const MoveSeen* find_recent(const PlacementSeen& p, std::string_view id) {
  auto it = std::find_if(p.recent.begin(), p.recent.end(), [&](const MoveSeen& m) { return m.id == id; });
  return it == p.recent.end() ? nullptr : &*it;
}

}  // namespace

Result<PlacementSeen> parse_placement_json(std::string_view json) {
  dom::parser parser;
  dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) return Status::Corruption("malformed JSON");
  PlacementSeen out;
  dom::element move;
  dom::array recent;
  if (root["supported"].get_bool().get(out.supported) != simdjson::SUCCESS ||
      root["move"].get(move) != simdjson::SUCCESS || root["recent"].get_array().get(recent) != simdjson::SUCCESS) {
    return Status::Corruption("expected the placement: {\"supported\", ..., \"move\", \"recent\"}");
  }
  if (!move.is_null()) {
    dom::object m;
    if (move.get_object().get(m) != simdjson::SUCCESS) return Status::Corruption("\"move\" is not an object or null");
    TABA_RETURN_IF_ERROR(read_move(m, &out.move.emplace()));
  }
  for (dom::element e : recent) {
    dom::object m;
    if (e.get_object().get(m) != simdjson::SUCCESS) return Status::Corruption("\"recent\" holds a non-object");
    TABA_RETURN_IF_ERROR(read_move(m, &out.recent.emplace_back()));
  }
  return out;
}

std::string progress_line(const MoveSeen& m) {
  return fmt::format("{}: {}, {} names moved, {} left, {}, {:.1f} s", m.id, m.phase, m.names_moved, m.names_left,
                     human_bytes(m.bytes_moved), m.elapsed_s);
}

int reshard_and_wait(const Invocation& inv, const HttpCall& post, const Exchange& exchange, int poll_ms,
                     std::ostream& out, std::ostream& err) {
  const HttpCall poll = placement_call(inv, true);
  std::ostream& progress = inv.json ? err : out;
  const std::string wanted = inv.cancel ? "cancelled" : "done";

  // For --cancel, the move to wait for is the one in progress now.
  std::optional<std::string> id;
  if (inv.cancel) {
    Reply before = exchange_once(inv, poll, exchange, err);
    if (!before.response) return before.code;
    Result<PlacementSeen> p = placement_of(inv, poll, *before.response, err);
    if (!p.ok()) return kExitServerError;
    if (p->move) id = p->move->id;
  }
  Reply answer = exchange_once(inv, post, exchange, err);
  if (!answer.response) return answer.code;
  Result<PlacementSeen> started = placement_of(inv, post, *answer.response, err);
  if (!started.ok()) return kExitServerError;
  if (!id && started->move) id = started->move->id;
  if (!id) {
    err << (inv.cancel ? "taba-cli: no move was in progress to cancel\n"
                       : "taba-cli: the server's answer shows no move in progress to wait for\n");
    return kExitServerError;
  }

  std::string last_key;
  auto report = [&](const MoveSeen& m) {
    std::string key = fmt::format("{} {} {} {}", m.phase, m.names_moved, m.names_left, m.bytes_moved);
    if (key == last_key) return;
    progress << progress_line(m) << "\n";
    last_key = std::move(key);
  };
  if (started->move && started->move->id == *id) report(*started->move);

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(inv.wait_timeout_s));
  std::string phase = started->move && started->move->id == *id ? started->move->phase : "";
  std::optional<MoveSeen> ended;
  bool failing = false;
  for (bool first = true;; first = false) {
    if (!first) {
      if (Clock::now() >= deadline) {
        err << fmt::format(
            "taba-cli: gave up waiting for move {} after {:g} s{}; it goes on (see 'taba-cli reshard --status'; "
            "'taba-cli reshard --cancel' stops it)\n",
            *id, inv.wait_timeout_s, phase.empty() ? "" : ", phase " + phase);
        return kExitGaveUp;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(poll_ms)));
    }
    Result<http::ClientResponse> r = exchange(poll);
    if (!r.ok() || r->status >= 500) {
      // A server restarting or a shard failing over: the move goes on.
      if (!failing) {
        err << "taba-cli: polling: "
            << (r.ok() ? fmt::format("{} {}: {}", r->status, trim(r->reason), trim(r->body)) : r.status().message())
            << "; retrying\n";
      }
      failing = true;
      continue;
    }
    failing = false;
    if (r->status != 200) {
      err << format_http_error(poll.method, inv.server.origin + poll.target, r->status, r->reason, r->body);
      return kExitServerError;
    }
    Result<PlacementSeen> p = placement_of(inv, poll, *r, err);
    if (!p.ok()) return kExitServerError;
    if (p->move && p->move->id == *id) {
      report(*p->move);
      phase = p->move->phase;
      continue;
    }
    if (const MoveSeen* m = find_recent(*p, *id)) {
      report(*m);
      ended = *m;
    }
    break;
  }

  // The placement the move left.
  const HttpCall final_call = placement_call(inv, inv.json);
  Reply last = exchange_once(inv, final_call, exchange, err);
  if (last.response) out << with_newline(last.response->body);
  if (!ended) {
    err << fmt::format("taba-cli: move {} is no longer in progress and not among the recent moves\n", *id);
    return kExitServerError;
  }
  if (ended->phase != wanted) {
    err << fmt::format("taba-cli: move {} ended {}, not {}{}\n", *id, ended->phase, wanted,
                       ended->error.empty() ? "" : " (last error: " + ended->error + ")");
    return kExitServerError;
  }
  return last.response ? kExitOk : last.code;
}

}  // namespace taba::cli
