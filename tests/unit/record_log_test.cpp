// The shared record log (core/record_log): record framing written by a
// WriteGroup and read back by a Reader (torn tails, bad checksums, bad
// lengths), and segment file names, listing and creation.
#include "core/record_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "temp_dir.h"

using namespace taba;
using recordlog::ReadResult;
using recordlog::Reader;
namespace fs = std::filesystem;
using taba::test_support::TempDir;

namespace {

// The bytes a group would write, joined.
std::string bytes_of(const recordlog::WriteGroup& group) {
  std::string out;
  for (const iovec& v : group.iovecs()) out.append(static_cast<const char*>(v.iov_base), v.iov_len);
  return out;
}

std::string framed(const std::vector<std::string>& payloads) {
  recordlog::WriteGroup group;
  for (const std::string& p : payloads) group.add(p);
  return bytes_of(group);
}

// Every payload a reader hands back until it stops, and how it stopped.
std::vector<std::string> read_all(std::string_view data, size_t offset, ReadResult* stop,
                                  Reader::Empty empty = Reader::Empty::kInvalid) {
  Reader reader(data, offset, empty);
  std::vector<std::string> out;
  std::string_view payload;
  ReadResult r;
  while ((r = reader.next(&payload)) == ReadResult::kRecord) out.emplace_back(payload);
  *stop = r;
  return out;
}

void touch(const TempDir& dir, const std::string& name) { std::ofstream(dir.path() + "/" + name) << "x"; }

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("record log: a record is u32 length | u32 crc32 | payload, little-endian", "[record_log]") {
  // CRC-32 of "123456789" is the standard check value 0xcbf43926.
  std::string bytes = framed({"123456789"});
  REQUIRE(bytes.size() == 8 + 9);
  CHECK(bytes.substr(0, 8) == std::string("\x09\x00\x00\x00\x26\x39\xf4\xcb", 8));
  CHECK(bytes.substr(8) == "123456789");

  char header[recordlog::kHeaderBytes];
  recordlog::encode_header("123456789", header);
  CHECK(std::string(header, sizeof header) == bytes.substr(0, 8));
}

TEST_CASE("record log: records written by a group read back in order, small and large", "[record_log]") {
  std::string big(10000, 'b');  // written in place, not copied
  big[0] = 'B';
  big.back() = 'E';
  std::vector<std::string> payloads{"one", "two", big, "x", std::string(4096, 's'), std::string(4097, 'l')};
  recordlog::WriteGroup group;
  uint64_t expected_bytes = 0;
  for (const std::string& p : payloads) {
    group.add(p);
    expected_bytes += recordlog::kHeaderBytes + p.size();
  }
  CHECK(group.records() == payloads.size());
  CHECK(group.bytes() == expected_bytes);
  // Headers and payloads up to 4 KiB coalesce into one piece; each larger
  // payload is a piece of its own: [one two header] [big] [x s.. header] [l..].
  CHECK(group.iovecs().size() == 4);
  std::string data = "HEADER" + bytes_of(group);
  REQUIRE(data.size() == 6 + expected_bytes);

  ReadResult stop;
  CHECK(read_all(data, 6, &stop) == payloads);
  CHECK(stop == ReadResult::kEnd);

  group.clear();
  CHECK(group.records() == 0);
  CHECK(group.bytes() == 0);
  CHECK(group.iovecs().empty());
  group.add("again");
  CHECK(bytes_of(group) == framed({"again"}));
}

TEST_CASE("record log: a record given as head and tail is the record of both joined", "[record_log]") {
  std::string big(6000, 't');
  big.back() = 'E';
  recordlog::WriteGroup group;
  group.add("head", "tail");
  group.add("only", "");
  group.add("", "tail only");
  group.add("h", big);  // the tail written in place
  CHECK(group.records() == 4);
  CHECK(bytes_of(group) == framed({"headtail", "only", "tail only", "h" + big}));
  CHECK(group.bytes() == bytes_of(group).size());
  ReadResult stop;
  CHECK(read_all(bytes_of(group), 0, &stop) == std::vector<std::string>{"headtail", "only", "tail only", "h" + big});
  CHECK(stop == ReadResult::kEnd);
}

TEST_CASE("record log: a torn tail stops the reader where the torn record starts", "[record_log]") {
  const std::string whole = framed({"first", "second record"});
  const size_t second = 8 + 5;
  for (size_t cut = second; cut < whole.size(); ++cut) {
    CAPTURE(cut);
    std::string_view data(whole.data(), cut);
    Reader reader(data, 0, Reader::Empty::kInvalid);
    std::string_view payload;
    REQUIRE(reader.next(&payload) == ReadResult::kRecord);
    CHECK(payload == "first");
    CHECK(reader.offset() == second);
    ReadResult r = reader.next(&payload);
    if (cut == second) {
      CHECK(r == ReadResult::kEnd);
    } else if (cut - second < 8) {
      CHECK(r == ReadResult::kTruncatedHeader);
      CHECK(std::string(recordlog::describe(r)) == "truncated record header");
    } else {
      CHECK(r == ReadResult::kPastEnd);
      CHECK(std::string(recordlog::describe(r)) == "record runs past the end of the file");
    }
    CHECK(reader.record_offset() == second);
    CHECK(reader.offset() == second);  // it stays at the damage
    CHECK(reader.next(&payload) == r);
  }
}

TEST_CASE("record log: a bad checksum is reported, and the reader can go on past it", "[record_log]") {
  std::string data = framed({"aaa", "bbb", "ccc"});
  data[8 + 3 + 8] ^= 0x01;  // the first byte of "bbb"
  Reader reader(data, 0, Reader::Empty::kInvalid);
  std::string_view payload;
  REQUIRE(reader.next(&payload) == ReadResult::kRecord);
  CHECK(payload == "aaa");
  REQUIRE(reader.next(&payload) == ReadResult::kBadChecksum);
  CHECK(std::string(recordlog::describe(ReadResult::kBadChecksum)) == "checksum mismatch");
  CHECK(payload == "cbb");
  CHECK(reader.record_offset() == 11);
  CHECK(reader.offset() == 22);
  CHECK_FALSE(reader.at_end());
  REQUIRE(reader.next(&payload) == ReadResult::kRecord);
  CHECK(payload == "ccc");
  CHECK(reader.at_end());
  CHECK(reader.next(&payload) == ReadResult::kEnd);

  // A damaged checksum field is the same.
  std::string last = framed({"aaa", "zzz"});
  last[11 + 4] ^= 0x80;
  ReadResult stop;
  CHECK(read_all(last, 0, &stop) == std::vector<std::string>{"aaa"});
  CHECK(stop == ReadResult::kBadChecksum);
}

TEST_CASE("record log: lengths past the limit, and empty records where they are invalid", "[record_log]") {
  std::string huge(8, '\0');
  fileio::put_u32(huge.data(), static_cast<uint32_t>(recordlog::kMaxPayloadBytes + 1));
  huge += std::string(64, 'x');
  ReadResult stop;
  CHECK(read_all(huge, 0, &stop).empty());
  CHECK(stop == ReadResult::kBadLength);
  CHECK(std::string(recordlog::describe(stop)) == "invalid record length");
  CHECK(read_all(huge, 0, &stop, Reader::Empty::kValid).empty());
  CHECK(stop == ReadResult::kBadLength);

  // A length of exactly the limit is not damage in itself: it runs past this end.
  fileio::put_u32(huge.data(), static_cast<uint32_t>(recordlog::kMaxPayloadBytes));
  read_all(huge, 0, &stop);
  CHECK(stop == ReadResult::kPastEnd);

  // An empty record (crc32 of nothing is 0) is damage to the WAL, a record to the spool.
  const std::string empty = framed({""}) + framed({"after"});
  CHECK(empty.substr(0, 8) == std::string(8, '\0'));
  CHECK(read_all(empty, 0, &stop, Reader::Empty::kInvalid).empty());
  CHECK(stop == ReadResult::kBadLength);
  CHECK(read_all(empty, 0, &stop, Reader::Empty::kValid) == std::vector<std::string>{"", "after"});
  CHECK(stop == ReadResult::kEnd);
}

TEST_CASE("record log: a reader starts past the owner's header, and at the end of the data", "[record_log]") {
  std::string data = "MAGIC!!!" + framed({"r"});
  ReadResult stop;
  CHECK(read_all(data, 8, &stop) == std::vector<std::string>{"r"});
  CHECK(stop == ReadResult::kEnd);
  CHECK(read_all("MAGIC!!!", 8, &stop).empty());
  CHECK(stop == ReadResult::kEnd);
  CHECK(read_all("", 0, &stop).empty());
  CHECK(stop == ReadResult::kEnd);
}

TEST_CASE("record log: segment names have 20 digits and parse back exactly", "[record_log]") {
  constexpr recordlog::SegmentName wal{"wal-", ".log"};
  constexpr recordlog::SegmentName sealed{"seg-", ".batch"};
  CHECK(wal.format(0) == "wal-00000000000000000000.log");
  CHECK(wal.format(7) == "wal-00000000000000000007.log");
  CHECK(sealed.format(12345) == "seg-00000000000000012345.batch");
  CHECK(wal.format(UINT64_MAX) == "wal-18446744073709551615.log");

  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 63, UINT64_MAX - 1, UINT64_MAX}) {
    uint64_t back = 42;
    REQUIRE(wal.parse(wal.format(n), &back));
    CHECK(back == n);
    REQUIRE(sealed.parse(sealed.format(n), &back));
    CHECK(back == n);
  }

  uint64_t n = 42;
  // Past 2^64 - 1: not one of ours, never a wrapped number.
  CHECK_FALSE(wal.parse("wal-18446744073709551616.log", &n));
  CHECK_FALSE(wal.parse("wal-99999999999999999999.log", &n));
  CHECK_FALSE(wal.parse("wal-20000000000000000000.log", &n));
  CHECK_FALSE(wal.parse("wal-0000000000000000007.log", &n));    // 19 digits
  CHECK_FALSE(wal.parse("wal-000000000000000000007.log", &n));  // 21 digits
  CHECK_FALSE(wal.parse("wal-0000000000000000000a.log", &n));
  CHECK_FALSE(wal.parse("wal- 0000000000000000007.log", &n));
  CHECK_FALSE(wal.parse("wal-+0000000000000000007.log", &n));
  CHECK_FALSE(wal.parse("wal-00000000000000000007.lo", &n));
  CHECK_FALSE(wal.parse("wal-00000000000000000007.logx", &n));
  CHECK_FALSE(wal.parse("Wal-00000000000000000007.log", &n));
  CHECK_FALSE(wal.parse("seg-00000000000000000007.log", &n));
  CHECK_FALSE(wal.parse("wal-00000000000000000007.batch", &n));
  CHECK_FALSE(sealed.parse("seg-00000000000000000007.open", &n));
  CHECK_FALSE(wal.parse("", &n));
  CHECK_FALSE(wal.parse("wal-.log", &n));
  CHECK(n == 42);  // untouched by a failed parse
}

