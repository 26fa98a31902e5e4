// The record log's framing, reader and segment files (see record_log.h).
#include "core/record_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "core/file_io.h"

namespace taba::recordlog {
namespace {

// Payloads up to this size are copied next to their header so that a group of
// small records goes out as one contiguous buffer; larger ones are written in place.
constexpr size_t kCopyPayloadBytes = 4096;
constexpr size_t kNumberDigits = 20;  // 2^64 - 1 has 20

}  // namespace

void encode_header(std::string_view payload, char* out) {
  fileio::put_u32(out, static_cast<uint32_t>(payload.size()));
  fileio::put_u32(out + 4, fileio::checksum(payload));
}

// --- WriteGroup ---

void WriteGroup::add(std::string_view payload) { add(payload, {}); }

void WriteGroup::add(std::string_view head, std::string_view tail) {
  char header[kHeaderBytes];
  const size_t length = head.size() + tail.size();
  uint32_t crc = fileio::checksum(head);
  if (!tail.empty()) crc = fileio::checksum_more(crc, tail);
  fileio::put_u32(header, static_cast<uint32_t>(length));
  fileio::put_u32(header + 4, crc);
  append_copy(header, sizeof header);
  for (std::string_view part : {head, tail}) {
    if (part.size() <= kCopyPayloadBytes) {
      append_copy(part.data(), part.size());
    } else {
      pieces_.push_back({part.data(), 0, part.size()});
    }
  }
  bytes_ += kHeaderBytes + length;
  ++records_;
}

std::vector<iovec> WriteGroup::iovecs() const {
  std::vector<iovec> iov;
  iov.reserve(pieces_.size());
  for (const Piece& p : pieces_) {
    const char* base = p.external ? p.external : copy_.data() + p.copy_offset;
    iov.push_back({const_cast<char*>(base), p.length});
  }
  return iov;
}

void WriteGroup::clear() {
  copy_.clear();
  pieces_.clear();
  records_ = 0;
  bytes_ = 0;
}

void WriteGroup::append_copy(const char* data, size_t n) {
  if (n == 0) return;
  if (!pieces_.empty() && !pieces_.back().external) {
    pieces_.back().length += n;
  } else {
    pieces_.push_back({nullptr, copy_.size(), n});
  }
  copy_.append(data, n);
}

// --- Reader ---

const char* describe(ReadResult result) {
  switch (result) {
    case ReadResult::kTruncatedHeader: return "truncated record header";
    case ReadResult::kBadLength: return "invalid record length";
    case ReadResult::kPastEnd: return "record runs past the end of the file";
    case ReadResult::kBadChecksum: return "checksum mismatch";
    case ReadResult::kRecord:
    case ReadResult::kEnd: break;
  }
  return "";
}

Reader::Reader(std::string_view data, size_t offset, Empty empty)
    : data_(data), offset_(offset), record_offset_(offset), empty_valid_(empty == Empty::kValid) {}

ReadResult Reader::next(std::string_view* payload) {
  record_offset_ = offset_;
  if (offset_ >= data_.size()) return ReadResult::kEnd;
  const size_t left = data_.size() - offset_;
  if (left < kHeaderBytes) return ReadResult::kTruncatedHeader;
  const uint32_t length = fileio::get_u32(data_.data() + offset_);
  if ((length == 0 && !empty_valid_) || length > kMaxPayloadBytes) return ReadResult::kBadLength;
  if (length > left - kHeaderBytes) return ReadResult::kPastEnd;
  *payload = data_.substr(offset_ + kHeaderBytes, length);
  const uint32_t crc = fileio::get_u32(data_.data() + offset_ + 4);
  offset_ += kHeaderBytes + length;
  return fileio::checksum(*payload) == crc ? ReadResult::kRecord : ReadResult::kBadChecksum;
}

// --- segment files ---

std::string SegmentName::format(uint64_t number) const {
  return fmt::format("{}{:020}{}", prefix, number, suffix);
}

bool SegmentName::parse(std::string_view name, uint64_t* number) const {
  if (name.size() != prefix.size() + kNumberDigits + suffix.size()) return false;
  if (name.substr(0, prefix.size()) != prefix || name.substr(prefix.size() + kNumberDigits) != suffix) {
    return false;
  }
  uint64_t n = 0;
  for (char c : name.substr(prefix.size(), kNumberDigits)) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - digit) / 10) return false;  // past 2^64 - 1
    n = n * 10 + digit;
  }
  *number = n;
  return true;
}

Result<std::vector<ListedSegment>> list_segments(const std::string& dir, std::initializer_list<SegmentName> names) {
  DIR* d = opendir(dir.c_str());
  if (!d) return fileio::io_error("cannot list", dir, errno);
  std::vector<ListedSegment> found;
  while (dirent* e = readdir(d)) {
    size_t kind = 0;
    for (const SegmentName& name : names) {
      uint64_t n;
      if (name.parse(e->d_name, &n)) {
        found.push_back({n, kind});
        break;
      }
      ++kind;
    }
  }
  closedir(d);
  std::sort(found.begin(), found.end());
  return found;
}

CreatedSegment create_segment(const std::string& path, std::string_view header) {
  CreatedSegment made;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    made.err = errno;
    made.status = fileio::io_error("cannot create", path, made.err);
    return made;
  }
  std::vector<iovec> iov{{const_cast<char*>(header.data()), header.size()}};
  int err = fileio::pwrite_all(fd, iov, 0);
  if (err != 0) {
    ::close(fd);
    ::unlink(path.c_str());
    made.err = err;
    made.status = fileio::io_error("cannot write", path, err);
    return made;
  }
  made.fd = fd;
  return made;
}

}  // namespace taba::recordlog
