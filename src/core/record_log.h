// The record log: numbered segment files of checksummed records, the one
// file format under the embedded store's write-ahead log
// (store/embedded/wal) and the agent's spool (agent/spool).
//
// A record on disk is: u32 payload length (LE) | u32 crc32 of the payload
// (LE) | payload. Records follow one another with nothing between them,
// after a segment header that belongs to the owner (the WAL: magic
// "TABAWAL1"; the spool: magic "TABASPL1" and a batch id). A segment file is
// named <prefix><its number in 20 decimal digits><suffix>:
// wal-00000000000000000007.log, seg-00000000000000000007.open / .batch.
//
// What both logs do the same way lives here: framing the records of one
// write (WriteGroup), reading records back with a torn or damaged record told
// apart from a good one (Reader), and naming, listing and creating segment
// files. What differs stays with the owner: the segment header, what a bad
// record means (the WAL stops there, and cuts a torn tail of its last
// segment; the spool skips a record whose checksum fails), when a segment
// ends, and the writer thread itself. The two writer threads share the
// mechanism of group commit (records queued by the loop thread, one write of
// a WriteGroup and at most one fdatasync per group, completions handed back
// through core/completion_queue) but not its policy: the WAL bounds its
// queue, rotates segments inside a batch, carries snapshot markers and
// survives a full disk; the spool bounds the whole spool, seals segments on
// a timer and fails only the group a write lost. Those loops stay in
// wal.cpp and spool.cpp.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace taba::recordlog {

constexpr size_t kHeaderBytes = 8;                 // u32 length | u32 crc32
constexpr uint64_t kMaxPayloadBytes = 1ull << 30;  // longer lengths are damage

// Writes the header of a record holding `payload` into out[0..kHeaderBytes).
void encode_header(std::string_view payload, char* out);

// The records of one write. Headers and payloads up to 4 KiB are copied into
// one buffer, so that a group of small records goes out as one contiguous
// piece; larger payloads are written where they are, so the caller keeps
// them alive (and unmoved) until the group is written or cleared.
class WriteGroup {
 public:
  void add(std::string_view payload);
  // One record whose payload is `head` followed by `tail`, written from
  // where they are (the checksum runs over both): a caller that prefixes a
  // large payload with a few bytes of its own need not concatenate them.
  void add(std::string_view head, std::string_view tail);
  // The pieces to write, in order (for fileio::pwrite_all).
  std::vector<iovec> iovecs() const;
  uint64_t bytes() const { return bytes_; }  // headers included
  size_t records() const { return records_; }
  void clear();

 private:
  struct Piece {
    const char* external;  // null: the bytes live in copy_ at copy_offset
    size_t copy_offset;
    size_t length;
  };
  void append_copy(const char* data, size_t n);

  std::string copy_;
  std::vector<Piece> pieces_;
  size_t records_ = 0;
  uint64_t bytes_ = 0;
};

// What Reader::next found at its offset.
enum class ReadResult {
  kRecord,           // a whole record whose checksum holds
  kEnd,              // the end of the data, exactly after a record
  kTruncatedHeader,  // fewer than kHeaderBytes bytes left
  kBadLength,        // a length past kMaxPayloadBytes (or 0, where empty records are invalid)
  kPastEnd,          // a length that runs past the end of the data
  kBadChecksum,      // a whole record whose checksum fails
};

// The words the WAL's recovery uses for a damaged record ("checksum
// mismatch", ...); "" for kRecord and kEnd.
const char* describe(ReadResult result);

// Reads the records of a segment's bytes (untrusted: every length is checked
// before it is used). After kRecord or kBadChecksum (*payload is then the
// record's payload, pointing into the data) the reader has moved past the
// record; after damage to the framing it stays where the damage starts, and
// any later call returns the same.
class Reader {
 public:
  enum class Empty { kInvalid, kValid };  // whether a 0 length is a record or damage
  // `offset`: where the records start, just past the segment header.
  Reader(std::string_view data, size_t offset, Empty empty);

  ReadResult next(std::string_view* payload);
  // Where the record last read (or the damage) starts.
  size_t record_offset() const { return record_offset_; }
  // Where the next record starts.
  size_t offset() const { return offset_; }
  bool at_end() const { return offset_ == data_.size(); }

 private:
  std::string_view data_;
  size_t offset_;
  size_t record_offset_;
  bool empty_valid_;
};

// One family of segment files: <prefix><20-digit number><suffix>.
struct SegmentName {
  std::string_view prefix;
  std::string_view suffix;

  std::string format(uint64_t number) const;
  // Exactly the form format() writes, with every number up to 2^64 - 1 (a
  // name past that is not one of ours, never a wrapped number).
  bool parse(std::string_view name, uint64_t* number) const;
};

// A segment file found by list_segments: its number and which of the names
// it matched (an index into the list given).
struct ListedSegment {
  uint64_t number = 0;
  size_t kind = 0;
  bool operator<(const ListedSegment& o) const {
    return number != o.number ? number < o.number : kind < o.kind;
  }
};

// The segment files in `dir` matching one of `names`, by number (then kind).
Result<std::vector<ListedSegment>> list_segments(const std::string& dir, std::initializer_list<SegmentName> names);

// A new segment file, opened for writing by create_segment.
struct CreatedSegment {
  int fd = -1;    // -1 when it failed
  int err = 0;    // then the errno (a caller may tell a full disk apart)
  Status status;  // and the error, naming the path
};

// Creates `path` (which must not exist yet) holding `header`. A file that
// could not be written whole is removed again. Making its name durable
// (fsync of the directory) is the caller's choice.
CreatedSegment create_segment(const std::string& path, std::string_view header);

}  // namespace taba::recordlog
