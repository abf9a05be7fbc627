// The emulator's HTTP side: Microsoft Entra ID's client-credentials token endpoints (v1 and
// v2), the Defender for Endpoint alerts API, quota, faults and the test-only endpoints.
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "ecs/json_writer.h"
#include "mdecollect/emulator/server.h"

namespace mdec::emulator {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr std::string_view kJson = "application/json; charset=utf-8";

// Resources (v1) and scope prefixes (v2) the Defender API accepts tokens for.
constexpr std::array<std::string_view, 4> kResources = {
    "https://api.securitycenter.microsoft.com", "https://api.securitycenter.windows.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice",
    "https://api.security.microsoft.com"};

std::string httpDate(Timestamp t) {
  const std::time_t secs = static_cast<std::time_t>(
      duration_cast<seconds>(t.time_since_epoch()).count());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
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

}  // namespace

struct EmulatorServer::Impl {
  struct Token {
    std::string tenant;
    std::string client_id;
    Timestamp expires;
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
  Timestamp emulated_start;
  Rng rng;
  std::map<std::string, Token> tokens;
  std::map<std::string, ClientState> clients;  // tenant + '\n' + client_id
  std::map<std::string, std::map<int, std::uint64_t>> requests;
  std::uint64_t throttled = 0;
  std::uint64_t early_retries = 0;
  std::uint64_t tokens_issued = 0;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;

  explicit Impl(EmulatorConfig c)
      : config(std::move(c)), world(config.world), rng(config.fault_seed) {
    if (config.clients.empty()) {
      config.clients.push_back({kDefaultTenant, kDefaultClientId, kDefaultClientSecret, true});
    }
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

  static void setJson(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, std::string(kJson));
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
    ecs::appendString(body, error);
    body += ",\"error_description\":";
    ecs::appendString(body, "AADSTS" + std::to_string(code) + ": " + description +
                                "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + correlation +
                                "\r\nTimestamp: " + when);
    body += ",\"error_codes\":[" + std::to_string(code) + "],\"timestamp\":";
    ecs::appendString(body, when);
    body += ",\"trace_id\":\"" + trace + "\",\"correlation_id\":\"" + correlation +
            "\",\"error_uri\":\"https://login.microsoftonline.com/error?code=" +
            std::to_string(code) + "\"}";
    setJson(res, status, body);
  }

  void handleToken(const httplib::Request& req, httplib::Response& res, bool v2) {
    sleepLatency();
    std::lock_guard<std::mutex> lock(mu);
    const std::string path = v2 ? "POST /{tenant}/oauth2/v2.0/token" : "POST /{tenant}/oauth2/token";
    tokenRequest(req, res, v2);
    count(path, res.status);
  }

  void tokenRequest(const httplib::Request& req, httplib::Response& res, bool v2) {
    if (config.faults.token_outage) {
      tokenError(res, 503, "temporarily_unavailable", 90033,
                 "A transient error has occurred. Please try again.");
      return;
    }
    const std::string tenant = req.matches[1];
    httplib::Params form;
    httplib::detail::parse_query_text(req.body, form);
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
    bool tenant_known = false;
    for (const auto& c : config.clients) tenant_known = tenant_known || c.tenant == tenant;
    if (!tenant_known) {
      tokenError(res, 400, "invalid_request", 90002,
                 "Tenant '" + tenant +
                     "' not found. Check to make sure you have the correct tenant ID and are "
                     "signing into the correct cloud. Check with your subscription "
                     "administrator, this may happen if there are no active subscriptions for "
                     "the tenant.");
      return;
    }
    const std::string* client_id = param("client_id");
    if (client_id == nullptr) {
      tokenError(res, 400, "invalid_request", 900144,
                 "The request body must contain the following parameter: 'client_id'.");
      return;
    }
    const ClientConfig* client = nullptr;
    for (const auto& c : config.clients) {
      if (c.tenant == tenant && c.client_id == *client_id) client = &c;
    }
    if (client == nullptr) {
      tokenError(res, 400, "unauthorized_client", 700016,
                 "Application with identifier '" + *client_id +
                     "' was not found in the directory '" + tenant +
                     "'. This can happen if the application has not been installed by the "
                     "administrator of the tenant or consented to by any user in the tenant. "
                     "You may have sent your authentication request to the wrong tenant.");
      return;
    }
    const std::string* secret = param("client_secret");
    if (secret == nullptr) {
      tokenError(res, 401, "invalid_client", 7000216,
                 "'client_assertion', 'client_secret' or 'request' is required for the "
                 "'client_credentials' grant type.");
      return;
    }
    if (*secret != client->client_secret) {
      tokenError(res, 401, "invalid_client", 7000215,
                 "Invalid client secret provided. Ensure the secret being sent in the request "
                 "is the client secret value, not the client secret ID, for a secret added to "
                 "app '" + client->client_id + "'.");
      return;
    }
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
        const std::string_view prefix =
            std::string_view(*scope).substr(0, scope->size() - std::string_view("/.default").size());
        ok = false;
        for (auto r : kResources) ok = ok || prefix == r;
        resource = std::string(prefix);
      }
      if (!ok) {
        tokenError(res, 400, "invalid_scope", 70011,
                   "The provided request must include a 'scope' input parameter. The provided "
                   "value for the input parameter 'scope' is not valid. The scope " + *scope +
                       " is not valid.");
        return;
      }
    } else {
      const std::string* res_param = param("resource");
      if (res_param == nullptr) {
        tokenError(res, 400, "invalid_request", 900144,
                   "The request body must contain the following parameter: 'resource'.");
        return;
      }
      bool ok = false;
      for (auto r : kResources) ok = ok || *res_param == r;
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
    tokens[token] = Token{tenant, client->client_id, now + config.token_lifetime};
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
      ecs::appendString(body, resource);
      body += ",\"access_token\":\"" + token + "\"}";
    }
    setJson(res, 200, body);
  }

