// The agent's spool (segments, sealing, the byte cap, recovery of torn and
// corrupt files) and the v1 encoder the forwarder builds bodies with.
#include "agent/spool.h"

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/file_io.h"
#include "plugin/registry.h"
#include "plugin_batches.h"
#include "protocol/batch.h"
#include "protocol/v1_decoder.h"
#include "protocol/v1_encoder.h"
#include "temp_dir.h"

using namespace taba;
namespace fs = std::filesystem;
using taba::test_support::TempDir;

namespace {

class AnyType : public protocol::TypeResolver {
 public:
  const plugin::Handler* resolve(std::string_view, std::string_view type, std::string* err) override {
    const plugin::Handler* h = test::built_plugins().find(type);
    if (!h) *err = "unknown type";
    return h;
  }
};

// A v1 body decoded into a binary batch, as the agent's ingest makes it.
std::string batch_of(const std::string& body, uint64_t* events = nullptr) {
  AnyType resolver;
  protocol::BatchWriter writer;
  writer.reset(1400000010.0);
  protocol::DecodeOptions opts;
  opts.now = 1400000010.0;
  protocol::V1Decoder dec(&resolver, &writer, opts);
  REQUIRE(dec.feed(body));
  REQUIRE(dec.finish());
  if (events) *events = dec.events();
  return writer.finish();
}

struct Harness {
  uv_loop_t loop;
  std::mutex mu;
  std::vector<agent::Segment> sealed;
  std::vector<std::string> recovered_ids;
  std::unique_ptr<agent::Spool> spool;

  Harness() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~Harness() {
    spool.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  Status open(const agent::SpoolOptions& options) {
    auto r = agent::Spool::open(
        &loop, options,
        [this](agent::Segment s) {
          std::lock_guard<std::mutex> lock(mu);
          sealed.push_back(std::move(s));
        },
        [this](std::string_view id) { recovered_ids.emplace_back(id); });
    TABA_RETURN_IF_ERROR(r);
    spool = std::move(r.value());
    return Status::Ok();
  }
  // Appends and runs the loop until the record is written.
  Status append(const std::string& client_id, const std::string& body) {
    uint64_t events = 0;
    std::string batch = batch_of(body, &events);
    bool done = false;
    Status result;
    Status s = spool->append(agent::encode_spool_record(client_id, static_cast<uint32_t>(events), batch), events,
                             [&](const Status& st) {
                               result = st;
                               done = true;
                             });
    TABA_RETURN_IF_ERROR(s);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done && std::chrono::steady_clock::now() < deadline) uv_run(&loop, UV_RUN_ONCE);
    REQUIRE(done);
    return result;
  }
  size_t sealed_count() {
    std::lock_guard<std::mutex> lock(mu);
    return sealed.size();
  }
  void wait_sealed(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (sealed_count() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(sealed_count() == n);
  }
};

std::string test_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool write_test_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  return static_cast<bool>(out);
}

std::string body(const std::string& client, const std::string& name, int value) {
  return "1\n\n" + client + "\n\n" + name + "\n[\"CounterGroup\", 1400000000, \"" + std::to_string(value) + "\"]\n\n";
}

}  // namespace

TEST_CASE("spool: records are sealed into segments with their own batch id and read back", "[spool]") {
  TempDir dir("taba_spool_test.");
  Harness h;
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 20;
  REQUIRE(h.open(o).ok());
  REQUIRE(h.append("id-1", body("c1", "a", 5)).ok());
  REQUIRE(h.append("", body("c2", "b", 7)).ok());
  h.wait_sealed(1);
  agent::Segment seg = h.sealed[0];
  CHECK(seg.records == 2);
  CHECK(seg.events == 2);
  CHECK(seg.batch_id.size() == 32);
  CHECK(fs::exists(seg.path));
  CHECK(seg.path.ends_with(".batch"));
  auto c = agent::read_segment(seg.path);
  REQUIRE(c.ok());
  CHECK(c->batch_id == seg.batch_id);
  REQUIRE(c->records.size() == 2);
  CHECK(c->records[0].client_batch_id == "id-1");
  CHECK(c->records[1].client_batch_id.empty());
  CHECK(c->corrupt == 0);
  protocol::V1Encoder enc;
  for (const auto& r : c->records) REQUIRE(enc.add_batch(r.batch).ok());
  CHECK(enc.finish() ==
        "1\n\nc1\n\na\n[\"CounterGroup\",1400000000,\"5\"]\n\n\nc2\n\nb\n[\"CounterGroup\",1400000000,\"7\"]\n\n\n");
  CHECK(h.spool->stats().bytes == seg.bytes);
  h.spool->remove(seg);
  CHECK_FALSE(fs::exists(seg.path));
  CHECK(h.spool->stats().bytes == 0);
  CHECK(h.spool->stats().events == 0);
}

