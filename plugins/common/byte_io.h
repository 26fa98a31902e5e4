// Byte writer and bounds-checked reader for the plugins' serialized states.
//
// Encodings: unsigned integers are LEB128 varints (7 bits per byte, low
// group first); signed integers are zigzag-mapped first (also the 128-bit
// ones of exact sums, up to 19 bytes); doubles are the 8
// bytes of their IEEE-754 binary64 form, little-endian. The reader never
// reads past its end: every get_* returns false on truncated or malformed
// input and leaves the output untouched.
#ifndef TABA_PLUGINS_COMMON_BYTE_IO_H
#define TABA_PLUGINS_COMMON_BYTE_IO_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "taba/handler.h"

namespace taba::builtin {

class ByteWriter {
 public:
  void put_varint(uint64_t v);
  void put_svarint(int64_t v);
  void put_svarint128(__int128 v);
  void put_double(double v);
  void put_bytes(std::string_view bytes);  // varint length, then the bytes

  const std::string& bytes() const { return buf_; }
  // Hands the bytes to the host. Returns TABA_OK or TABA_ERR_NOMEM.
  taba_status flush_to(taba_output* out) const;

 private:
  std::string buf_;
};

class ByteReader {
 public:
  ByteReader(const char* data, size_t len) : p_(data), end_(data + len) {}

  bool get_varint(uint64_t* v);
  // A varint that must be <= max (lengths, counts, indexes).
  bool get_varint_max(uint64_t max, uint64_t* v);
  bool get_svarint(int64_t* v);
  bool get_svarint128(__int128* v);
  bool get_double(double* v);
  // A varint length, then that many bytes; at most max_len bytes.
  bool get_bytes(size_t max_len, std::string_view* v);

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool at_end() const { return p_ == end_; }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace taba::builtin

#endif  // TABA_PLUGINS_COMMON_BYTE_IO_H
