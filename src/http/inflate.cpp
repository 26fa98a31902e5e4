#include "http/inflate.h"

#include <fmt/format.h>

#include <cstring>

#include "http/adler32.h"

namespace taba::http {

Inflater::Inflater(Format format, Limits limits) : format_(format), limits_(limits) {}

Inflater::~Inflater() {
  if (started_) inflateEnd(&zs_);
}

Status Inflater::start(std::string_view first) {
  int window_bits = 15 + 32;  // zlib or gzip, auto-detected
  // A zlib header has CM = 8 and (CMF*256 + FLG) divisible by 31.
  const bool zlib_header = first.size() >= 2 && (static_cast<unsigned char>(first[0]) & 0x0f) == 8 &&
                           ((static_cast<unsigned char>(first[0]) << 8) | static_cast<unsigned char>(first[1])) % 31 == 0;
  if (format_ == Format::kDeflate) {
    // Some clients send raw deflate under "deflate".
    window_bits = zlib_header ? 15 : -15;
  }
  if (inflateInit2(&zs_, window_bits) != Z_OK) return Status::Internal("cannot initialise zlib");
  started_ = true;
  // A zlib stream (no preset dictionary, FDICT clear): zlib skips its
  // Adler-32 and this checks it (inflateValidate, zlib 1.2.9+). A gzip
  // header (1f 8b) is never a zlib one (0x1f8b is not a multiple of 31).
  if (zlib_header && (static_cast<unsigned char>(first[1]) & 0x20) == 0 && inflateValidate(&zs_, 0) == Z_OK) {
    own_check_ = true;
  }
  return Status::Ok();
}

void Inflater::note_consumed(const unsigned char* from, size_t n) {
  consumed_ += n;
  if (n >= sizeof last_in_) {
    std::memcpy(last_in_, from + n - sizeof last_in_, sizeof last_in_);
    return;
  }
  std::memmove(last_in_, last_in_ + n, sizeof last_in_ - n);
  std::memcpy(last_in_ + sizeof last_in_ - n, from, n);
}

Status Inflater::feed(std::string_view in, const std::function<bool(std::string_view)>& sink) {
  if (in.empty()) return Status::Ok();
  if (!started_) {
    // "deflate" needs two bytes to tell a zlib header from raw deflate.
    if (format_ == Format::kDeflate && head_.size() + in.size() < 2) {
      head_.append(in);
      return Status::Ok();
    }
    if (!head_.empty()) {
      head_.append(in);
      std::string joined = std::move(head_);
      head_.clear();
      TABA_RETURN_IF_ERROR(start(joined));
      return feed(joined, sink);
    }
    TABA_RETURN_IF_ERROR(start(in));
  }
  if (ended_) return Status::Invalid("compressed body: data after the end of the compressed stream");
  in_total_ += in.size();
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs_.avail_in = static_cast<uInt>(in.size());
  while (zs_.avail_in > 0 && !ended_) {
    zs_.next_out = reinterpret_cast<Bytef*>(out_buf_);
    zs_.avail_out = sizeof out_buf_;
    const unsigned char* before = zs_.next_in;
    int rc = inflate(&zs_, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      return Status::Invalid(fmt::format("compressed body is corrupt: {}", zs_.msg ? zs_.msg : "zlib error"));
    }
    size_t produced = sizeof out_buf_ - zs_.avail_out;
    if (own_check_) {
      adler_ = adler32_update(adler_, reinterpret_cast<const unsigned char*>(out_buf_), produced);
      note_consumed(before, static_cast<size_t>(zs_.next_in - before));
      // At the end of the stream the last 4 bytes consumed are its
      // Adler-32, big-endian (zlib reads nothing past them).
      if (rc == Z_STREAM_END) {
        const uint32_t sent = uint32_t{last_in_[0]} << 24 | uint32_t{last_in_[1]} << 16 |
                              uint32_t{last_in_[2]} << 8 | uint32_t{last_in_[3]};
        if (consumed_ < 6 || sent != adler_) return Status::Invalid("compressed body is corrupt: incorrect data check");
      }
    }
    out_total_ += produced;
    if (out_total_ > limits_.max_output_bytes) {
      return Status::Invalid(
          fmt::format("decompressed body exceeds {} bytes ({})", limits_.max_output_bytes, limits_.output_limit_name));
    }
    if (out_total_ > (1u << 20) && out_total_ / (in_total_ ? in_total_ : 1) > limits_.max_ratio) {
      return Status::Invalid(fmt::format("compression ratio exceeds {}:1 ({})", limits_.max_ratio, limits_.ratio_limit_name));
    }
    if (rc == Z_STREAM_END) ended_ = true;
    if (produced > 0 && !sink(std::string_view(out_buf_, produced))) return Status::Ok();
    if (rc == Z_BUF_ERROR && produced == 0) break;
  }
  if (ended_ && zs_.avail_in > 0) return Status::Invalid("compressed body: data after the end of the compressed stream");
  return Status::Ok();
}

Status Inflater::finish() {
  if (!started_ && !head_.empty()) return Status::Invalid("compressed body is truncated");
  if (!started_) return Status::Invalid("compressed body is empty");
  if (!ended_) return Status::Invalid("compressed body is truncated");
  return Status::Ok();
}

}  // namespace taba::http
