// The agent's durable disk spool (docs/operations.md, "An agent on every host").
//
// Every accepted post becomes one record, appended by a writer thread with
// group commit; the post is acknowledged only once its record is written
// (fsync "everysec": written, fsynced within the second; "always": fsynced).
// Records go into an open segment; a segment is sealed when it reaches
// segment_bytes or has been open seal_after_ms, and a sealed segment is one
// forwarded batch: it carries its own random batch id, so a retry of it —
// even after a restart — is applied once by the fe.
//
// Files in the directory:
//   seg-<20 digits>.open    the segment being written (at most one)
//   seg-<20 digits>.batch   sealed segments, waiting to be forwarded
// A segment is: magic "TABASPL1" | 32 hex characters: batch id | records.
// A record is: u32 length (LE) | u32 crc32 of payload (LE) | payload (the
// shared record log, core/record_log), and a payload is: u16 id length | client Taba-Batch-Id | u32 events |
// batch (protocol/batch.h).
//
// A segment whose seal cannot be made sure (its fdatasync fails, now or
// earlier while it was open, or its rename does) is not lost until a
// restart: it stays "unsealed" (counted, logged once), and every second its
// bytes are written again into a new file (seg-<N>.reseal), which is
// fsynced and renamed to seg-<N>.batch before the .open file goes. Written
// again rather than fsynced again, since after a failed fdatasync Linux may
// have dropped the pages' dirty state: a second fdatasync of the same file
// can succeed without writing them.
//
// Recovery: a .open segment left by a crash is scanned; a torn or corrupt
// tail is logged and cut off, and the segment is sealed (a .open whose
// .batch already exists is the leftover of a re-seal and is removed, as is
// a stray .reseal file). Sealed segments are handed to the forwarder again. The spool is bounded by max_bytes
// (bytes of all segments plus queued records): append() refuses beyond it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"

