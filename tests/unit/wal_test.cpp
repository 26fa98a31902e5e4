// Write-ahead log: round trips, group commit ordering, backpressure, snapshots,
// torn tails, corruption, rotation, write errors and kill -9 crashes.
#include "store/embedded/wal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace {

using taba::Status;
using taba::store::FsyncPolicy;
using taba::store::WalOptions;
using taba::store::WriteAheadLog;
using WalPtr = std::unique_ptr<WriteAheadLog>;
namespace fs = std::filesystem;

using taba::test_support::TempDir;

// The log directory itself does not exist yet: open() creates it.
std::string wal_dir_of(const TempDir& dir) { return dir.path() + "/wal"; }

class TestLoop {
 public:
  TestLoop() { REQUIRE(uv_loop_init(&loop_) == 0); }
  ~TestLoop() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);  // fails if the log leaked a handle
  }
  uv_loop_t* get() { return &loop_; }

  // Runs the loop until `done()` or the time limit; returns done().
  bool run_until(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(60)) {
    uv_timer_t tick;  // keeps the loop waking up even if nothing arrives
    bool closed = false;
    tick.data = &closed;
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick),
             [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
    while (!closed) uv_run(&loop_, UV_RUN_NOWAIT);
    return done();
  }

 private:
  uv_loop_t loop_;
};

struct Recovered {
  std::optional<std::string> snapshot;
  std::vector<std::string> records;
};

taba::Result<WalPtr> open_wal(uv_loop_t* loop, const WalOptions& options, Recovered* out) {
  WriteAheadLog::RecoveryVisitor visitor;
  visitor.on_snapshot = [out](std::string_view s) {
    out->snapshot = std::string(s);
    return Status::Ok();
  };
  visitor.on_record = [out](std::string_view r) {
    out->records.emplace_back(r);
    return Status::Ok();
  };
  return WriteAheadLog::open(loop, options, visitor);
}

WalOptions options_for(const TempDir& dir, FsyncPolicy fsync = FsyncPolicy::kEverySec) {
  WalOptions o;
  o.dir = wal_dir_of(dir);
  o.fsync = fsync;
  return o;
}

// Deterministic payload for record i; sizes vary unless `size` is given.
std::string record(uint64_t i, size_t size = 0) {
  if (size == 0) size = 1 + (i * 7919) % 9000;  // crosses the copy/in-place threshold
  std::string s = "rec-" + std::to_string(i) + "-";
  s.reserve(size);
  while (s.size() < size) s.push_back(static_cast<char>('a' + (i + s.size()) % 26));
  s.resize(size);
  return s;
}

std::vector<std::string> records(uint64_t from, uint64_t to, size_t size = 0) {
  std::vector<std::string> out;
  for (uint64_t i = from; i < to; ++i) out.push_back(record(i, size));
  return out;
}

