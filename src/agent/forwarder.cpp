#include "agent/forwarder.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "agent/dead_letters.h"
#include "core/clock.h"
#include "core/file_io.h"
#include "core/log.h"
#include "http/client.h"
#include "http/url.h"
#include "protocol/v1_encoder.h"

namespace taba::agent {
namespace {

// FNV-1a over the indices' decimal text, '.'-separated.
uint64_t hash_indices(const std::vector<size_t>& indices) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](char c) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  };
  for (size_t k = 0; k < indices.size(); ++k) {
    if (k) mix('.');
    for (char c : std::to_string(indices[k])) mix(c);
  }
  return h;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Endpoint {
  std::string address;
  std::string host;
  int port = 0;
  int in_flight = 0;
  uint64_t requests = 0;
  uint64_t ok = 0;
  uint64_t failures = 0;
  uint32_t consecutive_failures = 0;
  int64_t retry_at_ms = 0;  // steady clock; usable from then on
  double latency_ms_ewma = 0;
  std::string last_error;
};

enum class Outcome { kOk, kDeadLetter, kRetry };

struct Attempt {
  Outcome outcome = Outcome::kRetry;
  int status = 0;
  std::string message;         // for logs / the dead-letter reason
  int64_t retry_after_ms = 0;  // from a Retry-After header
  double latency_ms = 0;
  std::string refusals;        // a 200's "line N: reason" lines for refused blocks
};

// First line of a server's reply, for logs.
std::string first_line(std::string_view body) {
  size_t nl = body.find('\n');
  std::string_view line = body.substr(0, std::min<size_t>(nl == std::string_view::npos ? body.size() : nl, 300));
  return std::string(line);
}

}  // namespace

struct Forwarder::Impl {
  Spool* spool = nullptr;
  ForwarderOptions options;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Segment> queue;
  std::vector<Endpoint> endpoints;
  std::vector<std::thread> workers;
  int running = 0;
  bool stop_requested = false;
  int64_t stop_deadline_ms = 0;
  uint64_t round_robin = 0;
  std::mt19937_64 rng{std::random_device{}()};
  std::map<int64_t, int64_t> enqueued_at;  // segment number -> wall ms, for the oldest age
  ForwarderStats totals;                    // counters only (dead letters: dead_letters)
  std::unique_ptr<DeadLetters> dead_letters;

  // Under mu. The endpoint to use now, or -1 (then *wait_until_ms says when
  // one becomes usable).
  int choose(int64_t now, int64_t* wait_until_ms) {
    int best = -1;
    *wait_until_ms = INT64_MAX;
    size_t n = endpoints.size();
    for (size_t k = 0; k < n; ++k) {
      size_t i = (round_robin + k) % n;
      const Endpoint& e = endpoints[i];
      if (e.retry_at_ms > now) {
        *wait_until_ms = std::min(*wait_until_ms, e.retry_at_ms);
        continue;
      }
      if (best < 0) {
        best = static_cast<int>(i);
        continue;
      }
      const Endpoint& b = endpoints[static_cast<size_t>(best)];
      if (e.in_flight < b.in_flight ||
          (e.in_flight == b.in_flight && e.consecutive_failures < b.consecutive_failures)) {
        best = static_cast<int>(i);
      }
    }
    if (best >= 0) ++round_robin;
    return best;
  }

