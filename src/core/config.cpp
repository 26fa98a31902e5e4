#include "core/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <toml++/toml.h>

namespace taba {
namespace {

constexpr const char* kKnownRoles[] = {"client-proxy", "agent", "fe", "be", "ctrl"};
// Sections the SPEC defines that this build does not implement yet.
constexpr const char* kUnavailableSections[] = {"redis", "agent", "client_proxy", "auth"};

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// Reads one table's keys into fields; every key of the table must be known.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string section) : table_(table), section_(std::move(section)) {}

  Status string(const char* key, std::string* out) {
    seen_.insert(key);
    const toml::node* n = table_.get(key);
    if (!n) return Status::Ok();
    if (!n->is_string()) return bad(key, fmt::format("must be a string, not {}", type_name(*n)));
    *out = n->as_string()->get();
    return Status::Ok();
  }
  Status integer(const char* key, int64_t min, int64_t max, int64_t* out) {
    seen_.insert(key);
    const toml::node* n = table_.get(key);
    if (!n) return Status::Ok();
    if (!n->is_integer()) return bad(key, fmt::format("must be an integer, not {}", type_name(*n)));
    int64_t v = n->as_integer()->get();
    if (v < min || v > max) return bad(key, fmt::format("must be between {} and {}, not {}", min, max, v));
    *out = v;
    return Status::Ok();
  }
  Status strings(const char* key, std::vector<std::string>* out) {
    seen_.insert(key);
    const toml::node* n = table_.get(key);
    if (!n) return Status::Ok();
    const toml::array* arr = n->as_array();
    if (!arr) return bad(key, fmt::format("must be an array of strings, not {}", type_name(*n)));
    std::vector<std::string> values;
    for (const toml::node& item : *arr) {
      if (!item.is_string()) return bad(key, "must be an array of strings");
      values.push_back(item.as_string()->get());
    }
    *out = std::move(values);
    return Status::Ok();
  }
  // A table of string values, e.g. { "A" = "B" }, sorted by key.
  Status string_table(const char* key, std::vector<std::pair<std::string, std::string>>* out) {
    seen_.insert(key);
    const toml::node* n = table_.get(key);
    if (!n) return Status::Ok();
    const toml::table* t = n->as_table();
    if (!t) return bad(key, fmt::format("must be a table of strings, not {}", type_name(*n)));
    std::vector<std::pair<std::string, std::string>> values;
    for (const auto& [k, v] : *t) {
      if (!v.is_string()) {
        return Status::Invalid(fmt::format("{}.{}.{}: must be a string, not {}", section_, key, k.str(), type_name(v)));
      }
      values.emplace_back(std::string(k.str()), v.as_string()->get());
    }
    *out = std::move(values);
    return Status::Ok();
  }
  // Error for the first key that no reader asked for.
  Status unknown_keys() const {
    for (const auto& [k, v] : table_) {
      if (!seen_.count(std::string(k.str()))) {
        return Status::Invalid(fmt::format("{}.{}: unknown key", section_, k.str()));
      }
    }
    return Status::Ok();
  }

 private:
  Status bad(const char* key, const std::string& why) const {
    return Status::Invalid(fmt::format("{}.{}: {}", section_, key, why));
  }
  const toml::table& table_;
  std::string section_;
  std::set<std::string> seen_;
};

#define TABA_TRY(expr)            \
  do {                            \
    Status _s = (expr);           \
    if (!_s.ok()) return _s;      \
  } while (0)

Status read_server(const toml::table& t, Config::Server* s) {
  TableReader r(t, "server");
  TABA_TRY(r.strings("roles", &s->roles));
  TABA_TRY(r.string("listen", &s->listen));
  TABA_TRY(r.string("data_dir", &s->data_dir));
  TABA_TRY(r.string("plugins_dir", &s->plugins_dir));
  TABA_TRY(r.string("log_level", &s->log_level));
  return r.unknown_keys();
}

Status read_store(const toml::table& t, Config::Store* s) {
  TableReader r(t, "store");
  TABA_TRY(r.string("fsync", &s->fsync));
  TABA_TRY(r.integer("snapshot_interval_s", 1, 86400 * 7, &s->snapshot_interval_s));
  TABA_TRY(r.integer("wal_max_queued_bytes", 1 << 20, int64_t{1} << 40, &s->wal_max_queued_bytes));
  return r.unknown_keys();
}

Status read_http(const toml::table& t, Config::Http* h) {
  TableReader r(t, "http");
  TABA_TRY(r.integer("max_body_bytes", 1024, int64_t{1} << 40, &h->max_body_bytes));
  TABA_TRY(r.integer("max_header_bytes", 1024, 16 << 20, &h->max_header_bytes));
  TABA_TRY(r.integer("header_timeout_ms", 100, 3'600'000, &h->header_timeout_ms));
  TABA_TRY(r.integer("body_timeout_ms", 100, 3'600'000, &h->body_timeout_ms));
  TABA_TRY(r.integer("idle_timeout_ms", 100, 86'400'000, &h->idle_timeout_ms));
  TABA_TRY(r.integer("max_connections", 1, 1'000'000, &h->max_connections));
  return r.unknown_keys();
}

Status read_ingest(const toml::table& t, Config::Ingest* g) {
  TableReader r(t, "ingest");
  TABA_TRY(r.integer("max_inflated_bytes", 1024, int64_t{1} << 40, &g->max_inflated_bytes));
  TABA_TRY(r.integer("max_inflate_ratio", 2, 1'000'000, &g->max_inflate_ratio));
  TABA_TRY(r.integer("future_clamp_s", 0, 86400 * 365, &g->future_clamp_s));
  return r.unknown_keys();
}

Status read_plugins(const toml::table& t, Config::Plugins* p) {
  TableReader r(t, "plugins");
  TABA_TRY(r.string_table("types", &p->types));
  return r.unknown_keys();
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

static Status load_config_table(const toml::table& root, const std::string& path, Config* config);

bool Config::has_role(std::string_view role) const {
  return std::find(server.roles.begin(), server.roles.end(), role) != server.roles.end();
}

Status load_config_file(const std::string& path, Config* config) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Status::Invalid(fmt::format("{}:{}:{}: {}", path, where.line, where.column, e.description()));
  }
  return load_config_table(root, path, config);
}

