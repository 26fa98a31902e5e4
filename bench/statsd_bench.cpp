// statsd_bench: offers StatsD lines over UDP at a fixed rate and reports how
// many the receiver took, and the receiver's CPU time per million lines.
//
// It works against any StatsD server on loopback: tabad's client-proxy
// (received lines are read from its /metrics) or another daemon (then pass
// --received-cmd, a shell command that prints the receiver's count).
//
//   statsd_bench --target 127.0.0.1:8125 --rate 1000000 --duration 5
//       --metrics http://127.0.0.1:8280/metrics --pid PID
//
// --pid names the receiver: one pid or a comma-separated list (a chain of
// processes, e.g. client-proxy, agent and fe). Its CPU time is that of each
// listed process and all its descendants (utime + stime, plus cutime +
// cstime for children already reaped), reported in all and per listed pid.
// It also reports how long the receiver's threads were runnable but waiting
// for a CPU (/proc/PID/task/*/schedstat): when that is large and lines were
// lost, the receiver was starved by other processes on its CPU rather than
// too slow itself.
//
// --burst N sends N lines (rounded up to whole datagrams) as fast as it can
// instead of pacing them, then waits --settle seconds and counts: what a
// receiver keeps of a burst, with the receive buffer it has.
//
// --check-name NAME makes the last line of every datagram "NAME:1|c", so a
// receiver's count of NAME is the number of datagrams it parsed: a count
// at the aggregate level for daemons without a received-lines counter, and
// a way to check that a chain delivered what its first hop received.
// --mix plain sends the same kinds of lines without DogStatsD tags and with
// timers in place of histograms, for daemons that parse neither.
//
// --in-process N skips the network: it feeds N lines of the same datagrams
// straight into the client-proxy's StatsD buffer (roles::StatsdBuffer) on
// this thread, taking what it holds every 200,000 events as the proxy's
// flush would (--format delta: folded by the plugins of --plugins into a
// delta batch, the proxy's default; v1: a v1 body), and reports the CPU
// time of this thread per line (parse, name lookup, record, and the take's
// fold and serialize or text), and the takes alone (per take, and per line).
//
// Lines are pre-built (counters with and without sample rates, timers,
// histograms, gauges, sets, DogStatsD tags) and packed into datagrams of
// --lines-per-datagram lines, sent with sendmmsg in paced batches from one
// thread pinned to --bench-cpu.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench_options.h"
#include "bench_support.h"
#include "http/client.h"
#include "http/url.h"
#include "plugin/registry.h"
#include "protocol/delta_batch.h"
#include "roles/client_proxy.h"

namespace {

using taba::bench::process_tree;
using taba::bench::process_tree_cpu_seconds;
using Clock = std::chrono::steady_clock;

// Seconds the threads of a process spent runnable but waiting for a CPU
// (the second field of /proc/PID/task/TID/schedstat, in nanoseconds).
std::optional<double> process_wait_seconds(long pid) {
  std::error_code ec;
  std::filesystem::directory_iterator it(fmt::format("/proc/{}/task", pid), ec);
  if (ec) return std::nullopt;
  double ns = 0;
  for (const auto& task : it) {
    std::ifstream in(task.path() / "schedstat");
    double run = 0, wait = 0;
    if (in >> run >> wait) ns += wait;
  }
  return ns / 1e9;
}

// The receiver's processes: the pids of --pid ("123" or "123,456,789").
std::optional<std::vector<long>> parse_pids(const std::string& text) {
  std::vector<long> pids;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    size_t comma = text.find(',', pos);
    std::string one = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    long pid = std::strtol(one.c_str(), &end, 10);
    if (one.empty() || *end != '\0' || pid < 0) return std::nullopt;
    if (pid > 0) pids.push_back(pid);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return pids;
}

// CPU seconds of each receiver process with its descendants, and how long
// their threads waited for a CPU; nullopt entries for processes gone.
struct ReceiverSample {
  std::vector<std::optional<double>> cpu;
  std::optional<double> wait;
};

ReceiverSample sample_receiver(const std::vector<long>& pids) {
  ReceiverSample r;
  double wait = 0;
  bool any_wait = false;
  for (long pid : pids) {
    r.cpu.push_back(process_tree_cpu_seconds(pid));
    for (long p : process_tree(pid)) {
      if (auto w = process_wait_seconds(p)) {
        wait += *w;
        any_wait = true;
      }
    }
  }
  if (any_wait) r.wait = wait;
  return r;
}

// The value of a counter (sum over its label sets) in Prometheus text.
std::optional<double> metric_value(const std::string& text, const std::string& name) {
  double sum = 0;
  bool found = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.rfind(name, 0) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    size_t sp = line.rfind(' ');
    sum += std::stod(line.substr(sp + 1));
    found = true;
  }
  if (!found) return std::nullopt;
  return sum;
}