  int64_t backoff_ms(uint32_t failures) {
    int64_t d = options.backoff_initial_ms;
    for (uint32_t i = 1; i < failures && d < options.backoff_max_ms; ++i) d *= 2;
    d = std::min<int64_t>(d, options.backoff_max_ms);
    // Equal jitter: half fixed, half random, so that agents restarted
    // together do not retry in lockstep.
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(d / 2, 1));
    return d / 2 + jitter(rng);
  }

  // Reads a segment and encodes its records as one body (or, for a split
  // segment, leaves the encoding to send_split). Returns false when the file
  // cannot be read (*err says why).
  bool load(const Segment& seg, SegmentContents* contents, std::string* body, uint64_t* events,
            std::vector<protocol::V1Encoder::BlockLines>* block_lines, std::string* err) {
    Result<SegmentContents> c = read_segment(seg.path);
    if (!c.ok()) {
      *err = c.status().message();
      return false;
    }
    *contents = std::move(c.value());
    uint64_t corrupt = contents->corrupt;
    protocol::V1Encoder enc;
    for (const SpoolRecord& r : contents->records) {
      if (!enc.add_batch(r.batch).ok()) ++corrupt;
    }
    if (corrupt > 0) {
      log::error("agent: {}: {} corrupt record(s) skipped (disk corruption?)", seg.path, corrupt);
      std::lock_guard<std::mutex> lock(mu);
      totals.corrupt_records_skipped += corrupt;
    }
    *events = enc.events();
    *block_lines = enc.block_lines();
    *body = enc.events() == 0 ? std::string() : enc.finish();
    return true;
  }

  // The fe applied a body but refused some of its blocks (200 with
  // Taba-Refused-Blocks): those blocks become one dead letter. `pick`
  // maps a block of the body sent (index into its block lines) to the
  // blocks of the segment's records to encode. False when the dead letter
  // could not be written. *refused_events: events in the refused blocks.
  bool settle_refusals(const std::string& id, const Attempt& a, const std::vector<protocol::V1Encoder::BlockLines>& lines,
                       const std::function<std::string(const std::vector<size_t>&, uint64_t*)>& encode,
                       const std::string& endpoint, uint64_t* refused_events) {
    *refused_events = 0;
    if (a.refusals.empty()) return true;
    std::vector<size_t> blocks = refused_blocks(a.refusals, lines);
    std::string body = encode(blocks, refused_events);
    if (*refused_events == 0) {
      log::warn("agent: batch {}: {} refused blocks named lines this batch does not have: {}", id, blocks.size(),
                first_line(a.refusals));
      return true;
    }
    return dead_letters->write(id + "-refused", body, *refused_events,
                             fmt::format("batch {}: {} events in {} name block(s) refused by {} (the rest was "
                                         "applied): {}",
                                         id, *refused_events, blocks.size(), endpoint, a.refusals));
  }

  // The fe refused a batch of several posts: sends each post on its own,
  // with a batch id derived from the segment's (so a retry, even after a
  // restart, is still applied once). A refused post whose reason names a
  // line ("line N: ...") loses just the name block holding that line, which
  // becomes a dead letter, and the rest is sent again under an id naming
  // the blocks left out; a refusal without a line dead-letters the rest of
  // the post. kRetry when some post could not be settled yet.
  Attempt send_split(Segment& seg, const SegmentContents& contents, Endpoint& ep,
                     std::optional<http::ClientConnection>& conn, int timeout_ms, uint64_t* events_ok) {
    if (!seg.split) {
      // From now on this segment goes post by post, also after a restart.
      std::string marker = seg.path + ".split";
      FILE* f = std::fopen(marker.c_str(), "wb");
      if (!f || std::fclose(f) != 0) {
        Attempt a;
        a.message = fmt::format("cannot create {}: {}", marker, fileio::errno_text(errno));
        return unsettled(a);
      }
      std::string dir = seg.path.substr(0, seg.path.rfind('/'));
      fileio::sync_dir(dir.empty() ? "." : dir);
      seg.split = true;
    }
    seg.done.resize(contents.records.size(), 0);
    seg.skipped.resize(contents.records.size());
    Attempt last;
    for (size_t i = 0; i < contents.records.size(); ++i) {
      if (seg.done[i]) continue;
      std::string_view batch = contents.records[i].batch;
      std::vector<size_t>& skipped = seg.skipped[i];  // block indices left out, ascending
      for (;;) {
        if (past_stop_deadline()) {
          Attempt a;
          a.message = "stopping";
          return unsettled(a);
        }
        protocol::V1Encoder enc;
        std::vector<size_t> included;
        Status st = enc.add_batch(batch, [&](size_t b) {
          if (std::binary_search(skipped.begin(), skipped.end(), b)) return false;
          included.push_back(b);
          return true;
        });
        if (!st.ok() || enc.events() == 0) break;
        std::vector<protocol::V1Encoder::BlockLines> lines = enc.block_lines();
        uint64_t events = enc.events();
        std::string body = enc.finish();
        Segment one = seg;
        one.batch_id = fmt::format("{}-{}", seg.batch_id, i);
        // The blocks left out, as a fixed-length hash of their sorted
        // indices: deterministic across restarts, and within the fe's
        // 128-character limit however many blocks go.
        if (!skipped.empty()) one.batch_id += fmt::format("-x{:016x}", hash_indices(skipped));
        std::string compressed = http::zlib_compress(body, options.zlib_level);
        Attempt a = send(compressed, one, ep, conn, timeout_ms);
        if (a.outcome == Outcome::kRetry) return a;
        if (a.outcome == Outcome::kOk) {
          uint64_t refused_events = 0;
          auto encode = [&](const std::vector<size_t>& blocks, uint64_t* n) {
            protocol::V1Encoder bad;
            bool ok = bad.add_batch(batch, [&](size_t x) {
              for (size_t k : blocks) {
                if (k < included.size() && included[k] == x) return true;
              }
              return false;
            }).ok();
            *n = ok ? bad.events() : 0;
            return ok ? bad.finish() : std::string();
          };
          if (!settle_refusals(one.batch_id, a, lines, encode, ep.address, &refused_events)) return unsettled(a);
          *events_ok += events - refused_events;
          std::lock_guard<std::mutex> g(mu);
          totals.bytes_sent += compressed.size();
          break;
        }
        last = a;
        // Which block does the fe's "line N:" point into?
        std::optional<size_t> culprit;
        uint64_t line = 0;
        if (a.message.rfind("line ", 0) == 0) {
          for (size_t k = 5; k < a.message.size() && a.message[k] >= '0' && a.message[k] <= '9'; ++k) {
            line = line * 10 + static_cast<uint64_t>(a.message[k] - '0');
          }
        }
        for (size_t k = 0; k < lines.size() && line > 0; ++k) {
          if (line >= lines[k].name_line && line <= lines[k].name_line + lines[k].events) culprit = k;
        }
        if (!culprit || included.size() == 1) {
          if (!dead_letter(one, body, events, a, ep.address)) return unsettled(a);
          break;
        }
        size_t b = included[*culprit];
        protocol::V1Encoder alone;
        if (alone.add_batch(batch, [b](size_t x) { return x == b; }).ok()) {
          uint64_t n = alone.events();
          Segment bad = seg;
          bad.batch_id = fmt::format("{}-{}-b{}", seg.batch_id, i, b);
          if (!dead_letter(bad, alone.finish(), n, a, ep.address)) return unsettled(a);
        }
        skipped.insert(std::upper_bound(skipped.begin(), skipped.end(), b), b);
        log::warn("agent: post {} of batch {}: name block {} refused ({}); sending the rest of the post", i,
                  seg.batch_id, b, a.message);
      }
      seg.done[i] = 1;
    }
    // Settled: the segment is done; what was refused is in the dead letters.
    last.outcome = Outcome::kOk;
    return last;
  }

  bool past_stop_deadline() {
    std::lock_guard<std::mutex> lock(mu);
    return stop_requested && steady_ms() >= stop_deadline_ms;
  }

  // A dead letter could not be written: the segment stays and is tried
  // again later (the endpoint is not to blame).
  static Attempt unsettled(Attempt a) {
    a.outcome = Outcome::kRetry;
    a.status = -1;
    a.message = "cannot write a dead letter; " + a.message;
    return a;
  }

  Attempt send(const std::string& compressed, const Segment& seg, Endpoint& ep,
               std::optional<http::ClientConnection>& conn, int timeout_ms) {
    Attempt a;
    int64_t t0 = steady_ms();
    if (!conn || !conn->is_open()) {
      auto c = http::ClientConnection::connect(ep.host, ep.port, timeout_ms);
      if (!c.ok()) {
        a.message = c.status().message();
        return a;
      }
      conn.emplace(std::move(c.value()));
    }
    std::vector<http::Header> headers{{"Taba-Batch-Id", seg.batch_id},
                                      {"Content-Type", "application/octet-stream"}};
    if (!options.token.empty()) headers.push_back({"Authorization", "Bearer " + options.token});
    int64_t left = timeout_ms - (steady_ms() - t0);
    auto r = conn->request("POST", "/post_zip", headers, compressed, static_cast<int>(std::max<int64_t>(left, 1)));
    a.latency_ms = static_cast<double>(steady_ms() - t0);
    if (!r.ok()) {
      conn.reset();
      a.message = r.status().message();
      return a;
    }
    a.status = r->status;
    a.message = first_line(r->body);
    std::string_view ra = r->header("retry-after");
    if (!ra.empty()) {
      int64_t secs = 0;
      for (char ch : ra) {
        if (ch < '0' || ch > '9') break;
        secs = secs * 10 + (ch - '0');
      }
      a.retry_after_ms = std::min<int64_t>(secs, 3600) * 1000;
    }
    if (a.status >= 200 && a.status < 300) {
      a.outcome = Outcome::kOk;
      std::string_view refused = r->header("taba-refused-blocks");
      if (!refused.empty() && refused != "0") a.refusals = r->body;
    } else if (a.status >= 400 && a.status < 500 && a.status != 401 && a.status != 403 && a.status != 404 &&
               a.status != 408 && a.status != 429) {
      // The fe read the body and refused it: resending cannot help.
      a.outcome = Outcome::kDeadLetter;
    }
    return a;
  }

  // Writes the body and the reason into the dead-letter directory. False
  // when they could not be written (the caller then keeps the segment).
  bool dead_letter(const Segment& seg, const std::string& body, uint64_t events, const Attempt& a,
                   const std::string& endpoint) {
    return dead_letters->write(seg.batch_id, body, events,
                              fmt::format("batch {} ({} events) refused by {}: HTTP {}: {}\n", seg.batch_id, events,
                                          endpoint, a.status, a.message));
  }

  void worker_main() {
    std::vector<std::optional<http::ClientConnection>> conns(endpoints.size());
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      int64_t now = steady_ms();
      if (stop_requested && (queue.empty() || now >= stop_deadline_ms)) break;
      if (queue.empty()) {
        wake.wait_for(lock, std::chrono::milliseconds(200));
        continue;
      }
      int64_t wait_until = 0;
      int ep_index = choose(now, &wait_until);
      if (ep_index < 0) {
        int64_t until = std::min<int64_t>(wait_until, now + 1000);
        if (stop_requested) until = std::min(until, stop_deadline_ms);
        wake.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(until - now, 1)));
        continue;
      }
      Endpoint& ep = endpoints[static_cast<size_t>(ep_index)];
      Segment seg = std::move(queue.front());
      queue.pop_front();
      ++ep.in_flight;
      ++ep.requests;
      ++totals.in_flight;
      int timeout_ms = options.timeout_ms;
      if (stop_requested) timeout_ms = static_cast<int>(std::clamp<int64_t>(stop_deadline_ms - now, 100, timeout_ms));
      std::string address = ep.address;
      lock.unlock();

      uint64_t events = 0;
      std::string err;
      SegmentContents contents;
      std::string body;
      std::vector<protocol::V1Encoder::BlockLines> block_lines;
      bool readable = load(seg, &contents, &body, &events, &block_lines, &err);
      Attempt a;
      uint64_t events_ok = 0;
      if (!readable && ::access(seg.path.c_str(), F_OK) != 0 && errno == ENOENT) {
        // Gone (deleted by hand?): nothing left to send; release its bytes.
        log::error("agent: {} disappeared from the spool; its {} events are lost", seg.path, seg.events);
        std::lock_guard<std::mutex> g(mu);
        totals.corrupt_records_skipped += seg.records;
        readable = true;
        a.outcome = Outcome::kOk;
      } else if (!readable && err.find("header") != std::string::npos) {
        // Unreadable for good: keep it for inspection beside the dead letters.
        std::string aside = options.dead_letter_dir + "/corrupt-" + seg.path.substr(seg.path.rfind('/') + 1);
        log::error("agent: {}: {}; moved to {}", seg.path, err, aside);
        if (::rename(seg.path.c_str(), aside.c_str()) == 0) {
          std::lock_guard<std::mutex> g(mu);
          totals.corrupt_records_skipped += seg.records;
          readable = true;
          a.outcome = Outcome::kOk;
        } else {
          a.message = err;
        }
      } else if (!readable) {
        log::error("agent: cannot read {}: {}; it stays in the spool", seg.path, err);
        a.message = err;
      } else if (events == 0) {
        a.outcome = Outcome::kOk;  // nothing sendable in it: drop the file
        log::warn("agent: {} held no readable events; deleting it", seg.path);
      } else {
        if (!seg.split) {
          std::string compressed = http::zlib_compress(body, options.zlib_level);
          a = send(compressed, seg, ep, conns[static_cast<size_t>(ep_index)], timeout_ms);
          uint64_t refused_events = 0;
          if (a.outcome == Outcome::kOk &&
              !settle_refusals(seg.batch_id, a, block_lines,
                               [&](const std::vector<size_t>& blocks, uint64_t* n) {
                                 return encode_blocks(contents, blocks, n);
                               },
                               ep.address, &refused_events)) {
            a = unsettled(a);
          }
          if (a.outcome == Outcome::kOk) {
            events_ok = events - refused_events;
            std::lock_guard<std::mutex> g(mu);
            totals.bytes_sent += compressed.size();
          }
          if (a.outcome == Outcome::kDeadLetter) {
            log::warn("agent: batch {} of {} post(s) refused ({}: {}); sending its posts one by one", seg.batch_id,
                      contents.records.size(), a.status, a.message);
          }
        }
        if (seg.split || a.outcome == Outcome::kDeadLetter) {
          a = send_split(seg, contents, ep, conns[static_cast<size_t>(ep_index)], timeout_ms, &events_ok);
        }
      }
      if (a.outcome != Outcome::kRetry && options.on_settled) {
        std::vector<std::string> ids;
        for (const SpoolRecord& r : contents.records) {
          if (!r.client_batch_id.empty()) ids.emplace_back(r.client_batch_id);
        }
        if (!ids.empty()) options.on_settled(ids);
      }
      if (a.outcome != Outcome::kRetry && !spool->remove(seg)) {
        a.outcome = Outcome::kRetry;  // sent, but its file would come back after a restart
        a.status = -1;
      }

      lock.lock();
      --ep.in_flight;
      --totals.in_flight;
      // status -1: a local problem (a dead letter could not be written), not the endpoint's.
      bool local_problem = !readable || a.status == -1;
      bool reached = a.status > 0;
      if (a.outcome == Outcome::kRetry && !local_problem) {
        ++ep.failures;
        ++ep.consecutive_failures;
        ep.last_error = reached ? fmt::format("HTTP {}: {}", a.status, a.message) : a.message;
        ep.retry_at_ms = steady_ms() + std::max(backoff_ms(ep.consecutive_failures), a.retry_after_ms);
        log::warn("agent: batch {} to {} failed ({}); endpoint backs off {} ms", seg.batch_id, address,
                  ep.last_error, ep.retry_at_ms - steady_ms());
      } else if (reached) {
        ++ep.ok;
        ep.consecutive_failures = 0;
        ep.latency_ms_ewma = ep.latency_ms_ewma == 0 ? a.latency_ms : 0.8 * ep.latency_ms_ewma + 0.2 * a.latency_ms;
      }
      if (a.outcome == Outcome::kOk && events_ok > 0) {
        ++totals.batches_forwarded;
        totals.events_forwarded += events_ok;
      }
      if (a.outcome == Outcome::kRetry) {
        ++totals.retries;
        ++seg.attempts;
        if (local_problem) {
          // Unreadable or unwritable for now (EMFILE, a full disk): try again a little later.
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
          lock.lock();
        }
        // At the back: a batch that keeps failing must not hold up the others.
        queue.push_back(std::move(seg));
      } else {
        enqueued_at.erase(static_cast<int64_t>(seg.number));
      }
      wake.notify_all();
    }
    --running;
    wake.notify_all();
  }
};

