// POST /post_delta: a delta batch (protocol/delta_batch.h) folded at the
// edge, in its "TDLT" + crc32 envelope, plain or with Content-Encoding
// gzip / deflate (bounded as /post bodies are: http.max_body_bytes on the
// wire, ingest.max_inflated_bytes and max_inflate_ratio inflated).
//
// The body is read whole (its checksum covers all of it), then every block
// is read before any is judged: a bad envelope, a wrong batch version or a
// truncated block refuses the whole body (400, one line), nothing applied.
// Then each block is checked as a v1 (client, name) block is, and is the
// unit of refusal: client ID and name valid, type served by a loaded plugin
// and not conflicting with the name's binding (the sink's, or the first in
// this body), state version one the plugin reads, state bytes the plugin
// deserializes. The good blocks go to the sink as one delta batch stamped
// with the receive time (the store's clock is the fe's, as for v1 events);
// the reply lists the refused ones as "block N: reason" (N from 1 in body
// order) exactly as /post lists its lines (docs/api.md, "POST /post_delta").
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "http/inflate.h"
#include "http/server.h"
#include "protocol/delta_batch.h"
#include "protocol/v1_decoder.h"
#include "routes/body_resolver.h"
#include "routes/ingest.h"

namespace taba::routes {

class DeltaIngestRequest : public http::RequestHandler {
 public:
  DeltaIngestRequest(Ingest* ingest, std::shared_ptr<http::Exchange> exchange,
                     std::optional<http::Inflater::Format> compression);

  void on_body(std::string_view chunk) override;
  void on_complete() override;

 private:
  // Appends (inflated) body bytes; false once the body cannot be a delta
  // body (refused at once, without reading the rest).
  bool take(std::string_view bytes);
  // True when the block may be applied; otherwise *refusal says why (its
  // line field left for the caller to number).
  bool judge(const protocol::DeltaBlock& block, protocol::Refusal* refusal);
  void reject(int status, const std::string& why);

  Ingest* ingest_;
  std::shared_ptr<http::Exchange> exchange_;
  double now_ = wall_now();  // the receive time
  std::string body_;         // the envelope, inflated
  std::unique_ptr<http::Inflater> inflater_;
  BodyResolver resolver_;
  bool failed_ = false;
};

}  // namespace taba::routes
