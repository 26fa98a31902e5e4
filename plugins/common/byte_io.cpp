#include "common/byte_io.h"

#include <cstring>
#include <string>

namespace taba::builtin {
namespace {

// The LEB128 form of an unsigned integer of type U (uint64_t, or unsigned
// __int128 for exact sums).
template <class U>
void append_leb128(U v, std::string* buf) {
  char tmp[(sizeof(U) * 8 + 6) / 7];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = static_cast<char>((static_cast<unsigned>(v) & 0x7f) | 0x80);
    v >>= 7;
  }
  tmp[n++] = static_cast<char>(v);
  buf->append(tmp, n);
}

// Reads a LEB128 integer of type U at *at (before end), advancing *at;
// false (and *at unchanged) when truncated, longer than U allows, or
// carrying bits beyond U's width in its last byte.
template <class U>
bool read_leb128(const char** at, const char* end, U* v) {
  constexpr int kBits = sizeof(U) * 8;
  U result = 0;
  const char* p = *at;
  for (int shift = 0; shift < kBits; shift += 7) {
    if (p == end) return false;
    const auto byte = static_cast<unsigned char>(*p++);
    const unsigned group = byte & 0x7f;
    // The last possible byte may only carry the top bits (1 of 64, 2 of 128).
    if (kBits - shift < 7 && (group >> (kBits - shift)) != 0) return false;
    result |= static_cast<U>(group) << shift;
    if ((byte & 0x80) == 0) {
      *at = p;
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace

void ByteWriter::put_varint(uint64_t v) {
  append_leb128(v, &buf_);
}

void ByteWriter::put_svarint(int64_t v) {
  // Zigzag: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
  const uint64_t u = static_cast<uint64_t>(v);
  put_varint((u << 1) ^ (v < 0 ? ~uint64_t{0} : uint64_t{0}));
}

void ByteWriter::put_svarint128(__int128 v) {
  using U = unsigned __int128;
  append_leb128((static_cast<U>(v) << 1) ^ (v < 0 ? ~U{0} : U{0}), &buf_);
}

void ByteWriter::put_double(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  char tmp[8];
  for (int i = 0; i < 8; ++i) tmp[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
  buf_.append(tmp, sizeof tmp);
}

void ByteWriter::put_bytes(std::string_view bytes) {
  put_varint(bytes.size());
  buf_.append(bytes.data(), bytes.size());
}

taba_status ByteWriter::flush_to(taba_output* out) const {
  if (out == nullptr || out->write == nullptr) return TABA_ERR_INTERNAL;
  return out->write(out, buf_.data(), buf_.size()) == 0 ? TABA_OK : TABA_ERR_NOMEM;
}

bool ByteReader::get_varint(uint64_t* v) {
  return read_leb128(&p_, end_, v);
}

bool ByteReader::get_varint_max(uint64_t max, uint64_t* v) {
  const char* saved = p_;
  uint64_t tmp;
  if (!get_varint(&tmp) || tmp > max) {
    p_ = saved;
    return false;
  }
  *v = tmp;
  return true;
}

bool ByteReader::get_svarint(int64_t* v) {
  uint64_t u;
  if (!get_varint(&u)) return false;
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}

bool ByteReader::get_svarint128(__int128* v) {
  using U = unsigned __int128;
  U u;
  if (!read_leb128(&p_, end_, &u)) return false;
  *v = static_cast<__int128>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}

bool ByteReader::get_double(double* v) {
  if (remaining() < 8) return false;
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= uint64_t{static_cast<unsigned char>(p_[i])} << (8 * i);
  p_ += 8;
  std::memcpy(v, &bits, sizeof bits);
  return true;
}

bool ByteReader::get_bytes(size_t max_len, std::string_view* v) {
  const char* saved = p_;
  uint64_t len;
  if (!get_varint(&len) || len > max_len || len > remaining()) {
    p_ = saved;
    return false;
  }
  *v = std::string_view(p_, static_cast<size_t>(len));
  p_ += len;
  return true;
}

}  // namespace taba::builtin
