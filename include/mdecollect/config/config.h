// The collector's configuration: one YAML file decoded in one place into these structs.
// Unknown keys are errors; all problems are reported at once with file and line; values
// may be ${ENV_VAR}; secrets may come from files (*_file) and print as ***.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/result.h"

namespace mdec::config {

// A secret: printed, logged or formatted, it is always ***.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  static constexpr const char* kMask = "***";

 private:
  std::string value_;
};

// Streams (gtest, logs) see *** too.
std::ostream& operator<<(std::ostream& out, const Secret& secret);

struct TlsConfig {
  bool verify = true;   // ssl.verification_mode: full (default) or none
  std::string ca_file;  // ssl.certificate_authorities (one PEM file)
};

enum class SourceType { kMde, kFile, kGraph, kGraphIncidents };

// "mde", "file", "graph", "graph_incidents": as the config file spells it.
const char* sourceTypeName(SourceType type);

struct SourceConfig {
  std::string name;
  SourceType type = SourceType::kMde;
  int line = 0;  // where it is defined, for messages

  // type: mde and graph. One of three credentials: a client secret, a certificate (its key
  // signs a client assertion), or a federated assertion a platform writes to a file.
  std::string tenant_id;
  std::string client_id;
  Secret client_secret;                 // client_secret or client_secret_file
  std::string client_secret_file;       // the path, when the secret was read from a file
  std::string client_certificate_file;  // PEM certificate (and the key, when key_file is "")
  std::string client_key_file;          // PEM private key
  Secret client_key_password;           // client_key_password or client_key_password_file
  std::string client_key_password_file;
  std::string client_assertion_algorithm = "PS256";  // PS256 or RS256
  std::string client_assertion_file;  // read before each token request (workload identity)
  // global, usgov, usgov_high, dod or china: the defaults of login_url, api_url,
  // azure_resource and scopes (cloudEndpoints); keys set in the file win.
  std::string cloud = "global";
  std::vector<std::pair<std::string, std::string>> token_params;  // more token request fields
  std::string login_url = "https://login.microsoftonline.com";
  std::string token_url;  // default oauth2/token, or oauth2/v2.0/token with scopes
                          // (loadConfig stores the effective value)
  std::string azure_resource = "https://api.securitycenter.microsoft.com";
  std::vector<std::string> scopes;  // set: the v2 token flow
  std::string api_url = "https://api.security.microsoft.com";
  std::chrono::milliseconds interval{5 * 60 * 1000};
  std::chrono::milliseconds initial_interval{24 * 3600 * 1000};
  std::chrono::milliseconds late_arrival_window{10 * 60 * 1000};
  std::size_t page_size = 1000;  // 1..10000
  std::string proxy_url;
  TlsConfig ssl;
  int requests_per_minute = 100;  // client-side pacing (the API's quota)
  int requests_per_hour = 1500;
  std::chrono::milliseconds request_timeout{60 * 1000};

  // type: graph (with the mde keys; its defaults differ: graph.md)
  std::vector<std::string> service_sources = {"microsoftDefenderForEndpoint"};  // []: all

  // type: graph_incidents (with the graph keys but service_sources; incidents.md §2)
  bool include_alerts = true;   // $expand=alerts, one document per incident x alert
  bool alerts_fallback = true;  // an expanded listing that fails: each incident's own GET
  std::chrono::milliseconds alerts_give_up_after{3600 * 1000};
  bool preserve_duplicate_custom_fields = false;
  bool include_unknown_enum_members = true;  // Prefer: include-unknown-enum-members

  // type: file
  std::vector<std::string> paths;  // globs
  std::string format = "mde";      // mde (alerts/pages), graph (alerts_v2), graph_incidents

  // every type
  std::optional<std::vector<std::string>> tags;  // unset: the default tags
  bool preserve_original_event = false;
  std::string data_stream_namespace = "default";  // key: namespace
};

enum class Credential { kSecret, kCertificate, kFederated };

// Which credential a (valid) API source signs in with.
Credential credentialOf(const SourceConfig& source);

// A national cloud's hosts, from Microsoft's published tables (the README cites them).
struct CloudEndpoints {
  const char* name;          // as `cloud:` spells it
  const char* login_url;     // Microsoft Entra ID
  const char* mde_api_url;   // Defender for Endpoint API; "" where Microsoft publishes none
  const char* mde_resource;  // its v1 `resource` (and v2 scope prefix)
  const char* graph_url;     // Microsoft Graph (also the Graph scope's prefix)
};

