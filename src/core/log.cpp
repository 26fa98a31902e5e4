#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <sys/time.h>

namespace taba::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;
const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

void set_level(Level l) { g_level.store(static_cast<int>(l)); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

bool parse_level(std::string_view text, Level* out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == level_spelling(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

std::string_view level_spelling(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "?";
}

void write(Level l, std::string_view message) {
  if (static_cast<int>(l) < g_level.load(std::memory_order_relaxed)) return;
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char ts[32];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &t);
  std::lock_guard<std::mutex> lock(g_mu);
  fprintf(stderr, "%s.%03dZ %-5s %.*s\n", ts, static_cast<int>(tv.tv_usec / 1000), level_name(l),
          static_cast<int>(message.size()), message.data());
}

}  // namespace taba::log
