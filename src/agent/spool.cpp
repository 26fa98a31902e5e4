// The agent's spool: recovery on open, and the writer thread with group
// commit that fills and seals segments (and retries a seal that failed).
// The record framing and the segment files are the shared record log
// (core/record_log; the spool's forms in spool_format.h); completions reach
// the loop through core/completion_queue.
#include "agent/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "agent/spool_format.h"
#include "core/completion_queue.h"
#include "core/file_io.h"
#include "core/log.h"
#include "core/record_log.h"

namespace taba::agent {
namespace {

using namespace spool_format;
using Clock = std::chrono::steady_clock;
using Done = CompletionQueue::Done;
using Completion = CompletionQueue::Completion;
using fileio::io_error;

constexpr auto kEverySec = std::chrono::seconds(1);
constexpr auto kResealEvery = std::chrono::seconds(1);  // a failed seal is retried this often (Impl::reseal)

struct Item {
  // The record's payload is head + payload, framed by the writer thread
  // (AgentRole puts the record head in `head` and the post's batch, moved
  // from the decoder, in `payload`: no copy of the batch).
  std::string head;
  std::string payload;
  uint64_t events = 0;
  Done done;

  size_t payload_bytes() const { return head.size() + payload.size(); }
};

std::string random_batch_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

}  // namespace

struct Spool::Impl {
  uv_loop_t* loop = nullptr;
  SpoolOptions options;
  SealedCallback on_sealed;

  // Shared with the writer thread.
  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Item> queue;
  bool stopping = false;
  bool seal_requested = false;
  std::atomic<uint64_t> bytes{0};   // segments on disk + queued frames
  std::atomic<uint64_t> events{0};  // spooled, not yet removed
  std::atomic<uint64_t> segments{0};
  std::atomic<uint64_t> records_written{0};
  std::atomic<uint64_t> fsyncs{0};
  std::atomic<uint64_t> write_errors{0};
  std::atomic<uint64_t> refused_full{0};
  std::atomic<uint64_t> seal_failures{0};
  std::atomic<uint64_t> unsealed_count{0};
  uint64_t torn_skipped = 0;
  uint64_t corrupt_skipped = 0;

  // Writer thread only.
  std::thread writer;
  int fd = -1;
  uint64_t open_number = 0;
  std::string open_batch_id;
  uint64_t open_size = 0;
  uint64_t open_events = 0;
  uint32_t open_records = 0;
  Clock::time_point opened_at;
  Clock::time_point last_sync;
  bool dirty = false;
  // An fdatasync of the open segment failed: its seal must write it again
  // (a later fdatasync of the same file may succeed without writing it).
  bool open_sync_failed = false;
  uint64_t next_number = 1;
  // Segments whose seal failed, oldest first; their records are in their
  // .open files. Retried every kResealEvery from next_reseal on.
  struct Unsealed {
    Segment seg;  // path: the .open file
    uint32_t attempts = 1;
  };
  std::vector<Unsealed> unsealed;
  Clock::time_point next_reseal;

  CompletionQueue completions;  // finished appends waiting for the loop thread
  bool started = false;
  bool closed = false;

  std::string path(const std::string& name) const { return options.dir + "/" + name; }

  // fdatasync, or the test's stand-in (SpoolOptions::sync_data_for_test).
  int sync(int file) const {
    return options.sync_data_for_test ? options.sync_data_for_test(file) : fileio::sync_data(file);
  }