namespace taba::agent {

struct SpoolOptions {
  std::string dir;                   // created if missing
  bool fsync_always = false;         // else everysec
  uint64_t max_bytes = 1ull << 30;   // segments on disk + records queued
  uint64_t segment_bytes = 1 << 20;  // seal a segment past this size
  uint32_t seal_after_ms = 200;      // seal a non-empty segment open this long
  // Tests only: called instead of fdatasync on a segment's file (returns 0
  // or an errno value). An unprivileged test has no real way to make
  // fdatasync fail (no small tmpfs, no fault injection; a file-size limit
  // fails the write, not the sync), so the seal retry is tested through
  // this (tests/unit/spool_test.cpp). Unset in every role.
  std::function<int(int fd)> sync_data_for_test;
};

// A sealed segment: one batch to forward.
struct Segment {
  uint64_t number = 0;
  std::string path;
  std::string batch_id;  // 32 hex characters
  uint64_t bytes = 0;    // file size
  uint64_t events = 0;
  uint32_t records = 0;
  uint32_t attempts = 0;  // forwarding attempts so far (the forwarder's)
  // The forwarder's: once the fe refused the whole batch (4xx), its records
  // go one by one; done[i] marks record i as settled (200 or dead letter).
  // `split` is also kept on disk (an empty "<path>.split" marker), so that a
  // split segment is never sent whole again after a restart: the fe could
  // then apply posts it already applied under their derived ids.
  bool split = false;
  std::vector<uint8_t> done;
  std::vector<std::vector<size_t>> skipped;  // per record: name blocks left out so far
  // The forwarder's, in memory only (agent/segment_forms.h): whether the
  // segment holds delta records (-1 not read yet), which only an fe serving
  // /post_delta takes; whether its main part (sent under batch_id) was
  // settled, so that a retry sends only its leftovers ("<batch_id>-v1");
  // whether it was requeued because no fe took /post_delta.
  int holds_deltas = -1;
  bool main_settled = false;
  bool waiting_for_delta = false;
  // The forwarder's, in memory only (agent/poison_batch.cpp): 5xx answers
  // to this batch from an fe that acknowledged other batches since the
  // batch's previous 5xx from it ("strikes"), the first one's time, the
  // batch's own backoff (steady ms: not sent before), and which endpoint
  // answered its last 5xx with how many acknowledgements then.
  uint32_t strikes = 0;
  int64_t first_strike_ms = 0;
  int64_t retry_at_ms = 0;
  int last_5xx_endpoint = -1;
  uint64_t last_5xx_acks = 0;
  // Wall-clock ms since when an fe may have this batch: the start of the
  // forwarder's first attempt whose post went out on a connection, or for
  // a segment found at startup its file's modification time (about its
  // seal); 0 = not sent yet. A re-send older than the fe's dedup window
  // (less a margin) is marked (Taba-Batch-Age).
  int64_t sent_since_ms = 0;
  bool past_dedup_window = false;  // counted and logged once
};

// One record read back from a segment.
struct SpoolRecord {
  std::string_view client_batch_id;
  uint32_t events = 0;
  std::string_view batch;
};

// The records of a sealed segment file. Records whose checksum fails are
// skipped and counted in *corrupt (nullptr: not counted).
struct SegmentContents {
  std::string batch_id;
  // The file, mapped (read_segment) or in a string (parse_segment); records
  // point into it.
  std::unique_ptr<fileio::MappedFile> mapped;
  std::string bytes;
  std::vector<SpoolRecord> records;
  uint32_t corrupt = 0;
};
// Maps the file (no copy of its bytes).
Result<SegmentContents> read_segment(const std::string& path);
// The same for a segment's bytes; `origin` names it in errors.
Result<SegmentContents> parse_segment(std::string bytes, const std::string& origin);

// Encodes / decodes a record payload.
std::string encode_spool_record(std::string_view client_batch_id, uint32_t events, std::string_view batch);
bool decode_spool_record(std::string_view payload, SpoolRecord* out);
// A record payload's head, the part before the batch: encode_spool_record
// is this followed by the batch.
std::string encode_spool_record_head(std::string_view client_batch_id, uint32_t events);

struct SpoolStats {
  uint64_t bytes = 0;     // segments on disk + queued records
  uint64_t events = 0;    // in spooled records not yet forwarded
  uint64_t segments = 0;  // sealed, waiting
  uint64_t records_written = 0;
  uint64_t fsyncs = 0;
  uint64_t write_errors = 0;
  uint64_t refused_full = 0;  // appends refused: max_bytes reached
  uint64_t torn_records_skipped = 0;
  uint64_t corrupt_records_skipped = 0;
  uint64_t seal_failures = 0;      // seals (and re-seals) that failed: fdatasync or rename
  uint64_t unsealed_segments = 0;  // segments waiting for a seal that works (their records wait too)
};

class Spool {
 public:
  // Called for each sealed segment, at open() for those found on disk and
  // then on the writer thread as segments are sealed.
  using SealedCallback = std::function<void(Segment)>;
  // Called at open() for each client batch id found in a spooled record.
  using RecoveredIdCallback = std::function<void(std::string_view id)>;

  static Result<std::unique_ptr<Spool>> open(uv_loop_t* loop, SpoolOptions options, SealedCallback on_sealed,
                                             const RecoveredIdCallback& on_recovered_id);
  ~Spool();

  // Queues a record (encode_spool_record) holding `events` events. `done`
  // runs on the loop thread once it is written (OK) or failed (IoError; not
  // spooled). Returns Unavailable without queuing when the spool is full,
  // and IoError while the disk refuses writes.
  Status append(std::string payload, uint64_t events, std::function<void(const Status&)> done);
  // The same for the payload `head` + `batch` (encode_spool_record_head),
  // written from the two strings without joining them.
  Status append(std::string head, std::string batch, uint64_t events,
                std::function<void(const Status&)> done);

  // A segment forwarded (or moved to the dead letters): deletes its file
  // (and split marker) and its bytes from the total. False (logged) when the
  // file could not be deleted: the segment must then stay queued. Any thread.
  bool remove(const Segment& segment);

  // Seals the open segment now (if it holds records). Any thread.
  void seal_soon();

  // Writes what is queued, seals the open segment and stops the writer.
  // Completions run before close returns. Idempotent.
  void close();

  SpoolStats stats() const;
  const SpoolOptions& options() const;

 private:
  Spool();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taba::agent
