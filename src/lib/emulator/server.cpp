// The emulator's HTTP side: Microsoft Entra ID's client-credentials token endpoints (v1 and
// v2), the Defender for Endpoint alerts API, Microsoft Graph's alerts_v2 over the same world,
// quota, faults and the test-only endpoints.
#include "mdecollect/emulator/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "client_assertion.h"
#include "mdecollect/core/host_port.h"
#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/emulator/graph_json.h"
#include "mdecollect/emulator/graph_odata.h"

namespace mdec::emulator {
namespace {

// Threads serving connections (each open connection holds one), unless `threads` says.
constexpr std::size_t kServerThreads = 64;

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr std::string_view kJson = "application/json; charset=utf-8";
// The listening socket's backlog (the kernel caps it at net.core.somaxconn).
constexpr int kListenBacklog = 4096;
// What Graph sends with a successful OData response.
constexpr std::string_view kGraphJson =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8";

// Resources (v1) and scope prefixes (v2) the Defender API accepts tokens for, and Microsoft
// Graph's, in each cloud (`cloud:`). Defender for Endpoint: its API table for global, GCC
// (usgov), GCC High (usgov_high) and DoD; no China API. Graph: its national cloud deployments,
// and its application id (the same in every cloud).
struct CloudResources {
  Cloud cloud;
  std::array<std::string_view, 4> defender;  // "" ends the list
  std::array<std::string_view, 2> graph;
};
constexpr std::string_view kGraphAppId = "00000003-0000-0000-c000-000000000000";
constexpr std::array<CloudResources, 5> kCloudResources = {{
    {Cloud::kGlobal,
     {"https://api.securitycenter.microsoft.com", "https://api.securitycenter.windows.com",
      "https://securitycenter.onmicrosoft.com/windowsatpservice",
      "https://api.security.microsoft.com"},
     {"https://graph.microsoft.com", kGraphAppId}},
    {Cloud::kUsGov,
     {"https://api-gcc.securitycenter.microsoft.us"},
     {"https://graph.microsoft.com", kGraphAppId}},
    {Cloud::kUsGovHigh,
     {"https://api-gov.securitycenter.microsoft.us"},
     {"https://graph.microsoft.us", kGraphAppId}},
    {Cloud::kDod,
     {"https://api-gov.securitycenter.microsoft.us"},
     {"https://dod-graph.microsoft.us", kGraphAppId}},
    {Cloud::kChina, {}, {"https://microsoftgraph.chinacloudapi.cn", kGraphAppId}},
}};

const CloudResources& resourcesOf(Cloud cloud) {
  for (const CloudResources& r : kCloudResources) {
    if (r.cloud == cloud) return r;
  }
  return kCloudResources[0];
}

// Which API a request is for: they share the world, the tokens' issuer and the faults, and
// differ in audience, permission, quota and error format.
enum class Api { kDefender, kGraph };

bool isGraphResource(Cloud cloud, std::string_view resource) {
  for (auto r : resourcesOf(cloud).graph) {
    if (!r.empty() && r == resource) return true;
  }
  return false;
}

bool isDefenderResource(Cloud cloud, std::string_view resource) {
  for (auto r : resourcesOf(cloud).defender) {
    if (!r.empty() && r == resource) return true;
  }
  return false;
}

bool equalsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One name or value of an application/x-www-form-urlencoded body: '+' is a space and %XX a
// byte; a '%' not followed by two hex digits is kept as it is.
std::string formDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hexDigitValue(s[i + 1]) >= 0 &&
               hexDigitValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexDigitValue(s[i + 1]) * 16 + hexDigitValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A token request's form body: name=value pairs joined by '&'. The first of repeated names
// wins; pairs with an empty name are dropped.
std::map<std::string, std::string, std::less<>> parseForm(std::string_view body) {
  std::map<std::string, std::string, std::less<>> form;
  while (!body.empty()) {
    const std::size_t amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    std::string name = formDecode(pair.substr(0, eq));
    if (name.empty()) continue;
    form.emplace(std::move(name),
                 eq == std::string_view::npos ? std::string() : formDecode(pair.substr(eq + 1)));
  }
  return form;
}

// A query parameter's name or value for a link: every byte but letters, digits and
// -_.!~*'() as %XX (upper-case hex), as cpp-httplib encodes them.
std::string encodeQueryParam(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    const bool plain = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                       std::string_view("-_.!~*'()").find(c) != std::string_view::npos;
    if (plain) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
  return out;
}

// True when a `Prefer` header asks for include-unknown-enum-members (Prefer values are
// comma-separated and may come in several headers).
bool prefersUnknownEnumMembers(const httplib::Request& req) {
  auto range = req.headers.equal_range("Prefer");
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (equalsNoCase(item, "include-unknown-enum-members")) return true;
    }
  }
  return false;
}

// Graph's innerError date: UTC without a zone, whole seconds.
std::string graphErrorDate(Timestamp t) {
  std::string s = formatApiTime(std::chrono::floor<seconds>(t));
  if (!s.empty() && s.back() == 'Z') s.pop_back();
  return s;
}

std::string httpDate(Timestamp t) {
  return core::formatHttpDate(duration_cast<seconds>(t.time_since_epoch()).count());
}

std::string hexId(Rng& rng, int words) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int w = 0; w < words; ++w) {
    std::uint64_t v = rng.next();
    for (int i = 0; i < 16; ++i) {
      out.push_back(kHex[v & 0xF]);
      v >>= 4;
    }
  }
  return out;
}

std::string guid(Rng& rng) {
  std::string h = hexId(rng, 2);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The world the server runs: its options, with the future_timestamps fault.
WorldOptions worldOptionsOf(const EmulatorConfig& config) {
  WorldOptions options = config.world;
  options.future_rate = config.faults.future_timestamps;
  options.future_seed = config.fault_seed;
  options.partitions = std::max<std::size_t>(1, config.tenant_count);
  return options;
}

// k in 12 decimal digits, zero-padded (generated tenants).
std::string twelveDigits(std::size_t k) {
  std::string digits = std::to_string(k);
  if (digits.size() < 12) digits.insert(0, 12 - digits.size(), '0');
  return digits;
}

// Seconds since `origin` (the request log's times), to the microsecond.
double secondsSince(Clock::time_point origin, Clock::time_point t) {
  return static_cast<double>(duration_cast<std::chrono::microseconds>(t - origin).count()) / 1e6;
}

}  // namespace

std::string generatedTenant(std::size_t k) { return "00000000-0000-4000-a000-" + twelveDigits(k); }
std::string generatedClientId(std::size_t k) {
  return "00000000-0000-4000-c000-" + twelveDigits(k);
}
std::string generatedClientSecret(std::size_t k) {
  return "tenant-" + std::to_string(k) + "-secret";
}

std::string prettyJson(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 2);
  std::size_t depth = 0;
  auto newline = [&out, &depth] {
    out.push_back('\n');
    out.append(depth * 2, ' ');
  };
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    switch (c) {
      case '"': {  // a string, escapes and all, as it is
        std::size_t end = i + 1;
        while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
        end = std::min(end + 1, json.size());
        out.append(json.substr(i, end - i));
        i = end - 1;
        break;
      }
      case '{':
      case '[': {
        std::size_t next = i + 1;
        while (next < json.size() && space(json[next])) ++next;
        out.push_back(c);
        if (next < json.size() && json[next] == (c == '{' ? '}' : ']')) {
          out.push_back(json[next]);  // empty: {} or []
          i = next;
        } else {
          ++depth;
          newline();
        }
        break;
      }
      case '}':
      case ']':
        if (depth > 0) --depth;
        newline();
        out.push_back(c);
        break;
      case ',':
        out.push_back(',');
        newline();
        break;
      case ':':
        out += ": ";
        break;
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        break;  // the layout is ours
      default:
        out.push_back(c);
    }
  }
  return out;
}

