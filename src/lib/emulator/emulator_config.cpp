// The emulator's YAML configuration (and the JSON body of POST /_emulator/faults, which
// YAML reads too). Every problem is reported at once, each with its key and line.
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "mdecollect/core/host_port.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/units.h"
#include "mdecollect/emulator/server.h"

namespace mdec::emulator {
namespace {

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void problem(const YAML::Node& node, const std::string& what) {
    std::string where = file_;
    if (node.IsDefined() && node.Mark().line >= 0) {
      where += ":" + std::to_string(node.Mark().line + 1);
    }
    problems_.push_back(where + ": " + what);
  }

  // Keys of `map` that are not in `known` are errors.
  void onlyKeys(const YAML::Node& map, const std::string& section,
                std::initializer_list<const char*> known) {
    if (!map.IsMap()) {
      problem(map, "'" + section + "' must be a mapping");
      return;
    }
    std::set<std::string> names(known.begin(), known.end());
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      if (names.count(key) == 0) {
        problem(kv.first, "unknown key '" + (section.empty() ? key : section + "." + key) + "'");
      }
    }
  }

  template <typename T>
  void scalar(const YAML::Node& parent, const char* key, const std::string& path, T& out) {
    const YAML::Node node = parent[key];
    if (!node.IsDefined() || node.IsNull()) return;
    try {
      out = node.as<T>();
    } catch (const YAML::Exception&) {
      problem(node, "'" + path + "' has an invalid value '" + text(node) + "'");
    }
  }

  void rate(const YAML::Node& parent, const char* key, const std::string& path, double& out) {
    double v = out;
    scalar(parent, key, path, v);
    if (v < 0 || v > 1) {
      problem(parent[key], "'" + path + "' must be between 0 and 1");
      return;
    }
    out = v;
  }

  template <typename Duration>
  void duration(const YAML::Node& parent, const char* key, const std::string& path, Duration& out) {
    const YAML::Node node = parent[key];
    if (!node.IsDefined() || node.IsNull()) return;
    auto d = core::parseDuration(text(node));
    if (!d) {
      problem(node, "'" + path + "': " + d.error().message());
      return;
    }
    out = std::chrono::duration_cast<Duration>(*d);
  }

  // A map of tenant id to duration ({TENANT: 20s}); null or {} clears it.
  template <typename Duration>
  void tenantDurations(const YAML::Node& parent, const char* key, const std::string& path,
                       std::map<std::string, Duration>& out) {
    const YAML::Node node = parent[key];
    if (!node.IsDefined()) return;
    if (node.IsNull()) {
      out.clear();
      return;
    }
    if (!node.IsMap()) {
      problem(node, "'" + path + "' must be a mapping of tenant id to duration");
      return;
    }
    std::map<std::string, Duration> read;
    for (const auto& kv : node) {
      const std::string tenant = text(kv.first);
      auto d = core::parseDuration(text(kv.second));
      if (!d) {
        problem(kv.second, "'" + path + "." + tenant + "': " + d.error().message());
        continue;
      }
      read[tenant] = std::chrono::duration_cast<Duration>(*d);
    }
    out = std::move(read);
  }

  static std::string text(const YAML::Node& node) {
    return node.IsScalar() ? node.Scalar() : std::string("<not a scalar>");
  }

  mdec::Status finish() {
    if (problems_.empty()) return okStatus();
    std::string all;
    for (const auto& p : problems_) all += (all.empty() ? "" : "\n") + p;
    return Error(ErrorCode::kInvalidArgument, all);
  }

 private:
  std::string file_;
  std::vector<std::string> problems_;
};