  Status recover(const RecoveredIdCallback& on_id, std::vector<Segment>* sealed) {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec) return Status::IoError(fmt::format("cannot create the spool directory {}: {}", options.dir, ec.message()));
    auto found = recordlog::list_segments(options.dir, {kOpenName, kSealedName, kResealName});
    TABA_RETURN_IF_ERROR(found);
    std::vector<uint64_t> sealed_numbers;
    for (const recordlog::ListedSegment& listed : found.value()) {
      if (listed.kind == 1) sealed_numbers.push_back(listed.number);
    }
    for (const recordlog::ListedSegment& listed : found.value()) {
      const uint64_t n = listed.number;
      const bool is_sealed = listed.kind == 1;
      next_number = std::max(next_number, n + 1);
      if (listed.kind == 2) {
        // A re-seal cut short: its .open file still holds the records. (The
        // .reseal is renamed only after its fsync, and the .open removed only
        // after that rename reached the disk, so a .reseal alone cannot hold
        // the only copy.)
        std::string p = path(kResealName.format(n));
        log::warn("spool: {} is a seal retry cut short; removing it (its .open file is recovered)", p);
        ::unlink(p.c_str());
        continue;
      }
      std::string p = path(segment_name(n, is_sealed));
      if (!is_sealed && std::binary_search(sealed_numbers.begin(), sealed_numbers.end(), n)) {
        // Written again and sealed as seg-N.batch before the crash; this
        // copy was about to go.
        log::warn("spool: {} was sealed again as {}; removing the old copy", p, segment_name(n, true));
        ::unlink(p.c_str());
        continue;
      }
      fileio::MappedFile file;  // read in place; only the scan below touches it
      TABA_RETURN_IF_ERROR(file.open(p));
      std::string_view data = file.data();
      uint64_t size = data.size();
      if (data.size() < kHeaderBytes || data.substr(0, kMagicBytes) != kMagic ||
          !is_hex_id(data.substr(kMagicBytes, kBatchIdBytes))) {
        if (!is_sealed) {
          // Created but its header never reached the disk: nothing in it was acknowledged.
          log::warn("spool: {} has no complete header (a crash while creating it); removing it", p);
          ::unlink(p.c_str());
          continue;
        }
        return Status::IoError(fmt::format("spool: {} is not a spool segment (bad header); move it away", p));
      }
      Segment seg;
      seg.number = n;
      seg.batch_id = std::string(data.substr(kMagicBytes, kBatchIdBytes));
      ScanResult r = scan_records(data, [&](std::string_view payload) {
        SpoolRecord rec;
        if (!decode_spool_record(payload, &rec)) return;
        ++seg.records;
        seg.events += rec.events;
        if (!rec.client_batch_id.empty() && on_id) on_id(rec.client_batch_id);
      });
      corrupt_skipped += r.corrupt;
      if (r.corrupt) log::warn("spool: {}: {} record(s) with a bad checksum will be skipped", p, r.corrupt);
      if (r.torn) {
        ++torn_skipped;
        log::warn("spool: {}: torn record at byte {} of {} (a crash mid-write); cutting it off", p, r.good_end,
                  data.size());
        file.reset();  // before the file shrinks under the mapping
        if (::truncate(p.c_str(), static_cast<off_t>(r.good_end)) != 0) return io_error("cannot truncate", p, errno);
        size = r.good_end;
      }
      if (seg.records == 0 && r.corrupt == 0) {
        ::unlink(p.c_str());
        continue;
      }
      if (!is_sealed) {
        std::string sealed_path = path(segment_name(n, true));
        if (::rename(p.c_str(), sealed_path.c_str()) != 0) return io_error("cannot seal", p, errno);
        p = sealed_path;
      }
      seg.path = p;
      seg.split = ::access((p + ".split").c_str(), F_OK) == 0;
      struct stat st;
      // When it may first have been sent: sealed about when last written.
      if (::stat(p.c_str(), &st) == 0) {
        seg.sent_since_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
      }
      seg.bytes = size;
      bytes += seg.bytes;
      events += seg.events;
      ++segments;
      sealed->push_back(std::move(seg));
    }
    int err = fileio::sync_dir(options.dir);
    if (err != 0) return io_error("cannot fsync", options.dir, err);
    return Status::Ok();
  }

  // --- writer thread ---

  Status create_segment() {
    open_number = next_number++;
    open_batch_id = random_batch_id();
    std::string header(kMagic, kMagicBytes);
    header += open_batch_id;
    recordlog::CreatedSegment made = recordlog::create_segment(path(segment_name(open_number, false)), header);
    if (made.fd < 0) return made.status;
    fd = made.fd;
    if (options.fsync_always) fileio::sync_dir(options.dir);  // the new file's entry, before records in it are acknowledged
    open_size = kHeaderBytes;
    open_events = 0;
    open_records = 0;
    opened_at = Clock::now();
    bytes += kHeaderBytes;
    return Status::Ok();
  }

