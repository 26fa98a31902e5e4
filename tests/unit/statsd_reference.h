// For the tests of the client-proxy's StatsD buffer (src/roles/statsd_buffer.h):
// the proxy's StatsD path as it was before the buffer was rewritten for
// speed (the reference its v1 bodies must equal), and the randomized
// datagrams both its tests feed (client_proxy_buffer_test.cpp compares v1
// bodies, client_proxy_delta_test.cpp delta states).
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json_escape.h"
#include "core/string_map.h"
#include "protocol/statsd.h"
#include "roles/statsd_buffer.h"

namespace taba::test {

namespace statsd = protocol::statsd;
using roles::ProxyStats;

// The proxy's StatsD path as it was before the buffer was rewritten for
// speed: one map_name, one hash lookup and fmt formatting per value.
class Reference {
 public:
  explicit Reference(uint64_t max_events) : max_events_(max_events) {}

  void add_datagram(std::string_view datagram, double now, ProxyStats* stats) {
    ++stats->datagrams;
    double ts = std::floor(now * 1000) / 1000;
    statsd::parse_datagram(
        datagram,
        [&](const statsd::Line& line) {
          std::string name;
          if (!statsd::map_name(line, &name)) {
            ++stats->bad_lines;
            return;
          }
          std::string_view type = statsd::taba_type(line.kind);
          auto [it, inserted] = states_.try_emplace(name);
          State& st = it->second;
          if (inserted) {
            st.type = type;
          } else if (st.type != type) {
            ++stats->bad_lines;
            ++stats->type_conflicts;
            return;
          }
          ++stats->lines;
          double event_ts = line.timestamp > 0 ? static_cast<double>(line.timestamp) : ts;
          std::string payload;
          switch (line.kind) {
            case statsd::Kind::kCounter:
              payload = fmt::format("{}", line.number / line.sample_rate);
              break;
            case statsd::Kind::kTimer:
            case statsd::Kind::kHistogram:
            case statsd::Kind::kDistribution:
              payload = fmt::format("{}", line.number);
              break;
            case statsd::Kind::kGauge:
            case statsd::Kind::kGaugeDelta: {
              if (events_ >= max_events_) {
                ++stats->events_dropped_full;
                return;
              }
              double value = line.number;
              if (line.kind == statsd::Kind::kGaugeDelta) value += st.gauge;
              st.gauge = value;
              payload = fmt::format("{}", value);
              break;
            }
            case statsd::Kind::kSet:
              payload.push_back('"');
              taba::append_json_escaped(&payload, line.value, taba::JsonControls::kHex);
              payload.push_back('"');
              break;
          }
          if (events_ >= max_events_) {
            ++stats->events_dropped_full;
            return;
          }
          if (st.generation != generation_) {
            st.generation = generation_;
            st.slot = blocks_.size();
            blocks_.push_back({name, ""});
          }
          std::string& out = blocks_[st.slot].second;
          out += fmt::format("[\"{}\",{},\"", type, event_ts);
          taba::append_json_escaped(&out, payload, taba::JsonControls::kHex);
          out += "\"]\n";
          ++events_;
          ++stats->events_buffered;
        },
        [&](std::string_view, const char*) { ++stats->bad_lines; });
  }

  bool take_body(std::string_view client_id, std::string* out) {
    if (blocks_.empty()) return false;
    *out += "1\n\n" + std::string(client_id) + "\n\n";
    for (const auto& [name, lines] : blocks_) *out += name + "\n" + lines + "\n";
    *out += "\n";
    blocks_.clear();
    ++generation_;
    events_ = 0;
    return true;
  }

 private:
  struct State {
    std::string_view type;
    double gauge = 0;
    uint64_t generation = 0;
    size_t slot = 0;
  };
  uint64_t max_events_;
  uint64_t events_ = 0;
  uint64_t generation_ = 1;
  StringMap<State> states_;
  std::vector<std::pair<std::string, std::string>> blocks_;
};

// Datagrams of flushes (a take after each group): 5 flushes of 200
// datagrams of 20 lines over 3,000 names, every StatsD type, tags in
// either order, gauge deltas, sets, names reused with another type.
inline std::vector<std::vector<std::string>> random_names_flushes(uint32_t seed = 42) {
  std::mt19937 rng(seed);
  std::vector<std::vector<std::string>> flushes;
  for (int f = 0; f < 5; ++f) {
    std::vector<std::string> group;
    for (int d = 0; d < 200; ++d) {
      std::string datagram;
      for (int l = 0; l < 20; ++l) {
        int n = static_cast<int>(rng() % 3000);
        switch (n % 7) {
          case 0: datagram += fmt::format("m.{}:{}|c\n", n, rng() % 100); break;
          case 1: datagram += fmt::format("m.{}:{}|c|@0.{}\n", n, rng() % 100, 1 + rng() % 9); break;
          case 2:
            datagram += rng() % 2 ? fmt::format("m.{}:{}.{}|ms|#env:prod,region:r{}\n", n, rng() % 100, rng() % 100, n % 5)
                                  : fmt::format("m.{}:{}.{}|ms|#region:r{},env:prod\n", n, rng() % 100, rng() % 100, n % 5);
            break;
          case 3: datagram += fmt::format("m.{}:{}|g\n", n, rng() % 1000); break;
          case 4: datagram += fmt::format("m.{}:{}{}|g\n", n, rng() % 2 ? "+" : "-", rng() % 10); break;
          case 5: datagram += fmt::format("m.{}:user{}|s\n", n, rng() % 50); break;
          default: datagram += fmt::format("m.{}:{}|{}\n", n % 50, rng() % 10, rng() % 2 ? "c" : "h"); break;
        }
      }
      group.push_back(datagram);
    }
    flushes.push_back(group);
  }
  return flushes;
}

// Datagrams of every length around the 64-byte blocks the splitter works
// in, from bytes that make lines good, bad and odd: lines with no ':' or
// no '|', '\r' in places, empty lines, no final newline, long names and
// tags that cross block boundaries, spellings that differ in one byte.
inline std::vector<std::vector<std::string>> random_bytes_flushes(uint32_t seed = 7) {
  std::mt19937 rng(seed);
  const std::string alphabet = "ab.:|\n\r#,:1.5@cgsmhd-+T9 ";
  std::vector<std::vector<std::string>> flushes;
  for (int f = 0; f < 4; ++f) {
    std::vector<std::string> group;
    for (int d = 0; d < 400; ++d) {
      std::string datagram;
      size_t len = rng() % 300;
      while (datagram.size() < len) {
        switch (rng() % 4) {
          case 0: datagram += alphabet[rng() % alphabet.size()]; break;
          case 1: datagram += fmt::format("n{}{}:{}|{}", std::string(rng() % 40, 'x'), rng() % 7, rng() % 20, "cgmsh"[rng() % 5]); break;
          case 2: datagram += fmt::format("|#t:{},{}:{}", rng() % 3, std::string(rng() % 30, 'k'), rng() % 2); break;
          default: datagram += rng() % 3 ? "\n" : "\r\n"; break;
        }
      }
      group.push_back(datagram.substr(0, len));
    }
    flushes.push_back(group);
  }
  return flushes;
}

}  // namespace taba::test