TEST_CASE("spool: a record appended as head and batch reads back as one record", "[spool]") {
  TempDir dir("taba_spool_test.");
  Harness h;
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 20;
  REQUIRE(h.open(o).ok());
  uint64_t events = 0;
  std::string batch = batch_of(body("c1", "a", 5), &events);
  std::string head = agent::encode_spool_record_head("id-7", static_cast<uint32_t>(events));
  CHECK(head + batch == agent::encode_spool_record("id-7", static_cast<uint32_t>(events), batch));
  bool done = false;
  REQUIRE(h.spool->append(head, batch, events, [&](const Status& st) {
    CHECK(st.ok());
    done = true;
  }).ok());
  while (!done) uv_run(&h.loop, UV_RUN_ONCE);
  h.wait_sealed(1);
  auto c = agent::read_segment(h.sealed[0].path);
  REQUIRE(c.ok());
  REQUIRE(c->records.size() == 1);
  CHECK(c->records[0].client_batch_id == "id-7");
  CHECK(c->records[0].events == 1);
  CHECK(c->records[0].batch == batch);
  CHECK(h.sealed[0].bytes == 40 + 8 + head.size() + batch.size());
}

TEST_CASE("spool: the byte cap refuses appends, and space comes back when a segment goes", "[spool]") {
  TempDir dir("taba_spool_test.");
  Harness h;
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 10;
  o.max_bytes = 400;
  REQUIRE(h.open(o).ok());
  int accepted = 0;
  Status s;
  for (int i = 0; i < 20; ++i) {
    s = h.append("", body("c", "n", i));
    if (!s.ok()) break;
    ++accepted;
  }
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(accepted >= 1);
  CHECK(accepted < 20);
  CHECK(h.spool->stats().refused_full == 1);
  CHECK(h.spool->stats().bytes <= 400);
  h.wait_sealed(1);
  h.spool->remove(h.sealed[0]);
  CHECK(h.append("", body("c", "n", 99)).ok());
}

TEST_CASE("spool: a restart hands back sealed segments with the same ids and the client ids", "[spool]") {
  TempDir dir("taba_spool_test.");
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 60'000;  // nothing is sealed while running: close() seals
  std::string first_id;
  {
    Harness h;
    REQUIRE(h.open(o).ok());
    REQUIRE(h.append("retry-me", body("c1", "a", 1)).ok());
    REQUIRE(h.append("", body("c1", "a", 2)).ok());
    CHECK(h.sealed_count() == 0);
    h.spool->close();
    REQUIRE(h.sealed_count() == 1);
    first_id = h.sealed[0].batch_id;
  }
  Harness h;
  REQUIRE(h.open(o).ok());
  REQUIRE(h.sealed.size() == 1);
  CHECK(h.sealed[0].batch_id == first_id);
  CHECK(h.sealed[0].events == 2);
  CHECK(h.recovered_ids == std::vector<std::string>{"retry-me"});
  CHECK(h.spool->stats().events == 2);
}

TEST_CASE("spool: a torn last record of an open segment is cut off and the rest sealed", "[spool]") {
  TempDir dir("taba_spool_test.");
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 60'000;
  {
    Harness h;
    REQUIRE(h.open(o).ok());
    REQUIRE(h.append("", body("c1", "a", 1)).ok());
    REQUIRE(h.append("", body("c1", "a", 2)).ok());
    // Simulate kill -9 mid-write: no close(); the writer thread is stopped by
    // the destructor, which would seal, so copy the open file first.
    std::string open_file;
    for (const auto& e : fs::directory_iterator(o.dir)) open_file = e.path().string();
    REQUIRE(open_file.ends_with(".open"));
    fs::copy_file(open_file, dir.path() + "/saved.open");
  }
  for (const auto& e : fs::directory_iterator(o.dir)) fs::remove(e.path());
  std::string saved;
  {
    std::ifstream in(dir.path() + "/saved.open", std::ios::binary);
    saved.assign(std::istreambuf_iterator<char>(in), {});
  }
  saved.resize(saved.size() - 5);  // the second record loses its last bytes
  {
    std::ofstream out(o.dir + "/seg-00000000000000000007.open", std::ios::binary);
    out << saved;
  }
  Harness h;
  REQUIRE(h.open(o).ok());
  REQUIRE(h.sealed.size() == 1);
  CHECK(h.sealed[0].records == 1);
  CHECK(h.sealed[0].events == 1);
  CHECK(h.sealed[0].path.ends_with("seg-00000000000000000007.batch"));
  CHECK(h.spool->stats().torn_records_skipped == 1);
  // New segments continue after the highest number found.
  REQUIRE(h.append("", body("c1", "a", 3)).ok());
  h.spool->close();
  REQUIRE(h.sealed.size() == 2);
  CHECK(h.sealed[1].number == 8);
}