  void seal() {
    if (fd < 0) return;
    std::string open_path = path(segment_name(open_number, false));
    if (open_records == 0) {
      ::close(fd);
      fd = -1;
      ::unlink(open_path.c_str());
      bytes -= open_size;
      return;
    }
    // The sealed file must hold every record it says it does before it is
    // forwarded and (after a 200) deleted. If that cannot be made sure, the
    // records stay in the .open file and the seal is retried (reseal).
    Segment seg;
    seg.number = open_number;
    seg.path = open_path;
    seg.batch_id = open_batch_id;
    seg.bytes = open_size;
    seg.events = open_events;
    seg.records = open_records;
    int sync_err = open_sync_failed ? EIO : sync(fd);
    if (sync_err == 0) ++fsyncs;
    ::close(fd);
    fd = -1;
    dirty = false;
    bool sync_failed_before = open_sync_failed;
    open_sync_failed = false;
    if (sync_err != 0) {
      ++write_errors;
      return seal_failed(std::move(seg), sync_failed_before ? "an earlier fdatasync of it failed"
                                                            : "cannot fsync it: " + fileio::errno_text(sync_err));
    }
    std::string sealed_path = path(segment_name(open_number, true));
    if (::rename(open_path.c_str(), sealed_path.c_str()) != 0) {
      ++write_errors;
      return seal_failed(std::move(seg), "cannot rename it: " + fileio::errno_text(errno));
    }
    if (options.fsync_always) fileio::sync_dir(options.dir);
    seg.path = sealed_path;
    ++segments;
    on_sealed(std::move(seg));
  }

  // A seal that failed: the segment waits in `unsealed` for reseal.
  void seal_failed(Segment seg, const std::string& why) {
    ++seal_failures;
    log::error("spool: cannot seal {} ({} events): {}; its records stay there and it is written again into a new "
               "file every {} s until that works",
               seg.path, seg.events, why, std::chrono::duration_cast<std::chrono::seconds>(kResealEvery).count());
    if (unsealed.empty()) next_reseal = Clock::now() + kResealEvery;
    unsealed.push_back({std::move(seg), 1});
    ++unsealed_count;
  }

  // Seals the segments whose seal failed, oldest first, by writing each
  // again: its .open file's bytes into seg-N.reseal, fsynced, renamed to
  // seg-N.batch; then the .open file goes. Stops at the first that fails
  // (tried again kResealEvery later).
  void reseal() {
    while (!unsealed.empty()) {
      Unsealed& u = unsealed.front();
      std::string err = reseal_one(u.seg);
      if (!err.empty()) {
        ++seal_failures;
        ++u.attempts;
        log::debug("spool: sealing {} failed again ({}); retried in a second", u.seg.path, err);
        next_reseal = Clock::now() + kResealEvery;
        return;
      }
      log::info("spool: sealed {} ({} events) after {} failed attempt(s)", u.seg.path, u.seg.events, u.attempts);
      Segment seg = std::move(u.seg);
      unsealed.erase(unsealed.begin());
      --unsealed_count;
      ++segments;
      on_sealed(std::move(seg));
    }
  }

