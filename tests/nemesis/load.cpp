#include "load.h"

#include <chrono>

#include <fmt/format.h>

#include "harness.h"
#include "taba/client.hpp"

namespace taba::nemesis {

namespace {

constexpr int kLibNames = 8;
constexpr int kV1Names = 6;
constexpr int kStatsdNames = 4;
constexpr int kPostTimeoutMs = 3000;

}  // namespace

void Ledger::add(const Key& key, int64_t count, int64_t total, bool maybe) {
  std::lock_guard<std::mutex> lock(mu_);
  Expected& e = map_[key];
  (maybe ? e.maybe_count : e.count) += count;
  (maybe ? e.maybe_total : e.total) += total;
}

std::map<Ledger::Key, Expected> Ledger::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_;
}

struct Load::LibThread {
  std::unique_ptr<taba::Client> client;
  std::string client_id;
  std::map<std::string, std::pair<int64_t, int64_t>> recorded;  // name -> (count, total), this thread only
};

Load::Load(LoadOptions options, Ledger* ledger, PathClock* clock)
    : options_(std::move(options)), ledger_(ledger), clock_(clock) {}

Load::~Load() {
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Load::start() {
  for (int t = 0; t < options_.lib_threads; ++t) {
    auto lib = std::make_unique<LibThread>();
    lib->client_id = fmt::format("lib{}", t);
    ClientOptions o;
    o.endpoint = options_.agent_urls[static_cast<size_t>(t) % options_.agent_urls.size()];
    o.client_id = lib->client_id;
    o.flush_interval = std::chrono::milliseconds(200);
    o.timeout_ms = kPostTimeoutMs;
    o.stop_timeout = std::chrono::milliseconds(1000);
    lib->client = std::make_unique<taba::Client>(o);
    libs_.push_back(std::move(lib));
  }
  for (int t = 0; t < options_.lib_threads; ++t) threads_.emplace_back([this, t] { run_lib(t); });
  for (int p = 0; p < 3; ++p) threads_.emplace_back([this, p] { run_poster(p); });
  threads_.emplace_back([this] { run_statsd(); });
}

void Load::run_lib(int t) {
  LibThread& lib = *libs_[static_cast<size_t>(t)];
  for (int64_t i = 0; !stop_.load(); ++i) {
    for (int k = 0; k < options_.events_per_ms; ++k) {
      int64_t n = i * options_.events_per_ms + k;
      std::string name = fmt::format("nem.lib.{}", n % kLibNames);
      int64_t value = n % 5 + 1;
      lib.client->Record(name, "TotalsCounter", std::to_string(value));
      auto& [count, total] = lib.recorded[name];
      ++count;
      total += value;
    }
    test::sleep_ms(1);
  }
}

void Load::run_poster(int p) {
  // Posters 0 and 1 stick to their agent; poster 2 posts to the fes.
  const bool direct = p == 2;
  for (int64_t i = 0; !stop_.load(); ++i) {
    std::string id = fmt::format("nem-{}-{}-{}", options_.run_id, p, i);
    std::vector<test::ClientBlock> clients;
    std::map<Ledger::Key, std::pair<int64_t, int64_t>> in_batch;
    const double t = test::now_s();
    for (int c = 0; c < 2; ++c) {
      test::ClientBlock cb{fmt::format("v1p{}c{}", p, c), {}};
      for (int k = 0; k < 3; ++k) {
        std::string name = fmt::format("nem.v1.{}", (i + k + c) % kV1Names);
        test::NameBlock nb{name, {}};
        for (int e = 0; e < 5; ++e) {
          int64_t value = (i + e) % 3 + 1;
          nb.event_lines.push_back(test::event_line("TotalsCounter", t, std::to_string(value)));
          auto& [count, total] = in_batch[{name, cb.client}];
          ++count;
          total += value;
        }
        cb.names.push_back(std::move(nb));
      }
      clients.push_back(std::move(cb));
    }
    std::string body = test::v1_body(clients);
    bool acked = false;
    for (int attempt = 0;; ++attempt) {
      std::string url = direct ? options_.fe_urls[static_cast<size_t>(i + attempt) % options_.fe_urls.size()]
                     : options_.agent_urls[static_cast<size_t>(options_.roaming_retries ? p + attempt : p) %
                                           options_.agent_urls.size()];
      auto r = test::post(url, "/post", body, {{"Taba-Batch-Id", id}}, kPostTimeoutMs);
      if (test::status_of(r) == 200) {
        acked = true;
        break;
      }
      ++post_failures_;
      if (stop_.load() && test::now_ms() > drain_deadline_ms_.load()) break;
      test::sleep_ms(100);
    }
    int64_t events = 0;
    for (const auto& [key, ct] : in_batch) {
      ledger_->add(key, ct.first, ct.second, !acked);
      events += ct.first;
    }
    if (acked) {
      acked_ += events;
      (direct ? clock_->fe_ack_ms : clock_->agent_ack_ms[p]) = test::now_ms();
    } else {
      ++unanswered_;
    }
    test::sleep_ms(20);
  }
}

void Load::run_statsd() {
  for (int64_t i = 0; !stop_.load(); ++i) {
    std::string datagram;
    std::map<std::string, int64_t> lines;
    for (int k = 0; k < 10; ++k) {
      std::string name = fmt::format("nem.statsd.{}", (i + k) % kStatsdNames);
      datagram += name + ":1|c\n";
      ++lines[name];
    }
    if (test::send_udp(options_.statsd_port, datagram).ok()) {
      std::lock_guard<std::mutex> lock(statsd_mu_);
      for (const auto& [name, n] : lines) {
        statsd_by_name_[name] += n;
        statsd_sent_ += n;
      }
    }
    test::sleep_ms(5);
  }
}

void Load::finish(int drain_ms) {
  const int64_t deadline = test::now_ms() + drain_ms;
  drain_deadline_ms_ = deadline;
  stop_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  for (auto& lib : libs_) {
    for (;;) {
      taba::ClientStatus s = lib->client->Status();
      if (s.pending_events == 0 && s.retry_events == 0) break;
      if (test::now_ms() > deadline) break;
      lib->client->Flush(std::chrono::milliseconds(2000));
    }
    taba::ClientStatus s = lib->client->Status();
    lib->client->Stop();
    uint64_t dropped = s.dropped_invalid + s.dropped_full + s.dropped_conflict + s.dropped_rejected +
                       s.dropped_retry_overflow + s.dropped_unsent;
    bool complete = s.sent == s.recorded && dropped == 0;
    if (!complete) {
      library_problems_ += fmt::format(
          "{}: {} recorded, {} sent, {} dropped, {} still pending or unanswered (last error: {}); ", lib->client_id,
          s.recorded, s.sent, dropped, s.pending_events + s.retry_events, s.last_error);
    } else {
      acked_ += static_cast<int64_t>(s.sent);
    }
    for (const auto& [name, ct] : lib->recorded) ledger_->add({name, lib->client_id}, ct.first, ct.second, !complete);
  }
}

int64_t Load::acknowledged_events() const { return acked_.load(); }

std::map<std::string, int64_t> Load::statsd_sent_by_name() const {
  std::lock_guard<std::mutex> lock(statsd_mu_);
  return statsd_by_name_;
}

}  // namespace taba::nemesis