std::optional<double> received_lines(const std::string& metrics_url, const std::string& cmd) {
  if (!cmd.empty()) {
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return std::nullopt;
    char buf[128] = {0};
    bool ok = std::fgets(buf, sizeof buf, p) != nullptr;
    pclose(p);
    if (!ok) return std::nullopt;
    return std::stod(buf);
  }
  auto r = taba::http::fetch("GET", metrics_url, {}, "", 5000);
  if (!r.ok() || r->status != 200) return std::nullopt;
  auto good = metric_value(r->body, "taba_proxy_lines_total");
  auto bad = metric_value(r->body, "taba_proxy_bad_lines_total");
  if (!good) return std::nullopt;
  return *good + bad.value_or(0);
}

// One line per name, cycling through the kinds: counter, sampled counter,
// timer (with DogStatsD tags unless plain), histogram (a second untagged
// timer when plain: not every daemon knows "h"), gauge, set.
std::vector<std::string> build_lines(int names, bool plain) {
  std::vector<std::string> lines;
  for (int i = 0; i < names; ++i) {
    switch (i % 6) {
      case 0: lines.push_back(fmt::format("bench.requests.{}:1|c", i)); break;
      case 1: lines.push_back(fmt::format("bench.sampled.{}:3|c|@0.5", i)); break;
      case 2:
        lines.push_back(plain ? fmt::format("bench.latency.{}:{}|ms", i, 5 + i % 90)
                              : fmt::format("bench.latency.{}:{}|ms|#env:prod,region:us", i, 5 + i % 90));
        break;
      case 3:
        lines.push_back(plain ? fmt::format("bench.hist.{}:{}|ms", i, i % 1000) : fmt::format("bench.hist.{}:{}|h", i, i % 1000));
        break;
      case 4: lines.push_back(fmt::format("bench.queue.{}:{}|g", i, i % 50)); break;
      default: lines.push_back(fmt::format("bench.users.{}:user{}|s", i, i % 300)); break;
    }
  }
  return lines;
}