  // One re-seal; "" when done (seg.path is then the sealed file), else why not.
  std::string reseal_one(Segment& seg) {
    std::string copy;
    Status read = fileio::read_whole_file(seg.path, &copy);
    if (!read.ok()) return read.message();
    if (copy.size() < seg.bytes) return fmt::format("{} holds {} of its {} bytes", seg.path, copy.size(), seg.bytes);
    copy.resize(seg.bytes);
    std::string again = path(kResealName.format(seg.number));
    int out = ::open(again.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return fileio::io_error("cannot create", again, errno).message();
    std::vector<iovec> iov{{copy.data(), copy.size()}};
    int err = fileio::pwrite_all(out, iov, 0);
    if (err == 0) err = sync(out);
    if (err == 0) ++fsyncs;
    ::close(out);
    std::string sealed_path = path(segment_name(seg.number, true));
    if (err == 0 && ::rename(again.c_str(), sealed_path.c_str()) != 0) err = errno;
    if (err != 0) {
      ::unlink(again.c_str());
      return fileio::errno_text(err);
    }
    // The rename reaches the disk before the .open file goes: a crash in
    // between leaves both, and recovery keeps the sealed one.
    fileio::sync_dir(options.dir);
    ::unlink(seg.path.c_str());
    fileio::sync_dir(options.dir);
    seg.path = sealed_path;
    return "";
  }

  void write_group(std::vector<Item>& items) {
    std::vector<Completion> out;
    out.reserve(items.size());
    Status s = Status::Ok();
    if (fd < 0) s = create_segment();
    uint64_t group_bytes = 0, group_events = 0;
    if (s.ok()) {
      recordlog::WriteGroup group;
      for (const Item& it : items) {
        group.add(it.head, it.payload);
        group_events += it.events;
      }
      group_bytes = group.bytes();
      std::vector<iovec> iov = group.iovecs();
      int err = fileio::pwrite_all(fd, iov, static_cast<off_t>(open_size));
      if (err == 0 && options.fsync_always) {
        err = sync(fd);
        if (err == 0) ++fsyncs;
        if (err != 0) open_sync_failed = true;
      }
      if (err != 0) {
        // Cut any partial write so the segment stays well formed; nothing
        // of this group is acknowledged.
        if (ftruncate(fd, static_cast<off_t>(open_size)) != 0) {
          log::error("spool: cannot cut a failed write from {}: {}", path(segment_name(open_number, false)),
                     fileio::errno_text(errno));
        }
        s = Status::Unavailable(fmt::format("spool write failed: {}", fileio::errno_text(err)));
      }
    }
    if (s.ok()) {
      open_size += group_bytes;
      open_events += group_events;
      open_records += static_cast<uint32_t>(items.size());
      records_written += items.size();
      dirty = !options.fsync_always;
      events += group_events;
    } else {
      ++write_errors;
      log::warn("spool: {}", s.message());
      bytes -= group_bytes == 0 ? queued_bytes_of(items) : group_bytes;
    }
    for (Item& it : items) out.push_back({std::move(it.done), s});
    completions.post(&out);
  }

  static uint64_t queued_bytes_of(const std::vector<Item>& items) {
    uint64_t n = 0;
    for (const Item& it : items) n += kRecordHeaderBytes + it.payload_bytes();
    return n;
  }

  void writer_main() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      Clock::time_point now = Clock::now();
      bool seal_due = fd >= 0 && open_records > 0 &&
                      (seal_requested || open_size >= options.segment_bytes ||
                       now - opened_at >= std::chrono::milliseconds(options.seal_after_ms));
      bool sync_due = dirty && now - last_sync >= kEverySec;
      bool reseal_due = !unsealed.empty() && now >= next_reseal;
      if (queue.empty() && !seal_due && !sync_due && !reseal_due) {
        if (stopping) break;
        Clock::time_point until = now + std::chrono::milliseconds(options.seal_after_ms);
        if (fd >= 0 && open_records > 0) until = opened_at + std::chrono::milliseconds(options.seal_after_ms);
        if (dirty) until = std::min(until, last_sync + kEverySec);
        if (!unsealed.empty()) until = std::min(until, next_reseal);
        wake.wait_until(lock, until);
        continue;
      }
      std::vector<Item> items;
      uint64_t take = 0;
      while (!queue.empty() && take < (8u << 20)) {
        take += kRecordHeaderBytes + queue.front().payload_bytes();
        items.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      seal_requested = false;
      lock.unlock();
      if (!items.empty()) write_group(items);
      if (dirty && Clock::now() - last_sync >= kEverySec) {
        int err = sync(fd);
        if (err == 0) {
          ++fsyncs;
        } else {
          ++write_errors;
          open_sync_failed = true;  // its seal writes it again
          log::error("spool: fdatasync of {} failed: {}", path(segment_name(open_number, false)),
                     fileio::errno_text(err));
        }
        dirty = false;
        last_sync = Clock::now();
      }
      now = Clock::now();
      if (fd >= 0 && open_records > 0 &&
          (seal_due || open_size >= options.segment_bytes ||
           now - opened_at >= std::chrono::milliseconds(options.seal_after_ms))) {
        seal();
      }
      if (!unsealed.empty() && Clock::now() >= next_reseal) reseal();
      lock.lock();
    }
    lock.unlock();
    seal();
    if (!unsealed.empty()) reseal();
    for (const Unsealed& u : unsealed) {
      log::error("spool: {} ({} events) could not be sealed; the next start seals it", u.seg.path, u.seg.events);
    }
  }

