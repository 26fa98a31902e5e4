#include "routes/delta_ingest.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/log.h"
#include "core/validation.h"
#include "plugin/state.h"
#include "routes/ingest_reply.h"

namespace taba::routes {
namespace {

// A block's client ID or name as a reply shows it: as sent when valid, in
// its printable form otherwise.
std::string printable(std::string_view value) {
  return check_identifier(value).empty() ? std::string(value) : quote_for_error(value);
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

// The smallest block: empty client, name, type and state.
constexpr size_t kMinBlockBytes = 2 + 2 + 1 + 8 + 4 + 4;

}  // namespace

DeltaIngestRequest::DeltaIngestRequest(Ingest* ingest, std::shared_ptr<http::Exchange> exchange,
                                       std::optional<http::Inflater::Format> compression)
    : ingest_(ingest), exchange_(std::move(exchange)), resolver_(ingest->sink_, ingest->registry_) {
  if (auto length = exchange_->request().content_length) {
    constexpr uint64_t kMaxReserve = 64ull << 20;
    uint64_t expect = compression ? *length * 4 : *length;
    body_.reserve(static_cast<size_t>(std::min(expect, kMaxReserve)));
  }
  if (compression) inflater_ = ingest->make_inflater(*compression);
}

bool DeltaIngestRequest::take(std::string_view bytes) {
  const size_t before = body_.size();
  body_.append(bytes);
  // A body that does not start with the magic (a v1 body sent here, say)
  // is refused as soon as that shows.
  const size_t magic = protocol::kDeltaMagic.size();
  if (before < magic && body_.size() >= magic &&
      std::string_view(body_).substr(0, magic) != protocol::kDeltaMagic) {
    reject(400, protocol::unwrap_delta_body(body_).status().message());
    return false;
  }
  return true;
}

void DeltaIngestRequest::on_body(std::string_view chunk) {
  if (failed_) return;
  ingest_->stats_.bytes_received += chunk.size();
  if (!inflater_) {
    take(chunk);
    return;
  }
  Status s = inflater_->feed(chunk, [this](std::string_view out) { return take(out); });
  if (!s.ok() && !failed_) reject(400, s.message());
}

void DeltaIngestRequest::on_complete() {
  if (failed_) return;
  if (inflater_) {
    Status s = inflater_->finish();
    if (!s.ok()) return reject(400, s.message());
  }
  Result<std::string_view> unwrapped = protocol::unwrap_delta_body(body_);
  if (!unwrapped.ok()) return reject(400, unwrapped.status().message());
  const std::string_view batch = unwrapped.value();

  // Framing: every block is read before any is judged, so that a body cut
  // short or corrupt applies nothing.
  protocol::DeltaReader reader(batch);
  Status s = reader.open();
  if (!s.ok()) return reject(400, s.message());
  std::vector<protocol::DeltaBlock> blocks;
  blocks.reserve(std::min<size_t>(reader.block_count(), batch.size() / kMinBlockBytes));
  protocol::DeltaBlock block;
  while (reader.next(&block, &s)) blocks.push_back(block);
  if (!s.ok()) return reject(400, s.message());

  // Each block on its own: the good ones are applied, the others listed.
  std::vector<protocol::Refusal> refusals;
  std::vector<bool> accepted(blocks.size(), false);
  uint64_t events = 0;
  uint64_t applied_blocks = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    protocol::Refusal r;
    if (judge(blocks[i], &r)) {
      accepted[i] = true;
      ++applied_blocks;
      events = saturating_add(events, blocks[i].events);
      continue;
    }
    r.line = i + 1;
    refusals.push_back(std::move(r));
  }

  auto refused = std::make_shared<Refused>();
  refused->delta = true;
  if (!refusals.empty()) {
    ingest_->note_refusals(exchange_->request(), refusals, "block");
    refused->fill(exchange_->request(), refusals, events, "block");
    if (ingest_->sink_->keeps_refused()) {
      protocol::DeltaWriter kept(reader.time());
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (!accepted[i]) kept.add(blocks[i]);
      }
      refused->text = kept.finish();
    }
  }
  Ingest::Accepted body;
  body.delta = true;
  body.events = events;
  body.delta_blocks = applied_blocks;
  if (applied_blocks > 0) {
    if (refusals.empty()) {
      // The batch as it came, out of its envelope, stamped with the
      // receive time.
      body_.erase(0, protocol::kDeltaEnvelopeBytes);
      std::memcpy(body_.data() + 1, &now_, sizeof now_);
      body.batch = std::move(body_);
    } else {
      protocol::DeltaWriter good(now_);
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (accepted[i]) good.add(blocks[i]);
      }
      body.batch = good.finish();
    }
    body.bindings = resolver_.take_bindings();
  }
  failed_ = true;  // answered from here on
  ingest_->settle(exchange_, std::move(body), std::move(refused));
}

bool DeltaIngestRequest::judge(const protocol::DeltaBlock& block, protocol::Refusal* r) {
  r->client = printable(block.client);
  r->name = printable(block.name);
  r->events = block.events;
  if (std::string why = check_identifier(block.client); !why.empty()) {
    r->kind = "client";
    r->reason = fmt::format("invalid client ID \"{}\": {}", r->client, why);
    return false;
  }
  if (std::string why = check_identifier(block.name); !why.empty()) {
    r->kind = "name";
    r->reason = fmt::format("invalid name \"{}\": {}", r->name, why);
    return false;
  }
  std::string err;
  const plugin::Handler* h = resolver_.resolve(block.name, block.type, &err);
  if (!h) {
    r->kind = "type";
    r->reason = std::move(err);
    return false;
  }
  r->kind = "state";
  if (block.state_version == 0 || block.state_version > h->state_version()) {
    resolver_.refused(block.name);
    r->reason = fmt::format("{} state version {} is not one the loaded plugin reads (1 to {})", h->type_name,
                            block.state_version, h->state_version());
    return false;
  }
  Result<plugin::State> state = h->deserialize(block.state, block.state_version);
  if (!state.ok()) {
    resolver_.refused(block.name);
    const std::string& why = state.status().message();
    r->reason =
        fmt::format("{} state ({} bytes, version {}) does not deserialize: {}", h->type_name,
                    block.state.size(), block.state_version, why.empty() ? "the plugin gave no reason" : why);
    return false;
  }
  return true;
}

void DeltaIngestRequest::reject(int status, const std::string& why) {
  failed_ = true;
  ingest_->reject(*exchange_, status, why);
}

}  // namespace taba::routes