TEST_CASE("spool: a record with a bad checksum inside a segment is skipped, the others kept", "[spool]") {
  TempDir dir("taba_spool_test.");
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 60'000;
  std::string path;
  {
    Harness h;
    REQUIRE(h.open(o).ok());
    for (int i = 1; i <= 3; ++i) REQUIRE(h.append("", body("c1", "a", i)).ok());
    h.spool->close();
    REQUIRE(h.sealed.size() == 1);
    path = h.sealed[0].path;
  }
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Flip a byte in the middle record's payload.
  size_t mid = bytes.size() / 2;
  bytes[mid] = static_cast<char>(bytes[mid] ^ 0x5a);
  auto c = agent::parse_segment(bytes, "test");
  REQUIRE(c.ok());
  CHECK(c->records.size() == 2);
  CHECK(c->corrupt == 1);
  CHECK_FALSE(agent::parse_segment("TABASPL1short", "test").ok());
}

namespace {

// The client batch ids of a sealed segment's records, in order.
std::vector<std::string> client_ids_of(const agent::Segment& seg) {
  auto c = agent::read_segment(seg.path);
  REQUIRE(c.ok());
  CHECK(c->corrupt == 0);
  std::vector<std::string> ids;
  for (const auto& r : c->records) ids.emplace_back(r.client_batch_id);
  return ids;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

// fdatasync cannot be made to fail without root (no small tmpfs, no fault
// injection), so the spool's stand-in for it (SpoolOptions::
// sync_data_for_test) fails here while `failing` is set.
TEST_CASE("spool: a seal whose fsync fails is retried, and its records are sealed once a later fsync works",
          "[spool]") {
  TempDir dir("taba_spool_test.");
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 20;
  std::atomic<bool> failing{true};
  std::atomic<int> failed{0};
  o.sync_data_for_test = [&](int fd) {
    if (failing) {
      ++failed;
      return EIO;
    }
    return fileio::sync_data(fd);
  };
  Harness h;
  REQUIRE(h.open(o).ok());
  // Acknowledged (everysec: written, not yet fsynced), then the seal fails.
  REQUIRE(h.append("a-1", body("c1", "a", 1)).ok());
  REQUIRE(h.append("a-2", body("c1", "a", 2)).ok());
  auto unsealed = [&](uint64_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (h.spool->stats().unsealed_segments != n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return h.spool->stats().unsealed_segments == n;
  };
  REQUIRE(unsealed(1));
  // Later posts go into a new segment, whose seal fails too.
  REQUIRE(h.append("b-1", body("c2", "b", 3)).ok());
  REQUIRE(unsealed(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a retry that fails as well
  CHECK(h.sealed_count() == 0);
  agent::SpoolStats failing_stats = h.spool->stats();
  CHECK(failing_stats.seal_failures >= 3);
  CHECK(failing_stats.write_errors >= 2);
  CHECK(failing_stats.events == 3);

  failing = false;
  h.wait_sealed(2);
  CHECK(h.spool->stats().unsealed_segments == 0);
  // Each record once, in its segment, under the segment's own batch id.
  CHECK(client_ids_of(h.sealed[0]) == std::vector<std::string>{"a-1", "a-2"});
  CHECK(client_ids_of(h.sealed[1]) == std::vector<std::string>{"b-1"});
  CHECK(h.sealed[0].events == 2);
  CHECK(h.sealed[1].events == 1);
  CHECK(h.sealed[0].batch_id != h.sealed[1].batch_id);
  std::vector<std::string> files = files_in(o.dir);
  INFO(fmt::format("{}", fmt::join(files, " ")));
  for (const std::string& f : files) {
    CHECK_FALSE(f.ends_with(".open"));
    CHECK_FALSE(f.ends_with(".reseal"));
  }
  CHECK(h.spool->stats().events == 3);
  CHECK(h.spool->stats().segments == 2);
  // Forwarded: both go, and nothing is left.
  for (const agent::Segment& seg : std::vector<agent::Segment>(h.sealed)) REQUIRE(h.spool->remove(seg));
  CHECK(h.spool->stats().events == 0);
  CHECK(h.spool->stats().bytes == 0);
}

TEST_CASE("spool: a seal that never works is left to the next start, which seals its records once", "[spool]") {
  TempDir dir("taba_spool_test.");
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 20;
  {
    Harness h;
    agent::SpoolOptions failing = o;
    failing.sync_data_for_test = [](int) { return EIO; };
    REQUIRE(h.open(failing).ok());
    REQUIRE(h.append("x-1", body("c1", "a", 1)).ok());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (h.spool->stats().unsealed_segments != 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(h.spool->stats().unsealed_segments == 1);
    h.spool->close();
    CHECK(h.sealed_count() == 0);
  }
  Harness h;
  REQUIRE(h.open(o).ok());
  REQUIRE(h.sealed.size() == 1);
  CHECK(client_ids_of(h.sealed[0]) == std::vector<std::string>{"x-1"});
  CHECK(h.recovered_ids == std::vector<std::string>{"x-1"});
}

TEST_CASE("spool: a restart after a seal retry cut short recovers each record once", "[spool]") {
  TempDir dir("taba_spool_test.");
  agent::SpoolOptions o;
  o.dir = dir.path() + "/spool";
  o.seal_after_ms = 60'000;
  std::string sealed_bytes;
  {
    Harness h;
    REQUIRE(h.open(o).ok());
    REQUIRE(h.append("r-1", body("c1", "a", 1)).ok());
    h.spool->close();
    REQUIRE(h.sealed.size() == 1);
    sealed_bytes = test_read(h.sealed[0].path);
  }
  // A crash after the copy was renamed into place but before the .open went
  // (segment 1), and one before the copy was renamed (segment 2).
  std::string sealed1 = o.dir + "/seg-00000000000000000001.batch";
  REQUIRE(fs::exists(sealed1));
  REQUIRE(write_test_file(o.dir + "/seg-00000000000000000001.open", sealed_bytes));
  REQUIRE(write_test_file(o.dir + "/seg-00000000000000000002.open", sealed_bytes));
  REQUIRE(write_test_file(o.dir + "/seg-00000000000000000002.reseal", sealed_bytes.substr(0, 50)));
  Harness h;
  REQUIRE(h.open(o).ok());
  REQUIRE(h.sealed.size() == 2);
  CHECK(h.sealed[0].number == 1);
  CHECK(h.sealed[1].number == 2);
  CHECK(client_ids_of(h.sealed[0]) == std::vector<std::string>{"r-1"});
  CHECK(client_ids_of(h.sealed[1]) == std::vector<std::string>{"r-1"});
  CHECK(files_in(o.dir) == std::vector<std::string>{"seg-00000000000000000001.batch", "seg-00000000000000000002.batch"});
  CHECK(h.spool->stats().events == 2);
}

TEST_CASE("v1 encoder: bodies decode back to the same events, with escapes", "[spool]") {
  std::string in =
      "1\n\nc1\n\nn1\n[\"Gauge\", 1400000000.25, \"\\\"a\\\\\\\"b\\\\\\\\c\\\\u0001\\\"\"]\n[\"Gauge\", 1400000001, \"7\"]\n\n"
      "n2\n[\"CounterGroup\", 1400000002.5, \"1.5\"]\n\n\nc2\n\nn2\n[\"CounterGroup\", 1400000003, \"2\"]\n";
  uint64_t events = 0;
  std::string batch = batch_of(in, &events);
  CHECK(events == 4);
  protocol::V1Encoder enc;
  REQUIRE(enc.add_batch(batch).ok());
  CHECK(enc.events() == 4);
  std::string out = enc.finish();
  CHECK(out ==
        "1\n\nc1\n\nn1\n[\"Gauge\",1400000000.25,\"\\\"a\\\\\\\"b\\\\\\\\c\\\\u0001\\\"\"]\n[\"Gauge\",1400000001,\"7\"]\n\n"
        "n2\n[\"CounterGroup\",1400000002.5,\"1.5\"]\n\n\nc2\n\nn2\n[\"CounterGroup\",1400000003,\"2\"]\n\n\n");
  // And the encoding decodes to the same batch.
  CHECK(batch_of(out) == batch);
  // A corrupt batch leaves the body as it was.
  protocol::V1Encoder enc2;
  REQUIRE(enc2.add_batch(batch).ok());
  std::string before = enc2.finish();
  REQUIRE(enc2.add_batch(batch).ok());
  CHECK_FALSE(enc2.add_batch(batch.substr(0, batch.size() - 3)).ok());
  CHECK(enc2.finish() == before);
}
