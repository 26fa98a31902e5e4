#include "protocol/batch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "protocol/payload.h"

namespace taba::protocol {
namespace {

constexpr uint8_t kBatchVersion = 1;
// The buffer is sized (and zero-filled) this much ahead of the writes at a
// time: one memset per step instead of one per field, and no more pages
// touched than the batch needs.
constexpr size_t kGrowStep = 256 << 10;

template <typename T>
void put(std::string* buf, T v) {
  char tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  buf->append(tmp, sizeof(T));
}

}  // namespace

void BatchWriter::grow(size_t n) {
  // Within the reserved capacity first (no reallocation), else doubling.
  size_t want = std::max(used_ + n, buf_.size() + kGrowStep);
  if (want > buf_.capacity()) want = std::max(want, 2 * buf_.capacity());
  buf_.resize(std::min(want, std::max(buf_.capacity(), used_ + n)));
}

void BatchWriter::reset(double receive_time) {
  used_ = 0;
  blocks_ = 0;
  block_events_ = 0;
  total_events_ = 0;
  block_count_at_ = 0;
  block_open_ = false;
  append_value<uint8_t>(kBatchVersion);
  append_value<double>(receive_time);
  append_value<uint32_t>(0);
}

void BatchWriter::close_block() {
  if (!block_open_) return;
  std::memcpy(&buf_[block_count_at_], &block_events_, sizeof(uint32_t));
  block_open_ = false;
}

void BatchWriter::begin_block(std::string_view client, std::string_view name, std::string_view type) {
  close_block();
  block_start_ = used_;
  append_value<uint16_t>(static_cast<uint16_t>(client.size()));
  append(client.data(), client.size());
  append_value<uint16_t>(static_cast<uint16_t>(name.size()));
  append(name.data(), name.size());
  append_value<uint8_t>(static_cast<uint8_t>(type.size()));
  append(type.data(), type.size());
  block_count_at_ = used_;
  append_value<uint32_t>(0);
  block_events_ = 0;
  ++blocks_;
  block_open_ = true;
}

void BatchWriter::add_event(double timestamp, const taba_value& payload) {
  // This runs once per event: one room check, then plain copies.
  const bool number = payload.kind == TABA_VALUE_NUMBER;
  const uint32_t len = static_cast<uint32_t>(payload.json_len);
  const size_t n = sizeof(double) + 1 + (number ? sizeof(double) : 0) + sizeof(uint32_t) + len;
  char* p = room(n);
  std::memcpy(p, &timestamp, sizeof(double));
  p += sizeof(double);
  *p++ = static_cast<char>(payload.kind);
  if (number) {
    std::memcpy(p, &payload.number, sizeof(double));
    p += sizeof(double);
  }
  std::memcpy(p, &len, sizeof(uint32_t));
  p += sizeof(uint32_t);
  std::memcpy(p, payload.json, len);
  used_ += n;
  ++block_events_;
  ++total_events_;
}

void BatchWriter::drop_block() {
  if (!block_open_) return;
  used_ = block_start_;
  total_events_ -= block_events_;
  block_events_ = 0;
  --blocks_;
  block_open_ = false;  // the block before it was closed when this one began
}

std::string BatchWriter::open_block_batch() const {
  if (!block_open_) return {};
  std::string out(buf_.data(), 1 + sizeof(double));  // version, receive time
  put<uint32_t>(&out, 1);
  out.append(buf_, block_start_, used_ - block_start_);
  std::memcpy(&out[out.size() - (used_ - block_count_at_)], &block_events_, sizeof(uint32_t));
  return out;
}

std::string BatchWriter::finish() {
  close_block();
  std::memcpy(&buf_[1 + sizeof(double)], &blocks_, sizeof(uint32_t));
  buf_.resize(used_);  // a cut: nothing is filled
  std::string out = std::move(buf_);
  buf_.clear();
  used_ = 0;
  return out;
}

bool BatchReader::read(void* out, size_t n) {
  if (in_.size() - pos_ < n) return false;
  std::memcpy(out, in_.data() + pos_, n);
  pos_ += n;
  return true;
}

bool BatchReader::read_view(size_t n, std::string_view* out) {
  if (in_.size() - pos_ < n) return false;
  *out = in_.substr(pos_, n);
  pos_ += n;
  return true;
}

Status BatchReader::open() {
  uint8_t version = 0;
  if (!read(&version, 1) || !read(&receive_time_, sizeof(double)) || !read(&block_count_, sizeof(uint32_t))) {
    return Status::Corruption("batch header truncated");
  }
  if (version != kBatchVersion) return Status::Corruption(fmt::format("batch version {} unknown", version));
  return Status::Ok();
}

bool BatchReader::corrupt_block(Status* status, const char* what) const {
  *status = Status::Corruption(fmt::format("batch block {}: {}", blocks_read_, what));
  return false;
}

bool BatchReader::read_block_header(BatchBlock* block, Status* status) {
  *status = Status::Ok();
  if (blocks_read_ >= block_count_) {
    if (pos_ != in_.size()) *status = Status::Corruption("trailing bytes after the last batch block");
    return false;
  }
  uint16_t client_len = 0, name_len = 0;
  uint8_t type_len = 0;
  if (!read(&client_len, 2) || !read_view(client_len, &block->client)) return corrupt_block(status, "client truncated");
  if (!read(&name_len, 2) || !read_view(name_len, &block->name)) return corrupt_block(status, "name truncated");
  if (!read(&type_len, 1) || !read_view(type_len, &block->type)) return corrupt_block(status, "type truncated");
  if (!read(&block->event_count, 4)) return corrupt_block(status, "event count truncated");
  return true;
}

bool BatchReader::next(BatchBlock* block, std::vector<taba_event>* events, Status* status) {
  if (!read_block_header(block, status)) return false;
  auto corrupt = [&](const char* what) { return corrupt_block(status, what); };
  // Each event takes at least 13 bytes: bound the count before reserving.
  if (block->event_count > (in_.size() - pos_) / 13) return corrupt("event count exceeds the record");
  events->resize(block->event_count);
  for (uint32_t i = 0; i < block->event_count; ++i) {
    taba_event& ev = (*events)[i];
    uint8_t kind = 0;
    uint32_t len = 0;
    std::string_view text;
    double number = 0;
    const char* p = in_.data() + pos_;
    const size_t left = in_.size() - pos_;
    if (left >= 21 && static_cast<uint8_t>(p[8]) == TABA_VALUE_NUMBER) {
      // The common event, a number: its fixed part in one bounds check.
      kind = TABA_VALUE_NUMBER;
      std::memcpy(&ev.timestamp, p, 8);
      std::memcpy(&number, p + 9, 8);
      std::memcpy(&len, p + 17, 4);
      pos_ += 21;
      if (!read_view(len, &text)) return corrupt("event payload truncated");
    } else {
      if (!read(&ev.timestamp, 8) || !read(&kind, 1)) return corrupt("event truncated");
      if (kind == TABA_VALUE_NUMBER && !read(&number, 8)) return corrupt("event truncated");
      if (!read(&len, 4) || !read_view(len, &text)) return corrupt("event payload truncated");
    }
    if (kind == TABA_VALUE_NUMBER) {
      // Handlers keep the text as well as the value (a gauge stores it and
      // refuses anything else when its state is read back), so a record
      // from disk must carry the number token it was written with.
      double parsed = 0;
      if (!written_here_ &&
          (text.empty() || parse_number_prefix(text.data(), text.data() + text.size(), &parsed) != text.size() ||
           parsed != number)) {
        return corrupt("event number does not match its JSON text");
      }
      ev.payload = taba_value{TABA_VALUE_NUMBER, 0, number, text.data(), text.size()};
      ev.elem0 = taba_value{};
      ev.elem1 = taba_value{};
    } else if (!parse_payload(text, &ev).empty() || ev.payload.kind != kind) {
      return corrupt("event payload is not valid JSON");
    }
  }
  ++blocks_read_;
  return true;
}

bool BatchReader::next_header(BatchBlock* block, Status* status) {
  if (!read_block_header(block, status)) return false;
  auto corrupt = [&](const char* what) { return corrupt_block(status, what); };
  for (uint32_t i = 0; i < block->event_count; ++i) {
    uint8_t kind = 0;
    uint32_t len = 0;
    std::string_view text;
    if (in_.size() - pos_ < 9) return corrupt("event truncated");
    kind = static_cast<uint8_t>(in_[pos_ + 8]);
    const size_t fixed = kind == TABA_VALUE_NUMBER ? 17 : 9;
    if (in_.size() - pos_ < fixed) return corrupt("event truncated");
    pos_ += fixed;
    if (!read(&len, 4) || !read_view(len, &text)) return corrupt("event payload truncated");
  }
  ++blocks_read_;
  return true;
}

}  // namespace taba::protocol