// The cloud named `name`, or nullptr.
const CloudEndpoints* cloudEndpoints(std::string_view name);

// Whether a source's documents are Graph incidents (m365_defender.incident): a graph_incidents
// source, or a file source of format graph_incidents.
bool collectsIncidents(const SourceConfig& source);

// The documents' tags when the source sets none.
std::vector<std::string> defaultTags(const SourceConfig& source);

struct FileOutputConfig {
  bool enabled = true;  // the default output when none is configured
  std::string path;     // default <state_dir>/output
  std::uint64_t rotate_bytes = 100ull << 20;
  int keep_files = 7;
};

struct StdoutOutputConfig {
  bool enabled = false;
};

// outputs.elasticsearch (outputs.md): bulk `create` into the data stream
// logs-microsoft_defender_endpoint.log-<namespace>.
struct ElasticsearchOutputConfig {
  bool enabled = false;  // true when the section is present (enabled: false)
  int line = 0;
  std::vector<std::string> hosts;  // URLs, tried in turn on connection failure
  Secret api_key;                  // api_key or api_key_file: "id:key" or its base64
  std::string api_key_file;
  std::string username;
  Secret password;  // password or password_file
  std::string password_file;
  TlsConfig ssl;
  std::string proxy_url;
  bool compression = true;  // gzip request bodies
  std::uint64_t bulk_max_bytes = 5ull << 20;
  std::size_t bulk_max_docs = 1000;
  std::size_t bulk_in_flight = 4;  // `_bulk` requests sent concurrently
  std::chrono::milliseconds timeout{90 * 1000};
  std::string ilm_policy;  // set: the template's index.lifecycle.name
};

struct LoggingConfig {
  std::string level = "info";   // debug, info, warn, error
  std::string format = "text";  // text or json
};

// http: the monitoring endpoint (/metrics, /health).
struct HttpConfig {
  bool enabled = true;
  std::string listen = "127.0.0.1:5066";  // host:port (port 0: any free port)
  std::string host = "127.0.0.1";         // listen, split (loadConfig sets both)
  int port = 5066;
};

// tracing: every HTTP request and response of the sources and outputs, one NDJSON line
// each, secrets redacted, bodies cut (off by default).
struct TracingConfig {
  bool enabled = false;
  std::string path;                     // default <state_dir>/trace/requests.ndjson
  std::uint64_t max_body_bytes = 4096;  // each body is cut to this size
  std::uint64_t rotate_bytes = 10ull << 20;
  int keep_files = 3;  // rotated files kept besides the current one
};

// shard: this replica collects only the sources whose name hashes to `index` among `count`
// (pipeline/shard.h). index `auto`: from MDEC_SHARD_INDEX, or else the trailing -N of the
// host name (a Kubernetes StatefulSet pod's ordinal), resolved when the collector starts.
struct ShardConfig {
  bool index_auto = false;
  int index = 0;
  int count = 1;  // 1: no sharding
  int line = 0;   // of shard.index, for messages
};

struct Config {
  std::string file;  // the path it was loaded from
  std::string state_dir = "./data";
  std::uint64_t max_spool_bytes = 256ull << 20;  // the outbox bound
  int workers = 0;  // threads that run the polls; 0: two per core (2 to 16)
  std::vector<SourceConfig> sources;
  FileOutputConfig file_output;             // outputs.file
  StdoutOutputConfig stdout_output;         // outputs.stdout
  ElasticsearchOutputConfig elasticsearch;  // outputs.elasticsearch
  LoggingConfig logging;
  HttpConfig http;        // http
  TracingConfig tracing;  // tracing
  ShardConfig shard;      // shard
};

// Loads and validates; the error message lists every problem, one per line, each as
// "FILE:LINE: key: what is wrong".
Result<Config> loadConfig(const std::string& path);

// The effective configuration as YAML, every key with its value (defaults included),
// secrets as ***.
std::string renderConfig(const Config& config);

// The configuration reference as Markdown tables (key, type, default, meaning), made from the
// same key declarations the loader and renderConfig use. The README's "Configuration
// reference" holds it between generated-region markers; a unit test keeps the two equal.
std::string referenceMarkdown();

}  // namespace mdec::config