std::vector<std::string> segment_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("wal-", 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string segment_path(const TempDir& dir, int n) {
  char name[64];
  snprintf(name, sizeof name, "/wal-%020d.log", n);
  return wal_dir_of(dir) + name;
}

uint64_t file_size(const std::string& path) {
  return fs::file_size(path);
}

void patch_file(const std::string& path, uint64_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
          static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  in.get(c);
  patch_file(path, offset, std::string(1, static_cast<char>(c ^ 0x5a)));
}

// Offset of record `index` in a segment holding `payloads` from its start.
uint64_t record_offset(const std::vector<std::string>& payloads, size_t index) {
  uint64_t off = 8;
  for (size_t i = 0; i < index; ++i) off += 8 + payloads[i].size();
  return off;
}

// Appends all of `payloads` and runs the loop until each has completed OK, in order.
void append_all(TestLoop& loop, WriteAheadLog& wal, const std::vector<std::string>& payloads) {
  std::vector<size_t> completed;
  bool all_ok = true;
  for (size_t i = 0; i < payloads.size(); ++i) {
    Status s = wal.append(payloads[i], [&, i](const Status& st) {
      completed.push_back(i);
      all_ok = all_ok && st.ok();
    });
    REQUIRE(s.ok());
  }
  REQUIRE(loop.run_until([&] { return completed.size() == payloads.size(); }));
  CHECK(all_ok);
  for (size_t i = 0; i < completed.size(); ++i) REQUIRE(completed[i] == i);
}

// Writes `payloads` in a fresh session (open, append, close).
void write_session(const TempDir& dir, const std::vector<std::string>& payloads, WalOptions options = {}) {
  if (options.dir.empty()) options = options_for(dir);
  TestLoop loop;
  Recovered rec;
  auto wal = open_wal(loop.get(), options, &rec);
  REQUIRE(wal.ok());
  append_all(loop, **wal, payloads);
  (*wal)->close();
}

Recovered reopen(const TempDir& dir, uint64_t* torn = nullptr) {
  TestLoop loop;
  Recovered rec;
  auto wal = open_wal(loop.get(), options_for(dir), &rec);
  INFO(wal.status().message());
  REQUIRE(wal.ok());
  if (torn) *torn = (*wal)->stats().torn_records_skipped;
  (*wal)->close();
  return rec;
}

// Three records and then a snapshot of `payload` into a fresh log in dir;
// the snapshot's outcome.
Status snapshot_session(const TempDir& dir, const std::string& payload) {
  TestLoop loop;
  Recovered rec;
  auto opened = open_wal(loop.get(), options_for(dir), &rec);
  REQUIRE(opened.ok());
  append_all(loop, **opened, records(0, 3));
  std::optional<Status> snap;
  (*opened)->snapshot(payload, [&](const Status& st) { snap = st; });
  REQUIRE(loop.run_until([&] { return snap.has_value(); }));
  return *snap;
}

Status reopen_status(const TempDir& dir) {
  TestLoop loop;
  Recovered rec;
  auto wal = open_wal(loop.get(), options_for(dir), &rec);
  if (wal.ok()) (*wal)->close();
  return wal.status();
}

bool is_prefix(const std::vector<std::string>& prefix, const std::vector<std::string>& of) {
  return prefix.size() <= of.size() && std::equal(prefix.begin(), prefix.end(), of.begin());
}

}  // namespace

TEST_CASE("wal: appended records are recovered in order after reopen", "[wal]") {
  TempDir dir("taba_wal_test.");
  auto first = records(0, 500);
  {
    TestLoop loop;
    Recovered rec;
    auto wal = open_wal(loop.get(), options_for(dir), &rec);
    REQUIRE(wal.ok());
    CHECK(rec.records.empty());
    CHECK(!rec.snapshot);
    append_all(loop, **wal, first);
    auto stats = (*wal)->stats();
    CHECK(stats.records_written == 500);
    CHECK(stats.queued_bytes == 0);
    CHECK(stats.write_errors == 0);
    uint64_t bytes = 0;
    for (const auto& r : first) bytes += 8 + r.size();
    CHECK(stats.bytes_written == bytes);
    (*wal)->close();
    (*wal)->close();  // idempotent
  }
  CHECK(reopen(dir).records == first);
  auto second = records(500, 600);
  write_session(dir, second);
  auto all = first;
  all.insert(all.end(), second.begin(), second.end());
  uint64_t torn = 99;
  CHECK(reopen(dir, &torn).records == all);
  CHECK(torn == 0);
}

