// libFuzzer: StatsD datagrams through parse_datagram and map_name. Every
// view must lie inside the input, every good line must hold the promised
// values, a mapped name must be a valid Taba name, and the order of the
// tags as sent must not change it.
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/validation.h"
#include "protocol/statsd.h"

namespace statsd = taba::protocol::statsd;

namespace {

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

// The tags of `tags` in reverse order.
std::string reversed_tags(std::string_view tags) {
  std::string out;
  while (!tags.empty()) {
    size_t comma = tags.rfind(',');
    std::string_view last = comma == std::string_view::npos ? tags : tags.substr(comma + 1);
    if (!out.empty()) out.push_back(',');
    out.append(last);
    tags = comma == std::string_view::npos ? std::string_view() : tags.substr(0, comma);
  }
  return out;
}

void check_line(const statsd::Line& line, std::string_view input, std::string* name, std::string* other) {
  if (!inside(line.name, input) || !inside(line.value, input) || !inside(line.values, input) ||
      !inside(line.tags, input)) {
    __builtin_trap();
  }
  if (line.name.empty() || line.value.empty()) __builtin_trap();
  if (!std::isfinite(line.number) || !(line.sample_rate > 0 && line.sample_rate <= 1)) __builtin_trap();
  if (line.timestamp < 0) __builtin_trap();
  bool ok = statsd::map_name(line, name);
  if (ok && !taba::check_identifier(*name).empty()) __builtin_trap();

  statsd::Line flipped = line;
  std::string tags = reversed_tags(line.tags);
  flipped.tags = tags;
  if (statsd::map_name(flipped, other) != ok || (ok && *other != *name)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  static std::string name;
  static std::string other;
  statsd::parse_datagram(
      input, [&](const statsd::Line& line) { check_line(line, input, &name, &other); },
      [&](std::string_view line, const char* why) {
        if (!why || line.empty() || !inside(line, input)) __builtin_trap();
      });
  return 0;
}