Forwarder::Forwarder(Spool* spool, ForwarderOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->spool = spool;
  impl_->options = std::move(options);
  impl_->dead_letters =
      std::make_unique<DeadLetters>(impl_->options.dead_letter_dir, impl_->options.max_dead_letter_bytes);
  for (const std::string& a : impl_->options.endpoints) {
    Endpoint e;
    e.address = a;
    http::split_endpoint(a, &e.host, &e.port);
    impl_->endpoints.push_back(std::move(e));
  }
}

Forwarder::~Forwarder() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->stop_requested) {
      impl_->stop_requested = true;
      impl_->stop_deadline_ms = 0;
    }
  }
  impl_->wake.notify_all();
  join();
}

void Forwarder::set_spool(Spool* spool) { impl_->spool = spool; }

Status Forwarder::start() {
  impl_->dead_letters->scan();
  int n = std::max(1, impl_->options.concurrency);
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (int i = 0; i < n; ++i) {
    ++impl_->running;
    impl_->workers.emplace_back([m = impl_.get()] { m->worker_main(); });
  }
  return Status::Ok();
}

bool Forwarder::dead_letter(const std::string& id, const std::string& v1_body, uint64_t events,
                            const std::string& reason) {
  return impl_->dead_letters->write(id, v1_body, events, reason);
}

