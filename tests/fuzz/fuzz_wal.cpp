// libFuzzer: recovery of the embedded store from its directory (files on
// disk are untrusted bytes): the WAL's snapshot file and segment readers,
// and the store's snapshot payload and record (batch, identified batch,
// admin) decoders behind them.
//
// Input: byte 0 is a set of flags, byte 1 the number of the first segment,
// the rest the files, separated by "\nFILE\n": the snapshot file first when
// flag 1 is set, then up to four segments numbered from byte 1 on.
//   1  the first file is the snapshot file
//   2  fix up the record checksums and the snapshot's length and checksum,
//      so that mutations get past them
//   4  open an EmbeddedStore (the built-in plugins loaded) instead of a bare
//      write-ahead log
//   8  leave a gap in the numbering after the first segment
// The files go into one directory, made once per process under /dev/shm
// (or $TMPDIR) and emptied for every input.
//
// Invariants. Bare log: recovery succeeds exactly when a small model of the
// file format says it should, and hands over exactly the model's snapshot
// payload and records, in order; recovering again from what it left (a
// torn tail truncated, a new segment) gives the same. Store: a store that
// recovered writes a snapshot when it closes, from which a second store
// recovers the same names, clients and aggregates.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "core/log.h"
#include "plugin/registry.h"
#include "store/embedded/embedded_store.h"
#include "store/embedded/wal.h"

namespace {

using taba::fileio::checksum;
using taba::fileio::get_u32;
using taba::fileio::get_u64;
using taba::fileio::put_u32;
using taba::fileio::put_u64;

constexpr std::string_view kSeparator = "\nFILE\n";
constexpr std::string_view kSegmentMagic = "TABAWAL1";
constexpr std::string_view kSnapshotMagic = "TABASNP1";
constexpr size_t kSnapshotHeaderBytes = 28;
constexpr size_t kMaxSegments = 4;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void empty_dir(const std::string& dir);

struct Env {
  uv_loop_t loop;
  std::string dir;
  taba::plugin::Registry plugins;
};

Env& env() {
  static Env* e = [] {
    auto* made = new Env;
    taba::log::set_level(taba::log::Level::kError);
    uv_loop_init(&made->loop);
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    std::string tmpl = std::string(base) + "/fuzz_wal.XXXXXX";
    check(mkdtemp(tmpl.data()) != nullptr);
    made->dir = tmpl;
    made->plugins.load_dir(TABA_FUZZ_PLUGIN_DIR);
    std::atexit([] {  // libFuzzer ends a run with exit()
      empty_dir(env().dir);
      rmdir(env().dir.c_str());
    });
    return made;
  }();
  return *e;
}

void empty_dir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  check(d != nullptr);
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    check(unlink((dir + "/" + e->d_name).c_str()) == 0);
  }
  closedir(d);
}

void write_file(const std::string& path, std::string_view bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  check(fd >= 0);
  check(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  close(fd);
}

std::string segment_path(const std::string& dir, uint64_t number) {
  return fmt::format("{}/wal-{:020}.log", dir, number);
}

// Sets every record's checksum, as far as the record lengths hold together.
void fix_segment(std::string* seg) {
  size_t off = kSegmentMagic.size();
  while (seg->size() >= off + 8) {
    uint32_t len = get_u32(seg->data() + off);
    if (len == 0 || len > seg->size() - off - 8) break;
    put_u32(seg->data() + off + 4, checksum(std::string_view(*seg).substr(off + 8, len)));
    off += 8 + len;
  }
}

void fix_snapshot(std::string* snap) {
  if (snap->size() < kSnapshotHeaderBytes) return;
  std::string_view payload = std::string_view(*snap).substr(kSnapshotHeaderBytes);
  put_u64(snap->data() + 16, payload.size());
  put_u32(snap->data() + 24, checksum(payload));
}

struct Files {
  bool has_snapshot = false;
  std::string snapshot;
  std::vector<std::pair<uint64_t, std::string>> segments;  // number, bytes
};

Files parse_input(const uint8_t* data, size_t size) {
  Files f;
  uint8_t flags = data[0];
  uint64_t number = data[1];
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::vector<std::string_view> pieces;
  while (true) {
    size_t at = rest.find(kSeparator);
    pieces.push_back(rest.substr(0, at));
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + kSeparator.size());
  }
  size_t i = 0;
  if (flags & 1) {
    f.has_snapshot = true;
    f.snapshot = std::string(pieces[i++]);
    if (flags & 2) fix_snapshot(&f.snapshot);
  }
  for (; i < pieces.size() && f.segments.size() < kMaxSegments; ++i) {
    std::string seg(pieces[i]);
    if (flags & 2) fix_segment(&seg);
    f.segments.emplace_back(number, std::move(seg));
    number += (flags & 8) && f.segments.size() == 1 ? 2 : 1;
  }
  return f;
}

void write_files(const Files& f) {
  const std::string& dir = env().dir;
  empty_dir(dir);
  if (f.has_snapshot) write_file(dir + "/snapshot", f.snapshot);
  for (const auto& [number, bytes] : f.segments) write_file(segment_path(dir, number), bytes);
}

// What recovery must do with these files, worked out independently.
struct Expected {
  bool ok = true;
  std::string_view snapshot;  // its payload, when there is a valid one
  bool has_snapshot = false;
  std::vector<std::string_view> records;
};

