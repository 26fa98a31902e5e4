// For the tests of the client-proxy's StatsD buffer (src/roles/statsd_buffer.h):
// the proxy's StatsD path as it was before the buffer was rewritten for
// speed (the reference its v1 bodies must equal), and the randomized
// datagrams both its tests feed (client_proxy_buffer_test.cpp compares v1
// bodies, client_proxy_delta_test.cpp delta states).
#pragma once

#include <catch2/catch.hpp>
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

// Feeds the same datagrams to both, 0.7 ms apart, calling take(now) after
// each group (now: just after its last datagram), then compares the
// counters both keep.
template <class Take>
void feed_both(const std::vector<std::vector<std::string>>& flushes, roles::StatsdBuffer* buffer, Reference* ref,
               ProxyStats* got, Take&& take) {
  ProxyStats want;
  double now = 1763830000.1234;
  for (const auto& group : flushes) {
    for (const std::string& d : group) {
      buffer->add_datagram(d, now, got);
      ref->add_datagram(d, now, &want);
      now += 0.0007;
    }
    take(now + 0.05);
  }
  CHECK(got->datagrams == want.datagrams);
  CHECK(got->lines == want.lines);
  CHECK(got->bad_lines == want.bad_lines);
  CHECK(got->type_conflicts == want.type_conflicts);
  CHECK(got->events_buffered == want.events_buffered);
  CHECK(got->events_dropped_full == want.events_dropped_full);
}

// Flushes (a take after each group) of every StatsD type: sample rates,
// tags in either order, multi-value lines, gauge deltas, sets, bad lines,
// a type conflict, an empty flush.
inline std::vector<std::vector<std::string>> every_type_flushes() {
  return {
      {"hits:1|c|@0.5\nhits:3|c\nlat:10|ms|#region:us,env:prod\ngarbage\nresp:100|h\ntemp:42|g\nusers:alice|s\n",
       "hits:2|c|@0.25\r\nlat:12:15.5:3|ms|#env:prod,region:us\n\nresp:300|d\ntemp:+3|g\nusers:bob|s\nusers:alice|s\n"
       "hits:1|x\n:1|c\nhits:nan|c",
       "temp:-5|g\nhits:5|ms\n_e{5,4}:title|text\nmulti:1:2:3|c|@0.5\n",
       "hits:4|c\nunix.only:7|c|#b,a\nq:5:+1:-2|g\n"},
      {"hits:1|c\n", "q:+1|g\nq:-0.5|g\ntemp:0|g\ntemp:-0|g\n"},
      {},
  };
}

// Datagrams of numbers in every spelling (as sent when that is fmt's text,
// else formatted) for every numeric type, and gauge deltas on top of a
// value. `overflowing`: also the largest double at sample rates below 1,
// which divide it to infinity.
inline std::vector<std::string> number_text_lines(bool overflowing) {
  std::vector<std::string> group;
  const char* values[] = {"0",      "-0",        "+0",         "7",         "+4",          "-4",
                          "007",    "1.",        ".5",         "-.5",       "0.5",         "0.50",
                          "1e3",    "1E3",       "1.5e-7",     "0.0001",    "0.00001",     "0.00012",
                          "-0.001", "12.5",      "100",        "1000.125",  "0.1",         "0.3",
                          "123456789012345", "1234567890123456", "12345678901234567890", "1e15", "1e16",
                          "999999999999999", "0.123456789012345", "0.1234567890123456", "3.14159265358979323846",
                          "1e-300", "4.9e-324",  "1.7976931348623157e308", "00.5", "0.0", "10.10"};
  int i = 0;
  for (const char* v : values) {
    for (const char* type : {"c", "c|@0.5", "c|@0.1", "ms", "h", "d", "g"}) {
      if (!overflowing && std::string_view(v) == "1.7976931348623157e308" && type[1] == '|') continue;
      group.push_back(fmt::format("n{}.{}:{}|{}\n", i, type[0], v, type));
    }
    // Deltas on top of a value.
    group.push_back(fmt::format("g{}:5|g\ng{}:+{}|g\ng{}:-{}|g\n", i, i, v[0] == '+' || v[0] == '-' ? v + 1 : v, i,
                                v[0] == '+' || v[0] == '-' ? v + 1 : v));
    ++i;
  }
  return group;
}

// Set members that need escaping (quotes, backslashes, control bytes),
// colons, UTF-8, spaces, JSON-looking text.
inline constexpr const char* kSetMemberLines =
    "u:alice|s\nu:a\"b|s\nu:back\\slash|s\nu:tab\there|s\nu:ctl\x01x|s\nu:a:b:c|s\nu:caf\xc3\xa9|s\n"
    "u:  spaced |s\nu:{\"json\":1}|s\n";

// A buffer of 3 events: values dropped, gauges kept right.
inline std::vector<std::vector<std::string>> full_buffer_flushes() {
  return {{"a:1|c\nb:2|g\nc:3|ms\nd:4:5:6|c\nb:+1|g\ne:x|s\nb:+2|g\n"}, {"b:+1|g\na:1|c\nf:1|c\n"}};
}

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
