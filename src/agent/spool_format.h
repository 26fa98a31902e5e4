// The spool's segment files (see spool.h): their header, names and record
// walk, shared by the spool (spool.cpp: recovery, the writer) and the
// readers of sealed segments (spool_format.cpp). Internal to src/agent/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/record_log.h"

namespace taba::agent::spool_format {

inline constexpr char kMagic[] = "TABASPL1";
inline constexpr size_t kMagicBytes = 8;
inline constexpr size_t kBatchIdBytes = 32;
inline constexpr size_t kHeaderBytes = kMagicBytes + kBatchIdBytes;
inline constexpr size_t kRecordHeaderBytes = recordlog::kHeaderBytes;
inline constexpr uint64_t kMaxRecordBytes = recordlog::kMaxPayloadBytes;

inline constexpr recordlog::SegmentName kOpenName{"seg-", ".open"};
inline constexpr recordlog::SegmentName kSealedName{"seg-", ".batch"};
inline constexpr recordlog::SegmentName kResealName{"seg-", ".reseal"};  // a seal being retried (spool.cpp)

inline std::string segment_name(uint64_t number, bool sealed) {
  return (sealed ? kSealedName : kOpenName).format(number);
}

inline bool is_hex_id(std::string_view id) {
  return id.size() == kBatchIdBytes && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Walks the records of a segment's bytes. Returns the offset just past the
// last whole record whose checksum holds... up to the first torn one; records
// with a bad checksum but a plausible length are reported through on_corrupt
// and skipped (their length is trusted only if the rest of the file still
// parses from there; otherwise the tail is torn).
struct ScanResult {
  size_t good_end = kHeaderBytes;  // offset past the last intact record
  bool torn = false;               // bytes after good_end that are not records
  uint32_t corrupt = 0;            // checksum failures skipped
};

template <class OnRecord>
ScanResult scan_records(std::string_view bytes, OnRecord&& on_record) {
  ScanResult r;
  recordlog::Reader reader(bytes, kHeaderBytes, recordlog::Reader::Empty::kValid);
  std::string_view payload;
  for (;;) {
    recordlog::ReadResult read = reader.next(&payload);
    if (read == recordlog::ReadResult::kEnd) break;
    if (read == recordlog::ReadResult::kBadChecksum) {
      if (reader.at_end()) {
        r.torn = true;  // a last record half written
        break;
      }
      ++r.corrupt;
      r.good_end = reader.offset();
      continue;
    }
    if (read != recordlog::ReadResult::kRecord) {
      r.torn = true;
      break;
    }
    on_record(payload);
    r.good_end = reader.offset();
  }
  return r;
}

}  // namespace taba::agent::spool_format
