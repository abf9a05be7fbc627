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
// Graph incidents: GET /v1.0/security/incidents (and /{id}) serve the world's alerts grouped
// by incidentId (world.h, "Incidents"), with alerts_v2's options and paging (graph_odata.h:
// $top at most 50, else 400; $expand=alerts embeds the alerts exactly as alerts_v2 serves
// them), the same Graph quota as alerts_v2 (one count per client for both) and their own
// permission (SecurityIncident.Read.All; EmulatorConfig::incident_permission).
//
// Client credentials (the YAML `tenants:` list; client_assertion.h beside the sources has the
// checks and their sources). Each client has at least one of:
//   client_secret          the form's client_secret must equal it
//   client_certificate     path of a PEM X.509 certificate with an RSA key, read at load: the
//                          client authenticates with client_assertion_type=urn:ietf:params:
//                          oauth:client-assertion-type:jwt-bearer and client_assertion=<JWT>
//                          (v1 and v2 endpoints): alg PS256 (RSA-PSS, SHA-256, MGF1-SHA-256,
//                          salt 32) or RS256, typ JWT if given, x5t#S256 = base64url SHA-256 of
//                          the certificate's DER (or the legacy x5t, SHA-1); claims iss = sub =
//                          the client id, aud = the exact URL the request came to
//                          (scheme://Host/{tenant}/oauth2/token or .../oauth2/v2.0/token), exp,
//                          nbf (optional), jti; exp and nbf against the wall clock with 5
//                          minutes of skew; a jti is accepted once while its assertion is valid
//   federated              {issuer, subject, audience (default api://AzureADTokenExchange),
//                          issuer_certificate: PEM path}: a workload identity federation
//                          credential: the assertion is the external issuer's RS256 JWT with
//                          iss = issuer, sub = subject, audience among aud, exp (and nbf) in time
//                          (5 minutes of skew); it may be presented again until it expires
// With an assertion, client_id may be left out (the assertion's iss is the client id). Refusals
// (status, error, AADSTS code): malformed JWT 400 invalid_request 50027; a required claim
// missing 400 invalid_request 90014; alg not accepted 401 invalid_client 5002738; no x5t#S256,
// x5t or kid 401 invalid_client 5002723; thumbprint not registered or signature not verifying
// 401 invalid_client 700027; iss or sub not the client 401 invalid_client 700021; aud not this
// endpoint 401 invalid_client 700023; exp/nbf 401 invalid_client 700024; a replayed jti 401
// invalid_client 50013; a federated issuer, subject or audience not matching 400
// invalid_request 70021; unknown client 400 unauthorized_client 700016; client_assertion without
// client_assertion_type (or the reverse) 400 invalid_request 900144; another assertion type, or
// a secret and an assertion together, 400 invalid_request 90023.
//
// Clouds (`cloud:` or --cloud; default global): the resources (v1 `resource`) and scopes (v2,
// `<resource>/.default`) tokens are issued for; others answer 500011 (v1) or 70011 (v2):
//   global       Defender https://api.securitycenter.microsoft.com,
//                https://api.securitycenter.windows.com,
//                https://securitycenter.onmicrosoft.com/windowsatpservice,
//                https://api.security.microsoft.com; Graph https://graph.microsoft.com
//   usgov        (GCC) Defender https://api-gcc.securitycenter.microsoft.us; Graph
//                https://graph.microsoft.com
//   usgov_high   (GCC High) Defender https://api-gov.securitycenter.microsoft.us; Graph
//                https://graph.microsoft.us
//   dod          Defender https://api-gov.securitycenter.microsoft.us; Graph
//                https://dod-graph.microsoft.us
//   china        (21Vianet) no Defender; Graph https://microsoftgraph.chinacloudapi.cn
// Graph's application id 00000003-0000-0000-c000-000000000000 is accepted in every cloud.
//
// Test-only endpoints (not part of Microsoft's API):
//   GET  /_emulator/versions  every alert version visible so far, with latest/served/future
//                             (a future-stamped version with the time it is served with);
//                             ?kind=incidents: every incident version, {"id",
//                             "lastUpdateDateTime" (as served), "alerts" (its alerts at that
//                             version), "latest", "served"}; ?kind=alerts: the default
//   GET  /_emulator/stats     emulated clock, requests by path and status, 429s answered
//                             (Graph's apart: graph_requests, alerts_v2 and incidents,
//                             graph_throttled, ...), and what
//                             the hostile faults served: future_versions_served,
//                             pretty_bodies, foreign_links_served, foreign_requests,
//                             foreign_requests_with_token, foreign_base, throttled_absurd
//   GET  /_emulator/faults    the faults and modes in force (JSON)
//   POST /_emulator/faults    change faults and behaviour at run time (JSON body)
//   POST /_emulator/clock     {"frozen": true|false}: stop or resume emulated time
//   GET  /_emulator/requests  the request log: {"requests": [{"at", "done", "tenant",
//                             "path", "status"}], "now", "logged", "dropped"}; one entry per token
//                             and API request, in order of receipt: "at" when its handler
//                             began (real seconds since the emulator started, before any
//                             latency or slow-tenant delay), "done" when its answer was
//                             ready, "tenant" the token's (API) or the path's (token
//                             endpoint) tenant, "" when unknown, "path" as in stats
//                             ("GET /api/alerts", "POST /{tenant}/oauth2/v2.0/token", ...),
//                             and for a token issued to a client assertion "assertion_jti" (its
//                             jti: an identifier, not the credential).
//                             ?tenant=T: that tenant's only; ?since=K: entries from the K-th
//                             on (K counts every entry logged, "logged" is the next K). At most
//                             kRequestLogMax entries are kept; later ones only count in
//                             "dropped".
// Their bodies are always compact JSON (pretty_json is for the API's bodies).
//
// Many tenants (tenant_count: N, or --tenant-count N): N clients are generated, client k
// (k = 1..N; <k12>: k in 12 decimal digits, zero-padded):
//   tenant        00000000-0000-4000-a000-<k12>
//   client id     00000000-0000-4000-c000-<k12>
//   client secret tenant-<k>-secret                      (k without leading zeros)
// (generatedTenant() and friends below), and the world's alerts are dealt out among them
// (WorldOptions::partitions): alert number i (0-based, in creation order) belongs to tenant
// k = i % N + 1, so `alerts: 20*N` gives every tenant 20. A tenant sees only its own
// alerts on /api/alerts (and /{id}) and on Graph's alerts_v2 (and /{id}); incidents are not
// divided. /_emulator/versions then gives every version's "tenant" (and ?tenant=T keeps
// that tenant's only). Without tenant_count nothing changes. `tenants:` cannot be given
// with it. `threads: N` (--threads) sets the HTTP worker threads (default: cpp-httplib's,
// at least 8): a keep-alive connection holds a worker while it idles (up to one second),
// so thousands of clients need more.
//
// Faults (all off by default; the YAML `faults:` section and POST /_emulator/faults take the
// same keys; random choices come from fault_seed, so a run is repeatable):
//   error_rate, truncate_rate, drop_rate, throttle_rate, throttle_no_retry_after_rate
//                          shares (0..1) of API requests answered 500/503, cut short,
//                          dropped, 429 with Retry-After, 429 without it
//   latency_ms             added to every API and token request
//   throttle_retry_after_s the Retry-After (seconds) of throttle_rate's 429s
//   token_outage           the token endpoint answers 503
// Per tenant (maps of tenant id to a duration; {} clears):
//   slow_tenants           {TENANT: 20s}: that tenant's API requests (/api/alerts and
//                          Graph, not the token endpoint) are answered that long after they
//                          arrive (the world is queried after the wait)
//   throttled_tenants      {TENANT: 60s}: a window that opens at that tenant's first API
//                          request: every API request of the tenant within it answers 429
//                          with Retry-After = the seconds left in the window (rounded up,
//                          at least 1); counted in throttled / graph_throttled, and a
//                          request before that Retry-After passed in early_retries
// Incidents:
//   incidents_expand_fail_above  N > 0: a list request with $expand=alerts whose page holds an
//                          incident of more than N alerts answers 500 InternalServerError,
//                          every time (elastic/integrations #18144); /{id}?$expand=alerts
//                          still works. 0: off
//   incidents_item_fail    true: GET /v1.0/security/incidents/{id} answers 500 (after auth
//                          and quota), so a client's give-up path can be tested
// A hostile API's tricks:
//   future_timestamps      a share (0..1) of alert versions is stamped with lastUpdateTime
//                          (Graph: lastUpdateDateTime) 2100-01-01T00:00:00Z plus n seconds,
//                          n the version's number within its alert (world.h). A version's
//                          stamp never changes: $filter and $orderby see the stamped time,
//                          /_emulator/versions reports it (and "future": true). Drawn when a
//                          version is created: a run-time change applies to versions created
//                          from then on. Stats: future_versions_served (distinct versions).
//   pretty_json            true: every JSON body of the API (alerts and Graph pages, one
//                          alert, token answers, error bodies) is pretty-printed: newlines,
//                          two-space indentation, `"key": value`. The same JSON otherwise
//                          (prettyJson below). Stats: pretty_bodies.
//   foreign_next_link      a share (0..1) of Graph's @odata.nextLinks name another host,
//                          http://127.0.0.2:PORT, with the path and query the correct link
//                          has. PORT is a second listener the emulator opens on 127.0.0.2
//                          (when the rate is first set above 0) that answers every request
//                          404 and counts it. Stats: foreign_links_served (links sent in
//                          bodies delivered whole), foreign_requests, and
//                          foreign_requests_with_token (those with an Authorization header:
//                          a leaked token); foreign_base is the listener's URL ("" if none).
//   throttle_retry_after   text: when set, throttle_rate's 429s carry it verbatim as their
//                          Retry-After header (overriding throttle_retry_after_s), e.g.
//                          "99999999999999999999", "-5", "soon" or
//                          "Fri, 31 Dec 9999 23:59:59 GMT". Printable ASCII, at most 200
//                          characters, no leading or trailing space; "" (or null) unsets it.
//                          Such a 429 does not count the client's next request as an early
//                          retry. Stats: throttled_absurd (also counted in throttled or
//                          graph_throttled).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/emulator/world.h"

