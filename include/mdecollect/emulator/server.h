// mde-emulator: a real HTTP server that behaves like Microsoft's token endpoint, the
// Defender for Endpoint alerts API (spec: api-facts.md) and Microsoft Graph's alerts_v2
// (spec: graph.md), both over one emulated World.
//
// Graph: GET /v1.0/security/alerts_v2 (and /{id}) serve the same alerts and versions as
// /api/alerts in Graph's representation (graph_json.h), with Graph's query options
// (graph_odata.h), opaque @odata.nextLink paging, `Prefer: include-unknown-enum-members`,
// Graph's error body, its own quota (graph_quota_per_minute) and permission
// (SecurityAlert.Read.All). Tokens carry their audience: a token asked for
// https://graph.microsoft.com/.default works on Graph only, one for the Defender API on
// /api/alerts only (401 otherwise). Faults apply to both.
//
// Test-only endpoints (not part of Microsoft's API):
//   GET  /_emulator/versions  every alert version visible so far, with latest/served
//   GET  /_emulator/stats     emulated clock, requests by path and status, 429s answered
//                             (Graph's apart: graph_requests, graph_throttled, ...)
//   POST /_emulator/faults    change faults and behaviour at run time (JSON body)
//   POST /_emulator/clock     {"frozen": true|false}: stop or resume emulated time
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/emulator/world.h"

namespace mdec::emulator {

struct ClientConfig {
  std::string tenant;
  std::string client_id;
  std::string client_secret;
  bool alert_read = true;  // has the Alert.Read.All application role
  bool graph_read = true;  // has Graph's SecurityAlert.Read.All application permission
};

enum class NextLinkMode { kNone, kCorrect, kMalformed };

struct Faults {
  double error_rate = 0;                  // share of API requests answered 500/503
  int latency_ms = 0;                     // added to every API and token request
  double truncate_rate = 0;               // share of 200 bodies cut short (connection closed)
  double drop_rate = 0;                   // share of API requests whose connection drops
  double throttle_rate = 0;               // share answered 429 with Retry-After
  int throttle_retry_after_s = 2;         // the Retry-After of those
  double throttle_no_retry_after_rate = 0;  // share answered 429 without Retry-After
  bool token_outage = false;              // the token endpoint answers 503
};

struct EmulatorConfig {
  std::string host = "127.0.0.1";
  int port = 0;                           // 0: any free port
  std::vector<ClientConfig> clients;      // empty: one default client (see kDefault*)
  WorldOptions world;
  double speed = 1.0;                     // emulated seconds per real second
  std::chrono::seconds token_lifetime{3599};  // emulated
  int quota_per_minute = 100;             // per (tenant, client), real time
  int quota_per_hour = 1500;
  int graph_quota_per_minute = 150;       // Graph's, per (tenant, client), real time
  OrderMode orderby = OrderMode::kHonour;
  NextLinkMode next_link = NextLinkMode::kNone;
  Faults faults;
  std::uint64_t fault_seed = 7;
  std::string tls_cert;                   // PEM files: both set -> HTTPS
  std::string tls_key;
};

inline constexpr const char* kDefaultTenant = "00000000-0000-4000-8000-000000000001";
inline constexpr const char* kDefaultClientId = "00000000-0000-4000-8000-0000000000c1";
inline constexpr const char* kDefaultClientSecret = "emulator-secret";

// Loads a YAML config file over `config` (keys not in the file keep their value). Unknown
// keys and bad values are errors naming the key and line.
mdec::Status loadEmulatorConfig(const std::string& path, EmulatorConfig& config);
// Applies a faults/behaviour change (JSON or YAML text; the keys of the `faults:` section
// plus `orderby` and `next_link`).
mdec::Status applyFaultsText(const std::string& text, Faults& faults, OrderMode& orderby,
                       NextLinkMode& next_link);

class EmulatorServer {
 public:
  explicit EmulatorServer(EmulatorConfig config);
  ~EmulatorServer();
  EmulatorServer(const EmulatorServer&) = delete;
  EmulatorServer& operator=(const EmulatorServer&) = delete;

  // Binds (port 0 picks one) and starts serving on a background thread.
  mdec::Status start();
  // "http://127.0.0.1:PORT" (https with TLS); valid after start().
  std::string baseUrl() const;
  int port() const;
  // Stops serving; start() may not be called again.
  void stop();
  // Blocks until stop() (from another thread or a signal handler thread).
  void wait();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdec::emulator
