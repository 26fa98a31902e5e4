// Levelled, one-line-per-event logging to stderr.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace taba::log {

// The host's log levels. Plugins pass theirs as the integers of
// taba_host::log (include/taba/handler.h), converted in one place
// (plugin/registry.cpp).
enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the minimum level written. Thread-safe.
void set_level(Level level);
Level level();
// Parses "debug" | "info" | "warn" | "error" (the spelling of
// server.log_level and --log-level).
bool parse_level(std::string_view text, Level* out);
// The spelling parse_level reads: "debug", "info", "warn" or "error".
std::string_view level_spelling(Level level);

// Writes one line: "<utc time> <level> <message>". Thread-safe.
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kDebug) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kInfo) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kWarn) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace taba::log
