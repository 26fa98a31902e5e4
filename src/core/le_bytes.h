// Host-order (little-endian on every supported platform) fixed-width
// values in byte strings: the WAL/snapshot records and the Redis entry and
// state forms. The reader checks every length: malformed bytes are an
// error, never an over-read.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

namespace taba {

template <typename T>
void put_le(std::string* buf, T v) {
  char tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  buf->append(tmp, sizeof(T));
}

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  template <typename T>
  bool get(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool bytes(size_t n, std::string_view* out) {
    if (in_.size() - pos_ < n) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace taba