Status load_config_text(std::string_view text, const std::string& origin, Config* config) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Status::Invalid(fmt::format("{}:{}:{}: {}", origin, where.line, where.column, e.description()));
  }
  return load_config_table(root, origin, config);
}

static Status load_config_table(const toml::table& root, const std::string& path, Config* config) {
  for (const auto& [key, node] : root) {
    std::string k(key.str());
    const toml::table* table = node.as_table();
    if (std::find(std::begin(kUnavailableSections), std::end(kUnavailableSections), k) !=
        std::end(kUnavailableSections)) {
      return Status::Invalid(fmt::format("{}: [{}] is not supported by this build of tabad yet", path, k));
    }
    if (!table) return Status::Invalid(fmt::format("{}: {}: unknown key", path, k));
    Status s;
    if (k == "server") s = read_server(*table, &config->server);
    else if (k == "store") s = read_store(*table, &config->store);
    else if (k == "http") s = read_http(*table, &config->http);
    else if (k == "ingest") s = read_ingest(*table, &config->ingest);
    else if (k == "plugins") s = read_plugins(*table, &config->plugins);
    else return Status::Invalid(fmt::format("{}: [{}]: unknown section", path, k));
    if (!s.ok()) return Status::Invalid(fmt::format("{}: {}", path, s.message()));
  }
  return Status::Ok();
}

Status validate_config(const Config& c) {
  if (c.server.roles.empty()) return Status::Invalid("server.roles: at least one role is required");
  for (const std::string& role : c.server.roles) {
    if (std::find(std::begin(kKnownRoles), std::end(kKnownRoles), role) == std::end(kKnownRoles)) {
      return Status::Invalid(
          fmt::format("server.roles: unknown role '{}' (expected client-proxy, agent, fe, be or ctrl)", role));
    }
    if (role == "agent" || role == "client-proxy") {
      return Status::Invalid(fmt::format("server.roles: role '{}' is not available in this build of tabad yet", role));
    }
  }
  if (!c.has_role("fe") || !c.has_role("be")) {
    return Status::Invalid(
        "server.roles: the embedded store runs fe and be in one process; include both (a [redis] store is needed "
        "to split them)");
  }
  if (c.store.fsync != "always" && c.store.fsync != "everysec") {
    return Status::Invalid(fmt::format("store.fsync: must be \"always\" or \"everysec\", not \"{}\"", c.store.fsync));
  }
  if (c.server.log_level != "debug" && c.server.log_level != "info" && c.server.log_level != "warn" &&
      c.server.log_level != "error") {
    return Status::Invalid(fmt::format("server.log_level: must be debug, info, warn or error, not \"{}\"",
                                       c.server.log_level));
  }
  if (c.server.data_dir.empty()) return Status::Invalid("server.data_dir: must not be empty");
  for (const auto& [alias, target] : c.plugins.types) {
    bool ok = !alias.empty() && alias.size() <= 64;
    for (char ch : alias) {
      ok = ok && ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '.' || ch == '-');
    }
    if (!ok) {
      return Status::Invalid(
          fmt::format("plugins.types.{}: a type name is 1..64 characters of A-Z a-z 0-9 _ . -", alias));
    }
    if (target.empty()) return Status::Invalid(fmt::format("plugins.types.{}: names no type", alias));
  }
  return Status::Ok();
}

std::string dump_config(const Config& c) {
  std::string type_map;
  for (const auto& [alias, target] : c.plugins.types) {
    type_map += fmt::format("{}{} = {}", type_map.empty() ? " " : ", ", toml_string(alias), toml_string(target));
  }
  if (!type_map.empty()) type_map += ' ';
  std::string roles;
  for (size_t i = 0; i < c.server.roles.size(); ++i) {
    roles += (i ? ", " : "") + toml_string(c.server.roles[i]);
  }
  return fmt::format(
      "[server]\nroles = [{}]\nlisten = {}\ndata_dir = {}\nplugins_dir = {}\nlog_level = {}\n\n"
      "[store]\nfsync = {}\nsnapshot_interval_s = {}\nwal_max_queued_bytes = {}\n\n"
      "[http]\nmax_body_bytes = {}\nmax_header_bytes = {}\nheader_timeout_ms = {}\nbody_timeout_ms = {}\n"
      "idle_timeout_ms = {}\nmax_connections = {}\n\n"
      "[ingest]\nmax_inflated_bytes = {}\nmax_inflate_ratio = {}\nfuture_clamp_s = {}\n\n"
      "[plugins]\ntypes = {{{}}}\n",
      roles, toml_string(c.server.listen), toml_string(c.server.data_dir), toml_string(c.server.plugins_dir),
      toml_string(c.server.log_level), toml_string(c.store.fsync), c.store.snapshot_interval_s,
      c.store.wal_max_queued_bytes, c.http.max_body_bytes, c.http.max_header_bytes, c.http.header_timeout_ms,
      c.http.body_timeout_ms, c.http.idle_timeout_ms, c.http.max_connections, c.ingest.max_inflated_bytes,
      c.ingest.max_inflate_ratio, c.ingest.future_clamp_s, type_map);
}

}  // namespace taba
