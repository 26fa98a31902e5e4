// tabad: flags -> Config -> the daemon.
#include <cxxopts.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "core/config.h"
#include "core/log.h"
#include "roles/daemon.h"
#include "taba/handler.h"
#include "taba/version.h"

namespace {

std::vector<std::string> split_roles(const std::string& text) {
  std::vector<std::string> roles;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string r = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!r.empty()) roles.push_back(r);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return roles;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("tabad", "tabad: aggregates instrumentation events in near real time");
  options.add_options()
    ("role", "roles to run, comma-separated: client-proxy,agent,fe,be,ctrl (default fe,be)", cxxopts::value<std::string>())
    ("config", "configuration file (taba.toml)", cxxopts::value<std::string>())
    ("listen", "HTTP listen address HOST:PORT of the fe/be/ctrl API (default 127.0.0.1:8300), or else of the agent (8279), or else of the client-proxy (8280)", cxxopts::value<std::string>())
    ("data-dir", "data directory of the embedded store (default ./taba-data)", cxxopts::value<std::string>())
    ("plugins-dir", "handler plugins directory (default: next to the executable)", cxxopts::value<std::string>())
    ("fsync", "embedded store WAL fsync policy: always | everysec", cxxopts::value<std::string>())
    ("log-level", "debug | info | warn | error", cxxopts::value<std::string>())
    ("check-config", "validate the configuration, print the effective settings and exit")
    ("version", "print the version and exit")
    ("h,help", "print this help and exit");
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tabad: {}\n(see tabad --help)\n", e.what());
    return 2;
  }
  if (!args.unmatched().empty()) {
    fmt::print(stderr, "tabad: unexpected argument \"{}\"\n(see tabad --help)\n", args.unmatched().front());
    return 2;
  }
  if (args.count("help")) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  if (args.count("version")) {
    fmt::print("tabad {} (handler ABI {}.{})\n", TABA_VERSION_STRING, TABA_ABI_MAJOR, TABA_ABI_MINOR);
    return 0;
  }

  // The file, then the flags over it; also what SIGHUP re-reads.
  auto effective = [args]() -> taba::Result<taba::Config> {
    taba::Config config;
    if (args.count("config")) {
      TABA_RETURN_IF_ERROR(taba::load_config_file(args["config"].as<std::string>(), &config));
    }
    if (args.count("role")) {
      TABA_RETURN_IF_ERROR(
          taba::parse_roles(split_roles(args["role"].as<std::string>()), &config.server.roles));
    }
    if (args.count("listen")) {
      // The HTTP address of the first thing this process serves: the fe/be/ctrl
      // API, else the agent, else the client-proxy.
      std::string listen = args["listen"].as<std::string>();
      if (config.serves()) {
        config.server.listen = listen;
      } else if (config.has_role(taba::Role::kAgent)) {
        config.agent.listen = listen;
      } else {
        config.client_proxy.listen = listen;
      }
    }
    if (args.count("data-dir")) config.server.data_dir = args["data-dir"].as<std::string>();
    if (args.count("plugins-dir")) config.server.plugins_dir = args["plugins-dir"].as<std::string>();
    if (args.count("fsync")) {
      TABA_RETURN_IF_ERROR(
          taba::parse_fsync_policy("store.fsync", args["fsync"].as<std::string>(), &config.store.fsync));
    }
    if (args.count("log-level")) {
      TABA_RETURN_IF_ERROR(
          taba::parse_log_level(args["log-level"].as<std::string>(), &config.server.log_level));
    }
    TABA_RETURN_IF_ERROR(taba::validate_config(config));
    return config;
  };
  taba::Result<taba::Config> loaded = effective();
  if (!loaded.ok()) {
    fmt::print(stderr, "tabad: {}\n", loaded.status().message());
    return 2;
  }
  taba::Config& config = loaded.value();
  if (args.count("check-config")) {
    fmt::print("{}", taba::dump_config(config));
    return 0;
  }
  taba::log::set_level(config.server.log_level);
  return taba::roles::run_daemon(config, effective);
}
