// The command line of the benchmarks that start a tabad of their own or
// attach to a running one (ingest_bench, query_bench): the options they
// share (--server, --pid, --tabad, --server-arg first in the help;
// --server-cpu, --bench-cpu, --timeout-ms, --keep-data, --help last), the
// parsing and checks of these, and opening the server they name. It is also
// where the benchmarks (statsd_bench too) include cxxopts, behind the
// pragma GCC 12 needs.
#pragma once

// GCC 12 reports false -Wmaybe-uninitialized inside <regex> (used by
// cxxopts) in optimized sanitizer builds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cxxopts.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_support.h"
#include "http/url.h"

namespace taba::bench {

// What the shared options set; a benchmark's Config derives from it.
struct ServerOptions {
  std::string server_url;  // attach mode when set
  long attach_pid = 0;     // with --server: whose CPU (and memory) to measure (0: not measured)
  std::string tabad_path;
  std::vector<std::string> server_args;
  int server_cpu = 0;
  int bench_cpu = 1;
  int timeout_ms = 0;  // per request (--timeout-ms: each benchmark gives its default)
  bool keep_data = false;
};

// --server, --pid (pid_help: what the pid is for), --tabad (default_tabad:
// the tabad built next to the benchmark) and --server-arg.
inline void add_server_options(cxxopts::Options& options, const std::string& pid_help,
                               const std::string& default_tabad) {
  options.add_options()("server", "attach to a running tabad at this URL instead of starting one",
                        cxxopts::value<std::string>())("pid", pid_help, cxxopts::value<long>())(
      "tabad", "tabad binary to start", cxxopts::value<std::string>()->default_value(default_tabad))(
      "server-arg", "extra argument for the started tabad (repeatable; commas kept)", cxxopts::value<std::string>());
}

// --server-cpu, --bench-cpu, --timeout-ms (default_timeout_ms, as text),
// --keep-data and -h/--help.
inline void add_run_options(cxxopts::Options& options, const std::string& default_timeout_ms) {
  options.add_options()("server-cpu", "CPU to pin a started tabad to (-1: none)",
                        cxxopts::value<int>()->default_value("0"))(
      "bench-cpu", "CPU to pin this benchmark to (-1: none)", cxxopts::value<int>()->default_value("1"))(
      "timeout-ms", "per-request timeout", cxxopts::value<int>()->default_value(default_timeout_ms))(
      "keep-data", "keep a started tabad's data directory")("h,help", "show this help");
}

// Parses the command line of benchmark `who` with `options` (which hold
// add_server_options, the benchmark's own options, then add_run_options).
// The "--server-arg X" pairs are taken out first (cxxopts would split their
// values at commas); the shared options go into the Config, then
// read_own(result, &cfg) reads the benchmark's own options and throws
// std::invalid_argument for a bad value. nullopt with *exit_code 0 after
// --help (the help printed), 2 after an error (its message printed).
template <typename Config, typename ReadOwn>
std::optional<Config> parse_command_line(const std::string& who, cxxopts::Options& options, int argc, char** argv,
                                         ReadOwn read_own, int* exit_code) {
  std::vector<std::string> args(argv, argv + argc);
  Config cfg;
  cfg.server_args = take_server_args(&args);
  try {
    std::vector<const char*> cargv;
    for (const std::string& a : args) cargv.push_back(a.c_str());
    auto r = options.parse(static_cast<int>(cargv.size()), cargv.data());
    if (r.count("help") != 0) {
      std::cout << options.help();
      *exit_code = 0;
      return std::nullopt;
    }
    if (!r.unmatched().empty()) throw std::invalid_argument("unexpected argument '" + r.unmatched()[0] + "'");
    if (r.count("server") != 0) cfg.server_url = r["server"].as<std::string>();
    if (r.count("pid") != 0) cfg.attach_pid = r["pid"].as<long>();
    cfg.tabad_path = r["tabad"].as<std::string>();
    cfg.server_cpu = r["server-cpu"].as<int>();
    cfg.bench_cpu = r["bench-cpu"].as<int>();
    cfg.timeout_ms = r["timeout-ms"].as<int>();
    cfg.keep_data = r.count("keep-data") != 0;
    read_own(r, &cfg);
    if (cfg.server_url.empty() && r.count("pid") != 0) throw std::invalid_argument("--pid needs --server");
    if (!cfg.server_url.empty() && !cfg.server_args.empty()) {
      throw std::invalid_argument("--server-arg only applies to a tabad this benchmark starts");
    }
  } catch (const std::exception& e) {
    std::cerr << who << ": " << e.what() << "\nRun '" << who << " --help' for usage.\n";
    *exit_code = 2;
    return std::nullopt;
  }
  return cfg;
}

// The tabad a benchmark measures: one it started, or the one --server names.
struct ServerUnderTest {
  std::optional<OwnServer> own;  // set when the benchmark started it (stop it with stop_tabad)
  taba::http::Url url;
  long pid = 0;  // whose CPU and memory are measured; 0: none
};

// Starts a tabad (no --server: see start_tabad) or parses --server, whose
// figures come only with --pid (`unmeasured` says what goes unmeasured
// without it: "server CPU time is not measured"), then pins this benchmark to --bench-cpu. nullopt with *exit_code 1 when
// the tabad did not start, 2 for a bad --server URL.
inline std::optional<ServerUnderTest> open_server(const std::string& who, const ServerOptions& cfg,
                                                  const std::string& unmeasured, int* exit_code) {
  ServerUnderTest s;
  if (cfg.server_url.empty()) {
    s.own = start_tabad(who, cfg.tabad_path, cfg.server_args, cfg.server_cpu);
    if (!s.own) {
      *exit_code = 1;
      return std::nullopt;
    }
    s.url.host = "127.0.0.1";
    s.url.port = s.own->port;
    s.url.target = "/";
    s.pid = s.own->pid;
  } else {
    auto url = taba::http::parse_url(cfg.server_url);
    if (!url.ok()) {
      std::cerr << who << ": --server: " << url.status().message() << "\n";
      *exit_code = 2;
      return std::nullopt;
    }
    s.url = *url;
    s.pid = cfg.attach_pid;
    if (s.pid == 0) std::cerr << who << ": no --pid: " << unmeasured << "\n";
  }
  pin_benchmark(who, cfg.bench_cpu);
  return s;
}

}  // namespace taba::bench