TEST_CASE("wal: fsync=always completes a record only after it is written and synced", "[wal]") {
  TempDir dir("taba_wal_test.");
  TestLoop loop;
  Recovered rec;
  auto opened = open_wal(loop.get(), options_for(dir, FsyncPolicy::kAlways), &rec);
  REQUIRE(opened.ok());
  WriteAheadLog& wal = **opened;
  const std::string segment = segment_path(dir, 1);
  const int n = 300;
  int completed = 0;
  int too_early = 0;
  uint64_t max_fsyncs_seen = 0;
  for (int i = 0; i < n; ++i) {
    REQUIRE(wal.append(record(i, 1000),
                       [&, i](const Status& st) {
                         CHECK(st.ok());
                         CHECK(completed == i);
                         ++completed;
                         // Records 0..i are on disk by the time record i completes.
                         if (file_size(segment) < 8 + static_cast<uint64_t>(i + 1) * 1008) ++too_early;
                         max_fsyncs_seen = std::max(max_fsyncs_seen, wal.stats().fsyncs);
                         if (wal.stats().fsyncs == 0) ++too_early;
                       })
                .ok());
  }
  REQUIRE(loop.run_until([&] { return completed == n; }));
  CHECK(too_early == 0);
  CHECK(max_fsyncs_seen >= 1);
  // Group commit: far fewer fsyncs than records is possible, never more.
  CHECK(wal.stats().fsyncs <= static_cast<uint64_t>(n));
  wal.close();
  CHECK(reopen(dir).records == records(0, n, 1000));
}