void Forwarder::enqueue(Segment segment) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->enqueued_at.emplace(static_cast<int64_t>(segment.number), wall_ms());
    impl_->queue.push_back(std::move(segment));
  }
  impl_->wake.notify_one();
}

void Forwarder::stop_at(int64_t deadline_ms) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop_requested = true;
    impl_->stop_deadline_ms = deadline_ms;
  }
  impl_->wake.notify_all();
}

bool Forwarder::stopped() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->running == 0;
}

void Forwarder::join() {
  for (std::thread& t : impl_->workers) {
    if (t.joinable()) t.join();
  }
}

ForwarderStats Forwarder::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  ForwarderStats s = impl_->totals;
  DeadLetters::Stats d = impl_->dead_letters->stats();
  s.dead_letters = d.letters;
  s.dead_letter_events = d.events;
  s.dead_letters_discarded = d.discarded;
  s.dead_letter_bytes = d.bytes;
  s.queued_segments = impl_->queue.size();
  if (!impl_->enqueued_at.empty()) {
    int64_t oldest = INT64_MAX;
    for (const auto& [n, at] : impl_->enqueued_at) oldest = std::min(oldest, at);
    s.oldest_queued_age_s = static_cast<double>(wall_ms() - oldest) / 1000.0;
  }
  int64_t now = steady_ms();
  for (const Endpoint& e : impl_->endpoints) {
    EndpointStatus es;
    es.address = e.address;
    es.in_flight = e.in_flight;
    es.requests = e.requests;
    es.ok = e.ok;
    es.failures = e.failures;
    es.consecutive_failures = e.consecutive_failures;
    es.retry_in_s = e.retry_at_ms > now ? static_cast<double>(e.retry_at_ms - now) / 1000.0 : 0;
    es.latency_ms_ewma = e.latency_ms_ewma;
    es.last_error = e.last_error;
    if (e.retry_at_ms > now) {
      es.state = "backoff";
    } else if (e.consecutive_failures > 0) {
      es.state = "failing";
    } else {
      es.state = e.ok > 0 ? "up" : "unknown";
    }
    s.endpoints.push_back(std::move(es));
  }
  return s;
}

}  // namespace taba::agent
