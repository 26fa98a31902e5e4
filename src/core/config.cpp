#include "core/config.h"
#include "core/validation.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <toml++/toml.h>

namespace taba {
namespace {

constexpr std::pair<Role, std::string_view> kRoleNames[] = {
    {Role::kClientProxy, "client-proxy"}, {Role::kAgent, "agent"}, {Role::kFe, "fe"}, {Role::kBe, "be"},
    {Role::kCtrl, "ctrl"}};
// Sections the configuration reserves that this build does not implement yet.

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
  Status boolean(const char* key, bool* out) {
    seen_.insert(key);
    const toml::node* n = table_.get(key);
    if (!n) return Status::Ok();
    if (!n->is_boolean()) return bad(key, fmt::format("must be true or false, not {}", type_name(*n)));
    *out = n->as_boolean()->get();
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
  // A key read by hand (not through this reader).
  void mark(const char* key) { seen_.insert(key); }
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

// The enum-valued keys (server.roles, server.log_level, store.fsync,
// agent.fsync) are read as text here and into their enums once the whole file is read (see
// load_config_table).
Status read_server(const toml::table& t, Config::Server* s, std::vector<std::string>* roles,
                   std::string* log_level) {
  TableReader r(t, "server");
  TABA_RETURN_IF_ERROR(r.strings("roles", roles));
  TABA_RETURN_IF_ERROR(r.string("listen", &s->listen));
  TABA_RETURN_IF_ERROR(r.string("data_dir", &s->data_dir));
  TABA_RETURN_IF_ERROR(r.string("plugins_dir", &s->plugins_dir));
  TABA_RETURN_IF_ERROR(r.string("log_level", log_level));
  TABA_RETURN_IF_ERROR(r.integer("self_tabs_interval_s", 0, 3600, &s->self_tabs_interval_s));
  return r.unknown_keys();
}

Status read_store(const toml::table& t, Config::Store* s, std::string* fsync) {
  TableReader r(t, "store");
  TABA_RETURN_IF_ERROR(r.string("fsync", fsync));
  TABA_RETURN_IF_ERROR(r.integer("snapshot_interval_s", 1, 86400 * 7, &s->snapshot_interval_s));
  TABA_RETURN_IF_ERROR(
      r.integer("wal_max_queued_bytes", 1 << 20, int64_t{1} << 40, &s->wal_max_queued_bytes));
  TABA_RETURN_IF_ERROR(r.integer("dedup_ttl_s", 1, 86400 * 7, &s->dedup_ttl_s));
  TABA_RETURN_IF_ERROR(r.integer("gc_interval_s", 0, 86400 * 7, &s->gc_interval_s));
  return r.unknown_keys();
}

Status read_redis(const toml::table& t, Config::Redis* rc) {
  TableReader r(t, "redis");
  rc->enabled = true;
  TABA_RETURN_IF_ERROR(r.strings("sentinels", &rc->sentinels));
  TABA_RETURN_IF_ERROR(r.integer("vbuckets", 1, 1 << 16, &rc->vbuckets));
  TABA_RETURN_IF_ERROR(r.integer("min_replica_acks", 0, 64, &rc->min_replica_acks));
  TABA_RETURN_IF_ERROR(r.integer("replica_ack_timeout_ms", 1, 60'000, &rc->replica_ack_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("connect_timeout_ms", 10, 60'000, &rc->connect_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("command_timeout_ms", 10, 600'000, &rc->command_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("pool_size", 1, 64, &rc->pool_size));
  TABA_RETURN_IF_ERROR(r.string("password", &rc->password));
  TABA_RETURN_IF_ERROR(r.string("key_prefix", &rc->key_prefix));
  TABA_RETURN_IF_ERROR(r.integer("dedup_ttl_s", 60, 86400 * 365, &rc->dedup_ttl_s));
  TABA_RETURN_IF_ERROR(r.integer("claim_idle_ms", 100, 3'600'000, &rc->claim_idle_ms));
  TABA_RETURN_IF_ERROR(r.integer("max_stream_entries", 1, int64_t{1} << 32, &rc->max_stream_entries));
  TABA_RETURN_IF_ERROR(r.integer("placement_refresh_ms", 100, 86'400'000, &rc->placement_refresh_ms));
  TABA_RETURN_IF_ERROR(r.integer("reshard_names_per_s", 0, 100'000'000, &rc->reshard_names_per_s));
  TABA_RETURN_IF_ERROR(r.integer("reshard_lease_ms", 1000, 600'000, &rc->reshard_lease_ms));
  TABA_RETURN_IF_ERROR(r.integer("max_read_bytes", 64 << 10, int64_t{1} << 30, &rc->max_read_bytes));
  TABA_RETURN_IF_ERROR(r.integer("idle_consumer_ms", 1000, 30ll * 86'400'000, &rc->idle_consumer_ms));
  r.mark("shards");
  TABA_RETURN_IF_ERROR(r.unknown_keys());
  const toml::node* shards = t.get("shards");
  if (!shards) return Status::Ok();
  const toml::array* arr = shards->as_array();
  if (!arr) return Status::Invalid("redis.shards: must be an array of tables ([[redis.shards]])");
  rc->shards.clear();
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* st = (*arr)[i].as_table();
    std::string where = fmt::format("redis.shards[{}]", i);
    if (!st) return Status::Invalid(where + ": must be a table with name and vbuckets");
    TableReader sr(*st, where);
    Config::Redis::Shard shard;
    TABA_RETURN_IF_ERROR(sr.string("name", &shard.name));
    sr.mark("vbuckets");
    TABA_RETURN_IF_ERROR(sr.unknown_keys());
    if (shard.name.empty()) return Status::Invalid(where + ".name: the Sentinel master name is required");
    const toml::node* vb = st->get("vbuckets");
    const toml::array* range = vb ? vb->as_array() : nullptr;
    if (!range || range->size() != 2 || !(*range)[0].is_integer() || !(*range)[1].is_integer()) {
      return Status::Invalid(where + ".vbuckets: must be [first, last], an inclusive range of integers");
    }
    shard.first_vbucket = (*range)[0].as_integer()->get();
    shard.last_vbucket = (*range)[1].as_integer()->get();
    rc->shards.push_back(std::move(shard));
  }
  return Status::Ok();
}

Status read_http(const toml::table& t, Config::Http* h) {
  TableReader r(t, "http");
  TABA_RETURN_IF_ERROR(r.integer("max_body_bytes", 1024, int64_t{1} << 40, &h->max_body_bytes));
  TABA_RETURN_IF_ERROR(r.integer("max_header_bytes", 1024, 16 << 20, &h->max_header_bytes));
  TABA_RETURN_IF_ERROR(r.integer("header_timeout_ms", 100, 3'600'000, &h->header_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("body_timeout_ms", 100, 3'600'000, &h->body_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("min_body_rate", 0, int64_t{1} << 30, &h->min_body_rate));
  TABA_RETURN_IF_ERROR(r.integer("idle_timeout_ms", 100, 86'400'000, &h->idle_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("max_connections", 1, 1'000'000, &h->max_connections));
  return r.unknown_keys();
}

Status read_ingest(const toml::table& t, Config::Ingest* g) {
  TableReader r(t, "ingest");
  TABA_RETURN_IF_ERROR(r.integer("max_inflated_bytes", 1024, int64_t{1} << 40, &g->max_inflated_bytes));
  TABA_RETURN_IF_ERROR(r.integer("max_inflate_ratio", 2, 1'000'000, &g->max_inflate_ratio));
  TABA_RETURN_IF_ERROR(r.integer("future_clamp_s", 0, 86400 * 365, &g->future_clamp_s));
  TABA_RETURN_IF_ERROR(r.integer("max_events_per_body", 0, int64_t{1} << 40, &g->max_events_per_body));
  TABA_RETURN_IF_ERROR(r.integer("max_names", 0, int64_t{1} << 40, &g->max_names));
  TABA_RETURN_IF_ERROR(r.integer("max_names_per_client", 0, int64_t{1} << 40, &g->max_names_per_client));
  return r.unknown_keys();
}

Status read_prometheus(const toml::table& t, Config::Prometheus* p) {
  TableReader r(t, "prometheus");
  TABA_RETURN_IF_ERROR(r.string("prefix", &p->prefix));
  TABA_RETURN_IF_ERROR(r.integer("max_series_per_tab", 1, int64_t{1} << 30, &p->max_series_per_tab));
  TABA_RETURN_IF_ERROR(r.integer("max_series", 1, int64_t{1} << 40, &p->max_series));
  TABA_RETURN_IF_ERROR(r.unknown_keys());
  for (size_t i = 0; i < p->prefix.size(); ++i) {
    const char c = p->prefix[i];
    const bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return Status::Invalid(fmt::format("prometheus.prefix: \"{}\" is not a metric name prefix ([A-Za-z_][A-Za-z0-9_]*)",
                                         p->prefix));
    }
  }
  return Status::Ok();
}

Status read_auth(const toml::table& t, Config::Auth* a) {
  TableReader r(t, "auth");
  TABA_RETURN_IF_ERROR(r.string("ingest_token", &a->ingest_token));
  TABA_RETURN_IF_ERROR(r.string("admin_token", &a->admin_token));
  TABA_RETURN_IF_ERROR(r.string("query_token", &a->query_token));
  return r.unknown_keys();
}

Status read_agent(const toml::table& t, Config::Agent* a, std::string* fsync) {
  TableReader r(t, "agent");
  TABA_RETURN_IF_ERROR(r.string("listen", &a->listen));
  TABA_RETURN_IF_ERROR(r.string("spool_dir", &a->spool_dir));
  TABA_RETURN_IF_ERROR(r.string("dead_letter_dir", &a->dead_letter_dir));
  TABA_RETURN_IF_ERROR(r.integer("spool_max_bytes", 1 << 20, int64_t{1} << 50, &a->spool_max_bytes));
  TABA_RETURN_IF_ERROR(r.integer("max_dead_letter_bytes", 0, int64_t{1} << 50, &a->max_dead_letter_bytes));
  TABA_RETURN_IF_ERROR(r.string("fsync", fsync));
  TABA_RETURN_IF_ERROR(r.strings("endpoints", &a->endpoints));
  TABA_RETURN_IF_ERROR(r.integer("batch_max_bytes", 1024, 1 << 30, &a->batch_max_bytes));
  TABA_RETURN_IF_ERROR(r.integer("flush_interval_ms", 1, 60'000, &a->flush_interval_ms));
  TABA_RETURN_IF_ERROR(r.integer("forward_concurrency", 1, 64, &a->forward_concurrency));
  TABA_RETURN_IF_ERROR(r.integer("forward_timeout_ms", 100, 600'000, &a->forward_timeout_ms));
  TABA_RETURN_IF_ERROR(r.integer("backoff_initial_ms", 1, 600'000, &a->backoff_initial_ms));
  TABA_RETURN_IF_ERROR(r.integer("backoff_max_ms", 1, 3'600'000, &a->backoff_max_ms));
  TABA_RETURN_IF_ERROR(r.integer("shutdown_grace_ms", 0, 600'000, &a->shutdown_grace_ms));
  TABA_RETURN_IF_ERROR(r.string("forward_token", &a->forward_token));
  TABA_RETURN_IF_ERROR(r.integer("dedup_ttl_s", 0, 86400 * 7, &a->dedup_ttl_s));
  TABA_RETURN_IF_ERROR(r.boolean("compress_deltas", &a->compress_deltas));
  TABA_RETURN_IF_ERROR(r.integer("max_deltas_per_batch", 1, 10'000'000, &a->max_deltas_per_batch));
  TABA_RETURN_IF_ERROR(r.integer("dead_letter_after_errors", 0, 1'000'000, &a->dead_letter_after_errors));
  TABA_RETURN_IF_ERROR(r.integer("dead_letter_after_s", 0, 86400 * 7, &a->dead_letter_after_s));
  return r.unknown_keys();
}

Status read_client_proxy(const toml::table& t, Config::ClientProxy* p) {
  TableReader r(t, "client_proxy");
  TABA_RETURN_IF_ERROR(r.string("listen", &p->listen));
  TABA_RETURN_IF_ERROR(r.string("statsd_udp", &p->statsd_udp));
  TABA_RETURN_IF_ERROR(r.string("statsd_unix", &p->statsd_unix));
  TABA_RETURN_IF_ERROR(r.string("agent", &p->agent));
  TABA_RETURN_IF_ERROR(r.string("client_id", &p->client_id));
  TABA_RETURN_IF_ERROR(r.integer("flush_interval_ms", 1, 60'000, &p->flush_interval_ms));
  TABA_RETURN_IF_ERROR(r.integer("max_buffered_events", 1, int64_t{1} << 40, &p->max_buffered_events));
  TABA_RETURN_IF_ERROR(r.integer("max_retry_bytes", 0, int64_t{1} << 40, &p->max_retry_bytes));
  TABA_RETURN_IF_ERROR(r.integer("udp_recv_buffer_bytes", 0, 1 << 30, &p->udp_recv_buffer_bytes));
  TABA_RETURN_IF_ERROR(r.integer("forward_timeout_ms", 100, 600'000, &p->forward_timeout_ms));
  TABA_RETURN_IF_ERROR(r.string("forward_token", &p->forward_token));
  std::string format(forward_format_name(p->forward_format));
  TABA_RETURN_IF_ERROR(r.string("forward_format", &format));
  if (format == "delta" || format == "v1") {
    p->forward_format = format == "v1" ? ForwardFormat::kV1 : ForwardFormat::kDelta;
  } else {
    return Status::Invalid(fmt::format("client_proxy.forward_format: must be \"delta\" or \"v1\", not \"{}\"", format));
  }
  return r.unknown_keys();
}

Status read_plugins(const toml::table& t, Config::Plugins* p) {
  TableReader r(t, "plugins");
  TABA_RETURN_IF_ERROR(r.string_table("types", &p->types));
  return r.unknown_keys();
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

static Status load_config_table(const toml::table& root, const std::string& path, Config* config);

std::string_view role_name(Role role) {
  for (const auto& [r, name] : kRoleNames) {
    if (r == role) return name;
  }
  return "?";
}

std::vector<std::string> role_names(const std::vector<Role>& roles) {
  std::vector<std::string> names;
  names.reserve(roles.size());
  for (Role role : roles) names.emplace_back(role_name(role));
  return names;
}

bool Config::has_role(Role role) const {
  return std::find(server.roles.begin(), server.roles.end(), role) != server.roles.end();
}

Status parse_roles(const std::vector<std::string>& names, std::vector<Role>* roles) {
  std::vector<Role> parsed;
  parsed.reserve(names.size());
  for (const std::string& name : names) {
    const auto* known = std::find_if(std::begin(kRoleNames), std::end(kRoleNames),
                                     [&](const auto& entry) { return entry.second == name; });
    if (known == std::end(kRoleNames)) {
      return Status::Invalid(
          fmt::format("server.roles: unknown role '{}' (expected client-proxy, agent, fe, be or ctrl)", name));
    }
    parsed.push_back(known->first);
  }
  *roles = std::move(parsed);
  return Status::Ok();
}

Status parse_fsync_policy(std::string_view key, std::string_view text, FsyncPolicy* policy) {
  for (FsyncPolicy p : {FsyncPolicy::kAlways, FsyncPolicy::kEverySec}) {
    if (text == fsync_policy_name(p)) {
      *policy = p;
      return Status::Ok();
    }
  }
  return Status::Invalid(fmt::format("{}: must be \"always\" or \"everysec\", not \"{}\"", key, text));
}

Status parse_log_level(std::string_view text, log::Level* level) {
  if (log::parse_level(text, level)) return Status::Ok();
  return Status::Invalid(
      fmt::format("server.log_level: must be debug, info, warn or error, not \"{}\"", text));
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
  std::vector<std::string> roles = role_names(config->server.roles);
  std::string store_fsync(fsync_policy_name(config->store.fsync));
  std::string agent_fsync(fsync_policy_name(config->agent.fsync));
  std::string log_level(log::level_spelling(config->server.log_level));
  for (const auto& [key, node] : root) {
    std::string k(key.str());
    const toml::table* table = node.as_table();
    if (!table) return Status::Invalid(fmt::format("{}: {}: unknown key", path, k));
    Status s;
    if (k == "server") s = read_server(*table, &config->server, &roles, &log_level);
    else if (k == "store") s = read_store(*table, &config->store, &store_fsync);
    else if (k == "http") s = read_http(*table, &config->http);
    else if (k == "ingest") s = read_ingest(*table, &config->ingest);
    else if (k == "plugins") s = read_plugins(*table, &config->plugins);
    else if (k == "redis") s = read_redis(*table, &config->redis);
    else if (k == "auth") s = read_auth(*table, &config->auth);
    else if (k == "prometheus") s = read_prometheus(*table, &config->prometheus);
    else if (k == "agent") s = read_agent(*table, &config->agent, &agent_fsync);
    else if (k == "client_proxy") s = read_client_proxy(*table, &config->client_proxy);
    else return Status::Invalid(fmt::format("{}: [{}]: unknown section", path, k));
    if (!s.ok()) return Status::Invalid(fmt::format("{}: {}", path, s.message()));
  }
  // An unknown spelling is reported like the other cross-key checks of
  // validate_config, after everything else in the file: naming the key, not
  // the file.
  TABA_RETURN_IF_ERROR(parse_roles(roles, &config->server.roles));
  TABA_RETURN_IF_ERROR(parse_fsync_policy("store.fsync", store_fsync, &config->store.fsync));
  TABA_RETURN_IF_ERROR(parse_fsync_policy("agent.fsync", agent_fsync, &config->agent.fsync));
  return parse_log_level(log_level, &config->server.log_level);
}

Status validate_redis(const Config::Redis& r) {
  if (r.sentinels.empty()) return Status::Invalid("redis.sentinels: at least one sentinel (host:port) is required");
  for (size_t i = 0; i < r.sentinels.size(); ++i) {
    const std::string& a = r.sentinels[i];
    size_t colon = a.rfind(':');
    bool ok = colon != std::string::npos && colon > 0 && colon + 1 < a.size() && colon + 6 >= a.size();
    int port = 0;
    for (size_t j = colon + 1; ok && j < a.size(); ++j) {
      ok = a[j] >= '0' && a[j] <= '9';
      port = port * 10 + (a[j] - '0');
    }
    if (!ok || port < 1 || port > 65535) {
      return Status::Invalid(fmt::format("redis.sentinels[{}]: \"{}\" is not HOST:PORT", i, a));
    }
  }
  if (r.shards.empty()) return Status::Invalid("redis.shards: at least one [[redis.shards]] is required");
  std::vector<const Config::Redis::Shard*> sorted;
  std::set<std::string> names;
  for (const auto& shard : r.shards) {
    if (!names.insert(shard.name).second) {
      return Status::Invalid(fmt::format("redis.shards: shard \"{}\" is listed twice", shard.name));
    }
    if (shard.first_vbucket < 0 || shard.last_vbucket >= r.vbuckets || shard.first_vbucket > shard.last_vbucket) {
      return Status::Invalid(fmt::format("redis.shards: shard \"{}\" has vbuckets [{}, {}], not a range within 0..{}",
                                         shard.name, shard.first_vbucket, shard.last_vbucket, r.vbuckets - 1));
    }
    sorted.push_back(&shard);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first_vbucket < b->first_vbucket; });
  int64_t next = 0;
  for (const auto* shard : sorted) {
    if (shard->first_vbucket < next) {
      return Status::Invalid(fmt::format("redis.shards: shard \"{}\" overlaps another shard at vbucket {}",
                                         shard->name, shard->first_vbucket));
    }
    if (shard->first_vbucket > next) {
      return Status::Invalid(fmt::format("redis.shards: vbuckets {}..{} belong to no shard", next,
                                         shard->first_vbucket - 1));
    }
    next = shard->last_vbucket + 1;
  }
  if (next != r.vbuckets) {
    return Status::Invalid(fmt::format("redis.shards: vbuckets {}..{} belong to no shard", next, r.vbuckets - 1));
  }
  if (r.key_prefix.size() > 64) return Status::Invalid("redis.key_prefix: at most 64 characters");
  return Status::Ok();
}

// "host:port" with a port in 1..65535 (port 0 too when `allow_zero`).
static bool is_host_port(const std::string& a, bool allow_zero) {
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= a.size() || colon + 6 < a.size()) return false;
  int port = 0;
  for (size_t j = colon + 1; j < a.size(); ++j) {
    if (a[j] < '0' || a[j] > '9') return false;
    port = port * 10 + (a[j] - '0');
  }
  return port <= 65535 && (port > 0 || allow_zero);
}

// "http://host:port" or "host:port", port 1..65535.
static bool is_endpoint(std::string_view a) {
  if (a.substr(0, 7) == "http://") a.remove_prefix(7);
  if (!a.empty() && a.back() == '/') a.remove_suffix(1);
  return is_host_port(std::string(a), false);
}

static Status validate_agent(const Config::Agent& a) {
  if (!is_host_port(a.listen, true)) return Status::Invalid(fmt::format("agent.listen: \"{}\" is not HOST:PORT", a.listen));
  if (a.endpoints.empty()) return Status::Invalid("agent.endpoints: at least one fe (host:port) is required");
  for (size_t i = 0; i < a.endpoints.size(); ++i) {
    if (!is_endpoint(a.endpoints[i])) {
      return Status::Invalid(
          fmt::format("agent.endpoints[{}]: \"{}\" is not http://HOST:PORT", i, a.endpoints[i]));
    }
  }
  if (a.backoff_max_ms < a.backoff_initial_ms) {
    return Status::Invalid("agent.backoff_max_ms: must be at least agent.backoff_initial_ms");
  }
  return Status::Ok();
}

static Status validate_client_proxy(const Config::ClientProxy& p) {
  if (!is_host_port(p.listen, true)) {
    return Status::Invalid(fmt::format("client_proxy.listen: \"{}\" is not HOST:PORT", p.listen));
  }
  if (!p.statsd_udp.empty() && !is_host_port(p.statsd_udp, true)) {
    return Status::Invalid(fmt::format("client_proxy.statsd_udp: \"{}\" is not HOST:PORT", p.statsd_udp));
  }
  if (!is_endpoint(p.agent)) {
    return Status::Invalid(fmt::format("client_proxy.agent: \"{}\" is not http://HOST:PORT", p.agent));
  }
  if (!p.client_id.empty()) {
    std::string why = check_identifier(p.client_id);
    if (!why.empty()) return Status::Invalid(fmt::format("client_proxy.client_id: {}", why));
  }
  if (p.statsd_unix.size() >= 100) return Status::Invalid("client_proxy.statsd_unix: a socket path is at most 99 bytes");
  return Status::Ok();
}

Status validate_config(const Config& c) {
  if (c.server.roles.empty()) return Status::Invalid("server.roles: at least one role is required");
  if (c.serves() && !c.redis.enabled && (!c.has_role(Role::kFe) || !c.has_role(Role::kBe))) {
    return Status::Invalid(
        "server.roles: the embedded store runs fe and be in one process; include both (a [redis] store is needed "
        "to split them)");
  }
  if (c.has_role(Role::kCtrl) && (c.has_role(Role::kFe) || c.has_role(Role::kBe))) {
    return Status::Invalid("server.roles: ctrl is the query-and-admin-only role; do not combine it with fe or be");
  }
  if (c.redis.enabled) {
    TABA_RETURN_IF_ERROR(validate_redis(c.redis));
  }
  if (c.server.data_dir.empty()) return Status::Invalid("server.data_dir: must not be empty");
  if (c.has_role(Role::kAgent)) {
    TABA_RETURN_IF_ERROR(validate_agent(c.agent));
  }
  if (c.has_role(Role::kClientProxy)) {
    TABA_RETURN_IF_ERROR(validate_client_proxy(c.client_proxy));
  }
  for (const auto& [key, token] : {std::pair<const char*, const std::string*>{"ingest_token", &c.auth.ingest_token},
                                   {"admin_token", &c.auth.admin_token},
                                   {"query_token", &c.auth.query_token}}) {
    if (token->empty()) continue;
    if (token->size() < 16) return Status::Invalid(fmt::format("auth.{}: use at least 16 characters", key));
    for (char ch : *token) {
      if (ch <= ' ' || ch > '~') {
        return Status::Invalid(fmt::format("auth.{}: only printable ASCII without spaces", key));
      }
    }
  }
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

namespace {
// Tokens and passwords are never printed.
std::string secret(const std::string& s) { return s.empty() ? "\"\"" : "\"(set)\""; }

std::string dump_redis(const Config::Redis& r) {
  if (!r.enabled) return "";
  std::string sentinels;
  for (size_t i = 0; i < r.sentinels.size(); ++i) sentinels += (i ? ", " : "") + toml_string(r.sentinels[i]);
  std::string out = fmt::format(
      "\n[redis]\nsentinels = [{}]\nvbuckets = {}\nmin_replica_acks = {}\nreplica_ack_timeout_ms = {}\n"
      "connect_timeout_ms = {}\ncommand_timeout_ms = {}\npool_size = {}\npassword = {}\nkey_prefix = {}\n"
      "dedup_ttl_s = {}\nclaim_idle_ms = {}\nmax_stream_entries = {}\nplacement_refresh_ms = {}\n"
      "reshard_names_per_s = {}\nreshard_lease_ms = {}\nmax_read_bytes = {}\nidle_consumer_ms = {}\n",
      sentinels, r.vbuckets, r.min_replica_acks, r.replica_ack_timeout_ms, r.connect_timeout_ms,
      r.command_timeout_ms, r.pool_size, r.password.empty() ? "\"\"" : "\"(set)\"", toml_string(r.key_prefix),
      r.dedup_ttl_s, r.claim_idle_ms, r.max_stream_entries, r.placement_refresh_ms, r.reshard_names_per_s,
      r.reshard_lease_ms, r.max_read_bytes, r.idle_consumer_ms);
  for (const auto& shard : r.shards) {
    out += fmt::format("\n[[redis.shards]]\nname = {}\nvbuckets = [{}, {}]\n", toml_string(shard.name),
                       shard.first_vbucket, shard.last_vbucket);
  }
  return out;
}
}  // namespace

std::string dump_config(const Config& c) {
  std::string type_map;
  for (const auto& [alias, target] : c.plugins.types) {
    type_map += fmt::format("{}{} = {}", type_map.empty() ? " " : ", ", toml_string(alias), toml_string(target));
  }
  if (!type_map.empty()) type_map += ' ';
  std::string roles;
  for (size_t i = 0; i < c.server.roles.size(); ++i) {
    roles += (i ? ", " : "") + toml_string(role_name(c.server.roles[i]));
  }
  const Config::Agent& a = c.agent;
  const Config::ClientProxy& p = c.client_proxy;
  std::string endpoints;
  for (size_t i = 0; i < a.endpoints.size(); ++i) endpoints += (i ? ", " : "") + toml_string(a.endpoints[i]);
  std::string agent = fmt::format(
      "\n[agent]\nlisten = {}\nspool_dir = {}\ndead_letter_dir = {}\nspool_max_bytes = {}\nmax_dead_letter_bytes = {}\n"
      "fsync = {}\nendpoints = [{}]\nbatch_max_bytes = {}\nflush_interval_ms = {}\nforward_concurrency = {}\n"
      "forward_timeout_ms = {}\nbackoff_initial_ms = {}\nbackoff_max_ms = {}\nshutdown_grace_ms = {}\n"
      "forward_token = {}\ndedup_ttl_s = {}\ncompress_deltas = {}\nmax_deltas_per_batch = {}\n"
      "dead_letter_after_errors = {}\ndead_letter_after_s = {}\n",
      toml_string(a.listen), toml_string(a.spool_dir), toml_string(a.dead_letter_dir), a.spool_max_bytes,
      a.max_dead_letter_bytes, toml_string(fsync_policy_name(a.fsync)), endpoints, a.batch_max_bytes, a.flush_interval_ms,
      a.forward_concurrency, a.forward_timeout_ms, a.backoff_initial_ms, a.backoff_max_ms, a.shutdown_grace_ms,
      secret(a.forward_token), a.dedup_ttl_s, a.compress_deltas, a.max_deltas_per_batch, a.dead_letter_after_errors,
      a.dead_letter_after_s);
  std::string proxy = fmt::format(
      "\n[client_proxy]\nlisten = {}\nstatsd_udp = {}\nstatsd_unix = {}\nagent = {}\nclient_id = {}\n"
      "flush_interval_ms = {}\nmax_buffered_events = {}\nmax_retry_bytes = {}\nudp_recv_buffer_bytes = {}\n"
      "forward_timeout_ms = {}\nforward_token = {}\nforward_format = {}\n",
      toml_string(p.listen), toml_string(p.statsd_udp), toml_string(p.statsd_unix), toml_string(p.agent),
      toml_string(p.client_id), p.flush_interval_ms, p.max_buffered_events, p.max_retry_bytes,
      p.udp_recv_buffer_bytes, p.forward_timeout_ms, secret(p.forward_token),
      toml_string(forward_format_name(p.forward_format)));
  return fmt::format(
      "[server]\nroles = [{}]\nlisten = {}\ndata_dir = {}\nplugins_dir = {}\nlog_level = {}\n"
      "self_tabs_interval_s = {}\n\n"
      "[store]\nfsync = {}\nsnapshot_interval_s = {}\nwal_max_queued_bytes = {}\ndedup_ttl_s = {}\ngc_interval_s = {}\n\n"
      "[http]\nmax_body_bytes = {}\nmax_header_bytes = {}\nheader_timeout_ms = {}\nbody_timeout_ms = {}\n"
      "min_body_rate = {}\nidle_timeout_ms = {}\nmax_connections = {}\n\n"
      "[ingest]\nmax_inflated_bytes = {}\nmax_inflate_ratio = {}\nfuture_clamp_s = {}\nmax_events_per_body = {}\n"
      "max_names = {}\nmax_names_per_client = {}\n\n"
      "[plugins]\ntypes = {{{}}}\n\n"
      "[auth]\ningest_token = {}\nadmin_token = {}\nquery_token = {}\n\n"
      "[prometheus]\nprefix = {}\nmax_series_per_tab = {}\nmax_series = {}\n",
      roles, toml_string(c.server.listen), toml_string(c.server.data_dir), toml_string(c.server.plugins_dir),
      toml_string(log::level_spelling(c.server.log_level)), c.server.self_tabs_interval_s, toml_string(fsync_policy_name(c.store.fsync)), c.store.snapshot_interval_s,
      c.store.wal_max_queued_bytes, c.store.dedup_ttl_s, c.store.gc_interval_s, c.http.max_body_bytes, c.http.max_header_bytes, c.http.header_timeout_ms,
      c.http.body_timeout_ms, c.http.min_body_rate, c.http.idle_timeout_ms, c.http.max_connections, c.ingest.max_inflated_bytes,
      c.ingest.max_inflate_ratio, c.ingest.future_clamp_s, c.ingest.max_events_per_body, c.ingest.max_names,
      c.ingest.max_names_per_client, type_map, secret(c.auth.ingest_token),
      secret(c.auth.admin_token), secret(c.auth.query_token), toml_string(c.prometheus.prefix),
      c.prometheus.max_series_per_tab, c.prometheus.max_series) + agent + proxy + dump_redis(c.redis);
}

}  // namespace taba