TEST_CASE("wal: close writes, syncs and completes everything queued", "[wal]") {
  for (FsyncPolicy policy : {FsyncPolicy::kEverySec, FsyncPolicy::kAlways}) {
    TempDir d("taba_wal_test.");
    TestLoop loop;
    Recovered rec;
    auto wal = open_wal(loop.get(), options_for(d, policy), &rec);
    REQUIRE(wal.ok());
    std::vector<int> completed;
    for (int i = 0; i < 100; ++i) {
      REQUIRE((*wal)
                  ->append(record(i),
                           [&, i](const Status& st) {
                             CHECK(st.ok());
                             completed.push_back(i);
                           })
                  .ok());
    }
    (*wal)->close();  // without running the loop
    REQUIRE(completed.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(completed[i] == i);
    bool called = false;
    CHECK((*wal)->append("late", [&](const Status&) { called = true; }).code() == Status::Code::kUnavailable);
    CHECK(!called);
    wal->reset();
    CHECK(reopen(d).records == records(0, 100));
  }
}

TEST_CASE("wal: a completion may close and destroy the log", "[wal]") {
  TempDir dir("taba_wal_test.");
  TestLoop loop;
  Recovered rec;
  auto opened = open_wal(loop.get(), options_for(dir, FsyncPolicy::kAlways), &rec);
  REQUIRE(opened.ok());
  WalPtr wal = std::move(opened.value());
  std::vector<int> completed;
  for (int i = 0; i < 50; ++i) {
    REQUIRE(wal->append(record(i),
                        [&, i](const Status& st) {
                          CHECK(st.ok());
                          completed.push_back(i);
                          if (i == 10) wal.reset();  // closes: the rest complete first, in order
                        })
                .ok());
  }
  REQUIRE(loop.run_until([&] { return completed.size() == 50; }));
  for (int i = 0; i < 50; ++i) CHECK(completed[i] == i);
  CHECK(reopen(dir).records == records(0, 50));
}

TEST_CASE("wal: append refuses beyond max_queued_bytes and bad sizes", "[wal]") {
  TempDir dir("taba_wal_test.");
  TestLoop loop;
  Recovered rec;
  WalOptions options = options_for(dir);
  options.max_queued_bytes = 4096;
  auto opened = open_wal(loop.get(), options, &rec);
  REQUIRE(opened.ok());
  WriteAheadLog& wal = **opened;
  bool called = false;
  // 4089 + 8 header bytes exceed the limit even with an empty queue.
  Status refused = wal.append(std::string(4089, 'x'), [&](const Status&) { called = true; });
  CHECK(refused.code() == Status::Code::kUnavailable);
  CHECK(wal.append("", [&](const Status&) { called = true; }).code() == Status::Code::kInvalid);
  CHECK(!called);
  int done = 0;
  REQUIRE(wal.append(std::string(4088, 'y'), [&](const Status& st) { done += st.ok(); }).ok());
  REQUIRE(loop.run_until([&] { return done == 1; }));
  // A burst without running the loop: the writer cannot keep 4 KiB drained.
  int accepted = 0;
  int unavailable = 0;
  for (int i = 0; i < 20000; ++i) {
    Status s = wal.append(std::string(1000, 'z'), [&](const Status& st) { done += st.ok(); });
    if (s.ok())
      ++accepted;
    else if (s.code() == Status::Code::kUnavailable)
      ++unavailable;
  }
  CHECK(unavailable > 0);
  CHECK(accepted + unavailable == 20000);
  REQUIRE(loop.run_until([&] { return done == 1 + accepted; }));
  CHECK(wal.stats().queued_bytes == 0);
  CHECK(wal.stats().records_written == static_cast<uint64_t>(1 + accepted));
}

TEST_CASE("wal: a snapshot replaces the records before it and deletes their segments", "[wal]") {
  TempDir dir("taba_wal_test.");
  {
    TestLoop loop;
    Recovered rec;
    auto opened = open_wal(loop.get(), options_for(dir), &rec);
    REQUIRE(opened.ok());
    WriteAheadLog& wal = **opened;
    int completed = 0;
    for (int i = 0; i < 10; ++i)
      REQUIRE(wal.append(record(i), [&](const Status& st) { completed += st.ok(); }).ok());
    std::optional<Status> snap;
    wal.snapshot("state-after-10", [&](const Status& st) { snap = st; });
    for (int i = 10; i < 15; ++i)
      REQUIRE(wal.append(record(i), [&](const Status& st) { completed += st.ok(); }).ok());
    REQUIRE(loop.run_until([&] { return completed == 15 && snap.has_value(); }));
    CHECK(snap->ok());
    CHECK(wal.stats().snapshots_written == 1);
    CHECK(wal.stats().last_snapshot_bytes == 28 + std::string("state-after-10").size());
    CHECK(!fs::exists(segment_path(dir, 1)));
    CHECK(fs::exists(segment_path(dir, 2)));
    CHECK(fs::exists(wal_dir_of(dir) + "/snapshot"));
    CHECK(!fs::exists(wal_dir_of(dir) + "/snapshot.tmp"));
    wal.close();
  }
  Recovered rec = reopen(dir);  // creates segment 3
  REQUIRE(rec.snapshot);
  CHECK(*rec.snapshot == "state-after-10");
  CHECK(rec.records == records(10, 15));

  // A second snapshot, taken right before close: close waits for it.
  {
    TestLoop loop;
    Recovered again;
    auto opened = open_wal(loop.get(), options_for(dir), &again);
    REQUIRE(opened.ok());
    append_all(loop, **opened, records(15, 18));
    std::optional<Status> snap;
    (*opened)->snapshot("state-after-18", [&](const Status& st) { snap = st; });
    (*opened)->close();
    REQUIRE(snap);
    CHECK(snap->ok());
  }
  rec = reopen(dir);
  REQUIRE(rec.snapshot);
  CHECK(*rec.snapshot == "state-after-18");
  CHECK(rec.records.empty());
  auto segments = segment_files(wal_dir_of(dir));
  REQUIRE(!segments.empty());
  CHECK(segments.front() > segment_path(dir, 4));  // 1..4 are covered and gone
}

TEST_CASE("wal: an empty snapshot payload round-trips", "[wal]") {
  TempDir dir("taba_wal_test.");
  CHECK(snapshot_session(dir, "").ok());
  Recovered rec = reopen(dir);
  REQUIRE(rec.snapshot);
  CHECK(rec.snapshot->empty());
  CHECK(rec.records.empty());
}

TEST_CASE("wal: a torn tail of the last segment is dropped and truncated", "[wal]") {
  TempDir dir("taba_wal_test.");
  auto payloads = records(0, 20);
  write_session(dir, payloads);
  const std::string segment = segment_path(dir, 1);
  REQUIRE(file_size(segment) == record_offset(payloads, 20));
  size_t good = 0;

  SECTION("truncated in the middle of a record") {
    REQUIRE(truncate(segment.c_str(), static_cast<off_t>(record_offset(payloads, 19) + 5)) == 0);
    good = 19;
  }
  SECTION("truncated in the middle of a record header") {
    REQUIRE(truncate(segment.c_str(), static_cast<off_t>(record_offset(payloads, 12) + 3)) == 0);
    good = 12;
  }
  SECTION("garbage appended") {
    patch_file(segment, record_offset(payloads, 20), "\x13\x00\x00\x00garbage garbage");
    good = 20;
  }
  SECTION("zeros appended (file extended without its data)") {
    patch_file(segment, record_offset(payloads, 20), std::string(4096, '\0'));
    good = 20;
  }
  SECTION("checksum mismatch in a record") {
    flip_byte(segment, record_offset(payloads, 15) + 8 + payloads[15].size() / 2);
    good = 15;
  }
  SECTION("a huge length") {
    patch_file(segment, record_offset(payloads, 17), std::string("\xff\xff\xff\x7f", 4));
    good = 17;
  }

  uint64_t torn = 0;
  Recovered rec = reopen(dir, &torn);
  CHECK(torn == 1);
  CHECK(rec.records == records(0, good));
  CHECK(file_size(segment) == record_offset(payloads, good));
  // The repair is durable: the next open is clean.
  rec = reopen(dir, &torn);
  CHECK(torn == 0);
  CHECK(rec.records == records(0, good));
}

TEST_CASE("wal: a torn segment header of the last segment is repaired", "[wal]") {
  TempDir dir("taba_wal_test.");
  write_session(dir, records(0, 5));
  // A crash right after creating segment 2 may leave part of its magic.
  {
    std::ofstream out(segment_path(dir, 2), std::ios::binary);
    out << "TABA";
  }
  uint64_t torn = 0;
  CHECK(reopen(dir, &torn).records == records(0, 5));
  CHECK(torn == 0);
  CHECK(file_size(segment_path(dir, 2)) == 8);
  CHECK(reopen(dir).records == records(0, 5));
}

TEST_CASE("wal: damage before the last segment is corruption", "[wal]") {
  TempDir dir("taba_wal_test.");
  auto payloads = records(0, 10);
  write_session(dir, payloads);         // segment 1
  write_session(dir, records(10, 20));  // segment 2
  const std::string first = segment_path(dir, 1);
  std::string expect = "offset";

  SECTION("checksum mismatch") {
    flip_byte(first, record_offset(payloads, 5) + 9);
    expect = "offset " + std::to_string(record_offset(payloads, 5));
  }
  SECTION("truncated") {
    REQUIRE(truncate(first.c_str(), static_cast<off_t>(record_offset(payloads, 9) + 4)) == 0);
    expect = "offset " + std::to_string(record_offset(payloads, 9));
  }
  SECTION("bad magic") {
    patch_file(first, 0, "XXXX");
  }
  SECTION("missing") {
    fs::remove(first);
    expect = "missing segment";
  }
  Status s = reopen_status(dir);
  CHECK(s.code() == Status::Code::kCorruption);
  INFO(s.message());
  if (expect != "missing segment")
    CHECK(s.message().find("wal-00000000000000000001.log") != std::string::npos);
  CHECK(s.message().find(expect) != std::string::npos);
}

TEST_CASE("wal: a corrupt snapshot is an error naming the file", "[wal]") {
  TempDir dir("taba_wal_test.");
  REQUIRE(snapshot_session(dir, std::string(1000, 's')).ok());
  const std::string file = wal_dir_of(dir) + "/snapshot";
  SECTION("flipped payload byte") {
    flip_byte(file, 500);
  }
  SECTION("truncated") {
    REQUIRE(truncate(file.c_str(), 10) == 0);
  }
  SECTION("huge length") {
    patch_file(file, 16, std::string("\x00\x00\x00\x00\x00\x00\x00\x40", 8));
  }
  SECTION("bad magic") {
    patch_file(file, 0, "NOTASNAP");
  }
  Status s = reopen_status(dir);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK(s.message().find(file) != std::string::npos);
}

TEST_CASE("wal: segment numbers near 2^64 are corruption, not a wrap (found by fuzz_wal)", "[wal]") {
  TempDir dir("taba_wal_test.");
  REQUIRE(snapshot_session(dir, "payload").ok());
  SECTION("a snapshot covering up to 2^64 - 3") {
    // The covered number is outside the checksum, so only the bound catches it.
    patch_file(wal_dir_of(dir) + "/snapshot", 8, std::string("\xfd\xff\xff\xff\xff\xff\xff\xff", 8));
  }
  SECTION("a segment numbered 2^64 - 2") {
    // Past what the old name parser read: it was left out of the listing,
    // and a new segment of that number then could not be created.
    std::ofstream(wal_dir_of(dir) + "/wal-18446744073709551614.log") << "TABAWAL1";
  }
  Status s = reopen_status(dir);
  INFO(s.message());
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK(s.message().find("past the largest") != std::string::npos);
}

TEST_CASE("wal: segments rotate past segment_bytes", "[wal]") {
  TempDir dir("taba_wal_test.");
  WalOptions options = options_for(dir);
  options.segment_bytes = 1000;
  auto payloads = records(0, 100, 150);        // 158 bytes on disk: 6 per segment
  payloads.push_back(std::string(3000, 'L'));  // larger than a segment: alone in one
  payloads.push_back(record(101, 150));
  write_session(dir, payloads, options);
  auto segments = segment_files(wal_dir_of(dir));
  CHECK(segments.size() == 19);  // 17 of small records, the large one, the last small one
  int oversized = 0;
  for (const auto& s : segments) {
    if (file_size(s) > 1000) {
      ++oversized;
      CHECK(file_size(s) == 8 + 8 + 3000);
    }
  }
  CHECK(oversized == 1);
  CHECK(reopen(dir).records == payloads);
}

TEST_CASE("wal: the visitor's error stops recovery", "[wal]") {
  TempDir dir("taba_wal_test.");
  write_session(dir, records(0, 10));
  TestLoop loop;
  int seen = 0;
  WriteAheadLog::RecoveryVisitor visitor;
  visitor.on_record = [&](std::string_view) {
    return ++seen == 4 ? Status::Invalid("cannot decode record 4") : Status::Ok();
  };
  auto wal = WriteAheadLog::open(loop.get(), options_for(dir), visitor);
  REQUIRE(!wal.ok());
  CHECK(wal.status().code() == Status::Code::kInvalid);
  CHECK(wal.status().message() == "cannot decode record 4");
  CHECK(seen == 4);
}

TEST_CASE("wal: one directory cannot be opened twice", "[wal]") {
  TempDir dir("taba_wal_test.");
  TestLoop loop;
  Recovered rec;
  auto first = open_wal(loop.get(), options_for(dir), &rec);
  REQUIRE(first.ok());
  auto second = open_wal(loop.get(), options_for(dir), &rec);
  CHECK(second.status().code() == Status::Code::kUnavailable);
  (*first)->close();
  auto third = open_wal(loop.get(), options_for(dir), &rec);
  CHECK(third.ok());
}

TEST_CASE("wal: recovery survives arbitrary damage", "[wal]") {
  std::mt19937_64 rng(12345);
  auto payloads = records(0, 30);
  for (int round = 0; round < 60; ++round) {
    TempDir dir("taba_wal_test.");
    write_session(dir, std::vector<std::string>(payloads.begin(), payloads.begin() + 15));
    write_session(dir, std::vector<std::string>(payloads.begin() + 15, payloads.end()));
    bool last = rng() % 2 == 0;
    const std::string victim = segment_path(dir, last ? 2 : 1);
    uint64_t size = file_size(victim);
    switch (rng() % 3) {
      case 0:
        REQUIRE(truncate(victim.c_str(), static_cast<off_t>(rng() % size)) == 0);
        break;
      case 1:
        for (int k = 0; k < 4; ++k) flip_byte(victim, rng() % size);
        break;
      default: {
        std::string junk(1 + rng() % 64, '\0');
        for (char& c : junk) c = static_cast<char>(rng());
        patch_file(victim, rng() % size, junk);
      }
    }
    TestLoop loop;
    Recovered rec;
    auto wal = open_wal(loop.get(), options_for(dir), &rec);
    INFO("round " << round << ": " << wal.status().message());
    if (wal.ok()) {
      CHECK(is_prefix(rec.records, payloads));
      CHECK((*wal)->stats().torn_records_skipped <= 1);
      if (!last) CHECK(rec.records == payloads);  // untouched or repaired, never less
    } else {
      CHECK(wal.status().code() == Status::Code::kCorruption);
    }
  }
}

namespace {

// Runs `body` in a child process and returns what it wrote to the pipe.
// The child must not use Catch assertions; it reports through `out`.
std::string run_child(const std::function<void(int out)>& body) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    body(fds[1]);
    _exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  return text;
}

void write_text(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// In the child: appends 40 1000-byte records with the file size limited to
// `limit`, all at once (burst) or one at a time, and reports each record's
// outcome as a letter (O ok, E completed with IoError, R refused with IoError),
// then the status code of one more (small) append once it completed, and
// the write_errors count.
void child_with_file_limit(int out, const std::string& dir, FsyncPolicy policy, uint64_t limit, bool burst) {
  signal(SIGXFSZ, SIG_IGN);  // exceeding the limit then fails the write with EFBIG
  rlimit rl{limit, limit};
  setrlimit(RLIMIT_FSIZE, &rl);
  uv_loop_t loop;
  uv_loop_init(&loop);
  WalOptions options;
  options.dir = dir;
  options.fsync = policy;
  WriteAheadLog::RecoveryVisitor visitor;
  auto wal = WriteAheadLog::open(&loop, options, visitor);
  if (!wal.ok()) {
    write_text(out, "open failed: " + wal.status().message());
    return;
  }
  const int count = 40;
  std::string report(count, '.');
  size_t completed = 0;
  for (int i = 0; i < count; ++i) {
    Status s = (*wal)->append(record(i, 1000), [&, i](const Status& st) {
      report[i] = st.ok() ? 'O' : (st.code() == Status::Code::kIoError ? 'E' : '?');
      ++completed;
    });
    if (!s.ok()) {
      report[i] = s.code() == Status::Code::kIoError ? 'R' : '?';
      ++completed;
    }
    if (!burst) {
      while (completed < static_cast<size_t>(i + 1)) uv_run(&loop, UV_RUN_ONCE);
    }
  }
  while (completed < count) uv_run(&loop, UV_RUN_ONCE);
  int after_code = -1;
  Status after = (*wal)->append("after", [&](const Status& st) { after_code = static_cast<int>(st.code()); });
  if (!after.ok()) after_code = 100 + static_cast<int>(after.code());
  while (after_code < 0) uv_run(&loop, UV_RUN_ONCE);
  report += " " + std::to_string(after_code);
  report += " " + std::to_string((*wal)->stats().write_errors);
  (*wal)->close();
  wal->reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  write_text(out, report);
}

}  // namespace

TEST_CASE("wal: a write refused for lack of room fails its records and removes them, and a later append that fits succeeds",
          "[wal]") {
  for (bool burst : {false, true}) {
    for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kEverySec}) {
      TempDir dir("taba_wal_test.");
      const std::string wal_dir = wal_dir_of(dir);
      std::string report =
          run_child([&](int out) { child_with_file_limit(out, wal_dir, policy, 20000, burst); });
      INFO("burst " << burst << " always " << (policy == FsyncPolicy::kAlways) << ": " << report);
      // 8 + 19 * 1008 bytes fit under the limit; the 20th record does not.
      auto space = report.find(' ');
      REQUIRE(space != std::string::npos);
      std::string outcomes = report.substr(0, space);
      CHECK(outcomes.size() == 40);
      // Every record completes, OK or with an I/O error (EFBIG is a lack of
      // room, not a broken log: appends are never refused outright).
      CHECK(outcomes.find_first_not_of("OE") == std::string::npos);
      size_t ok = outcomes.find_first_not_of('O');
      REQUIRE(ok != std::string::npos);
      if (!burst) {
        // One at a time: exactly the records that fit succeed, and every
        // later one fails (each is tried; none fits).
        CHECK(ok == 19);
        CHECK(outcomes.find_first_not_of('E', ok) == std::string::npos);
      }
      // In a burst, records go in groups: a group that does not fit fails
      // whole (also records of it that alone would have fit), and a later,
      // smaller group may still fit. Either way the log holds exactly the
      // acknowledged records, in order: the failed writes were cut off.
      std::vector<std::string> want;
      for (size_t i = 0; i < outcomes.size(); ++i) {
        if (outcomes[i] == 'O') want.push_back(record(i, 1000));
      }
      CHECK(want.size() <= 19);
      // The small record still fits: written (0 = OK).
      std::istringstream tail(report.substr(space));
      int after_code = -1;
      uint64_t write_errors = 0;
      tail >> after_code >> write_errors;
      CHECK(after_code == static_cast<int>(Status::Code::kOk));
      if (burst)
        CHECK(write_errors >= 1);
      else
        CHECK(write_errors == 40 - ok);
      uint64_t torn = 9;
      want.push_back("after");
      CHECK(reopen(dir, &torn).records == want);
      CHECK(torn == 0);
    }
  }
}