Expected model(const Files& f) {
  Expected e;
  uint64_t covered = 0;
  if (f.has_snapshot) {
    std::string_view s = f.snapshot;
    if (s.size() < kSnapshotHeaderBytes || s.substr(0, 8) != kSnapshotMagic ||
        get_u64(s.data() + 16) != s.size() - kSnapshotHeaderBytes ||
        get_u32(s.data() + 24) != checksum(s.substr(kSnapshotHeaderBytes))) {
      e.ok = false;
      return e;
    }
    e.has_snapshot = true;
    e.snapshot = s.substr(kSnapshotHeaderBytes);
    covered = get_u64(s.data() + 8);
    // Segment numbers stay below 2^63: a snapshot covering more is corrupt.
    if (covered >= (uint64_t{1} << 63)) {
      e.ok = false;
      return e;
    }
  }
  // Segments are replayed in order up to a gap in the numbering, which fails
  // recovery (the segments before it are then not the last one).
  std::vector<std::string_view> replayed;
  bool gap = false;
  for (const auto& [number, bytes] : f.segments) {
    if (number <= covered) continue;  // removed, covered by the snapshot
    if (number != covered + 1 + replayed.size()) {
      gap = true;
      break;
    }
    replayed.push_back(bytes);
  }
  for (size_t i = 0; i < replayed.size(); ++i) {
    std::string_view seg = replayed[i];
    bool last = !gap && i + 1 == replayed.size();
    if (seg.size() < 8) {
      e.ok = last;  // a torn header of the last segment is rewritten
      return e;
    }
    if (seg.substr(0, 8) != kSegmentMagic) {
      e.ok = false;
      return e;
    }
    size_t off = 8;
    while (off < seg.size()) {
      if (seg.size() - off < 8) break;
      uint32_t len = get_u32(seg.data() + off);
      if (len == 0 || len > seg.size() - off - 8) break;
      std::string_view payload = seg.substr(off + 8, len);
      if (checksum(payload) != get_u32(seg.data() + off + 4)) break;
      e.records.push_back(payload);
      off += 8 + len;
    }
    if (off < seg.size() && !last) {
      e.ok = false;
      return e;
    }
  }
  if (gap) e.ok = false;
  return e;
}

struct Seen {
  bool snapshot = false;
  std::string snapshot_payload;
  std::vector<std::string> records;
};

taba::store::WriteAheadLog::RecoveryVisitor recorder(Seen* seen) {
  taba::store::WriteAheadLog::RecoveryVisitor v;
  v.on_snapshot = [seen](std::string_view payload) {
    check(!seen->snapshot && seen->records.empty());  // the snapshot comes first, once
    seen->snapshot = true;
    seen->snapshot_payload.assign(payload);
    return taba::Status::Ok();
  };
  v.on_record = [seen](std::string_view payload) {
    seen->records.emplace_back(payload);
    return taba::Status::Ok();
  };
  return v;
}

// Opens and closes a bare log over the directory.
bool recover(Seen* seen) {
  taba::store::WalOptions options;
  options.dir = env().dir;
  auto wal = taba::store::WriteAheadLog::open(&env().loop, options, recorder(seen));
  bool ok = wal.ok();
  if (ok) wal.value()->close();
  uv_run(&env().loop, UV_RUN_DEFAULT);  // frees the log's async handle
  return ok;
}

void check_bare_log(const Files& files) {
  Expected want = model(files);
  Seen seen;
  bool ok = recover(&seen);
  check(ok == want.ok);
  // Whatever was handed over (also before a failure) is what the files hold.
  check(seen.snapshot == want.has_snapshot || !ok);
  if (seen.snapshot) check(seen.snapshot_payload == want.snapshot);
  check(seen.records.size() <= want.records.size());
  for (size_t i = 0; i < seen.records.size(); ++i) check(seen.records[i] == want.records[i]);
  if (!ok) return;
  check(seen.records.size() == want.records.size());
  Seen again;
  check(recover(&again));
  check(again.snapshot == seen.snapshot && again.snapshot_payload == seen.snapshot_payload);
  check(again.records == seen.records);
}

// A store's names, clients and aggregates, rendered (as of a fixed time).
std::string describe(const taba::store::EmbeddedStore& store) {
  std::string out;
  for (const std::string& c : store.clients()) out += c + "\n";
  for (const taba::store::NameEntry* e : store.names()) {
    out += e->name + " " + e->handler->type_name + " " + std::to_string(e->states.size()) + " ";
    taba_output sink = taba::plugin::string_output(&out);
    e->handler->table->render(e->aggregate.get(), TABA_FORMAT_JSON, 1.7e9, &sink);
    out += "\n";
  }
  return out;
}

// Opens a store over the directory; on success describes it, then closes it
// (which writes a snapshot when recovery replayed anything).
bool open_store(std::string* description) {
  taba::store::StoreOptions options;
  options.dir = env().dir;
  taba::store::EmbeddedStore store(&env().loop, &env().plugins, options);
  bool ok = store.open().ok();
  if (ok) {
    *description = describe(store);
    bool closed = false;
    store.close([&closed] { closed = true; });
    uv_run(&env().loop, UV_RUN_DEFAULT);
    check(closed);
  }
  return ok;
}

void check_store() {
  std::string first;
  if (!open_store(&first)) {
    uv_run(&env().loop, UV_RUN_DEFAULT);
    return;
  }
  std::string second;
  check(open_store(&second));
  check(first == second);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Files files = parse_input(data, size);
  write_files(files);
  if (data[0] & 4) {
    check_store();
  } else {
    check_bare_log(files);
  }
  return 0;
}
