#include "protocol/delta_batch.h"

#include <fmt/format.h>

#include <cstring>

#include "core/file_io.h"
#include "core/le_bytes.h"

namespace taba::protocol {
namespace {

constexpr size_t kHeaderBytes = 1 + sizeof(double) + sizeof(uint32_t);

}  // namespace

void DeltaWriter::reset(double time) {
  buf_.clear();
  blocks_ = 0;
  events_ = 0;
  put_le<uint8_t>(&buf_, kDeltaBatchVersion);
  put_le<double>(&buf_, time);
  put_le<uint32_t>(&buf_, 0);
}

void DeltaWriter::add(std::string_view client, std::string_view name, std::string_view type, uint64_t events,
                      uint32_t state_version, std::string_view state) {
  buf_.reserve(buf_.size() + 2 + client.size() + 2 + name.size() + 1 + type.size() + 8 + 4 + 4 + state.size());
  put_le<uint16_t>(&buf_, static_cast<uint16_t>(client.size()));
  buf_.append(client);
  put_le<uint16_t>(&buf_, static_cast<uint16_t>(name.size()));
  buf_.append(name);
  put_le<uint8_t>(&buf_, static_cast<uint8_t>(type.size()));
  buf_.append(type);
  put_le<uint64_t>(&buf_, events);
  put_le<uint32_t>(&buf_, state_version);
  put_le<uint32_t>(&buf_, static_cast<uint32_t>(state.size()));
  buf_.append(state);
  ++blocks_;
  events_ += events;
}

std::string DeltaWriter::finish() {
  std::memcpy(&buf_[1 + sizeof(double)], &blocks_, sizeof(uint32_t));
  std::string out = std::move(buf_);
  reset(0);
  return out;
}

Status DeltaReader::open() {
  ByteReader r(in_);
  uint8_t version = 0;
  if (!r.get(&version) || !r.get(&time_) || !r.get(&block_count_)) {
    return Status::Invalid(fmt::format("delta batch: {} bytes, shorter than its {}-byte header", in_.size(),
                                       kHeaderBytes));
  }
  if (version != kDeltaBatchVersion) {
    return Status::Invalid(fmt::format("delta batch: version {} (this build reads version {})", version,
                                       kDeltaBatchVersion));
  }
  pos_ = kHeaderBytes;
  return Status::Ok();
}

bool DeltaReader::next(DeltaBlock* block, Status* status) {
  *status = Status::Ok();
  if (blocks_read_ == block_count_) {
    if (pos_ != in_.size()) {
      *status = Status::Invalid(
          fmt::format("delta batch: {} bytes after its last block ({})", in_.size() - pos_, block_count_));
    }
    return false;
  }
  ByteReader r(in_.substr(pos_));
  uint16_t client_len = 0, name_len = 0;
  uint8_t type_len = 0;
  uint32_t state_len = 0;
  DeltaBlock b;
  bool ok = r.get(&client_len) && r.bytes(client_len, &b.client) && r.get(&name_len) && r.bytes(name_len, &b.name) &&
            r.get(&type_len) && r.bytes(type_len, &b.type) && r.get(&b.events) && r.get(&b.state_version) &&
            r.get(&state_len) && r.bytes(state_len, &b.state);
  if (!ok) {
    *status = Status::Invalid(fmt::format("delta batch: block {} of {} is truncated", blocks_read_ + 1, block_count_));
    return false;
  }
  pos_ += 2 + client_len + 2 + name_len + 1 + type_len + 8 + 4 + 4 + size_t{state_len};
  ++blocks_read_;
  *block = b;
  return true;
}

std::string wrap_delta_body(std::string_view batch) {
  std::string out;
  out.reserve(kDeltaEnvelopeBytes + batch.size());
  out.append(kDeltaMagic);
  put_le<uint32_t>(&out, fileio::checksum(batch));
  out.append(batch);
  return out;
}

Result<std::string_view> unwrap_delta_body(std::string_view body) {
  if (body.size() < kDeltaEnvelopeBytes || body.substr(0, kDeltaMagic.size()) != kDeltaMagic) {
    return Status::Invalid("delta body: does not start with \"TDLT\" (not an application/x-taba-delta body)");
  }
  uint32_t crc = 0;
  std::memcpy(&crc, body.data() + kDeltaMagic.size(), sizeof(crc));
  std::string_view batch = body.substr(kDeltaEnvelopeBytes);
  uint32_t actual = fileio::checksum(batch);
  if (crc != actual) {
    return Status::Invalid(fmt::format("delta body: checksum {:08x} does not match its {} bytes ({:08x})", crc,
                                       batch.size(), actual));
  }
  return batch;
}

}  // namespace taba::protocol
