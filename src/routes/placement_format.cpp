// The text and JSON forms of a placement and its moves (placement_format.h).
#include "routes/placement_format.h"

#include <fmt/format.h>

#include <cmath>

#include "core/byte_size.h"
#include "routes/admin_reply.h"

namespace taba::routes {
namespace {

// Seconds with millisecond digits; a value that is not finite (never
// expected) as 0, so the JSON stays valid.
std::string json_seconds(double v) { return fmt::format("{:.3f}", std::isfinite(v) ? v : 0.0); }

// An error on one line: line ends and tabs become spaces (a store's error
// may quote a multi-line reply).
std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

std::string ranges_text(const std::vector<store::VbucketRange>& ranges) {
  if (ranges.empty()) return "(none)";
  std::string out;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i) out += ", ";
    out += vbucket_range_text(ranges[i]);
  }
  return out;
}

// "shard1 -> shard3, vbuckets 0-340": what a move is, in both kinds of line.
std::string move_what(const store::MoveStatus& m) {
  return fmt::format("{}: {} -> {}, vbuckets {}", m.id, m.from, m.to, vbucket_range_text(m.range));
}

std::string recent_text(const store::MoveStatus& m) {
  std::string out = fmt::format("recent {}, {} names moved, {}, {:.1f} s, {}", move_what(m), m.names_moved,
                                human_bytes(m.bytes_moved), m.elapsed_s, m.phase);
  if (!m.error.empty()) out += fmt::format(" (last error: {})", one_line(m.error));
  return out;
}

}  // namespace

std::string vbucket_range_text(const store::VbucketRange& range) {
  return range.first == range.last ? fmt::format("{}", range.first) : fmt::format("{}-{}", range.first, range.last);
}

std::string move_json(const store::MoveStatus& m) {
  return fmt::format(
      "{{\"id\":{},\"from\":{},\"to\":{},\"first\":{},\"last\":{},\"phase\":{},\"started\":{},\"elapsed_s\":{},"
      "\"names_moved\":{},\"names_left\":{},\"bytes_moved\":{},\"driver\":{},\"driver_alive\":{},\"error\":{}}}",
      json_string(m.id), json_string(m.from), json_string(m.to), m.range.first, m.range.last, json_string(m.phase),
      json_seconds(m.started), json_seconds(m.elapsed_s), m.names_moved, m.names_left, m.bytes_moved,
      json_string(m.driver), m.driver_alive ? "true" : "false", json_string(m.error));
}

std::string placement_json(const store::PlacementStatus& p) {
  std::string out = fmt::format("{{\"supported\":{},\"epoch\":{},\"vbuckets\":{},\"shards\":[",
                                p.supported ? "true" : "false", p.epoch, p.vbuckets);
  for (size_t i = 0; i < p.shards.size(); ++i) {
    const auto& sh = p.shards[i];
    out += fmt::format("{}{{\"shard\":{},\"ranges\":[", i ? "," : "", json_string(sh.shard));
    for (size_t j = 0; j < sh.ranges.size(); ++j) {
      out += fmt::format("{}[{},{}]", j ? "," : "", sh.ranges[j].first, sh.ranges[j].last);
    }
    out += "]}";
  }
  out += "],\"move\":";
  out += p.moving ? move_json(p.move) : "null";
  out += ",\"recent\":[";
  for (size_t i = 0; i < p.recent.size(); ++i) {
    if (i) out += ',';
    out += move_json(p.recent[i]);
  }
  out += "]}";
  return out;
}

std::string move_text(const store::MoveStatus& m) {
  std::string out = fmt::format("move {}, {}, {} names moved, {} left, {}, {:.1f} s, ", move_what(m), m.phase,
                                m.names_moved, m.names_left, human_bytes(m.bytes_moved), m.elapsed_s);
  out += m.driver.empty() ? "no driver" : fmt::format("driver {} ({})", m.driver, m.driver_alive ? "alive" : "gone");
  if (!m.error.empty()) out += fmt::format(", last error: {}", one_line(m.error));
  return out;
}

std::string placement_text(const store::PlacementStatus& p, bool with_recent) {
  if (!p.supported) {
    return "placement: none (the embedded store is one store; re-sharding needs the Redis store)\n";
  }
  std::string out = fmt::format("placement epoch {} ({} vbuckets)\n", p.epoch, p.vbuckets);
  for (const auto& sh : p.shards) out += fmt::format("  {}  {}\n", sh.shard, ranges_text(sh.ranges));
  out += p.moving ? move_text(p.move) + "\n" : "no move in progress\n";
  if (with_recent) {
    for (const auto& m : p.recent) out += recent_text(m) + "\n";
  }
  return out;
}

}  // namespace taba::routes