void readFaults(Reader& r, const YAML::Node& node, const std::string& section, Faults& f) {
  r.onlyKeys(node, section,
             {"error_rate", "latency_ms", "truncate_rate", "drop_rate", "throttle_rate",
              "throttle_retry_after_s", "throttle_no_retry_after_rate", "token_outage",
              "future_timestamps", "pretty_json", "foreign_next_link", "throttle_retry_after",
              "incidents_expand_fail_above", "incidents_item_fail", "slow_tenants",
              "throttled_tenants", "orderby", "next_link"});
  if (!node.IsMap()) return;
  const std::string p = section.empty() ? "" : section + ".";
  r.rate(node, "error_rate", p + "error_rate", f.error_rate);
  r.scalar(node, "latency_ms", p + "latency_ms", f.latency_ms);
  r.rate(node, "truncate_rate", p + "truncate_rate", f.truncate_rate);
  r.rate(node, "drop_rate", p + "drop_rate", f.drop_rate);
  r.rate(node, "throttle_rate", p + "throttle_rate", f.throttle_rate);
  r.scalar(node, "throttle_retry_after_s", p + "throttle_retry_after_s", f.throttle_retry_after_s);
  r.rate(node, "throttle_no_retry_after_rate", p + "throttle_no_retry_after_rate",
         f.throttle_no_retry_after_rate);
  r.scalar(node, "token_outage", p + "token_outage", f.token_outage);
  r.rate(node, "future_timestamps", p + "future_timestamps", f.future_timestamps);
  r.scalar(node, "pretty_json", p + "pretty_json", f.pretty_json);
  r.rate(node, "foreign_next_link", p + "foreign_next_link", f.foreign_next_link);
  if (const YAML::Node n = node["incidents_expand_fail_above"]; n.IsDefined() && !n.IsNull()) {
    long long above = 0;
    try {
      above = n.as<long long>();
    } catch (const YAML::Exception&) {
      above = -1;
    }
    if (above < 0) {
      r.problem(n, "'" + p + "incidents_expand_fail_above' must be a whole number of alerts >= 0 " +
                       "(0: off), not '" + Reader::text(n) + "'");
    } else {
      f.incidents_expand_fail_above = static_cast<std::size_t>(above);
    }
  }
  r.scalar(node, "incidents_item_fail", p + "incidents_item_fail", f.incidents_item_fail);
  r.tenantDurations(node, "slow_tenants", p + "slow_tenants", f.slow_tenants);
  r.tenantDurations(node, "throttled_tenants", p + "throttled_tenants", f.throttled_tenants);
  if (const YAML::Node text = node["throttle_retry_after"]; text.IsDefined()) {
    if (text.IsNull()) {
      f.throttle_retry_after.clear();
    } else if (!text.IsScalar()) {
      r.problem(text, "'" + p + "throttle_retry_after' must be text (a Retry-After value)");
    } else if (!isRetryAfterText(text.Scalar())) {
      r.problem(text, "'" + p +
                          "throttle_retry_after' must be printable ASCII of at most 200 "
                          "characters without leading or trailing spaces, not '" +
                          text.Scalar() + "'");
    } else {
      f.throttle_retry_after = text.Scalar();
    }
  }
}

void readModes(Reader& r, const YAML::Node& node, OrderMode& orderby, NextLinkMode& next_link) {
  if (node["orderby"].IsDefined()) {
    const std::string v = Reader::text(node["orderby"]);
    if (v == "honour" || v == "honor")
      orderby = OrderMode::kHonour;
    else if (v == "ignore")
      orderby = OrderMode::kIgnore;
    else if (v == "reject")
      orderby = OrderMode::kReject;
    else
      r.problem(node["orderby"], "'orderby' must be honour, ignore or reject, not '" + v + "'");
  }
  if (node["next_link"].IsDefined()) {
    const std::string v = Reader::text(node["next_link"]);
    if (v == "none")
      next_link = NextLinkMode::kNone;
    else if (v == "correct")
      next_link = NextLinkMode::kCorrect;
    else if (v == "malformed")
      next_link = NextLinkMode::kMalformed;
    else
      r.problem(node["next_link"],
                "'next_link' must be none, correct or malformed, not '" + v + "'");
  }
}