bool isRetryAfterText(std::string_view text) {
  if (text.size() > 200) return false;
  if (!text.empty() && (text.front() == ' ' || text.back() == ' ')) return false;
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

struct EmulatorServer::Impl {
  struct Token {
    std::string tenant;
    std::string client_id;
    Timestamp expires;
    std::string audience;  // the resource it was issued for
    bool graph = false;    // ... which is Microsoft Graph
  };
  struct ClientState {
    std::deque<Clock::time_point> requests;  // the last hour's requests (quota)
    Clock::time_point not_before{};          // the Retry-After we last told it
  };

  EmulatorConfig config;
  World world;
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int bound_port = 0;
  bool tls = false;

  std::mutex mu;  // everything below, and world
  Clock::time_point real_start;
  Clock::time_point real_start_log = Clock::now();  // the request log's origin (never moves)
  Timestamp emulated_start;
  Rng rng;
  std::map<std::string, Token> tokens;
  std::map<std::string, ClientState> clients;  // tenant + '\n' + client_id
  SeenAssertions seen_assertions;              // certificate assertions' jti (replays)
  std::map<std::string, std::map<int, std::uint64_t>> requests;
  std::uint64_t throttled = 0;
  std::uint64_t early_retries = 0;
  std::uint64_t graph_throttled = 0;  // 429s answered on Graph (apart from `throttled`)
  std::uint64_t graph_early_retries = 0;
  std::uint64_t skiptoken_key = 0;  // authenticates Graph's $skiptoken values
  std::uint64_t tokens_issued = 0;
  std::uint64_t pretty_bodies = 0;         // API bodies sent pretty-printed (pretty_json)
  std::uint64_t foreign_links_served = 0;  // foreign nextLinks in bodies delivered whole
  std::uint64_t throttled_absurd = 0;      // 429s with the throttle_retry_after text

  // foreign_next_link's listener on kForeignHost: opened when the rate is first above 0,
  // stopped after the main server. Its handler counts and answers 404, never touching `mu`.
  std::unique_ptr<httplib::Server> foreign;
  std::thread foreign_thread;
  int foreign_port = 0;
  std::atomic<std::uint64_t> foreign_requests{0};
  std::atomic<std::uint64_t> foreign_requests_with_token{0};

  // Clients by tenant + '\n' + client id (the last of duplicates, as a scan would find),
  // tenants known, and with tenant_count each generated tenant's partition (its k - 1).
  std::unordered_map<std::string, std::size_t> client_index;
  std::unordered_map<std::string, std::size_t> tenant_partition;
  std::vector<std::string> partition_tenant;  // the reverse

  // The request log (GET /_emulator/requests).
  struct LoggedRequest {
    Clock::time_point at;
    Clock::time_point done;
    std::string tenant;
    std::string path;
    int status = 0;
    std::string assertion_jti;  // a token request's accepted client assertion's jti
  };
  std::vector<LoggedRequest> request_log;
  std::string accepted_jti;  // set by authenticateClient, taken by handleToken (under mu)
  std::uint64_t request_log_dropped = 0;
  // throttled_tenants: when each tenant's window opened (its first API request).
  std::map<std::string, Clock::time_point, std::less<>> throttle_opened;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;
  std::atomic<int> listen_socket{-1};  // the first socket cpp-httplib opened (start())

  explicit Impl(EmulatorConfig c)
      : config(std::move(c)), world(worldOptionsOf(config)), rng(config.fault_seed) {
    for (std::size_t k = 1; k <= config.tenant_count; ++k) {
      config.clients.push_back(
          {generatedTenant(k), generatedClientId(k), generatedClientSecret(k), true});
      partition_tenant.push_back(config.clients.back().tenant);
      tenant_partition[config.clients.back().tenant] = k - 1;
    }
    if (config.clients.empty()) {
      config.clients.push_back({kDefaultTenant, kDefaultClientId, kDefaultClientSecret, true});
    }
    for (std::size_t i = 0; i < config.clients.size(); ++i) {
      client_index[config.clients[i].tenant + '\n' + config.clients[i].client_id] = i;
      client_index.emplace(config.clients[i].tenant, i);  // the tenant is known
    }
    skiptoken_key =
        (config.world.seed * 0x9e3779b97f4a7c15ULL) ^ config.fault_seed ^ 0x6a09e667f3bcc908ULL;
    real_start = Clock::now();
    emulated_start = world.now();
  }

  std::optional<Timestamp> frozen_at;  // POST /_emulator/clock {"frozen": true}

  Timestamp emulatedNow() const {
    if (frozen_at) return *frozen_at;
    const auto real = Clock::now() - real_start;
    const auto scaled = nanoseconds(static_cast<std::int64_t>(
        static_cast<double>(duration_cast<nanoseconds>(real).count()) * config.speed));
    return emulated_start + scaled;
  }

  void count(const std::string& path, int status) { ++requests[path][status]; }

  // The client of (tenant, client_id); nullptr when there is none.
  const ClientConfig* findClient(const std::string& tenant, const std::string& client_id) const {
    auto it = client_index.find(tenant + '\n' + client_id);
    return it == client_index.end() ? nullptr : &config.clients[it->second];
  }
  bool tenantKnown(const std::string& tenant) const { return client_index.count(tenant) != 0; }

  // The tenant of a request's bearer token ("" when it has none we issued). Call with `mu`.
  std::string tokenTenant(const httplib::Request& req) const {
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) return {};
    auto it = tokens.find(auth.substr(7));
    return it == tokens.end() ? std::string() : it->second.tenant;
  }

  // The partition (generated tenant) a request may see, from its token: none without
  // tenant_count. Call with `mu`, after admit().
  std::optional<std::size_t> partitionOf(const httplib::Request& req) const {
    if (config.tenant_count == 0) return std::nullopt;
    auto it = tenant_partition.find(tokenTenant(req));
    // admit() let it through, so its tenant is a client's: a generated one.
    return it == tenant_partition.end() ? std::optional<std::size_t>(partition_tenant.size())
                                        : std::optional<std::size_t>(it->second);
  }

  // An API request's start: its receipt time, its tenant, and slow_tenants' delay (taken
  // here, without `mu`). Returns the tenant.
  std::string beginApiRequest(const httplib::Request& req) {
    sleepLatency();
    std::string tenant;
    std::chrono::milliseconds delay{0};
    {
      std::lock_guard<std::mutex> lock(mu);
      tenant = tokenTenant(req);
      if (auto it = config.faults.slow_tenants.find(tenant);
          it != config.faults.slow_tenants.end()) {
        delay = it->second;
      }
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return tenant;
  }

  // Adds a request to the log. Call with `mu`.
  void logRequest(Clock::time_point at, std::string tenant, std::string path, int status,
                  std::string assertion_jti = {}) {
    if (request_log.size() >= kRequestLogMax) {
      ++request_log_dropped;
      return;
    }
    request_log.push_back(
        {at, Clock::now(), std::move(tenant), std::move(path), status, std::move(assertion_jti)});
  }

  bool roll(double rate) {
    if (rate <= 0) return false;
    if (rate >= 1) return true;
    return static_cast<double>(rng.next() >> 11) * 0x1.0p-53 < rate;
  }

  void sleepLatency() {
    int latency = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      latency = config.faults.latency_ms;
    }
    if (latency > 0) std::this_thread::sleep_for(milliseconds(latency));
  }

  // An API answer's JSON body: pretty-printed under pretty_json.
  std::string apiBody(std::string body) {
    if (!config.faults.pretty_json) return body;
    ++pretty_bodies;
    return prettyJson(body);
  }

  void setJson(httplib::Response& res, int status, std::string body,
               std::string_view content_type = kJson) {
    res.status = status;
    res.set_content(apiBody(std::move(body)), std::string(content_type));
  }

  // The test-only endpoints' bodies: always compact.
  static void setTestJson(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, std::string(kJson));
  }

  // Opens foreign_next_link's listener on kForeignHost (any port), once. Call with `mu` held
  // (or before serving).
  mdec::Status openForeignListener() {
    if (foreign) return okStatus();
    auto listener = std::make_unique<httplib::Server>();
    listener->set_keep_alive_timeout(1);
    listener->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      ++foreign_requests;
      if (req.has_header("Authorization")) ++foreign_requests_with_token;
      res.status = 404;
      res.set_content("not this host\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    });
    const int port = listener->bind_to_any_port(kForeignHost);
    if (port < 0) {
      return Error(ErrorCode::kIo, std::string("'foreign_next_link': cannot listen on ") +
                                       kForeignHost + " (any port)");
    }
    foreign_port = port;
    foreign = std::move(listener);
    foreign_thread = std::thread([this] { foreign->listen_after_bind(); });
    for (int i = 0; i < 500 && !foreign->is_running(); ++i) {
      std::this_thread::sleep_for(milliseconds(2));
    }
    return okStatus();
  }

  std::string foreignBase() const {
    return foreign ? std::string("http://") + kForeignHost + ":" + std::to_string(foreign_port)
                   : std::string();
  }

  // ---- Token endpoint ----

  void tokenError(httplib::Response& res, int status, std::string_view error, int code,
                  const std::string& description) {
    const Timestamp now = emulatedNow();
    const std::string when = core::formatRfc3339(
        core::Instant{duration_cast<seconds>(now.time_since_epoch()).count(), 0}, 0);
    const std::string trace = guid(rng);
    const std::string correlation = guid(rng);
    std::string body = "{\"error\":";
    core::appendString(body, error);
    body += ",\"error_description\":";
    core::appendString(body, "AADSTS" + std::to_string(code) + ": " + description +
                                 "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + correlation +
                                 "\r\nTimestamp: " + when);
    body += ",\"error_codes\":[" + std::to_string(code) + "],\"timestamp\":";
    core::appendString(body, when);
    body +=
        ",\"trace_id\":\"" + trace + "\",\"correlation_id\":\"" + correlation +
        "\",\"error_uri\":\"https://login.microsoftonline.com/error?code=" + std::to_string(code) +
        "\"}";
    setJson(res, status, body);
  }

  void handleToken(const httplib::Request& req, httplib::Response& res, bool v2) {
    const Clock::time_point received = Clock::now();
    sleepLatency();
    std::lock_guard<std::mutex> lock(mu);
    const std::string path =
        v2 ? "POST /{tenant}/oauth2/v2.0/token" : "POST /{tenant}/oauth2/token";
    accepted_jti.clear();
    tokenRequest(req, res, v2);
    count(path, res.status);
    logRequest(received, req.matches[1], path, res.status,
               res.status == 200 ? std::move(accepted_jti) : std::string());
  }

  // The client a token request authenticates: by client_secret, or by a client_assertion
  // (client_assertion.h). nullptr after answering the refusal. Neither the secret nor the
  // assertion is ever written anywhere.
  template <typename Param>
  const ClientConfig* authenticateClient(const httplib::Request& req, bool v2,
                                         const std::string& tenant, const Param& param,
                                         httplib::Response& res) {
    auto refuse = [this, &res](const TokenRefusal& r) {
      tokenError(res, r.status, r.error, r.code, r.description);
      return nullptr;
    };
    const std::string* client_id = param("client_id");
    const std::string* secret = param("client_secret");
    const std::string* assertion = param("client_assertion");
    const std::string* assertion_type = param("client_assertion_type");
    if (assertion != nullptr || assertion_type != nullptr) {
      // One client authentication method per request (RFC 6749 section 2.3). Entra's answer
      // to both is not documented: AADSTS90023, InvalidRequest (its error code reference).
      if (secret != nullptr) {
        return refuse({400, "invalid_request", 90023,
                       "The request presents both 'client_secret' and 'client_assertion': send "
                       "one client credential."});
      }
      if (assertion == nullptr || assertion_type == nullptr) {
        return refuse({400, "invalid_request", 900144,
                       std::string("The request body must contain the following parameter: '") +
                           (assertion == nullptr ? "client_assertion" : "client_assertion_type") +
                           "'."});
      }
      if (*assertion_type != kJwtBearerAssertionType) {
        return refuse({400, "invalid_request", 90023,
                       "The 'client_assertion_type' is not supported: use '" +
                           std::string(kJwtBearerAssertionType) + "'."});
      }
      AssertionRequest request;
      request.tenant = tenant;
      request.client_id = client_id;
      request.assertion = *assertion;
      request.endpoint = origin(req) + "/" + tenant + (v2 ? "/oauth2/v2.0/token" : "/oauth2/token");
      // Entra judges exp and nbf by the wall clock, which the client signs with too; the
      // emulated clock may start in the past (start:) or run fast (speed:).
      request.now = std::chrono::time_point_cast<nanoseconds>(std::chrono::system_clock::now());
      const AssertionOutcome outcome = verifyAssertion(
          request, [this, &tenant](const std::string& id) { return findClient(tenant, id); },
          seen_assertions);
      if (outcome.refusal) return refuse(*outcome.refusal);
      accepted_jti = outcome.jti;
      return outcome.client;
    }
    if (client_id == nullptr) {
      return refuse({400, "invalid_request", 900144,
                     "The request body must contain the following parameter: 'client_id'."});
    }
    const ClientConfig* client = findClient(tenant, *client_id);
    if (client == nullptr) return refuse(unknownClient(tenant, *client_id));
    if (secret == nullptr) {
      return refuse({401, "invalid_client", 7000216,
                     "'client_assertion', 'client_secret' or 'request' is required for the "
                     "'client_credentials' grant type."});
    }
    if (client->client_secret.empty() || *secret != client->client_secret) {
      return refuse({401, "invalid_client", 7000215,
                     "Invalid client secret provided. Ensure the secret being sent in the request "
                     "is the client secret value, not the client secret ID, for a secret added to "
                     "app '" +
                         client->client_id + "'."});
    }
    return client;
  }

  void tokenRequest(const httplib::Request& req, httplib::Response& res, bool v2) {
    if (config.faults.token_outage) {
      tokenError(res, 503, "temporarily_unavailable", 90033,
                 "A transient error has occurred. Please try again.");
      return;
    }
    const std::string tenant = req.matches[1];
    const auto form = parseForm(req.body);
    auto param = [&form](const char* name) -> const std::string* {
      auto it = form.find(name);
      return it == form.end() ? nullptr : &it->second;
    };
    const std::string* grant = param("grant_type");
    if (grant == nullptr) {
      tokenError(res, 400, "invalid_request", 900144,
                 "The request body must contain the following parameter: 'grant_type'.");
      return;
    }
    if (*grant != "client_credentials") {
      tokenError(res, 400, "unsupported_grant_type", 70003,
                 "The app requested an unsupported grant type '" + *grant + "'.");
      return;
    }
    if (!tenantKnown(tenant)) {
      tokenError(res, 400, "invalid_request", 90002,
                 "Tenant '" + tenant +
                     "' not found. Check to make sure you have the correct tenant ID and are "
                     "signing into the correct cloud. Check with your subscription "
                     "administrator, this may happen if there are no active subscriptions for "
                     "the tenant.");
      return;
    }
    const ClientConfig* client = authenticateClient(req, v2, tenant, param, res);
    if (client == nullptr) return;
    std::string resource;
    if (v2) {
      const std::string* scope = param("scope");
      if (scope == nullptr) {
        tokenError(res, 400, "invalid_request", 900144,
                   "The request body must contain the following parameter: 'scope'.");
        return;
      }
      bool ok = endsWith(*scope, "/.default");
      if (ok) {
        const std::string_view prefix = std::string_view(*scope).substr(
            0, scope->size() - std::string_view("/.default").size());
        ok = isDefenderResource(config.cloud, prefix) || isGraphResource(config.cloud, prefix);
        resource = std::string(prefix);
      }
      if (!ok) {
        tokenError(res, 400, "invalid_scope", 70011,
                   "The provided request must include a 'scope' input parameter. The provided "
                   "value for the input parameter 'scope' is not valid. The scope " +
                       *scope + " is not valid.");
        return;
      }
    } else {
      const std::string* res_param = param("resource");
      if (res_param == nullptr) {
        tokenError(res, 400, "invalid_request", 900144,
                   "The request body must contain the following parameter: 'resource'.");
        return;
      }
      const bool ok =
          isDefenderResource(config.cloud, *res_param) || isGraphResource(config.cloud, *res_param);
      if (!ok) {
        tokenError(res, 400, "invalid_resource", 500011,
                   "The resource principal named " + *res_param +
                       " was not found in the tenant named " + tenant +
                       ". This can happen if the application has not been installed by the "
                       "administrator of the tenant or consented to by any user in the "
                       "tenant. You might have sent your authentication request to the wrong "
                       "tenant.");
        return;
      }
      resource = *res_param;
    }
    const Timestamp now = emulatedNow();
    const std::string token = "emu." + hexId(rng, 4);
    tokens[token] = Token{tenant, client->client_id, now + config.token_lifetime, resource,
                          isGraphResource(config.cloud, resource)};
    ++tokens_issued;
    const auto lifetime = std::to_string(config.token_lifetime.count());
    const auto now_s = duration_cast<seconds>(now.time_since_epoch()).count();
    std::string body;
    if (v2) {
      body = "{\"token_type\":\"Bearer\",\"expires_in\":" + lifetime +
             ",\"ext_expires_in\":" + lifetime + ",\"access_token\":\"" + token + "\"}";
    } else {
      // The real v1 endpoint sends its numbers as strings.
      body = "{\"token_type\":\"Bearer\",\"expires_in\":\"" + lifetime +
             "\",\"ext_expires_in\":\"" + lifetime + "\",\"expires_on\":\"" +
             std::to_string(now_s + config.token_lifetime.count()) + "\",\"not_before\":\"" +
             std::to_string(now_s) + "\",\"resource\":";
      core::appendString(body, resource);
      body += ",\"access_token\":\"" + token + "\"}";
    }
    setJson(res, 200, body);
  }

  // ---- The alerts API ----

  void apiError(httplib::Response& res, int status, std::string_view code,
                const std::string& message) {
    std::string body = "{\"error\":{\"code\":";
    core::appendString(body, code);
    body += ",\"message\":";
    core::appendString(body, message);
    body += ",\"target\":\"" + guid(rng) + "\"}}";
    setJson(res, status, body);
  }

  // Graph's error body, with the request-id / client-request-id headers Graph sends.
  void graphError(const httplib::Request& req, httplib::Response& res, int status,
                  std::string_view code, const std::string& message) {
    const std::string request_id = guid(rng);
    std::string client_request_id = req.get_header_value("client-request-id");
    if (client_request_id.empty()) client_request_id = request_id;
    setJson(res, status,
            formatGraphError(code, message, graphErrorDate(emulatedNow()), request_id,
                             client_request_id));
    res.set_header("request-id", request_id);
    res.set_header("client-request-id", client_request_id);
  }

  // An error in the format of the API the request is for.
  void fail(Api api, const httplib::Request& req, httplib::Response& res, int status,
            std::string_view defender_code, const std::string& defender_message,
            std::string_view graph_code, const std::string& graph_message) {
    if (api == Api::kGraph) {
      graphError(req, res, status, graph_code, graph_message);
    } else {
      apiError(res, status, defender_code, defender_message);
    }
  }

  // Authentication, quota and injected faults, in the order the real service meets them.
  // Returns false when the response is already decided. A token is valid only for the API
  // (audience) it was issued for; each API has its own permission and its own quota.
  // `incidents`: a Graph request for /security/incidents (SecurityIncident.Read.All, and
  // the same Graph quota as alerts_v2).
  bool admit(const httplib::Request& req, httplib::Response& res, Api api = Api::kDefender,
             bool incidents = false) {
    const bool graph = api == Api::kGraph;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) {
      fail(api, req, res, 401, "Unauthorized",
           "Authorization header is missing or is not a Bearer token.",
           "InvalidAuthenticationToken", "Access token is empty.");
      return false;
    }
    auto it = tokens.find(auth.substr(7));
    if (it == tokens.end()) {
      fail(api, req, res, 401, "Unauthorized", "The access token is invalid.",
           "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217");
      return false;
    }
    if (emulatedNow() >= it->second.expires) {
      fail(api, req, res, 401, "Unauthorized", "The access token has expired.",
           "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.");
      return false;
    }
    if (it->second.graph != graph) {
      fail(api, req, res, 401, "Unauthorized",
           "The access token was issued for another audience (" + it->second.audience +
               "); this API accepts tokens for https://api.securitycenter.microsoft.com.",
           "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.");
      return false;
    }
    const ClientConfig* client = findClient(it->second.tenant, it->second.client_id);
    const bool permitted =
        client != nullptr && (!graph      ? client->alert_read
                              : incidents ? client->incident_read && config.incident_permission
                                          : client->graph_read);
    if (!permitted) {
      fail(api, req, res, 403, "Forbidden",
           "The application does not have any of the required application permissions "
           "(Alert.ReadWrite.All, Alert.Read.All) to access the resource.",
           "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
      return false;
    }
    // Quota per (tenant, application) and API, counted in real time; refused requests count
    // too. Graph has a minute quota only.
    ClientState& state =
        clients[(graph ? "graph\n" : "") + client->tenant + "\n" + client->client_id];
    const auto now = Clock::now();
    if (now < state.not_before) ++(graph ? graph_early_retries : early_retries);
    while (!state.requests.empty() && now - state.requests.front() >= std::chrono::hours(1)) {
      state.requests.pop_front();
    }
    std::size_t in_minute = 0;
    for (auto t = state.requests.rbegin(); t != state.requests.rend(); ++t) {
      if (now - *t >= std::chrono::minutes(1)) break;
      ++in_minute;
    }
    state.requests.push_back(now);
    const int per_minute = graph ? config.graph_quota_per_minute : config.quota_per_minute;
    std::optional<Clock::time_point> free_at;
    if (in_minute >= static_cast<std::size_t>(per_minute)) {
      free_at = state.requests[state.requests.size() - 1 - in_minute] + std::chrono::minutes(1);
    } else if (!graph && state.requests.size() > static_cast<std::size_t>(config.quota_per_hour)) {
      free_at = state.requests.front() + std::chrono::hours(1);
    }
    if (free_at) {
      const auto wait = duration_cast<seconds>(*free_at - now) + seconds(1);
      throttle(api, req, res, state, wait.count());
      return false;
    }
    // throttled_tenants: a window from the tenant's first API request.
    if (auto t = config.faults.throttled_tenants.find(client->tenant);
        t != config.faults.throttled_tenants.end()) {
      const Clock::time_point opened =
          throttle_opened.try_emplace(client->tenant, now).first->second;
      const auto left = opened + t->second - now;
      if (left > Clock::duration::zero()) {
        // Rounded up: a client that waits as told comes after the window.
        const auto left_s = duration_cast<seconds>(left + seconds(1) - nanoseconds(1));
        throttle(api, req, res, state, left_s.count());
        return false;
      }
    }
    if (roll(config.faults.throttle_rate)) {
      if (config.faults.throttle_retry_after.empty()) {
        throttle(api, req, res, state, config.faults.throttle_retry_after_s);
      } else {
        throttleVerbatim(api, req, res, config.faults.throttle_retry_after);
      }
      return false;
    }
    if (roll(config.faults.throttle_no_retry_after_rate)) {
      ++(graph ? graph_throttled : throttled);
      fail(api, req, res, 429, "TooManyRequests", "Rate limit is exceeded.", "TooManyRequests",
           "Too many requests.");
      return false;
    }
    if (roll(config.faults.error_rate)) {
      if (rng.below(2) == 0) {
        fail(api, req, res, 500, "InternalServerError", "An internal error occurred.",
             "InternalServerError", "An internal server error occurred.");
      } else {
        res.status = 503;
        res.set_content("<html><body>503 Service Unavailable</body></html>", "text/html");
      }
      return false;
    }
    return true;
  }

  void throttle(Api api, const httplib::Request& req, httplib::Response& res, ClientState& state,
                std::int64_t retry_after) {
    if (retry_after < 1) retry_after = 1;
    ++(api == Api::kGraph ? graph_throttled : throttled);
    state.not_before = Clock::now() + seconds(retry_after);
    fail(api, req, res, 429, "TooManyRequests",
         "Rate limit is exceeded. Try again in " + std::to_string(retry_after) + " seconds.",
         "TooManyRequests",
         "Too many requests. Retry after " + std::to_string(retry_after) + " seconds.");
    res.set_header("Retry-After", std::to_string(retry_after));
  }

  // A 429 whose Retry-After is `text` as it is (throttle_retry_after): perhaps absurd, so it
  // sets no not_before (the next request is no early retry).
  void throttleVerbatim(Api api, const httplib::Request& req, httplib::Response& res,
                        const std::string& text) {
    ++(api == Api::kGraph ? graph_throttled : throttled);
    ++throttled_absurd;
    fail(api, req, res, 429, "TooManyRequests", "Rate limit is exceeded. Try again later.",
         "TooManyRequests", "Too many requests.");
    res.set_header("Retry-After", text);
  }

  // Sends `body`, or cuts it short / drops the connection when a fault says so.
  void deliver(httplib::Response& res, std::string body, bool truncate, bool drop,
               std::string_view content_type = kJson) {
    res.status = 200;
    body = apiBody(std::move(body));
    if (!truncate && !drop) {
      res.set_content(std::move(body), std::string(content_type));
      return;
    }
    auto shared = std::make_shared<std::string>(std::move(body));
    const std::size_t cut = drop ? 0 : shared->size() / 2;
    res.set_content_provider(
        shared->size(), std::string(content_type),
        [shared, cut](std::size_t offset, std::size_t, httplib::DataSink& sink) {
          if (offset < cut) sink.write(shared->data() + offset, cut - offset);
          return false;  // the connection closes before the declared length
        });
  }

  std::string origin(const httplib::Request& req) const {
    std::string host = req.get_header_value("Host");
    if (host.empty()) host = core::formatHostPort(config.host, bound_port);
    return std::string(tls ? "https://" : "http://") + host;
  }

  void handleList(const httplib::Request& req, httplib::Response& res, const std::string& path) {
    const Clock::time_point received = Clock::now();
    std::string tenant = beginApiRequest(req);
    std::lock_guard<std::mutex> lock(mu);
    listRequest(req, res, path);
    count("GET " + path, res.status);
    res.set_header("Date", httpDate(emulatedNow()));
    logRequest(received, std::move(tenant), "GET " + path, res.status);
  }

  void listRequest(const httplib::Request& req, httplib::Response& res, const std::string& path) {
    if (!admit(req, res)) return;
    QueryParams params;
    for (const auto& [key, value] : req.params) {
      if (key == "$filter")
        params.filter = value;
      else if (key == "$orderby")
        params.orderby = value;
      else if (key == "$top")
        params.top = value;
      else if (key == "$skip")
        params.skip = value;
      else if (key == "$expand")
        params.expand = value;
      else if (!key.empty() && key[0] == '$') {
        apiError(res, 400, "ODataError", "The query parameter '" + key + "' is not supported.");
        return;
      }
    }
    auto query = parseAlertQuery(params);
    if (!query) {
      apiError(res, 400, "ODataError", query.error().message());
      return;
    }
    if (config.orderby == OrderMode::kReject && params.orderby) {
      apiError(res, 400, "ODataError",
               "The query specified in the URI is not valid. The property 'lastUpdateTime' "
               "cannot be used in the $orderby query option.");
      return;
    }
    const bool drop = roll(config.faults.drop_rate);
    const bool truncate = !drop && roll(config.faults.truncate_rate);
    world.advanceTo(emulatedNow());
    const QueryPage page =
        world.query(*query, config.orderby, !drop && !truncate, partitionOf(req));
    std::string body = "{\"@odata.context\":";
    core::appendString(body, origin(req) + "/api/$metadata#Alerts");
    body += ",\"value\":";
    body += page.value_json;
    // $top=0 has no next page: a link back to the same $skip would never end.
    const bool more =
        page.count > 0 && page.count == query->top && query->skip + page.count < page.matched;
    if (more && config.next_link != NextLinkMode::kNone) {
      body += ",\"@odata.nextLink\":";
      core::appendString(body, nextLink(req, path, query->skip + page.count));
    }
    body += "}";
    deliver(res, std::move(body), truncate, drop);
  }

  std::string nextLink(const httplib::Request& req, const std::string& path, std::size_t skip) {
    std::string link = origin(req) + path + "?";
    if (config.next_link == NextLinkMode::kMalformed) {
      // As reported for other entities: unencoded text and a broken host part.
      link = origin(req) + ":" + path + "?";
      for (const auto& [key, value] : req.params) {
        if (key != "$skip") link += key + "=" + value + "&";
      }
      return link + "$skip=" + std::to_string(skip);
    }
    for (const auto& [key, value] : req.params) {
      if (key == "$skip") continue;
      link += encodeQueryParam(key) + "=" + encodeQueryParam(value) + "&";
    }
    return link + "%24skip=" + std::to_string(skip);
  }

  void handleOne(const httplib::Request& req, httplib::Response& res, const std::string& path) {
    const Clock::time_point received = Clock::now();
    std::string tenant = beginApiRequest(req);
    std::lock_guard<std::mutex> lock(mu);
    if (admit(req, res)) {
      world.advanceTo(emulatedNow());
      const bool expand = req.get_param_value("$expand") == "evidence";
      auto json = world.alertJson(req.matches[1].str(), expand, true, partitionOf(req));
      if (!json) {
        apiError(res, 404, "ResourceNotFound",
                 "Alert with id " + req.matches[1].str() + " was not found");
      } else {
        std::string body = "{\"@odata.context\":";
        core::appendString(body, origin(req) + "/api/$metadata#Alerts/$entity");
        body += "," + json->substr(1);
        setJson(res, 200, body);
      }
    }
    count("GET " + path, res.status);
    res.set_header("Date", httpDate(emulatedNow()));
    logRequest(received, std::move(tenant), "GET " + path + "/{id}", res.status);
  }

  // ---- Microsoft Graph alerts_v2 (the same world) ----

  // Headers every Graph answer carries; `include_unknown`: the Prefer header was honoured.
  void graphHeaders(const httplib::Request& req, httplib::Response& res, bool include_unknown) {
    if (!res.has_header("request-id")) {
      const std::string request_id = guid(rng);
      const std::string client_request_id = req.get_header_value("client-request-id");
      res.set_header("request-id", request_id);
      res.set_header("client-request-id",
                     client_request_id.empty() ? request_id : client_request_id);
    }
    res.set_header("OData-Version", "4.0");
    if (include_unknown) res.set_header("Preference-Applied", "include-unknown-enum-members");
  }

  void handleGraphList(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point received = Clock::now();
    std::string tenant = beginApiRequest(req);
    std::lock_guard<std::mutex> lock(mu);
    graphListRequest(req, res);
    count("GET " + std::string(kGraphAlertsPath), res.status);
    res.set_header("Date", httpDate(emulatedNow()));
    logRequest(received, std::move(tenant), "GET " + std::string(kGraphAlertsPath), res.status);
  }

  // alerts_v2 and incidents share this: the same options, paging, quota and faults.
  void graphListRequest(const httplib::Request& req, httplib::Response& res,
                        GraphEntity entity = GraphEntity::kAlerts) {
    const bool incidents = entity == GraphEntity::kIncidents;
    if (!admit(req, res, Api::kGraph, incidents)) return;
    GraphQueryParams params;
    for (const auto& [key, value] : req.params) {
      // Graph takes the system query options with or without their `$`.
      const std::string_view name =
          !key.empty() && key[0] == '$' ? std::string_view(key).substr(1) : std::string_view(key);
      std::optional<std::string>* slot = nullptr;
      if (name == "filter")
        slot = &params.filter;
      else if (name == "orderby")
        slot = &params.orderby;
      else if (name == "top")
        slot = &params.top;
      else if (name == "skip")
        slot = &params.skip;
      else if (name == "count")
        slot = &params.count;
      else if (name == "skiptoken")
        slot = &params.skiptoken;
      else if (name == "expand" && incidents)
        slot = &params.expand;
      if (slot == nullptr) {
        if (!key.empty() && key[0] == '$') {
          graphError(req, res, 400, "BadRequest",
                     "Query option '" + key + "' is not supported on this resource.");
          return;
        }
        continue;  // other parameters are ignored
      }
      if (*slot) {
        graphError(req, res, 400, "BadRequest",
                   "Query option '$" + std::string(name) +
                       "' was specified more than once, "
                       "but it must be specified at most once.");
        return;
      }
      *slot = value;
    }
    auto query = parseGraphQuery(params, skiptoken_key, entity);
    if (!query) {
      graphError(req, res, 400, "BadRequest", query.error().message());
      return;
    }
    if (config.orderby == OrderMode::kReject && query->order_by) {
      graphError(
          req, res, 400, "BadRequest",
          "Invalid order by clause: the property '" +
              std::string(query->order_by == TimeField::kAlertCreationTime ? "createdDateTime"
                                                                           : "lastUpdateDateTime") +
              "' cannot be used in the $orderby query option.");
      return;
    }
    const bool include_unknown = prefersUnknownEnumMembers(req);
    const bool drop = roll(config.faults.drop_rate);
    const bool truncate = !drop && roll(config.faults.truncate_rate);
    world.advanceTo(emulatedNow());
    const QueryPage page =
        incidents
            ? world.queryIncidents(*query, config.orderby, include_unknown, !drop && !truncate,
                                   config.faults.incidents_expand_fail_above)
            : world.queryGraph(*query, config.orderby, include_unknown, !drop && !truncate,
                               partitionOf(req));
    if (page.refused) {
      // incidents_expand_fail_above: the persistent 500 of elastic/integrations #18144.
      graphError(req, res, 500, "InternalServerError", "An internal server error occurred.");
      return;
    }
    const std::string_view path = incidents ? kGraphIncidentsPath : kGraphAlertsPath;
    std::string body = "{\"@odata.context\":";
    core::appendString(
        body, origin(req) + "/v1.0/$metadata#security/" + (incidents ? "incidents" : "alerts_v2"));
    if (query->count) body += ",\"@odata.count\":" + std::to_string(page.matched);
    // The next page continues the same query after what was sent; none after the last.
    const bool more =
        page.count > 0 && page.count == query->top && query->skip + page.count < page.matched;
    if (more) {
      // foreign_next_link: the same path and query on another host.
      const bool foreign_link = foreign && roll(config.faults.foreign_next_link);
      if (foreign_link && !drop && !truncate) ++foreign_links_served;
      body += ",\"@odata.nextLink\":";
      core::appendString(
          body, (foreign_link ? foreignBase() : origin(req)) + std::string(path) + "?$skiptoken=" +
                    makeGraphSkipToken(*query, query->skip + page.count, skiptoken_key));
    }
    body += ",\"value\":";
    body += page.value_json;
    body += "}";
    graphHeaders(req, res, include_unknown);
    deliver(res, std::move(body), truncate, drop, kGraphJson);
  }

  void handleGraphOne(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point received = Clock::now();
    std::string tenant = beginApiRequest(req);
    std::lock_guard<std::mutex> lock(mu);
    if (admit(req, res, Api::kGraph)) {
      world.advanceTo(emulatedNow());
      const bool include_unknown = prefersUnknownEnumMembers(req);
      auto json =
          world.alertGraphJson(req.matches[1].str(), include_unknown, true, partitionOf(req));
      if (!json) {
        graphError(req, res, 404, "NotFound",
                   "Alert with id " + req.matches[1].str() + " was not found.");
      } else {
        std::string body = "{\"@odata.context\":";
        core::appendString(body, origin(req) + "/v1.0/$metadata#security/alerts_v2/$entity");
        body += "," + json->substr(1);
        graphHeaders(req, res, include_unknown);
        setJson(res, 200, std::move(body), kGraphJson);
      }
    }
    count("GET " + std::string(kGraphAlertsPath) + "/{id}", res.status);
    res.set_header("Date", httpDate(emulatedNow()));
    logRequest(received, std::move(tenant), "GET " + std::string(kGraphAlertsPath) + "/{id}",
               res.status);
  }

  // ---- Microsoft Graph incidents (the same world's alerts, grouped) ----

  void handleIncidentsList(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point received = Clock::now();
    std::string tenant = beginApiRequest(req);
    std::lock_guard<std::mutex> lock(mu);
    graphListRequest(req, res, GraphEntity::kIncidents);
    count("GET " + std::string(kGraphIncidentsPath), res.status);
    res.set_header("Date", httpDate(emulatedNow()));
    logRequest(received, std::move(tenant), "GET " + std::string(kGraphIncidentsPath), res.status);
  }

  void handleIncidentOne(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point received = Clock::now();
    std::string tenant = beginApiRequest(req);
    std::lock_guard<std::mutex> lock(mu);
    incidentOneRequest(req, res);
    count("GET " + std::string(kGraphIncidentsPath) + "/{id}", res.status);
    res.set_header("Date", httpDate(emulatedNow()));
    logRequest(received, std::move(tenant), "GET " + std::string(kGraphIncidentsPath) + "/{id}",
               res.status);
  }

  void incidentOneRequest(const httplib::Request& req, httplib::Response& res) {
    if (!admit(req, res, Api::kGraph, true)) return;
    bool expand = false;
    for (const auto& [key, value] : req.params) {
      const std::string_view name =
          !key.empty() && key[0] == '$' ? std::string_view(key).substr(1) : std::string_view(key);
      if (name == "expand") {
        std::string_view v = value;
        while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
        while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
        if (v != "alerts") {
          graphError(req, res, 400, "BadRequest",
                     "Could not find a property named '" + std::string(v) +
                         "' on type 'microsoft.graph.security.incident'.");
          return;
        }
        expand = true;
      } else if (!key.empty() && key[0] == '$') {
        graphError(req, res, 400, "BadRequest",
                   "Query option '" + key + "' is not supported on this resource.");
        return;
      }
    }
    if (config.faults.incidents_item_fail) {
      graphError(req, res, 500, "InternalServerError", "An internal server error occurred.");
      return;
    }
    world.advanceTo(emulatedNow());
    const bool include_unknown = prefersUnknownEnumMembers(req);
    auto json = world.incidentGraphJson(req.matches[1].str(), expand, include_unknown);
    if (!json) {
      graphError(req, res, 404, "NotFound",
                 "Incident with id " + req.matches[1].str() + " was not found.");
      return;
    }
    std::string body = "{\"@odata.context\":";
    core::appendString(body, origin(req) + "/v1.0/$metadata#security/incidents/$entity");
    body += "," + json->substr(1);
    graphHeaders(req, res, include_unknown);
    setJson(res, 200, std::move(body), kGraphJson);
  }

  // ---- Test-only endpoints ----

  // kind=incidents: every incident version (world.h), in the same envelope.
  std::string incidentVersionsJson() {
    std::lock_guard<std::mutex> lock(mu);
    world.advanceTo(emulatedNow());
    std::string body = "{\"now\":\"" + formatApiTime(world.now()) + "\",\"versions\":[";
    bool first = true;
    for (const IncidentVersionInfo& v : world.incidentVersions()) {
      if (!first) body.push_back(',');
      first = false;
      body += "{\"id\":";
      core::appendString(body, v.id);
      body += ",\"lastUpdateDateTime\":\"" +
              core::formatRfc3339(
                  core::toInstant(std::chrono::time_point_cast<std::chrono::system_clock::duration>(
                      v.last_update_time)),
                  7) +
              "\",\"alerts\":" + std::to_string(v.alerts) +
              ",\"latest\":" + (v.latest ? "true" : "false") +
              ",\"served\":" + (v.served ? "true" : "false") + "}";
    }
    body += "]}";
    return body;
  }

  // `tenant` (with tenant_count): that tenant's versions only.
  std::string versionsJson(const std::string& tenant) {
    std::lock_guard<std::mutex> lock(mu);
    world.advanceTo(emulatedNow());
    const bool tenants = config.tenant_count > 0;
    std::optional<std::size_t> only;
    if (tenants && !tenant.empty()) {
      auto it = tenant_partition.find(tenant);
      only = it == tenant_partition.end() ? partition_tenant.size() : it->second;
    }
    std::string body = "{\"now\":\"" + formatApiTime(world.now()) + "\",\"versions\":[";
    bool first = true;
    for (const VersionInfo& v : world.versions()) {
      if (only && v.partition != *only) continue;
      if (!first) body.push_back(',');
      first = false;
      body += "{\"id\":";
      core::appendString(body, v.id);
      body += ",\"lastUpdateTime\":\"" + formatApiTime(v.last_update_time) +
              "\",\"evidence\":" + std::to_string(v.evidence) + ",\"visibleSince\":\"" +
              formatApiTime(v.visible_since) + "\",\"latest\":" + (v.latest ? "true" : "false") +
              ",\"served\":" + (v.served ? "true" : "false") +
              ",\"future\":" + (v.future ? "true" : "false");
      if (tenants) body += ",\"tenant\":\"" + partition_tenant[v.partition] + "\"";
      body += "}";
    }
    body += "]}";
    return body;
  }

  // The request log (server.h): `tenant` non-empty keeps that tenant's; from entry `since`.
  std::string requestsJson(const std::string& tenant, std::size_t since) {
    std::lock_guard<std::mutex> lock(mu);
    std::string body = "{\"requests\":[";
    bool first = true;
    for (std::size_t i = since; i < request_log.size(); ++i) {
      const LoggedRequest& r = request_log[i];
      if (!tenant.empty() && r.tenant != tenant) continue;
      if (!first) body.push_back(',');
      first = false;
      body += "{\"at\":";
      core::appendDouble(body, secondsSince(real_start_log, r.at));
      body += ",\"done\":";
      core::appendDouble(body, secondsSince(real_start_log, r.done));
      body += ",\"tenant\":";
      core::appendString(body, r.tenant);
      body += ",\"path\":";
      core::appendString(body, r.path);
      body += ",\"status\":" + std::to_string(r.status);
      if (!r.assertion_jti.empty()) {
        body += ",\"assertion_jti\":";
        core::appendString(body, r.assertion_jti);
      }
      body += "}";
    }
    body += "],\"now\":";
    core::appendDouble(body, secondsSince(real_start_log, Clock::now()));
    body += ",\"logged\":" + std::to_string(request_log.size()) +
            ",\"dropped\":" + std::to_string(request_log_dropped) + "}";
    return body;
  }

  // Requests to the Graph paths, whatever their answer.
  std::uint64_t graphRequests() const {
    std::uint64_t n = 0;
    for (const auto& [path, statuses] : requests) {
      if (path.find(kGraphAlertsPath) == std::string::npos &&
          path.find(kGraphIncidentsPath) == std::string::npos) {
        continue;
      }
      for (const auto& [status, answered] : statuses) n += answered;
    }
    return n;
  }

  std::string statsJson() {
    std::lock_guard<std::mutex> lock(mu);
    world.advanceTo(emulatedNow());
    std::string body = "{\"now\":\"" + formatApiTime(world.now()) + "\",\"speed\":";
    core::appendDouble(body, config.speed);
    body += ",\"alerts\":" + std::to_string(world.alertCount()) + ",\"requests\":{";
    bool first = true;
    for (const auto& [path, statuses] : requests) {
      if (!first) body.push_back(',');
      first = false;
      core::appendString(body, path);
      body += ":{";
      bool inner_first = true;
      for (const auto& [status, n] : statuses) {
        if (!inner_first) body.push_back(',');
        inner_first = false;
        body += "\"" + std::to_string(status) + "\":" + std::to_string(n);
      }
      body += "}";
    }
    body +=
        "},\"throttled\":" + std::to_string(throttled) +
        ",\"early_retries\":" + std::to_string(early_retries) +
        ",\"graph_requests\":" + std::to_string(graphRequests()) +
        ",\"graph_throttled\":" + std::to_string(graph_throttled) +
        ",\"graph_early_retries\":" + std::to_string(graph_early_retries) +
        ",\"tokens_issued\":" + std::to_string(tokens_issued) +
        ",\"future_versions_served\":" + std::to_string(world.futureVersionsServed()) +
        ",\"pretty_bodies\":" + std::to_string(pretty_bodies) +
        ",\"foreign_links_served\":" + std::to_string(foreign_links_served) +
        ",\"foreign_requests\":" + std::to_string(foreign_requests.load()) +
        ",\"foreign_requests_with_token\":" + std::to_string(foreign_requests_with_token.load()) +
        ",\"foreign_base\":\"" + foreignBase() +
        "\",\"throttled_absurd\":" + std::to_string(throttled_absurd) + "}";
    return body;
  }

  std::string faultsJson() {
    const Faults& f = config.faults;
    std::string body = "{\"error_rate\":";
    core::appendDouble(body, f.error_rate);
    body += ",\"latency_ms\":" + std::to_string(f.latency_ms) + ",\"truncate_rate\":";
    core::appendDouble(body, f.truncate_rate);
    body += ",\"drop_rate\":";
    core::appendDouble(body, f.drop_rate);
    body += ",\"throttle_rate\":";
    core::appendDouble(body, f.throttle_rate);
    body += ",\"throttle_retry_after_s\":" + std::to_string(f.throttle_retry_after_s) +
            ",\"throttle_no_retry_after_rate\":";
    core::appendDouble(body, f.throttle_no_retry_after_rate);
    body += std::string(",\"token_outage\":") + (f.token_outage ? "true" : "false");
    body += ",\"future_timestamps\":";
    core::appendDouble(body, f.future_timestamps);
    body += std::string(",\"pretty_json\":") + (f.pretty_json ? "true" : "false");
    body += ",\"foreign_next_link\":";
    core::appendDouble(body, f.foreign_next_link);
    body += ",\"throttle_retry_after\":";
    core::appendString(body, f.throttle_retry_after);
    body += ",\"incidents_expand_fail_above\":" + std::to_string(f.incidents_expand_fail_above);
    body += std::string(",\"incidents_item_fail\":") + (f.incidents_item_fail ? "true" : "false");
    auto tenant_map = [&body](const char* key, const auto& map) {
      body += std::string(",\"") + key + "\":{";
      bool first = true;
      for (const auto& [tenant, d] : map) {
        if (!first) body.push_back(',');
        first = false;
        core::appendString(body, tenant);
        body += ":\"" + std::to_string(duration_cast<milliseconds>(d).count()) + "ms\"";
      }
      body += "}";
    };
    tenant_map("slow_tenants", f.slow_tenants);
    tenant_map("throttled_tenants", f.throttled_tenants);
    body += std::string(",\"orderby\":\"") +
            (config.orderby == OrderMode::kHonour   ? "honour"
             : config.orderby == OrderMode::kIgnore ? "ignore"
                                                    : "reject") +
            "\",\"next_link\":\"" +
            (config.next_link == NextLinkMode::kNone      ? "none"
             : config.next_link == NextLinkMode::kCorrect ? "correct"
                                                          : "malformed") +
            "\"}";
    return body;
  }

  void routes() {
    auto& s = *server;
    s.Post(R"(/([^/]+)/oauth2/token)",
           [this](const httplib::Request& q, httplib::Response& r) { handleToken(q, r, false); });
    s.Post(R"(/([^/]+)/oauth2/v2\.0/token)",
           [this](const httplib::Request& q, httplib::Response& r) { handleToken(q, r, true); });
    for (const std::string base : {"/api/alerts", "/api/v1.0/alerts"}) {
      s.Get(base, [this, base](const httplib::Request& q, httplib::Response& r) {
        handleList(q, r, base);
      });
      s.Get(base + R"(/([^/?]+))", [this, base](const httplib::Request& q, httplib::Response& r) {
        handleOne(q, r, base + "/{id}");
      });
    }
    s.Get(std::string(kGraphAlertsPath),
          [this](const httplib::Request& q, httplib::Response& r) { handleGraphList(q, r); });
    s.Get(std::string(kGraphAlertsPath) + R"(/([^/?]+))",
          [this](const httplib::Request& q, httplib::Response& r) { handleGraphOne(q, r); });
    s.Get(std::string(kGraphIncidentsPath),
          [this](const httplib::Request& q, httplib::Response& r) { handleIncidentsList(q, r); });
    s.Get(std::string(kGraphIncidentsPath) + R"(/([^/?]+))",
          [this](const httplib::Request& q, httplib::Response& r) { handleIncidentOne(q, r); });
    s.Get("/_emulator/versions", [this](const httplib::Request& q, httplib::Response& r) {
      const std::string kind = q.get_param_value("kind");
      if (kind == "incidents") {
        setTestJson(r, 200, incidentVersionsJson());
      } else if (kind.empty() || kind == "alerts") {
        setTestJson(r, 200, versionsJson(q.get_param_value("tenant")));
      } else {
        setTestJson(r, 400, "{\"error\":\"kind must be alerts or incidents\"}");
      }
    });
    s.Get("/_emulator/stats", [this](const httplib::Request&, httplib::Response& r) {
      setTestJson(r, 200, statsJson());
    });
    s.Get("/_emulator/requests", [this](const httplib::Request& q, httplib::Response& r) {
      const std::string since_text = q.get_param_value("since");
      std::size_t since = 0;
      const char* end = since_text.data() + since_text.size();
      if (!since_text.empty()) {
        const auto [stop, ec] = std::from_chars(since_text.data(), end, since);
        if (ec != std::errc() || stop != end) {
          setTestJson(r, 400, "{\"error\":\"since must be a whole number\"}");
          return;
        }
      }
      setTestJson(r, 200, requestsJson(q.get_param_value("tenant"), since));
    });
    // Freezes or resumes emulated time (tests: a final poll over a world that stands still).
    s.Post("/_emulator/clock", [this](const httplib::Request& q, httplib::Response& r) {
      std::lock_guard<std::mutex> lock(mu);
      const bool freeze = q.body.find("true") != std::string::npos;
      if (freeze && !frozen_at) {
        frozen_at = emulatedNow();
      } else if (!freeze && frozen_at) {
        // Resume where it stood: shift the real origin by the time spent frozen.
        const Timestamp at = *frozen_at;
        frozen_at.reset();
        const auto ahead = emulatedNow() - at;
        real_start +=
            std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::nano>(
                static_cast<double>(ahead.count()) / config.speed));
      }
      setTestJson(r, 200,
                  std::string("{\"frozen\":") + (frozen_at ? "true" : "false") + ",\"now\":\"" +
                      formatApiTime(emulatedNow()) + "\"}");
    });
    s.Get("/_emulator/faults", [this](const httplib::Request&, httplib::Response& r) {
      std::lock_guard<std::mutex> lock(mu);
      setTestJson(r, 200, faultsJson());
    });
    s.Post("/_emulator/faults", [this](const httplib::Request& q, httplib::Response& r) {
      std::lock_guard<std::mutex> lock(mu);
      Faults faults = config.faults;
      OrderMode orderby = config.orderby;
      NextLinkMode next_link = config.next_link;
      const mdec::Status applied = applyFaultsText(q.body, faults, orderby, next_link);
      if (!applied) {
        std::string body = "{\"error\":";
        core::appendString(body, applied.error().message());
        body += "}";
        setTestJson(r, 400, body);
        return;
      }
      if (faults.foreign_next_link > 0) {
        if (const mdec::Status opened = openForeignListener(); !opened) {
          std::string body = "{\"error\":";
          core::appendString(body, opened.error().message());
          body += "}";
          setTestJson(r, 400, body);
          return;
        }
      }
      // Versions created until now keep the rate they were created under.
      world.advanceTo(emulatedNow());
      world.setFutureRate(faults.future_timestamps);
      config.faults = faults;
      config.orderby = orderby;
      config.next_link = next_link;
      setTestJson(r, 200, faultsJson());
    });
  }
};