TEST_CASE("record log: listing finds each family's segments in number order", "[record_log]") {
  TempDir dir("taba_record_log_test.");
  constexpr recordlog::SegmentName open_name{"seg-", ".open"};
  constexpr recordlog::SegmentName sealed_name{"seg-", ".batch"};
  touch(dir, sealed_name.format(3));
  touch(dir, open_name.format(10));
  touch(dir, sealed_name.format(10));
  touch(dir, sealed_name.format(2));
  touch(dir, "seg-00000000000000000002.batch.split");
  touch(dir, "wal-00000000000000000001.log");
  touch(dir, "seg-99999999999999999999.batch");
  touch(dir, "notes.txt");

  auto listed = recordlog::list_segments(dir.path(), {open_name, sealed_name});
  REQUIRE(listed.ok());
  std::vector<std::pair<uint64_t, size_t>> got;
  for (const recordlog::ListedSegment& s : listed.value()) got.emplace_back(s.number, s.kind);
  CHECK(got == std::vector<std::pair<uint64_t, size_t>>{{2, 1}, {3, 1}, {10, 0}, {10, 1}});

  auto wal = recordlog::list_segments(dir.path(), {recordlog::SegmentName{"wal-", ".log"}});
  REQUIRE(wal.ok());
  REQUIRE(wal->size() == 1);
  CHECK(wal->front().number == 1);
  CHECK(wal->front().kind == 0);

  auto missing = recordlog::list_segments(dir.path() + "/nope", {open_name});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("cannot list " + dir.path() + "/nope") == 0);
}