// A certificate file named by `key` of `node` (a path), loaded; nullopt (and a problem naming
// the key) when it cannot be.
std::optional<RegisteredCertificate> readCertificate(Reader& r, const YAML::Node& node,
                                                     const char* key, const std::string& path) {
  const YAML::Node file = node[key];
  if (!file.IsScalar() || file.Scalar().empty()) {
    r.problem(file, "'" + path + "' must be the path of a PEM certificate");
    return std::nullopt;
  }
  auto cert = loadCertificate(file.Scalar());
  if (!cert) {
    r.problem(file, "'" + path + "': " + cert.error().message());
    return std::nullopt;
  }
  return std::move(*cert);
}

// tenants[].client_certificate: a PEM X.509 certificate (RSA) registered for the client; its
// assertions are signed with the certificate's key (client_assertion.h).
void readClientCertificate(Reader& r, const YAML::Node& t, const std::string& section,
                           ClientConfig& c) {
  if (!t.IsMap() || !t["client_certificate"].IsDefined()) return;
  c.certificate = readCertificate(r, t, "client_certificate", section + ".client_certificate");
}

// tenants[].federated: {issuer, subject, audience (default api://AzureADTokenExchange),
// issuer_certificate}: a federated identity credential.
void readFederated(Reader& r, const YAML::Node& t, const std::string& section, ClientConfig& c) {
  if (!t.IsMap() || !t["federated"].IsDefined()) return;
  const YAML::Node f = t["federated"];
  const std::string p = section + ".federated";
  r.onlyKeys(f, p, {"issuer", "subject", "audience", "issuer_certificate"});
  if (!f.IsMap()) return;
  FederatedCredential fed;
  bool ok = true;
  for (const auto& [key, out] :
       {std::pair{"issuer", &fed.issuer}, std::pair{"subject", &fed.subject},
        std::pair{"audience", &fed.audience}}) {
    const YAML::Node n = f[key];
    if (!n.IsDefined() && std::string_view(key) == "audience") continue;
    if (!n.IsDefined() || !n.IsScalar() || n.Scalar().empty()) {
      r.problem(n.IsDefined() ? n : f, "'" + p + "." + key + "' must be given, as text");
      ok = false;
      continue;
    }
    *out = n.Scalar();
  }
  if (ok && fed.issuer.rfind("https://", 0) != 0 && fed.issuer.rfind("http://", 0) != 0) {
    r.problem(f["issuer"],
              "'" + p + ".issuer' must be a URL (https://...), not '" + fed.issuer + "'");
    ok = false;
  }
  if (!f["issuer_certificate"].IsDefined()) {
    r.problem(f, "'" + p + ".issuer_certificate' must be given (the issuer's PEM certificate)");
    return;
  }
  auto cert = readCertificate(r, f, "issuer_certificate", p + ".issuer_certificate");
  if (!cert || !ok) return;
  fed.issuer_certificate = std::move(*cert);
  c.federated = std::move(fed);
}

}  // namespace

std::optional<Cloud> cloudNamed(std::string_view name) {
  for (Cloud c : {Cloud::kGlobal, Cloud::kUsGov, Cloud::kUsGovHigh, Cloud::kDod, Cloud::kChina}) {
    if (name == cloudName(c)) return c;
  }
  return std::nullopt;
}

const char* cloudName(Cloud cloud) {
  switch (cloud) {
    case Cloud::kGlobal:
      return "global";
    case Cloud::kUsGov:
      return "usgov";
    case Cloud::kUsGovHigh:
      return "usgov_high";
    case Cloud::kDod:
      return "dod";
    case Cloud::kChina:
      return "china";
  }
  return "global";
}