  void close() {
    if (closed) return;
    closed = true;
    if (started) {
      {
        std::lock_guard<std::mutex> lock(mu);
        stopping = true;
      }
      wake.notify_all();
      if (writer.joinable()) writer.join();
    }
    completions.close();  // last: a completion may destroy the spool
  }
};

Spool::Spool() : impl_(std::make_unique<Impl>()) {}
Spool::~Spool() { impl_->close(); }

Result<std::unique_ptr<Spool>> Spool::open(uv_loop_t* loop, SpoolOptions options, SealedCallback on_sealed,
                                           const RecoveredIdCallback& on_recovered_id) {
  std::unique_ptr<Spool> spool(new Spool());
  Impl* m = spool->impl_.get();
  m->loop = loop;
  m->options = std::move(options);
  m->on_sealed = std::move(on_sealed);
  std::vector<Segment> sealed;
  TABA_RETURN_IF_ERROR(m->recover(on_recovered_id, &sealed));
  TABA_RETURN_IF_ERROR(m->completions.start(loop));
  m->last_sync = Clock::now();
  for (Segment& seg : sealed) m->on_sealed(std::move(seg));
  m->started = true;
  m->writer = std::thread([m] { m->writer_main(); });
  return spool;
}

Status Spool::append(std::string payload, uint64_t events, std::function<void(const Status&)> done) {
  return append(std::string(), std::move(payload), events, std::move(done));
}

Status Spool::append(std::string head, std::string batch, uint64_t events, std::function<void(const Status&)> done) {
  Impl* m = impl_.get();
  const uint64_t payload_bytes = head.size() + batch.size();
  uint64_t frame_bytes = kRecordHeaderBytes + payload_bytes;
  if (payload_bytes > kMaxRecordBytes || frame_bytes > m->options.max_bytes) {
    return Status::Invalid(fmt::format("the post is larger than the whole spool ({} bytes)", m->options.max_bytes));
  }
  uint64_t before = m->bytes.load();
  if (before + frame_bytes > m->options.max_bytes) {
    ++m->refused_full;
    return Status::Unavailable(
        fmt::format("the spool is full ({} of {} bytes); retry later", before, m->options.max_bytes));
  }
  Item it;
  it.head = std::move(head);
  it.payload = std::move(batch);
  it.events = events;
  it.done = std::move(done);
  m->bytes += frame_bytes;
  {
    std::lock_guard<std::mutex> lock(m->mu);
    if (m->stopping) {
      m->bytes -= frame_bytes;
      return Status::Unavailable("the agent is shutting down");
    }
    m->queue.push_back(std::move(it));
  }
  m->wake.notify_one();
  return Status::Ok();
}

bool Spool::remove(const Segment& segment) {
  Impl* m = impl_.get();
  if (::unlink(segment.path.c_str()) != 0 && errno != ENOENT) {
    log::error("spool: cannot delete {}: {}", segment.path, fileio::errno_text(errno));
    return false;
  }
  ::unlink((segment.path + ".split").c_str());
  m->bytes -= segment.bytes;
  m->events -= segment.events;
  --m->segments;
  return true;
}

void Spool::seal_soon() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->seal_requested = true;
  }
  impl_->wake.notify_one();
}

void Spool::close() { impl_->close(); }

SpoolStats Spool::stats() const {
  const Impl* m = impl_.get();
  SpoolStats s;
  s.bytes = m->bytes.load();
  s.events = m->events.load();
  s.segments = m->segments.load();
  s.records_written = m->records_written.load();
  s.fsyncs = m->fsyncs.load();
  s.write_errors = m->write_errors.load();
  s.refused_full = m->refused_full.load();
  s.torn_records_skipped = m->torn_skipped;
  s.corrupt_records_skipped = m->corrupt_skipped;
  s.seal_failures = m->seal_failures.load();
  s.unsealed_segments = m->unsealed_count.load();
  return s;
}

const SpoolOptions& Spool::options() const { return impl_->options; }

}  // namespace taba::agent
