// A spool segment's records read back, and a record's payload form (see
// spool.h; the file format is spool_format.h).
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "agent/spool.h"
#include "agent/spool_format.h"
#include "core/file_io.h"

namespace taba::agent {

using namespace spool_format;
using fileio::get_u32;
using fileio::put_u32;

std::string encode_spool_record_head(std::string_view client_batch_id, uint32_t events) {
  std::string p;
  size_t id_len = std::min<size_t>(client_batch_id.size(), 0xffff);
  p.resize(2 + id_len + 4);
  p[0] = static_cast<char>(id_len & 0xff);
  p[1] = static_cast<char>(id_len >> 8);
  std::copy_n(client_batch_id.data(), id_len, p.data() + 2);
  put_u32(p.data() + 2 + id_len, events);
  return p;
}

std::string encode_spool_record(std::string_view client_batch_id, uint32_t events, std::string_view batch) {
  std::string p = encode_spool_record_head(client_batch_id, events);
  p.append(batch);
  return p;
}

bool decode_spool_record(std::string_view payload, SpoolRecord* out) {
  if (payload.size() < 2) return false;
  size_t id_len =
      static_cast<uint8_t>(payload[0]) | (static_cast<size_t>(static_cast<uint8_t>(payload[1])) << 8);
  if (payload.size() < 2 + id_len + 4) return false;
  out->client_batch_id = payload.substr(2, id_len);
  out->events = get_u32(payload.data() + 2 + id_len);
  out->batch = payload.substr(2 + id_len + 4);
  return true;
}

namespace {

// Reads the header and the records of `all` (the bytes c holds) into c.
Status parse_contents(std::string_view all, const std::string& path, SegmentContents* out) {
  SegmentContents& c = *out;
  if (all.size() < kHeaderBytes || all.substr(0, kMagicBytes) != kMagic) {
    return Status::Invalid(fmt::format("{} is not a spool segment (bad header)", path));
  }
  c.batch_id = all.substr(kMagicBytes, kBatchIdBytes);
  if (!is_hex_id(c.batch_id)) return Status::Invalid(fmt::format("{}: bad batch id in the header", path));
  bool bad_payload = false;
  ScanResult r = scan_records(all, [&](std::string_view payload) {
    SpoolRecord rec;
    if (decode_spool_record(payload, &rec)) {
      c.records.push_back(rec);
    } else {
      bad_payload = true;
    }
  });
  c.corrupt = r.corrupt + (r.torn ? 1 : 0) + (bad_payload ? 1 : 0);
  return Status::Ok();
}

}  // namespace

Result<SegmentContents> read_segment(const std::string& path) {
  SegmentContents c;
  c.mapped = std::make_unique<fileio::MappedFile>();
  TABA_RETURN_IF_ERROR(c.mapped->open(path));
  TABA_RETURN_IF_ERROR(parse_contents(c.mapped->data(), path, &c));
  return c;
}

Result<SegmentContents> parse_segment(std::string bytes, const std::string& path) {
  SegmentContents c;
  c.bytes = std::move(bytes);
  TABA_RETURN_IF_ERROR(parse_contents(c.bytes, path, &c));
  return c;
}

}  // namespace taba::agent