namespace mdec::emulator {

// A certificate registered with the emulated identity platform: a client's (client_certificate)
// or a federated issuer's signing certificate (federated.issuer_certificate). Plain data, read
// once by loadCertificate(); verifying an assertion needs nothing else.
struct RegisteredCertificate {
  std::string path;            // the PEM file it was read from
  std::string sha256;          // SHA-256 of its DER encoding (32 bytes): x5t#S256
  std::string sha1;            // SHA-1 of its DER encoding (20 bytes): the legacy x5t
  std::string public_key_der;  // its RSA public key (SubjectPublicKeyInfo, DER)
};

// The first certificate of a PEM file, which must hold an RSA key. Errors: the file cannot be
// read (kNotFound), is not a PEM X.509 certificate or its key is not RSA (kInvalidArgument).
mdec::Result<RegisteredCertificate> loadCertificate(const std::string& path);

// A federated identity credential (workload identity federation): tokens of an external issuer
// whose iss, sub and aud match are accepted as the client's assertion.
inline constexpr const char* kDefaultFederatedAudience = "api://AzureADTokenExchange";
struct FederatedCredential {
  std::string issuer;                                // iss, exactly
  std::string subject;                               // sub, exactly
  std::string audience = kDefaultFederatedAudience;  // one of aud
  RegisteredCertificate issuer_certificate;          // verifies the issuer's RS256 signatures
};

struct ClientConfig {
  std::string tenant;
  std::string client_id;
  std::string client_secret;  // "": no secret (a certificate or federated client)
  bool alert_read = true;     // has the Alert.Read.All application role
  bool graph_read = true;     // has Graph's SecurityAlert.Read.All application permission
  bool incident_read = true;  // has Graph's SecurityIncident.Read.All application permission
  std::optional<RegisteredCertificate> certificate = std::nullopt;  // client_certificate
  std::optional<FederatedCredential> federated = std::nullopt;      // federated
};

// The national cloud whose resource identifiers the token endpoint accepts (`cloud:`).
enum class Cloud { kGlobal, kUsGov, kUsGovHigh, kDod, kChina };
// "global", "usgov", "usgov_high", "dod", "china"; nullopt for any other name.
std::optional<Cloud> cloudNamed(std::string_view name);
const char* cloudName(Cloud cloud);

enum class NextLinkMode { kNone, kCorrect, kMalformed };

// The faults (see the list at the top of this file).
struct Faults {
  double error_rate = 0;                        // share of API requests answered 500/503
  int latency_ms = 0;                           // added to every API and token request
  double truncate_rate = 0;                     // share of 200 bodies cut short (connection closed)
  double drop_rate = 0;                         // share of API requests whose connection drops
  double throttle_rate = 0;                     // share answered 429 with Retry-After
  int throttle_retry_after_s = 2;               // the Retry-After of those
  double throttle_no_retry_after_rate = 0;      // share answered 429 without Retry-After
  bool token_outage = false;                    // the token endpoint answers 503
  double future_timestamps = 0;                 // share of versions stamped 2100-01-01T00:00:00Z+
  bool pretty_json = false;                     // the API's JSON bodies pretty-printed
  double foreign_next_link = 0;                 // share of Graph nextLinks naming 127.0.0.2
  std::string throttle_retry_after;             // set: throttle_rate's Retry-After text, verbatim
  std::size_t incidents_expand_fail_above = 0;  // > 0: incident pages with $expand=alerts 500
  bool incidents_item_fail = false;             // GET .../incidents/{id} answers 500
  std::map<std::string, std::chrono::milliseconds> slow_tenants;  // tenant -> delay
  std::map<std::string, std::chrono::seconds> throttled_tenants;  // tenant -> 429 window
};

// The request log's bound (GET /_emulator/requests).
inline constexpr std::size_t kRequestLogMax = 2'000'000;

// The generated clients of tenant_count (k = 1..N; see the top of this file).
std::string generatedTenant(std::size_t k);
std::string generatedClientId(std::size_t k);
std::string generatedClientSecret(std::size_t k);

// The host foreign_next_link's links name, and the address its listener binds.
inline constexpr const char* kForeignHost = "127.0.0.2";

// `json` (valid JSON, compact or not) as pretty_json serves it: a newline and two spaces per
// level after `{`, `[` and `,` and before `}` and `]`, `": "` between a key and its value,
// `{}` and `[]` when empty; strings unchanged. Parses to the same value.
std::string prettyJson(std::string_view json);

// True when `text` can be a throttle_retry_after: printable ASCII (0x20..0x7e), at most 200
// characters, no leading or trailing space (empty: unset, also true).
bool isRetryAfterText(std::string_view text);

struct EmulatorConfig {
  std::string host = "127.0.0.1";
  int port = 0;                       // 0: any free port
  std::vector<ClientConfig> clients;  // empty: one default client (see kDefault*)
  std::size_t tenant_count = 0;       // > 0: that many generated clients, alerts dealt out
  int threads = 0;                    // HTTP worker threads; 0: cpp-httplib's default
  WorldOptions world;
  double speed = 1.0;                         // emulated seconds per real second
  std::chrono::seconds token_lifetime{3599};  // emulated
  int quota_per_minute = 100;                 // per (tenant, client), real time
  int quota_per_hour = 1500;
  int graph_quota_per_minute = 150;  // Graph's, per (tenant, client), real time; alerts_v2 and
                                     // incidents share it
  bool incident_permission = true;   // false: no client has SecurityIncident.Read.All
  OrderMode orderby = OrderMode::kHonour;
  NextLinkMode next_link = NextLinkMode::kNone;
  Faults faults;
  std::uint64_t fault_seed = 7;  // the faults' random choices (and future stamps)
  std::string tls_cert;          // PEM files: both set -> HTTPS
  std::string tls_key;
  Cloud cloud = Cloud::kGlobal;  // the resources (v1) and scopes (v2) tokens are issued for
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
