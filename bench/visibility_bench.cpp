// visibility_bench: how long an event takes from the client to /tabs.
//
// Records one event under a fresh name, then polls the fe's
// /tabs?name=<that name> every --poll-ms until the event shows, and repeats
// --samples times at random offsets (so the client's and the agent's flush
// timers are sampled at every phase). Two paths:
//   --via client   taba::Client (default options: 1 s flush) -> agent -> fe
//   --via statsd   one StatsD counter line over UDP -> client-proxy -> agent -> fe
// Prints each sample and p50 / p90 / p99 / max in milliseconds.
// bench/visibility_bench.sh starts the processes with default settings.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "taba/client.hpp"
#include "http/client.h"
#include "http/url.h"

namespace {

using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "-h" || std::string(argv[i]) == "--help") {
      std::cout << "visibility_bench --fe http://127.0.0.1:8300 [--via client|statsd] [--agent http://127.0.0.1:8279]\n"
                   "                 [--statsd 127.0.0.1:8125] [--samples 30] [--poll-ms 5] [--timeout-s 10]\n";
      return 0;
    }
  }
  std::string fe = arg(argc, argv, "fe", "http://127.0.0.1:8300");
  std::string via = arg(argc, argv, "via", "client");
  std::string agent = arg(argc, argv, "agent", "http://127.0.0.1:8279");
  std::string statsd = arg(argc, argv, "statsd", "127.0.0.1:8125");
  int samples = std::stoi(arg(argc, argv, "samples", "30"));
  int poll_ms = std::stoi(arg(argc, argv, "poll-ms", "5"));
  double timeout_s = std::stod(arg(argc, argv, "timeout-s", "10"));
  if (via != "client" && via != "statsd") {
    std::cerr << "visibility_bench: --via is client or statsd\n";
    return 2;
  }

  taba::ClientOptions options;
  options.endpoint = agent;
  options.client_id = "visibility-bench";
  taba::Client client(options);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  {
    std::string host;
    int port = 0;
    taba::http::split_host_port(statsd, &host, &port);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  }

  std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int> gap_ms(0, 1000);
  std::string run = fmt::format("{:x}", rng() & 0xffffff);
  std::vector<double> lat;
  int missing = 0;
  for (int i = 0; i < samples; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms(rng)));
    std::string name = fmt::format("visibility.{}.{}", run, i);
    Clock::time_point t0 = Clock::now();
    if (via == "client") {
      client.Counter(name, 1);
    } else {
      std::string line = name + ":1|c";
      sendto(fd, line.data(), line.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }
    std::string url = fmt::format("{}/tabs?name={}", fe, name);
    bool seen = false;
    while (std::chrono::duration<double>(Clock::now() - t0).count() < timeout_s) {
      auto r = taba::http::fetch("GET", url, {{"Accept", "application/json"}}, "", 2000);
      if (r.ok() && r->status == 200 && r->body.find("\"count\"") != std::string::npos) {
        seen = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
    }
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!seen) {
      ++missing;
      std::cout << fmt::format("sample {:3}: not visible after {:.0f} s\n", i, timeout_s);
      continue;
    }
    lat.push_back(ms);
    std::cout << fmt::format("sample {:3}: {:7.1f} ms\n", i, ms);
  }
  client.Stop();
  close(fd);
  if (lat.empty()) {
    std::cout << "visibility_bench: no sample became visible\n";
    return 1;
  }
  std::cout << fmt::format(
      "visibility_bench: via={} samples={} missing={} p50_ms={:.0f} p90_ms={:.0f} p99_ms={:.0f} max_ms={:.0f}\n", via,
      lat.size(), missing, pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100));
  return missing == 0 ? 0 : 1;
}