EmulatorServer::EmulatorServer(EmulatorConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

EmulatorServer::~EmulatorServer() { stop(); }

mdec::Status EmulatorServer::start() {
  Impl& m = *impl_;
  if (!m.config.tls_cert.empty() || !m.config.tls_key.empty()) {
    if (m.config.tls_cert.empty() || m.config.tls_key.empty()) {
      return Error(ErrorCode::kInvalidArgument, "TLS needs both a certificate and a key");
    }
    auto ssl =
        std::make_unique<httplib::SSLServer>(m.config.tls_cert.c_str(), m.config.tls_key.c_str());
    if (!ssl->is_valid()) {
      return Error(ErrorCode::kInvalidArgument, "cannot load the TLS certificate '" +
                                                    m.config.tls_cert + "' or key '" +
                                                    m.config.tls_key + "'");
    }
    m.server = std::move(ssl);
    m.tls = true;
  } else {
    m.server = std::make_unique<httplib::Server>();
  }
  // A connection holds one of these threads for as long as it is open: a collector of many
  // tenants keeps dozens open (httplib's default is 8 threads).
  const std::size_t threads =
      m.config.threads > 0 ? static_cast<std::size_t>(m.config.threads) : kServerThreads;
  m.server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Without it a response's last segment waits for the client's delayed ACK of the
  // previous ones (Nagle): about 20 ms on every page of some tens of KiB, which made a page
  // of 20 alerts cost 20 ms and the emulator, not the client, the bench's limit.
  m.server->set_tcp_nodelay(true);
  m.server->set_keep_alive_max_count(1000);
  // An idle keep-alive connection holds its worker until this timeout, and stop() waits for
  // every worker: with httplib's default (5 s) a client that keeps its connection open made
  // SIGTERM take 5 s.
  m.server->set_keep_alive_timeout(1);
  m.server->set_payload_max_length(1 << 20);
  // cpp-httplib (Debian's build) listens with a backlog of 5: at most 5 connections wait to
  // be accepted, too few for thousands of clients connecting at once (bench/tenants). Its
  // socket-options hook sees the listening socket (cpp-httplib's own options are kept),
  // which is listened on again below with a longer backlog (Linux updates it).
  m.server->set_socket_options([&m](socket_t sock) {
    httplib::default_socket_options(sock);
    int none = -1;
    m.listen_socket.compare_exchange_strong(none, static_cast<int>(sock));
  });
  m.routes();
  if (m.config.port == 0) {
    m.bound_port = m.server->bind_to_any_port(m.config.host);
    if (m.bound_port < 0) {
      return Error(ErrorCode::kIo, "cannot listen on " + m.config.host + " (any port)");
    }
  } else {
    if (!m.server->bind_to_port(m.config.host, m.config.port)) {
      return Error(ErrorCode::kIo, "cannot listen on " + m.config.host + ":" +
                                       std::to_string(m.config.port) + " (in use?)");
    }
    m.bound_port = m.config.port;
  }
  if (const int sock = m.listen_socket.load(); sock >= 0) ::listen(sock, kListenBacklog);
  if (m.config.faults.foreign_next_link > 0) {
    if (auto opened = m.openForeignListener(); !opened) return opened;
  }
  m.thread = std::thread([&m] {
    m.server->listen_after_bind();
    std::lock_guard<std::mutex> lock(m.stop_mu);
    m.stopped = true;
    m.stop_cv.notify_all();
  });
  for (int i = 0; i < 500 && !m.server->is_running(); ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  return okStatus();
}

std::string EmulatorServer::baseUrl() const {
  return std::string(impl_->tls ? "https://" : "http://") +
         core::formatHostPort(impl_->config.host, impl_->bound_port);
}

int EmulatorServer::port() const { return impl_->bound_port; }

void EmulatorServer::stop() {
  if (impl_->server) impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // After the main server: no handler can be opening the foreign listener now.
  if (impl_->foreign) impl_->foreign->stop();
  if (impl_->foreign_thread.joinable()) impl_->foreign_thread.join();
}

void EmulatorServer::wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [this] { return impl_->stopped; });
}

}  // namespace mdec::emulator