  // ---- The alerts API ----

  void apiError(httplib::Response& res, int status, std::string_view code,
                const std::string& message) {
    std::string body = "{\"error\":{\"code\":";
    ecs::appendString(body, code);
    body += ",\"message\":";
    ecs::appendString(body, message);
    body += ",\"target\":\"" + guid(rng) + "\"}}";
    setJson(res, status, body);
  }

  // Authentication, quota and injected faults, in the order the real service meets them.
  // Returns false when the response is already decided.
  bool admit(const httplib::Request& req, httplib::Response& res) {
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) {
      apiError(res, 401, "Unauthorized", "Authorization header is missing or is not a Bearer token.");
      return false;
    }
    auto it = tokens.find(auth.substr(7));
    if (it == tokens.end()) {
      apiError(res, 401, "Unauthorized", "The access token is invalid.");
      return false;
    }
    if (emulatedNow() >= it->second.expires) {
      apiError(res, 401, "Unauthorized", "The access token has expired.");
      return false;
    }
    const ClientConfig* client = nullptr;
    for (const auto& c : config.clients) {
      if (c.tenant == it->second.tenant && c.client_id == it->second.client_id) client = &c;
    }
    if (client == nullptr || !client->alert_read) {
      apiError(res, 403, "Forbidden",
               "The application does not have any of the required application permissions "
               "(Alert.ReadWrite.All, Alert.Read.All) to access the resource.");
      return false;
    }
    // Quota per (tenant, application), counted in real time; refused requests count too.
    ClientState& state = clients[client->tenant + "\n" + client->client_id];
    const auto now = Clock::now();
    if (now < state.not_before) ++early_retries;
    while (!state.requests.empty() && now - state.requests.front() >= std::chrono::hours(1)) {
      state.requests.pop_front();
    }
    std::size_t in_minute = 0;
    for (auto t = state.requests.rbegin(); t != state.requests.rend(); ++t) {
      if (now - *t >= std::chrono::minutes(1)) break;
      ++in_minute;
    }
    state.requests.push_back(now);
    std::optional<Clock::time_point> free_at;
    if (in_minute >= static_cast<std::size_t>(config.quota_per_minute)) {
      free_at = state.requests[state.requests.size() - 1 - in_minute] + std::chrono::minutes(1);
    } else if (state.requests.size() > static_cast<std::size_t>(config.quota_per_hour)) {
      free_at = state.requests.front() + std::chrono::hours(1);
    }
    if (free_at) {
      const auto wait = duration_cast<seconds>(*free_at - now) + seconds(1);
      throttle(res, state, wait.count());
      return false;
    }
    if (roll(config.faults.throttle_rate)) {
      throttle(res, state, config.faults.throttle_retry_after_s);
      return false;
    }
    if (roll(config.faults.throttle_no_retry_after_rate)) {
      ++throttled;
      apiError(res, 429, "TooManyRequests", "Rate limit is exceeded.");
      return false;
    }
    if (roll(config.faults.error_rate)) {
      if (rng.below(2) == 0) {
        apiError(res, 500, "InternalServerError", "An internal error occurred.");
      } else {
        res.status = 503;
        res.set_content("<html><body>503 Service Unavailable</body></html>", "text/html");
      }
      return false;
    }
    return true;
  }

  void throttle(httplib::Response& res, ClientState& state, std::int64_t retry_after) {
    if (retry_after < 1) retry_after = 1;
    ++throttled;
    state.not_before = Clock::now() + seconds(retry_after);
    apiError(res, 429, "TooManyRequests",
             "Rate limit is exceeded. Try again in " + std::to_string(retry_after) + " seconds.");
    res.set_header("Retry-After", std::to_string(retry_after));
  }

  // Sends `body`, or cuts it short / drops the connection when a fault says so.
  void deliver(httplib::Response& res, std::string body, bool truncate, bool drop) {
    res.status = 200;
    if (!truncate && !drop) {
      res.set_content(std::move(body), std::string(kJson));
      return;
    }
    auto shared = std::make_shared<std::string>(std::move(body));
    const std::size_t cut = drop ? 0 : shared->size() / 2;
    res.set_content_provider(
        shared->size(), std::string(kJson),
        [shared, cut](std::size_t offset, std::size_t, httplib::DataSink& sink) {
          if (offset < cut) sink.write(shared->data() + offset, cut - offset);
          return false;  // the connection closes before the declared length
        });
  }

  std::string origin(const httplib::Request& req) const {
    std::string host = req.get_header_value("Host");
    if (host.empty()) host = config.host + ":" + std::to_string(bound_port);
    return std::string(tls ? "https://" : "http://") + host;
  }

  void handleList(const httplib::Request& req, httplib::Response& res, const std::string& path) {
    sleepLatency();
    std::lock_guard<std::mutex> lock(mu);
    listRequest(req, res, path);
    count("GET " + path, res.status);
    res.set_header("Date", httpDate(emulatedNow()));
  }

  void listRequest(const httplib::Request& req, httplib::Response& res, const std::string& path) {
    if (!admit(req, res)) return;
    QueryParams params;
    for (const auto& [key, value] : req.params) {
      if (key == "$filter") params.filter = value;
      else if (key == "$orderby") params.orderby = value;
      else if (key == "$top") params.top = value;
      else if (key == "$skip") params.skip = value;
      else if (key == "$expand") params.expand = value;
      else if (!key.empty() && key[0] == '$') {
        apiError(res, 400, "ODataError",
                 "The query parameter '" + key + "' is not supported.");
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
    const QueryPage page = world.query(*query, config.orderby, !drop && !truncate);
    std::string body = "{\"@odata.context\":";
    ecs::appendString(body, origin(req) + "/api/$metadata#Alerts");
    body += ",\"value\":";
    body += page.value_json;
    // $top=0 has no next page: a link back to the same $skip would never end.
    const bool more =
        page.count > 0 && page.count == query->top && query->skip + page.count < page.matched;
    if (more && config.next_link != NextLinkMode::kNone) {
      body += ",\"@odata.nextLink\":";
      ecs::appendString(body, nextLink(req, path, query->skip + page.count));
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
      link += httplib::detail::encode_query_param(key) + "=" +
              httplib::detail::encode_query_param(value) + "&";
    }
    return link + "%24skip=" + std::to_string(skip);
  }

  void handleOne(const httplib::Request& req, httplib::Response& res, const std::string& path) {
    sleepLatency();
    std::lock_guard<std::mutex> lock(mu);
    if (admit(req, res)) {
      world.advanceTo(emulatedNow());
      const bool expand = req.get_param_value("$expand") == "evidence";
      auto json = world.alertJson(req.matches[1].str(), expand);
      if (!json) {
        apiError(res, 404, "ResourceNotFound",
                 "Alert with id " + req.matches[1].str() + " was not found");
      } else {
        std::string body = "{\"@odata.context\":";
        ecs::appendString(body, origin(req) + "/api/$metadata#Alerts/$entity");
        body += "," + json->substr(1);
        setJson(res, 200, body);
      }
    }
    count("GET " + path, res.status);
    res.set_header("Date", httpDate(emulatedNow()));
  }

  // ---- Test-only endpoints ----

  std::string versionsJson() {
    std::lock_guard<std::mutex> lock(mu);
    world.advanceTo(emulatedNow());
    std::string body = "{\"now\":\"" + formatApiTime(world.now()) + "\",\"versions\":[";
    bool first = true;
    for (const VersionInfo& v : world.versions()) {
      if (!first) body.push_back(',');
      first = false;
      body += "{\"id\":";
      ecs::appendString(body, v.id);
      body += ",\"lastUpdateTime\":\"" + formatApiTime(v.last_update_time) +
              "\",\"evidence\":" + std::to_string(v.evidence) + ",\"visibleSince\":\"" +
              formatApiTime(v.visible_since) + "\",\"latest\":" + (v.latest ? "true" : "false") +
              ",\"served\":" + (v.served ? "true" : "false") + "}";
    }
    body += "]}";
    return body;
  }

  std::string statsJson() {
    std::lock_guard<std::mutex> lock(mu);
    world.advanceTo(emulatedNow());
    std::string body = "{\"now\":\"" + formatApiTime(world.now()) + "\",\"speed\":";
    ecs::appendDouble(body, config.speed);
    body += ",\"alerts\":" + std::to_string(world.alertCount()) + ",\"requests\":{";
    bool first = true;
    for (const auto& [path, statuses] : requests) {
      if (!first) body.push_back(',');
      first = false;
      ecs::appendString(body, path);
      body += ":{";
      bool inner_first = true;
      for (const auto& [status, n] : statuses) {
        if (!inner_first) body.push_back(',');
        inner_first = false;
        body += "\"" + std::to_string(status) + "\":" + std::to_string(n);
      }
      body += "}";
    }
    body += "},\"throttled\":" + std::to_string(throttled) +
            ",\"early_retries\":" + std::to_string(early_retries) +
            ",\"tokens_issued\":" + std::to_string(tokens_issued) + "}";
    return body;
  }

  std::string faultsJson() {
    const Faults& f = config.faults;
    std::string body = "{\"error_rate\":";
    ecs::appendDouble(body, f.error_rate);
    body += ",\"latency_ms\":" + std::to_string(f.latency_ms) + ",\"truncate_rate\":";
    ecs::appendDouble(body, f.truncate_rate);
    body += ",\"drop_rate\":";
    ecs::appendDouble(body, f.drop_rate);
    body += ",\"throttle_rate\":";
    ecs::appendDouble(body, f.throttle_rate);
    body += ",\"throttle_retry_after_s\":" + std::to_string(f.throttle_retry_after_s) +
            ",\"throttle_no_retry_after_rate\":";
    ecs::appendDouble(body, f.throttle_no_retry_after_rate);
    body += std::string(",\"token_outage\":") + (f.token_outage ? "true" : "false");
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
    s.Get("/_emulator/versions", [this](const httplib::Request&, httplib::Response& r) {
      setJson(r, 200, versionsJson());
    });
    s.Get("/_emulator/stats", [this](const httplib::Request&, httplib::Response& r) {
      setJson(r, 200, statsJson());
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
        real_start += std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double, std::nano>(static_cast<double>(ahead.count()) /
                                                     config.speed));
      }
      setJson(r, 200, std::string("{\"frozen\":") + (frozen_at ? "true" : "false") +
                          ",\"now\":\"" + formatApiTime(emulatedNow()) + "\"}");
    });
    s.Get("/_emulator/faults", [this](const httplib::Request&, httplib::Response& r) {
      std::lock_guard<std::mutex> lock(mu);
      setJson(r, 200, faultsJson());
    });
    s.Post("/_emulator/faults", [this](const httplib::Request& q, httplib::Response& r) {
      std::lock_guard<std::mutex> lock(mu);
      Faults faults = config.faults;
      OrderMode orderby = config.orderby;
      NextLinkMode next_link = config.next_link;
      const mdec::Status applied = applyFaultsText(q.body, faults, orderby, next_link);
      if (!applied) {
        std::string body = "{\"error\":";
        ecs::appendString(body, applied.error().message());
        body += "}";
        setJson(r, 400, body);
        return;
      }
      config.faults = faults;
      config.orderby = orderby;
      config.next_link = next_link;
      setJson(r, 200, faultsJson());
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
    auto ssl = std::make_unique<httplib::SSLServer>(m.config.tls_cert.c_str(),
                                                    m.config.tls_key.c_str());
    if (!ssl->is_valid()) {
      return Error(ErrorCode::kInvalidArgument,
                   "cannot load the TLS certificate '" + m.config.tls_cert + "' or key '" +
                       m.config.tls_key + "'");
    }
    m.server = std::move(ssl);
    m.tls = true;
  } else {
    m.server = std::make_unique<httplib::Server>();
  }
  m.server->set_keep_alive_max_count(1000);
  // An idle keep-alive connection holds its worker until this timeout, and stop() waits for
  // every worker: with httplib's default (5 s) a client that keeps its connection open made
  // SIGTERM take 5 s.
  m.server->set_keep_alive_timeout(1);
  m.server->set_payload_max_length(1 << 20);
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
  return std::string(impl_->tls ? "https://" : "http://") + impl_->config.host + ":" +
         std::to_string(impl_->bound_port);
}

int EmulatorServer::port() const { return impl_->bound_port; }

void EmulatorServer::stop() {
  if (impl_->server) impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void EmulatorServer::wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [this] { return impl_->stopped; });
}

}  // namespace mdec::emulator
