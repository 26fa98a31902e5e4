#include "routes/ingest_reply.h"

#include <fmt/format.h>

#include "protocol/payload.h"
#include "query/accept.h"

namespace taba::routes {

std::string refusal_body(const std::vector<protocol::Refusal>& refusals, uint64_t applied, bool json,
                         const char* unit) {
  std::string out;
  if (!json) {
    for (const protocol::Refusal& r : refusals) out += fmt::format("{} {}: {}\n", unit, r.line, r.reason);
    return out;
  }
  out = fmt::format("{{\"events\": {}, \"refused\": [", applied);
  for (size_t i = 0; i < refusals.size(); ++i) {
    const protocol::Refusal& r = refusals[i];
    out += fmt::format("{}{{\"{}\": {}, \"client\": ", i ? ", " : "", unit, r.line);
    protocol::append_json_string(&out, r.client);
    out += ", \"name\": ";
    if (r.name.empty()) {
      out += "null";
    } else {
      protocol::append_json_string(&out, r.name);
    }
    out += fmt::format(", \"events\": {}, \"reason\": ", r.events);
    protocol::append_json_string(&out, r.reason);
    out += "}";
  }
  out += "]}\n";
  return out;
}

void Refused::fill(const http::Request& request, const std::vector<protocol::Refusal>& refusals,
                   uint64_t applied, const char* unit) {
  if (refusals.empty()) return;
  blocks = refusals.size();
  for (const protocol::Refusal& r : refusals) events += r.events;
  json = query::negotiate(request.header("accept"), {"text/plain", "application/json"}) == "application/json";
  body = refusal_body(refusals, applied, json, unit);
  reasons = json ? refusal_body(refusals, applied, false, unit) : body;
}

void Refused::hand_to(IngestSink* sink, const std::string& batch_id) const {
  if (delta) {
    sink->refused_deltas(text, batch_id, events, reasons);
  } else {
    sink->refused(text, batch_id, events, reasons);
  }
}

http::Response Refused::response(int status) const {
  http::Response r = http::Response::text(status, body);
  if (json) r.content_type = "application/json";
  r.headers.push_back({"Taba-Refused-Blocks", std::to_string(blocks)});
  return r;
}

}  // namespace taba::routes