TEST_CASE("record log: a segment is created with its header, never over an existing file", "[record_log]") {
  TempDir dir("taba_record_log_test.");
  const std::string path = dir.path() + "/wal-00000000000000000001.log";
  recordlog::CreatedSegment made = recordlog::create_segment(path, "TABAWAL1");
  REQUIRE(made.fd >= 0);
  CHECK(made.status.ok());
  std::vector<iovec> iov;
  std::string record = framed({"payload"});
  iov.push_back({record.data(), record.size()});
  REQUIRE(fileio::pwrite_all(made.fd, iov, 8) == 0);
  ::close(made.fd);
  CHECK(file_bytes(path) == "TABAWAL1" + record);

  recordlog::CreatedSegment again = recordlog::create_segment(path, "TABAWAL1");
  CHECK(again.fd < 0);
  CHECK(again.err == EEXIST);
  CHECK(again.status.code() == Status::Code::kIoError);
  CHECK(again.status.message().find("cannot create " + path) == 0);
  CHECK(file_bytes(path) == "TABAWAL1" + record);  // untouched

  recordlog::CreatedSegment nowhere = recordlog::create_segment(dir.path() + "/no/such/dir/x", "H");
  CHECK(nowhere.fd < 0);
  CHECK(nowhere.err == ENOENT);
}