// The lines packed per_datagram to a datagram (each line ends in '\n'),
// cycling through them so that every datagram is full. With a check line,
// it is the last line of every datagram, after per_datagram - 1 others.
std::vector<std::string> build_datagrams(const std::vector<std::string>& lines, int per_datagram,
                                         const std::string& check_line = "") {
  const size_t others = static_cast<size_t>(per_datagram) - (check_line.empty() ? 0 : 1);
  std::vector<std::string> datagrams;
  for (size_t i = 0; i < lines.size(); i += std::max<size_t>(others, 1)) {
    std::string d;
    for (size_t j = i; j < i + others; ++j) {
      d += lines[j % lines.size()];
      d += '\n';
    }
    if (!check_line.empty()) {
      d += check_line;
      d += '\n';
    }
    datagrams.push_back(std::move(d));
  }
  return datagrams;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("statsd_bench", "Offers StatsD lines over UDP at a fixed rate; reports what was received.");
  options.add_options()("target", "host:port of the StatsD server", cxxopts::value<std::string>()->default_value("127.0.0.1:8125"))(
      "rate", "lines per second offered", cxxopts::value<double>()->default_value("100000"))(
      "duration", "seconds of sending", cxxopts::value<double>()->default_value("5"))(
      "burst", "send this many lines as fast as possible instead of --rate for --duration",
      cxxopts::value<long>()->default_value("0"))(
      "lines-per-datagram", "StatsD lines per datagram", cxxopts::value<int>()->default_value("20"))(
      "names", "distinct metric names", cxxopts::value<int>()->default_value("1000"))(
      "mix", "dogstatsd (tagged timers, histograms) or plain (neither)", cxxopts::value<std::string>()->default_value("dogstatsd"))(
      "check-name", "make every datagram's last line NAME:1|c", cxxopts::value<std::string>()->default_value(""))(
      "metrics", "the client-proxy's /metrics URL (received lines)", cxxopts::value<std::string>()->default_value(""))(
      "received-cmd", "shell command printing the receiver's received-line count (other daemons)",
      cxxopts::value<std::string>()->default_value(""))(
      "pid", "receiver process(es) whose CPU time is measured, with descendants: PID or PID,PID,...",
      cxxopts::value<std::string>()->default_value(""))(
      "settle", "seconds to wait after sending before counting", cxxopts::value<double>()->default_value("1"))(
      "bench-cpu", "CPU to pin the sender to (-1: none)", cxxopts::value<int>()->default_value("1"))(
      "in-process", "no network: feed this many lines into the proxy's StatsD buffer and report ns per line",
      cxxopts::value<long>()->default_value("0"))(
      "format", "--in-process: what a flush makes: delta (a delta batch, folded by the plugins) or v1 (a v1 body)",
      cxxopts::value<std::string>()->default_value("delta"))(
      "plugins", "--in-process --format delta: the plugins directory",
      cxxopts::value<std::string>()->default_value(TABA_BENCH_PLUGIN_DIR))(
      "h,help", "show this help");
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "statsd_bench: " << e.what() << "\n";
    return 2;
  }
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  std::string target = args["target"].as<std::string>();
  double rate = args["rate"].as<double>();
  double duration = args["duration"].as<double>();
  long burst = args["burst"].as<long>();
  int per_datagram = args["lines-per-datagram"].as<int>();
  std::string metrics = args["metrics"].as<std::string>();
  std::string cmd = args["received-cmd"].as<std::string>();
  std::string mix = args["mix"].as<std::string>();
  std::string check_name = args["check-name"].as<std::string>();
  int cpu = args["bench-cpu"].as<int>();
  if (rate <= 0 || duration <= 0 || per_datagram <= 0 || burst < 0) {
    std::cerr << "statsd_bench: rate, duration and lines-per-datagram must be positive, burst not negative\n";
    return 2;
  }
  if (mix != "dogstatsd" && mix != "plain") {
    std::cerr << "statsd_bench: --mix is dogstatsd or plain, not '" << mix << "'\n";
    return 2;
  }
  if (!check_name.empty() && (per_datagram < 2 || check_name.find_first_of(":|\n@#") != std::string::npos)) {
    std::cerr << "statsd_bench: --check-name needs 2 or more lines per datagram and a name without : | @ # or newline\n";
    return 2;
  }
  std::optional<std::vector<long>> pids = parse_pids(args["pid"].as<std::string>());
  if (!pids) {
    std::cerr << "statsd_bench: --pid is a pid or a comma-separated list of pids\n";
    return 2;
  }
  const bool plain = mix == "plain";
  const std::string check_line = check_name.empty() ? "" : check_name + ":1|c";
  long in_process = args["in-process"].as<long>();
  if (in_process > 0) {
    const std::string format = args["format"].as<std::string>();
    if (format != "delta" && format != "v1") {
      std::cerr << "statsd_bench: --format is delta or v1\n";
      return 2;
    }
    const bool delta = format == "delta";
    taba::plugin::Registry registry;
    if (delta && (!registry.load_dir(args["plugins"].as<std::string>()) || registry.handlers().empty())) {
      std::cerr << "statsd_bench: no plugins in " << args["plugins"].as<std::string>() << "\n";
      return 1;
    }
    std::vector<std::string> datagrams = build_datagrams(build_lines(args["names"].as<int>(), plain), per_datagram, check_line);
    taba::roles::StatsdBuffer buffer(1'000'000);
    taba::roles::ProxyStats stats;
    taba::protocol::DeltaWriter writer;
    std::string body;
    size_t bodies = 0, body_bytes = 0;
    double now = 1763830000.0;
    // CPU time of this thread: the machine may be shared.
    auto thread_cpu = [] {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    };
    double take_secs = 0;
    auto take = [&] {
      double t = thread_cpu();
      if (delta) {
        writer.reset(now);
        buffer.take_deltas(registry, {"bench-host", now, 60}, &writer, &stats);
        body = taba::protocol::wrap_delta_body(writer.finish());
      } else {
        body.clear();
        buffer.take_body("bench-host", &body);
      }
      take_secs += thread_cpu() - t;
      ++bodies;
      body_bytes += body.size();
    };
    double t0 = thread_cpu();
    for (long sent = 0; sent < in_process; sent += per_datagram) {
      buffer.add_datagram(datagrams[static_cast<size_t>(sent / per_datagram) % datagrams.size()], now, &stats);
      now += 0.00002;
      if (buffer.events() >= 200'000) take();
    }
    if (buffer.events() > 0) take();
    double secs = thread_cpu() - t0;
    std::cout << fmt::format(
        "statsd_bench: in_process format={} lines={} bad={} dropped={} cpu_s={:.3f} ns_per_line={:.1f} "
        "lines_per_s={:.0f} takes={} take_ms={:.2f} take_ns_per_line={:.1f} bytes_per_event={:.1f}\n",
        format, stats.lines, stats.bad_lines, stats.events_dropped_fold, secs,
        secs * 1e9 / static_cast<double>(stats.lines), static_cast<double>(stats.lines) / secs, bodies,
        bodies ? take_secs * 1e3 / static_cast<double>(bodies) : 0.0,
        take_secs * 1e9 / static_cast<double>(stats.lines),
        stats.lines ? static_cast<double>(body_bytes) / static_cast<double>(stats.lines) : 0.0);
    return 0;
  }
  if (metrics.empty() && cmd.empty()) {
    std::cerr << "statsd_bench: give --metrics or --received-cmd\n";
    return 2;
  }
  if (cpu >= 0) taba::bench::pin_to_cpu(cpu);
  std::string host;
  int port = 0;
  if (!taba::http::split_host_port(target, &host, &port)) {
    std::cerr << "statsd_bench: --target is not host:port\n";
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int sndbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

  std::vector<std::string> datagrams = build_datagrams(build_lines(args["names"].as<int>(), plain), per_datagram, check_line);

  auto before = received_lines(metrics, cmd);
  if (!before) {
    std::cerr << "statsd_bench: cannot read the receiver's count\n";
    return 1;
  }
  ReceiverSample r0 = sample_receiver(*pids);
  constexpr int kBatch = 32;
  std::vector<mmsghdr> msgs(kBatch);
  std::vector<iovec> iov(kBatch);
  uint64_t sent_lines = 0, send_errors = 0;
  size_t next = 0;
  Clock::time_point t0 = Clock::now();
  double lines_per_datagram = per_datagram;
  const uint64_t burst_lines = static_cast<uint64_t>(burst);
  for (;;) {
    int n = 0;
    if (burst > 0) {
      if (sent_lines >= burst_lines) break;
      uint64_t left = (burst_lines - sent_lines + static_cast<uint64_t>(per_datagram) - 1) / static_cast<uint64_t>(per_datagram);
      n = static_cast<int>(std::min<uint64_t>(left, kBatch));
    } else {
      double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      if (elapsed >= duration) break;
      double due = rate * elapsed - static_cast<double>(sent_lines);
      if (due < lines_per_datagram) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        continue;
      }
      n = static_cast<int>(std::min<double>(due / lines_per_datagram, kBatch));
    }
    for (int i = 0; i < n; ++i) {
      const std::string& d = datagrams[next++ % datagrams.size()];
      iov[static_cast<size_t>(i)] = {const_cast<char*>(d.data()), d.size()};
      msgs[static_cast<size_t>(i)] = {};
      msgs[static_cast<size_t>(i)].msg_hdr.msg_name = &addr;
      msgs[static_cast<size_t>(i)].msg_hdr.msg_namelen = sizeof addr;
      msgs[static_cast<size_t>(i)].msg_hdr.msg_iov = &iov[static_cast<size_t>(i)];
      msgs[static_cast<size_t>(i)].msg_hdr.msg_iovlen = 1;
    }
    int m = sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0);
    if (m < 0) {
      ++send_errors;
      m = 0;
    }
    // A datagram not sent is offered again by the next call.
    next -= static_cast<size_t>(n - m);
    sent_lines += static_cast<uint64_t>(m) * static_cast<uint64_t>(per_datagram);
  }
  double send_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::duration<double>(args["settle"].as<double>()));
  auto after = received_lines(metrics, cmd);
  ReceiverSample r1 = sample_receiver(*pids);
  if (!after) {
    std::cerr << "statsd_bench: cannot read the receiver's count after the run\n";
    return 1;
  }
  double received = *after - *before;
  double loss = sent_lines ? 100.0 * (1.0 - received / static_cast<double>(sent_lines)) : 0;
  std::string cpu_text = "n/a", per_m = "n/a", per_cpu = "n/a", by_pid;
  bool cpu_known = !pids->empty();
  double c = 0;
  for (size_t i = 0; i < pids->size(); ++i) {
    if (!r0.cpu[i] || !r1.cpu[i]) {
      cpu_known = false;
      by_pid += fmt::format("{}{}:n/a", by_pid.empty() ? "" : ",", (*pids)[i]);
      continue;
    }
    c += *r1.cpu[i] - *r0.cpu[i];
    by_pid += fmt::format("{}{}:{:.2f}", by_pid.empty() ? "" : ",", (*pids)[i], *r1.cpu[i] - *r0.cpu[i]);
  }
  if (cpu_known) {
    cpu_text = fmt::format("{:.2f}", c);
    if (received > 0) {
      per_m = fmt::format("{:.3f}", c / (received / 1e6));
      per_cpu = fmt::format("{:.0f}", c > 0 ? received / c : 0);
    }
  }
  std::string wait_text = r0.wait && r1.wait ? fmt::format("{:.2f}", *r1.wait - *r0.wait) : "n/a";
  std::cout << fmt::format("{:>12} {:>10.0f} {:>12} {:>12.0f} {:>8.2f} {:>9} {:>14} {:>14} {:>8}\n",
                           burst > 0 ? "burst" : "offered/s", burst > 0 ? 0.0 : rate, sent_lines, received, loss, cpu_text,
                           per_m, per_cpu, wait_text);
  std::cout << fmt::format(
      "statsd_bench: offered_rate={:.0f} sent_lines={} send_secs={:.2f} received_lines={:.0f} loss_pct={:.3f} "
      "receiver_cpu_s={} cpu_s_per_million_lines={} lines_per_cpu_s={} send_errors={} receiver_wait_s={} "
      "sent_datagrams={} cpu_by_pid={}\n",
      burst > 0 ? 0.0 : rate, sent_lines, send_secs, received, loss, cpu_text, per_m, per_cpu, send_errors, wait_text,
      sent_lines / static_cast<uint64_t>(per_datagram), by_pid.empty() ? "n/a" : by_pid);
  return 0;
}
