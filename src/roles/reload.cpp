#include "roles/reload.h"

#include <fmt/format.h>

#include <filesystem>
#include <set>
#include <string_view>
#include <vector>

#include "core/log.h"

namespace taba::roles {
namespace {

// One "[section]" of the effective configuration as text, to compare.
std::string dump_config_section(const Config& c, std::string_view header) {
  std::string all = dump_config(c);
  size_t at = all.find(std::string(header) + "\n");
  if (at == std::string::npos) return "";
  if (header == "[redis]") return all.substr(at);  // the last section, with its [[redis.shards]]
  size_t end = all.find("\n[", at + 1);
  return all.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

}  // namespace

bool reload_config(Config* running, Result<Config> next, plugin::Registry* registry, const std::string& plugins_dir) {
  if (!next.ok()) {
    log::error("SIGHUP: the configuration is not valid, nothing changed: {}", next.status().message());
    return false;
  }
  const Config& now = *running;
  Config& n = next.value();
  std::vector<std::string> applied, restart;
  int before = static_cast<int>(registry->reports().size());
  std::set<std::string> known;
  for (const auto& r : registry->reports()) known.insert(r.path);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(plugins_dir, ec)) {
    std::string path = entry.path().string();
    if (entry.path().extension() != ".so" || known.count(path)) continue;
    registry->load_file(path);
  }
  int added = static_cast<int>(registry->reports().size()) - before;
  if (added > 0) applied.push_back(fmt::format("{} new plugin file(s)", added));
  for (const auto& [alias, target] : n.plugins.types) {
    const plugin::Handler* now_h = registry->find(alias);
    const plugin::Handler* want = registry->find(target);
    if (want && now_h == want) continue;
    Status st = registry->add_alias(alias, target);
    if (st.ok()) {
      applied.push_back(fmt::format("type {} = {}", alias, target));
    } else {
      log::error("SIGHUP: {}", st.message());
    }
  }
  if (n.server.log_level != now.server.log_level) {
    log::set_level(n.server.log_level);
    applied.push_back(fmt::format("log_level {}", log::level_spelling(n.server.log_level)));
  }
  if (n.auth.ingest_token != now.auth.ingest_token || n.auth.admin_token != now.auth.admin_token ||
      n.auth.query_token != now.auth.query_token) {
    applied.push_back("auth tokens");
  }
  if (n.store.gc_interval_s != now.store.gc_interval_s) applied.push_back("store.gc_interval_s");
  if (n.server.self_tabs_interval_s != now.server.self_tabs_interval_s) {
    applied.push_back("server.self_tabs_interval_s");
  }
  if (n.ingest != now.ingest) {
    applied.push_back("[ingest] limits");
  }
  if (n.prometheus != now.prometheus) applied.push_back("[prometheus]");
  if (n.server.roles != now.server.roles) restart.push_back("server.roles");
  if (n.server.listen != now.server.listen) restart.push_back("server.listen");
  if (n.server.data_dir != now.server.data_dir) restart.push_back("server.data_dir");
  if (n.server.plugins_dir != now.server.plugins_dir) restart.push_back("server.plugins_dir");
  if (n.store.fsync != now.store.fsync || n.store.snapshot_interval_s != now.store.snapshot_interval_s ||
      n.store.wal_max_queued_bytes != now.store.wal_max_queued_bytes) {
    restart.push_back("[store] fsync / snapshot_interval_s / wal_max_queued_bytes");
  }
  if (dump_config_section(n, "[http]") != dump_config_section(now, "[http]")) restart.push_back("[http]");
  if (dump_config_section(n, "[agent]") != dump_config_section(now, "[agent]")) restart.push_back("[agent]");
  if (dump_config_section(n, "[client_proxy]") != dump_config_section(now, "[client_proxy]")) {
    restart.push_back("[client_proxy]");
  }
  if (dump_config_section(n, "[redis]") != dump_config_section(now, "[redis]")) restart.push_back("[redis]");
  // Keep what needs a restart as it runs; take the rest.
  n.server.roles = now.server.roles;
  n.server.listen = now.server.listen;
  n.server.data_dir = now.server.data_dir;
  n.server.plugins_dir = now.server.plugins_dir;
  n.store.fsync = now.store.fsync;
  n.store.snapshot_interval_s = now.store.snapshot_interval_s;
  n.store.wal_max_queued_bytes = now.store.wal_max_queued_bytes;
  n.http = now.http;
  n.redis = now.redis;
  n.agent = now.agent;
  n.client_proxy = now.client_proxy;
  *running = std::move(n);
  log::info("SIGHUP: reloaded: {}", applied.empty() ? std::string("nothing changed") : fmt::format("{}", fmt::join(applied, ", ")));
  if (!restart.empty()) log::warn("SIGHUP: changed but only applied by a restart: {}", fmt::join(restart, ", "));
  return true;
}

}  // namespace taba::roles
