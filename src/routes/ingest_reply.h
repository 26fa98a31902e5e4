// What an ingest body's refused blocks make of its reply, for /post and
// /post_zip (blocks named by line) and /post_delta (blocks named by their
// number): "line N: reason" / "block N: reason" lines, or with JSON
// {"events": <applied>, "refused": [{"line" | "block", "client", "name",
// "events", "reason"}]} (docs/api.md, "Partial acceptance"), and the
// header Taba-Refused-Blocks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "http/message.h"
#include "protocol/v1_decoder.h"
#include "routes/ingest.h"

namespace taba::routes {

// The refusal lines or JSON; `unit` is what Refusal::line counts ("line" or
// "block").
std::string refusal_body(const std::vector<protocol::Refusal>& refusals, uint64_t applied, bool json,
                         const char* unit);

struct Refused {
  size_t blocks = 0;
  uint64_t events = 0;
  bool json = false;
  bool delta = false;   // a /post_delta body: `text` is a delta batch
  std::string body;     // refusal_body()
  std::string text;     // the refused blocks (v1 body or delta batch), when the sink keeps them
  std::string reasons;  // "line N: reason" (or "block N: reason") lines

  // Counts, lists and keeps the refusals (when any); `applied` is the
  // events of the accepted blocks.
  void fill(const http::Request& request, const std::vector<protocol::Refusal>& refusals, uint64_t applied,
            const char* unit);
  // Hands the refused blocks to the sink (refused() or refused_deltas()).
  void hand_to(IngestSink* sink, const std::string& batch_id) const;
  http::Response response(int status) const;
};

}  // namespace taba::routes
