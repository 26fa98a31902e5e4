#include "agent/dead_letters.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "core/file_io.h"
#include "core/log.h"

namespace taba::agent {

void DeadLetters::scan() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  std::vector<std::tuple<std::filesystem::file_time_type, std::string, uint64_t>> files;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    if (!e.is_regular_file(ec)) continue;
    files.emplace_back(e.last_write_time(ec), e.path().string(), static_cast<uint64_t>(e.file_size(ec)));
  }
  std::sort(files.begin(), files.end());  // oldest first, for the cap
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [when, path, size] : files) {
    stats_.bytes += size;
    files_.emplace_back(std::move(path), size);
  }
}

bool DeadLetters::write(const std::string& id, const std::string& body, uint64_t events, const std::string& reason,
                        const std::string& suffix) {
  // Named by the (derived) batch id alone, so that settling the same post
  // again (after a retry or a restart in the middle of a split) finds its
  // dead letter already written instead of writing and counting another.
  std::string stem = fmt::format("{}/dl-{}", dir_, id);
  struct stat existing;
  if (::stat((stem + ".reason").c_str(), &existing) == 0) {
    log::info("agent: dead letter {}{} was written before; not again", stem, suffix);
    return true;
  }
  // Durable before the segment holding the same events is deleted.
  auto write_file = [](const std::string& path, const std::string& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
    ok = std::fflush(f) == 0 && ok;
    ok = ok && fileio::sync_data(fileno(f)) == 0;
    ok = std::fclose(f) == 0 && ok;
    return ok;
  };
  bool ok = write_file(stem + suffix, body) && write_file(stem + ".reason", reason);
  if (!ok) {
    int err = errno;
    ::unlink((stem + suffix).c_str());
    ::unlink((stem + ".reason").c_str());
    log::error("agent: cannot write the dead letter {}{} ({}): the batch stays in the spool and is retried",
               stem, suffix, fileio::errno_text(err));
    return false;
  }
  fileio::sync_dir(dir_);
  log::error("agent: {} -> dead letter {}{}", reason.substr(0, std::min(reason.find('\n'), size_t{300})), stem,
             suffix);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.letters;
  stats_.events += events;
  for (const std::string& p : {stem + suffix, stem + ".reason"}) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) {
      files_.emplace_back(p, static_cast<uint64_t>(st.st_size));
      stats_.bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  while (stats_.bytes > max_bytes_ && !files_.empty()) {
    auto [path, size] = files_.front();
    files_.pop_front();
    ::unlink(path.c_str());
    stats_.bytes -= size;
    if (path.ends_with(".v1") || path.ends_with(".delta")) ++stats_.discarded;  // one per letter: its body
    log::warn("agent: dead letters over {} bytes: deleted the oldest, {}", max_bytes_, path);
  }
  return true;
}

DeadLetters::Stats DeadLetters::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::vector<size_t> refused_blocks(std::string_view refusals, const std::vector<protocol::V1Encoder::BlockLines>& lines) {
  std::vector<size_t> out;
  while (!refusals.empty()) {
    std::string_view one = refusals.substr(0, refusals.find('\n'));
    refusals.remove_prefix(std::min(refusals.size(), one.size() + 1));
    if (one.rfind("line ", 0) != 0) continue;
    uint64_t line = 0;
    for (size_t k = 5; k < one.size() && one[k] >= '0' && one[k] <= '9'; ++k) {
      line = line * 10 + static_cast<uint64_t>(one[k] - '0');
    }
    for (size_t k = 0; k < lines.size(); ++k) {
      if (line >= lines[k].name_line && line <= lines[k].name_line + lines[k].events) {
        if (out.empty() || out.back() != k) out.push_back(k);
        break;
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace taba::agent