mdec::Status loadEmulatorConfig(const std::string& path, EmulatorConfig& config) {
  std::ifstream in(path);
  if (!in) return Error(ErrorCode::kNotFound, "cannot open the config file '" + path + "'");
  YAML::Node root;
  try {
    root = YAML::Load(in);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument,
                 path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return okStatus();
  Reader r(path);
  r.onlyKeys(root, "",
             {"listen", "seed", "alerts", "speed", "start", "history", "token_lifetime", "tenants",
              "tenant_count", "threads", "world", "quota", "orderby", "next_link", "faults",
              "fault_seed", "tls", "incident_permission", "cloud"});
  if (!root.IsMap()) return r.finish();

  if (root["listen"].IsDefined()) {
    const std::string listen = Reader::text(root["listen"]);
    if (auto address = core::parseHostPort(listen); !address) {
      r.problem(root["listen"],
                "'listen' must be HOST:PORT, not '" + listen + "': " + address.error().message());
    } else {
      config.host = std::move(address->host);
      config.port = address->port;
    }
  }
  r.scalar(root, "seed", "seed", config.world.seed);
  r.scalar(root, "alerts", "alerts", config.world.initial_alerts);
  r.scalar(root, "speed", "speed", config.speed);
  if (config.speed <= 0) r.problem(root["speed"], "'speed' must be positive");
  if (root["start"].IsDefined()) {
    auto t = core::parseIsoDateTime(Reader::text(root["start"]));
    if (!t) {
      r.problem(root["start"], "'start' is not an ISO 8601 date-time");
    } else {
      config.world.start =
          Timestamp{} + std::chrono::seconds(t->seconds) + std::chrono::nanoseconds(t->nanos);
    }
  }
  r.duration(root, "history", "history", config.world.history);
  r.duration(root, "token_lifetime", "token_lifetime", config.token_lifetime);
  r.scalar(root, "fault_seed", "fault_seed", config.fault_seed);
  // false: no client has SecurityIncident.Read.All (incidents answer 403;
  // --no-incident-permission).
  r.scalar(root, "incident_permission", "incident_permission", config.incident_permission);
  // cloud: the national cloud whose resources the token endpoint issues tokens for (server.h).
  if (const YAML::Node n = root["cloud"]; n.IsDefined()) {
    if (auto cloud = cloudNamed(Reader::text(n))) {
      config.cloud = *cloud;
    } else {
      r.problem(n, "'cloud' must be global, usgov, usgov_high, dod or china, not '" +
                       Reader::text(n) + "'");
    }
  }

  if (const YAML::Node tenants = root["tenants"]; tenants.IsDefined()) {
    if (!tenants.IsSequence()) {
      r.problem(tenants, "'tenants' must be a list");
    } else {
      config.clients.clear();
      for (std::size_t i = 0; i < tenants.size(); ++i) {
        const YAML::Node t = tenants[i];
        const std::string section = "tenants[" + std::to_string(i) + "]";
        r.onlyKeys(
            t, section,
            {"tenant", "client_id", "client_secret", "client_certificate", "federated", "roles"});
        ClientConfig c;
        r.scalar(t, "tenant", section + ".tenant", c.tenant);
        r.scalar(t, "client_id", section + ".client_id", c.client_id);
        r.scalar(t, "client_secret", section + ".client_secret", c.client_secret);
        readClientCertificate(r, t, section, c);
        readFederated(r, t, section, c);
        if (c.tenant.empty() || c.client_id.empty()) {
          r.problem(t, "'" + section + "' needs tenant and client_id");
        }
        if (t.IsMap() && !t["client_secret"].IsDefined() && !t["client_certificate"].IsDefined() &&
            !t["federated"].IsDefined()) {
          r.problem(t, "'" + section +
                           "' needs a credential: client_secret, client_certificate or federated");
        } else if (t["client_secret"].IsDefined() && c.client_secret.empty()) {
          r.problem(t["client_secret"], "'" + section + ".client_secret' must not be empty");
        }
        // roles: the application roles granted; without the key, every role. Alert.Read.All
        // (or Alert.ReadWrite.All) opens /api/alerts, Graph's SecurityAlert.Read.All (or
        // SecurityAlert.ReadWrite.All) opens /v1.0/security/alerts_v2, SecurityIncident.Read.All
        // (or SecurityIncident.ReadWrite.All) /v1.0/security/incidents.
        if (t["roles"].IsDefined()) {
          c.alert_read = false;
          c.graph_read = false;
          c.incident_read = false;
          if (!t["roles"].IsSequence()) {
            r.problem(t["roles"], "'" + section + ".roles' must be a list");
          } else {
            for (const auto& role : t["roles"]) {
              const std::string name = Reader::text(role);
              c.alert_read =
                  c.alert_read || name == "Alert.Read.All" || name == "Alert.ReadWrite.All";
              c.graph_read = c.graph_read || name == "SecurityAlert.Read.All" ||
                             name == "SecurityAlert.ReadWrite.All";
              c.incident_read = c.incident_read || name == "SecurityIncident.Read.All" ||
                                name == "SecurityIncident.ReadWrite.All";
            }
          }
        }
        config.clients.push_back(c);
      }
    }
  }
  // tenant_count: N generated tenants with the alerts dealt out (server.h); threads: the HTTP
  // workers.
  if (const YAML::Node n = root["tenant_count"]; n.IsDefined() && !n.IsNull()) {
    long long count = 0;
    try {
      count = n.as<long long>();
    } catch (const YAML::Exception&) {
      count = -1;
    }
    if (count < 1 || count > 1000000) {
      r.problem(n, "'tenant_count' must be a whole number from 1 to 1000000, not '" +
                       Reader::text(n) + "'");
    } else if (root["tenants"].IsDefined()) {
      r.problem(n, "'tenant_count' and 'tenants' cannot both be given");
    } else {
      config.tenant_count = static_cast<std::size_t>(count);
    }
  }
  r.scalar(root, "threads", "threads", config.threads);
  if (config.threads < 0 || config.threads > 4096) {
    r.problem(root["threads"], "'threads' must be from 1 to 4096 (0: the default)");
  }
  if (const YAML::Node w = root["world"]; w.IsDefined()) {
    r.onlyKeys(w, "world",
               {"new_alerts_per_hour", "updates_per_hour", "late_fraction", "late_max"});
    r.scalar(w, "new_alerts_per_hour", "world.new_alerts_per_hour",
             config.world.new_alerts_per_hour);
    r.scalar(w, "updates_per_hour", "world.updates_per_hour", config.world.updates_per_hour);
    r.rate(w, "late_fraction", "world.late_fraction", config.world.late_fraction);
    r.duration(w, "late_max", "world.late_max", config.world.late_max);
  }
  if (const YAML::Node q = root["quota"]; q.IsDefined()) {
    r.onlyKeys(q, "quota", {"per_minute", "per_hour", "graph_per_minute"});
    r.scalar(q, "per_minute", "quota.per_minute", config.quota_per_minute);
    r.scalar(q, "per_hour", "quota.per_hour", config.quota_per_hour);
    r.scalar(q, "graph_per_minute", "quota.graph_per_minute", config.graph_quota_per_minute);
  }
  readModes(r, root, config.orderby, config.next_link);
  if (const YAML::Node f = root["faults"]; f.IsDefined()) {
    readFaults(r, f, "faults", config.faults);
    if (f.IsMap()) readModes(r, f, config.orderby, config.next_link);
  }
  if (const YAML::Node t = root["tls"]; t.IsDefined()) {
    r.onlyKeys(t, "tls", {"cert", "key"});
    r.scalar(t, "cert", "tls.cert", config.tls_cert);
    r.scalar(t, "key", "tls.key", config.tls_key);
  }
  return r.finish();
}

mdec::Status applyFaultsText(const std::string& text, Faults& faults, OrderMode& orderby,
                             NextLinkMode& next_link) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Error(ErrorCode::kInvalidArgument, "the faults body is not JSON: " + e.msg);
  }
  Reader r("faults");
  if (root.IsNull()) return okStatus();
  readFaults(r, root, "", faults);
  if (root.IsMap()) readModes(r, root, orderby, next_link);
  return r.finish();
}

}  // namespace mdec::emulator
