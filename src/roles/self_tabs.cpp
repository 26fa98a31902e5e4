#include "roles/self_tabs.h"

#include <fmt/format.h>

#include <random>

#include "core/clock.h"
#include "core/log.h"
#include "protocol/batch.h"

namespace taba::roles {

namespace {
constexpr size_t kMaxSamples = 512;  // per name and interval
constexpr const char* kReceived = "taba_events_received";
constexpr const char* kRejected = "taba_bodies_rejected";
constexpr const char* kUnavailable = "taba_bodies_unavailable";
constexpr const char* kIngestLatency = "taba_ingest_latency_ms";
constexpr const char* kPipelineLatency = "taba_pipeline_latency_ms";
}  // namespace

std::vector<std::string> SelfTabs::names() {
  return {kReceived, kRejected, kUnavailable, kIngestLatency, kPipelineLatency};
}

void SelfTabs::record_ingest_latency_ms(double ms) {
  // Reservoir sampling keeps the interval's sample bounded and unbiased.
  ++seen_ingest_;
  if (ingest_ms_.size() < kMaxSamples) {
    ingest_ms_.push_back(ms);
    return;
  }
  static std::mt19937_64 rng{12345};
  uint64_t j = rng() % seen_ingest_;
  if (j < kMaxSamples) ingest_ms_[j] = ms;
}

void SelfTabs::flush(const std::string& client, uint64_t received, uint64_t rejected, uint64_t unavailable) {
  if (in_flight_) return;  // the previous interval's post is still going
  double now = wall_now();
  protocol::BatchWriter batch;
  batch.reset(now);
  store::Bindings bindings;
  std::vector<std::string> numbers;  // JSON texts, alive until finish()
  numbers.reserve(4 + kMaxSamples * 2);
  auto usable = [&](const std::string& name, const char* type) -> const plugin::Handler* {
    const plugin::Handler* h = registry_->find(type);
    const plugin::Handler* bound = store_->bound_handler(name);
    if (!h || (bound && bound != h)) {
      if (warned_.insert(name).second) {
        log::warn("self tabs: {} skipped ({})", name,
                  h ? fmt::format("already bound to {}", bound->type_name) : fmt::format("no plugin serves {}", type));
      }
      return nullptr;
    }
    if (!bound) bindings.emplace_back(name, h);
    return h;
  };
  auto event = [&](double value) {
    numbers.push_back(fmt::format("{}", value));
    const std::string& text = numbers.back();
    taba_value v{};
    v.kind = TABA_VALUE_NUMBER;
    v.number = value;
    v.json = text.data();
    v.json_len = text.size();
    batch.add_event(now, v);
  };
  auto counter = [&](const char* name, uint64_t total, uint64_t* last) {
    uint64_t delta = total - *last;
    *last = total;
    if (delta == 0 || !usable(name, "CounterGroup")) return;
    batch.begin_block(client, name, "CounterGroup");
    event(static_cast<double>(delta));
  };
  counter(kReceived, received, &last_received_);
  counter(kRejected, rejected, &last_rejected_);
  counter(kUnavailable, unavailable, &last_unavailable_);
  if (!ingest_ms_.empty() && usable(kIngestLatency, "PercentileGroup")) {
    batch.begin_block(client, kIngestLatency, "PercentileGroup");
    for (double ms : ingest_ms_) event(ms);
  }
  ingest_ms_.clear();
  seen_ingest_ = 0;
  // The be's pipeline latency: the samples added since the last interval.
  const LatencyWindow& lat = store_->local_latency_window();
  uint64_t fresh = lat.total() - last_latency_total_;
  last_latency_total_ = lat.total();
  if (fresh > 0 && usable(kPipelineLatency, "PercentileGroup")) {
    std::vector<double> recent = lat.recent(std::min<uint64_t>(fresh, kMaxSamples));
    batch.begin_block(client, kPipelineLatency, "PercentileGroup");
    for (double s : recent) event(s * 1000.0);
  }
  if (batch.event_count() == 0) return;
  in_flight_ = true;
  std::string id = fmt::format("self-{}-{:.3f}", client, now);
  store_->submit(batch.finish(), store::BatchId{id, false}, std::move(bindings), [this](const Status& s) {
    in_flight_ = false;
    if (!s.ok()) log::debug("self tabs: not recorded this interval: {}", s.message());
  });
}

}  // namespace taba::roles