TEST_CASE("wal: after kill -9, every acknowledged record is recovered (fsync=always)", "[wal]") {
  TempDir dir("taba_wal_test.");
  const std::string wal_dir = wal_dir_of(dir);
  uint64_t next = 0;  // records 0..next-1 are in the log
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      uv_loop_t loop;
      uv_loop_init(&loop);
      WalOptions options;
      options.dir = wal_dir;
      options.fsync = FsyncPolicy::kAlways;
      uint64_t recovered = 0;
      WriteAheadLog::RecoveryVisitor visitor;
      visitor.on_record = [&](std::string_view) {
        ++recovered;
        return Status::Ok();
      };
      auto wal = WriteAheadLog::open(&loop, options, visitor);
      if (!wal.ok()) _exit(3);
      // Keeps 32 appends in flight; reports each completion as its index.
      uint64_t i = recovered;
      std::function<void()> append_next = [&] {
        uint64_t index = i++;
        Status s = (*wal)->append(record(index, 2000), [&, index](const Status& st) {
          if (!st.ok()) _exit(4);
          write_text(fds[1], std::to_string(index) + "\n");
          append_next();
        });
        if (!s.ok()) _exit(5);
      };
      for (int k = 0; k < 32; ++k) append_next();
      uv_run(&loop, UV_RUN_DEFAULT);
      _exit(6);
    }
    ::close(fds[1]);
    std::string text;
    std::vector<uint64_t> acked;
    const size_t kill_after = 200 + static_cast<size_t>(round) * 150;
    char buf[4096];
    bool killed = false;
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) {
      text.append(buf, static_cast<size_t>(n));
      if (!killed && std::count(text.begin(), text.end(), '\n') >= static_cast<long>(kill_after)) {
        kill(pid, SIGKILL);
        killed = true;
      }
    }
    ::close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(killed);
    REQUIRE(WIFSIGNALED(status));
    size_t pos = 0;
    while (true) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;
      acked.push_back(std::stoull(text.substr(pos, nl - pos)));
      pos = nl + 1;
    }
    REQUIRE(acked.size() >= kill_after);
    for (size_t k = 0; k < acked.size(); ++k) REQUIRE(acked[k] == next + k);  // completions in order
    Recovered rec = reopen(dir);
    INFO("round " << round << ": acked up to " << acked.back() << ", recovered " << rec.records.size());
    REQUIRE(rec.records.size() >= acked.back() + 1);
    CHECK(rec.records == records(0, rec.records.size(), 2000));
    next = rec.records.size();
  }
}
