// mde-emulator over loopback, driven with the project's libcurl client: the token endpoints
// (v1, v2, every error), the alerts API (auth, OData, ordering, paging, nextLink, quota,
// faults), the test-only endpoints, and the real binary (its alerts map cleanly; config errors).
//
// Most tests run an in-process EmulatorServer on 127.0.0.1, port 0, over a world that stands
// still (no arrivals, no updates, no late versions, an emulated clock at 1 µs per second):
// what the API returns cannot change under a test. Time-dependent tests use a high speed and
// bounded polling.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/emulator/server.h"
#include "mdecollect/http/http_client.h"
#include "support/background_process.h"
#include "support/files.h"
#include "support/json_pointer.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace mdec::emulator {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Form = std::vector<std::pair<std::string, std::string>>;  // fields of a form or query

// 2026-03-02T00:00:00Z
const Timestamp kStart = Timestamp(std::chrono::sys_days(std::chrono::year(2026) / 3 / 2));
constexpr std::int64_t kStartSeconds = 1772409600;
// Emulated seconds per real second for a world that must not move during a test.
constexpr double kFrozen = 1e-6;
constexpr std::size_t kAlerts = 300;

constexpr const char* kTenant = "tenant-a";
constexpr const char* kClient = "client-a";
constexpr const char* kSecret = "secret-a";
constexpr const char* kOtherClient = "client-b";
constexpr const char* kOtherSecret = "secret-b";
constexpr const char* kNoRoleClient = "client-norole";
constexpr const char* kNoRoleSecret = "secret-norole";
constexpr const char* kResource = "https://api.securitycenter.microsoft.com";
constexpr const char* kScope = "https://api.securitycenter.microsoft.com/.default";

EmulatorConfig frozenConfig() {
  EmulatorConfig c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.clients = {{kTenant, kClient, kSecret, true},
               {kTenant, kOtherClient, kOtherSecret, true},
               {kTenant, kNoRoleClient, kNoRoleSecret, false}};
  c.world.seed = 17;
  c.world.initial_alerts = kAlerts;
  c.world.start = kStart;
  c.world.history = hours(12);
  c.world.new_alerts_per_hour = 0;
  c.world.updates_per_hour = 0;
  c.world.late_fraction = 0;
  c.speed = kFrozen;
  return c;
}

// ---------------------------------------------------------------------------------------
// JSON

using testing::Json;

// A body short enough for a failure message.
std::string brief(const std::string& body) {
  return body.size() > 300 ? body.substr(0, 300) + "..." : body;
}

core::Instant parseTime(std::string_view text) {
  auto t = core::parseIsoDateTime(text);
  EXPECT_TRUE(t) << "not a date-time: " << text;
  return t.value_or(core::Instant{});
}

core::Instant instantOf(Timestamp t) {
  const auto ns = t.time_since_epoch().count();
  return core::Instant{ns / 1'000'000'000, static_cast<std::int32_t>(ns % 1'000'000'000)};
}

// One alert of a page, the fields the tests look at.
struct Row {
  std::string id;
  std::string last_update_text;
  core::Instant last_update_time;
  core::Instant creation_time;
  std::string status;
  std::size_t evidence = 0;

  std::pair<std::string, std::string> key() const { return {id, last_update_text}; }
};

Row rowOf(simdjson::dom::element alert) {
  Row row;
  std::string_view text;
  simdjson::dom::array evidence;
  EXPECT_EQ(alert["id"].get(text), simdjson::SUCCESS);
  row.id = std::string(text);
  EXPECT_EQ(alert["lastUpdateTime"].get(text), simdjson::SUCCESS);
  row.last_update_text = std::string(text);
  row.last_update_time = parseTime(text);
  EXPECT_EQ(alert["alertCreationTime"].get(text), simdjson::SUCCESS);
  row.creation_time = parseTime(text);
  EXPECT_EQ(alert["status"].get(text), simdjson::SUCCESS);
  row.status = std::string(text);
  EXPECT_EQ(alert["evidence"].get(evidence), simdjson::SUCCESS) << row.id;
  row.evidence = evidence.size();
  return row;
}

// An alerts page as the API sends it.
struct Page {
  int status = 0;
  std::string body;
  std::string context;
  std::optional<std::string> next_link;
  std::vector<Row> rows;
};

std::vector<std::string> idsOf(const std::vector<Row>& rows) {
  std::vector<std::string> ids;
  for (const Row& r : rows) ids.push_back(r.id);
  return ids;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::string query(const Form& params) { return "?" + http::formEncode(params); }

// ---------------------------------------------------------------------------------------
// An in-process emulator and a libcurl client talking to it

class Emulator {
 public:
  explicit Emulator(EmulatorConfig config) : server_(std::move(config)) {
    const mdec::Status s = server_.start();
    started_ = s.has_value();
    if (!s) error_ = s.error().message();
  }

  bool started() const { return started_; }
  const std::string& error() const { return error_; }
  std::string base() const { return server_.baseUrl(); }
  void stop() { server_.stop(); }

  Result<HttpResponse> send(const std::string& method, const std::string& path_or_url,
                            const Headers& headers = {}, const std::string& body = {}) {
    HttpRequest request;
    request.method = method;
    request.url = path_or_url.rfind("http", 0) == 0 ? path_or_url : base() + path_or_url;
    request.headers = headers;
    request.body = body;
    request.timeout = seconds(20);
    request.connect_timeout = seconds(5);
    return http_->send(request);
  }

  // A response whose transport must succeed (status 0 and a test failure otherwise).
  HttpResponse must(const std::string& method, const std::string& path_or_url,
                    const Headers& headers = {}, const std::string& body = {}) {
    auto r = send(method, path_or_url, headers, body);
    if (!r) {
      ADD_FAILURE() << method << " " << path_or_url << ": " << r.error().message();
      return HttpResponse{};
    }
    return std::move(*r);
  }

  HttpResponse api(const std::string& path_or_url, const std::string& token, Headers headers = {}) {
    headers.emplace_back("Authorization", "Bearer " + token);
    return must("GET", path_or_url, headers);
  }

  HttpResponse postForm(const std::string& path, const Form& form) {
    return must("POST", path, {{"Content-Type", "application/x-www-form-urlencoded"}},
                http::formEncode(form));
  }

  HttpResponse tokenV1(const std::string& tenant, const Form& form) {
    return postForm("/" + tenant + "/oauth2/token", form);
  }
  HttpResponse tokenV2(const std::string& tenant, const Form& form) {
    return postForm("/" + tenant + "/oauth2/v2.0/token", form);
  }

  // A v2 token for a configured client; "" (and a test failure) when none is issued.
  std::string token(const std::string& client = kClient, const std::string& secret = kSecret,
                    const std::string& tenant = kTenant) {
    const HttpResponse r = tokenV2(tenant, {{"grant_type", "client_credentials"},
                                            {"client_id", client},
                                            {"client_secret", secret},
                                            {"scope", kScope}});
    EXPECT_EQ(r.status, 200) << brief(r.body);
    Json j(r.body);
    const std::string issued = j.str("/access_token");
    const bool ok = !issued.empty() && issued[0] != '<';
    EXPECT_TRUE(ok) << brief(r.body);
    return ok ? issued : std::string();
  }

  Page page(const std::string& path_or_url, const std::string& token) {
    Page p;
    const HttpResponse r = api(path_or_url, token);
    p.status = r.status;
    p.body = r.body;
    if (r.status != 200) return p;
    Json j(r.body);
    EXPECT_TRUE(j.ok()) << r.body.substr(0, 200);
    p.context = j.str("/@odata.context");
    if (j.has("/@odata.nextLink")) p.next_link = j.str("/@odata.nextLink");
    simdjson::dom::array value;
    EXPECT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element alert : value) p.rows.push_back(rowOf(alert));
    return p;
  }

  // Every alert, fetched in pages of `top` with $skip (at most 100 pages).
  std::vector<Row> allBySkip(const std::string& token, std::size_t top, Form params = {}) {
    std::vector<Row> rows;
    params.emplace_back("$top", std::to_string(top));
    for (std::size_t skip = 0, n = 0; n < 100; ++n, skip += top) {
      auto with_skip = params;
      with_skip.emplace_back("$skip", std::to_string(skip));
      Page p = page("/api/alerts" + query(with_skip), token);
      EXPECT_EQ(p.status, 200) << brief(p.body);
      for (Row& r : p.rows) rows.push_back(std::move(r));
      if (p.status != 200 || p.rows.size() < top) break;
    }
    return rows;
  }

 private:
  EmulatorServer server_;
  bool started_ = false;
  std::string error_;
  std::unique_ptr<http::HttpClient> http_ = http::makeCurlClient();
};

// The body of an API error: {"error":{"code":"...","message":"...","target":"..."}}.
void expectApiError(const HttpResponse& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << brief(r.body);
  Json j(r.body);
  ASSERT_TRUE(j.ok()) << brief(r.body);
  EXPECT_EQ(j.keys(""), (std::vector<std::string>{"error"})) << brief(r.body);
  EXPECT_EQ(j.keys("/error"), (std::vector<std::string>{"code", "message", "target"}))
      << brief(r.body);
  EXPECT_EQ(j.str("/error/code"), code) << brief(r.body);
  EXPECT_FALSE(j.str("/error/message").empty());
  EXPECT_FALSE(j.str("/error/target").empty());
  const std::string* type = r.header("content-type");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->rfind("application/json", 0), 0u) << *type;
}

#define START_EMULATOR(name, config) \
  Emulator name(config);             \
  ASSERT_TRUE(name.started()) << name.error()

// ---------------------------------------------------------------------------------------
// Token endpoints

TEST(EmulatorToken, V1SendsNumbersAsStringsWithExpiresOnAndResource) {
  START_EMULATOR(emu, frozenConfig());
  for (const char* resource : {kResource, "https://api.securitycenter.windows.com",
                               "https://securitycenter.onmicrosoft.com/windowsatpservice",
                               "https://api.security.microsoft.com"}) {
    SCOPED_TRACE(resource);
    const HttpResponse r = emu.tokenV1(kTenant, {{"grant_type", "client_credentials"},
                                                 {"client_id", kClient},
                                                 {"client_secret", kSecret},
                                                 {"resource", resource}});
    ASSERT_EQ(r.status, 200) << brief(r.body);
    Json j(r.body);
    ASSERT_TRUE(j.ok());
    EXPECT_EQ(j.str("/token_type"), "Bearer");
    EXPECT_EQ(j.str("/expires_in"), "3599");
    EXPECT_EQ(j.str("/ext_expires_in"), "3599");
    // The emulated clock stands at the world's start.
    EXPECT_EQ(j.str("/not_before"), std::to_string(kStartSeconds));
    EXPECT_EQ(j.str("/expires_on"), std::to_string(kStartSeconds + 3599));
    EXPECT_EQ(j.str("/resource"), resource);
    const std::string token = j.str("/access_token");
    ASSERT_FALSE(token.empty());
    EXPECT_EQ(emu.api("/api/alerts?%24top=1", token).status, 200);
  }
}

TEST(EmulatorToken, V2SendsNumbers) {
  EmulatorConfig config = frozenConfig();
  config.token_lifetime = seconds(1234);
  START_EMULATOR(emu, config);
  const HttpResponse r = emu.tokenV2(kTenant, {{"grant_type", "client_credentials"},
                                               {"client_id", kClient},
                                               {"client_secret", kSecret},
                                               {"scope", kScope}});
  ASSERT_EQ(r.status, 200) << brief(r.body);
  Json j(r.body);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j.str("/token_type"), "Bearer");
  EXPECT_EQ(j.integer("/expires_in"), 1234);
  EXPECT_EQ(j.integer("/ext_expires_in"), 1234);
  EXPECT_FALSE(j.has("/resource"));
  EXPECT_FALSE(j.has("/expires_on"));
  const std::string token = j.str("/access_token");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(emu.api("/api/alerts?%24top=1", token).status, 200);
  // Every token is new.
  EXPECT_NE(emu.token(), token);
}

// The default client's client-credentials form: v2 with a scope, v1 with a resource.
Form credentials(bool v2) {
  return {{"grant_type", "client_credentials"},
          {"client_id", kClient},
          {"client_secret", kSecret},
          {v2 ? "scope" : "resource", v2 ? kScope : kResource}};
}

Form with(Form form, const std::string& key, const std::string& value) {
  for (auto& [k, v] : form) {
    if (k == key) v = value;
  }
  return form;
}

Form without(Form form, const std::string& key) {
  std::erase_if(form, [&key](const auto& field) { return field.first == key; });
  return form;
}

struct TokenErrorCase {
  const char* name;
  bool v2;
  const char* tenant;
  Form form;
  int status;
  const char* error;
  int code;
};

TEST(EmulatorToken, EveryErrorCaseAnswersLikeEntraId) {
  START_EMULATOR(emu, frozenConfig());
  // An API the emulator does not serve (Microsoft Graph it does: emulator_graph_test.cpp).
  const char* other_api = "https://management.azure.com/.default";
  const std::vector<TokenErrorCase> cases = {
      {"unknown tenant (v1)", false, "no-such-tenant", credentials(false), 400, "invalid_request",
       90002},
      {"unknown tenant (v2)", true, "no-such-tenant", credentials(true), 400, "invalid_request",
       90002},
      {"unknown client", true, kTenant, with(credentials(true), "client_id", "no-such-client"), 400,
       "unauthorized_client", 700016},
      {"wrong secret (v2)", true, kTenant,
       with(credentials(true), "client_secret", "the-secret-id-not-its-value"), 401,
       "invalid_client", 7000215},
      {"wrong secret (v1)", false, kTenant, with(credentials(false), "client_secret", kOtherSecret),
       401, "invalid_client", 7000215},
      {"missing secret", true, kTenant, without(credentials(true), "client_secret"), 401,
       "invalid_client", 7000216},
      {"missing grant_type", true, kTenant, without(credentials(true), "grant_type"), 400,
       "invalid_request", 900144},
      {"wrong grant_type", false, kTenant, with(credentials(false), "grant_type", "password"), 400,
       "unsupported_grant_type", 70003},
      {"v2 scope of another API", true, kTenant, with(credentials(true), "scope", other_api), 400,
       "invalid_scope", 70011},
      {"v2 scope without /.default", true, kTenant, with(credentials(true), "scope", kResource),
       400, "invalid_scope", 70011},
      {"v1 unknown resource", false, kTenant,
       with(credentials(false), "resource", "https://management.azure.com"), 400,
       "invalid_resource", 500011},
  };
  for (const TokenErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    const HttpResponse r = c.v2 ? emu.tokenV2(c.tenant, c.form) : emu.tokenV1(c.tenant, c.form);
    EXPECT_EQ(r.status, c.status) << brief(r.body);
    Json j(r.body);
    ASSERT_TRUE(j.ok()) << brief(r.body);
    EXPECT_EQ(j.str("/error"), c.error);
    EXPECT_EQ(j.integer("/error_codes/0"), c.code);
    EXPECT_FALSE(j.has("/error_codes/1"));
    const std::string description = j.str("/error_description");
    const std::string prefix = "AADSTS" + std::to_string(c.code) + ":";
    EXPECT_EQ(description.rfind(prefix, 0), 0u) << description;
    EXPECT_NE(description.find("\r\nTrace ID: " + j.str("/trace_id")), std::string::npos)
        << description;
    EXPECT_NE(description.find("Correlation ID: " + j.str("/correlation_id")), std::string::npos);
    EXPECT_TRUE(core::parseIsoDateTime(j.str("/timestamp"))) << j.str("/timestamp");
    EXPECT_FALSE(j.has("/access_token"));
  }
  // None of them issued a token.
  const HttpResponse stats = emu.must("GET", "/_emulator/stats");
  Json s(stats.body);
  EXPECT_EQ(s.integer("/tokens_issued"), 0);
  EXPECT_EQ(s.integer("/requests/POST ~1{tenant}~1oauth2~1v2.0~1token/400"), 5)
      << brief(stats.body);
  EXPECT_EQ(s.integer("/requests/POST ~1{tenant}~1oauth2~1v2.0~1token/401"), 2)
      << brief(stats.body);
}

// ---------------------------------------------------------------------------------------
// The alerts API: authorisation

TEST(EmulatorApi, MissingOrUnknownTokensAre401) {
  START_EMULATOR(emu, frozenConfig());
  expectApiError(emu.must("GET", "/api/alerts"), 401, "Unauthorized");
  expectApiError(emu.api("/api/alerts", "emu.not-a-token-it-issued"), 401, "Unauthorized");
  expectApiError(emu.must("GET", "/api/alerts", {{"Authorization", "Basic Y2xpZW50OnNlY3JldA=="}}),
                 401, "Unauthorized");
  expectApiError(emu.must("GET", "/api/alerts/da000000000000000000_1"), 401, "Unauthorized");
  // A real token works; a token it never issued (one character more) does not.
  const std::string token = emu.token();
  EXPECT_EQ(emu.api("/api/alerts?%24top=1", token).status, 200);
  expectApiError(emu.api("/api/alerts", token + "x"), 401, "Unauthorized");
}

TEST(EmulatorApi, AnExpiredTokenIs401) {
  EmulatorConfig config = frozenConfig();
  config.token_lifetime = seconds(10);
  config.speed = 10;  // the token lives one real second
  START_EMULATOR(emu, config);
  const auto issued = steady_clock::now();
  const std::string token = emu.token();
  const HttpResponse fresh = emu.api("/api/alerts?%24top=1", token);
  if (steady_clock::now() - issued < milliseconds(800)) {
    EXPECT_EQ(fresh.status, 200) << brief(
        fresh.body);  // (unless this machine stalled for a second)
  }
  HttpResponse r;
  for (int i = 0; i < 100 && r.status != 401; ++i) {  // at most ~5 s
    std::this_thread::sleep_for(milliseconds(50));
    r = emu.api("/api/alerts?%24top=1", token);
  }
  expectApiError(r, 401, "Unauthorized");
  Json j(r.body);
  EXPECT_NE(j.str("/error/message").find("expired"), std::string::npos) << brief(r.body);
  EXPECT_GE(steady_clock::now() - issued, milliseconds(900)) << "expired too early";
}

TEST(EmulatorApi, AClientWithoutTheRoleIs403) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token(kNoRoleClient, kNoRoleSecret);
  ASSERT_FALSE(token.empty());
  const HttpResponse r = emu.api("/api/alerts", token);
  expectApiError(r, 403, "Forbidden");
  EXPECT_NE(r.body.find("Alert.Read.All"), std::string::npos);
  expectApiError(emu.api("/api/alerts/da000000000000000000_1", token), 403, "Forbidden");
}

// ---------------------------------------------------------------------------------------
// The alerts API: OData

TEST(EmulatorApi, UnsupportedQueriesAre400ODataErrors) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  for (const auto& params : std::vector<Form>{
           {{"$filter", "lastUpdateTime ge 2026-03-01T00:00:00Z or status eq 'New'"}},
           {{"$top", "20000"}},
           {{"$top", "-1"}},
           {{"$skip", "many"}},
           {{"$foo", "1"}},
           {{"$orderby", "title"}},
           {{"$expand", "comments"}},
           {{"$filter", "lastUpdateTime ge datetime'2026-03-01T00:00:00Z'"}},
           {{"$filter", "(lastUpdateTime ge 2026-03-01T00:00:00Z)"}},
       }) {
    SCOPED_TRACE(params[0].first + "=" + params[0].second);
    expectApiError(emu.api("/api/alerts" + query(params), token), 400, "ODataError");
  }
  // $top at its maximum is fine, and parameters without a `$` are not OData options.
  EXPECT_EQ(emu.api("/api/alerts" + query({{"$top", "10000"}}), token).status, 200);
  EXPECT_EQ(emu.api("/api/alerts" + query({{"foo", "1"}, {"$top", "1"}}), token).status, 200);
}

TEST(EmulatorApi, FiltersSelectTimeWindowsStatusAndSeverity) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Page all = emu.page("/api/alerts", token);
  ASSERT_EQ(all.status, 200);
  ASSERT_EQ(all.rows.size(), kAlerts);

  const Timestamp from = kStart - hours(8);
  const Timestamp to = kStart - hours(3);
  const std::string filter =
      "lastUpdateTime ge " + formatApiTime(from) + " and lastUpdateTime lt " + formatApiTime(to);
  std::set<std::string> expected;
  for (const Row& r : all.rows) {
    if (r.last_update_time >= instantOf(from) && r.last_update_time < instantOf(to)) {
      expected.insert(r.id);
    }
  }
  ASSERT_GT(expected.size(), 20u);
  const Page window = emu.page("/api/alerts" + query({{"$filter", filter}}), token);
  ASSERT_EQ(window.status, 200) << brief(window.body);
  const auto ids = idsOf(window.rows);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), expected);
  EXPECT_EQ(ids.size(), expected.size());

  std::map<std::string, std::size_t> by_status;
  for (const Row& r : all.rows) ++by_status[r.status];
  ASSERT_GE(by_status.size(), 2u);
  for (const auto& [status, n] : by_status) {
    const Page p =
        emu.page("/api/alerts" + query({{"$filter", "status eq '" + status + "'"}}), token);
    ASSERT_EQ(p.status, 200) << brief(p.body);
    EXPECT_EQ(p.rows.size(), n) << status;
    for (const Row& r : p.rows) EXPECT_EQ(r.status, status);
  }
  // Severity: the page says what each alert's severity is; the filter agrees.
  std::map<std::string, std::size_t> by_severity;
  {
    Json j(all.body);
    simdjson::dom::array value;
    ASSERT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element a : value) {
      std::string_view severity;
      ASSERT_EQ(a["severity"].get(severity), simdjson::SUCCESS);
      ++by_severity[std::string(severity)];
    }
  }
  ASSERT_GE(by_severity.size(), 3u);
  for (const auto& [severity, n] : by_severity) {
    const Page p =
        emu.page("/api/alerts" + query({{"$filter", "severity eq '" + severity + "'"}}), token);
    ASSERT_EQ(p.status, 200) << brief(p.body);
    EXPECT_EQ(p.rows.size(), n) << severity;
    Json j(p.body);
    simdjson::dom::array value;
    ASSERT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element a : value) {
      std::string_view s;
      EXPECT_EQ(a["severity"].get(s), simdjson::SUCCESS);
      EXPECT_EQ(s, severity);
    }
  }
}

bool inOrder(const Row& a, const Row& b, bool by_creation, bool descending) {
  const core::Instant& ka = by_creation ? a.creation_time : a.last_update_time;
  const core::Instant& kb = by_creation ? b.creation_time : b.last_update_time;
  if (ka != kb) return descending ? ka > kb : ka < kb;
  return a.id < b.id;
}

bool isOrdered(const std::vector<Row>& rows, bool by_creation, bool descending) {
  for (std::size_t i = 1; i < rows.size(); ++i) {
    if (!inOrder(rows[i - 1], rows[i], by_creation, descending)) return false;
  }
  return true;
}

TEST(EmulatorApi, OrderByIsHonoured) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  struct Case {
    const char* orderby;
    bool by_creation;
    bool descending;
  };
  for (const Case& c :
       {Case{"lastUpdateTime asc", false, false}, Case{"lastUpdateTime desc", false, true},
        Case{"alertCreationTime", true, false}, Case{"alertCreationTime desc", true, true}}) {
    SCOPED_TRACE(c.orderby);
    const Page p = emu.page("/api/alerts" + query({{"$orderby", c.orderby}}), token);
    ASSERT_EQ(p.status, 200) << brief(p.body);
    ASSERT_EQ(p.rows.size(), kAlerts);
    EXPECT_TRUE(isOrdered(p.rows, c.by_creation, c.descending));
  }
}

TEST(EmulatorApi, OrderByIgnoredGivesTheSameSetUnsorted) {
  EmulatorConfig config = frozenConfig();
  config.orderby = OrderMode::kIgnore;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  const Page plain = emu.page("/api/alerts", token);
  const Page asked = emu.page("/api/alerts" + query({{"$orderby", "lastUpdateTime asc"}}), token);
  const Page again = emu.page("/api/alerts" + query({{"$orderby", "lastUpdateTime asc"}}), token);
  ASSERT_EQ(asked.status, 200) << brief(asked.body);
  ASSERT_EQ(asked.rows.size(), kAlerts);
  EXPECT_EQ(idsOf(asked.rows), idsOf(plain.rows));
  EXPECT_EQ(idsOf(asked.rows), idsOf(again.rows));  // a fixed order
  EXPECT_FALSE(isOrdered(asked.rows, false, false));
  EXPECT_FALSE(isOrdered(asked.rows, false, true));
  // The honouring emulator returns the same set.
  START_EMULATOR(honour, frozenConfig());
  const Page sorted_page =
      honour.page("/api/alerts" + query({{"$orderby", "lastUpdateTime asc"}}), honour.token());
  EXPECT_TRUE(isOrdered(sorted_page.rows, false, false));
  EXPECT_EQ(sorted(idsOf(sorted_page.rows)), sorted(idsOf(asked.rows)));
}

TEST(EmulatorApi, OrderByRejectedOnlyWhenSent) {
  EmulatorConfig config = frozenConfig();
  config.orderby = OrderMode::kReject;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  for (const char* orderby : {"lastUpdateTime asc", "alertCreationTime desc"}) {
    expectApiError(emu.api("/api/alerts" + query({{"$orderby", orderby}}), token), 400,
                   "ODataError");
  }
  const Page p = emu.page("/api/alerts" + query({{"$top", "50"}}), token);
  EXPECT_EQ(p.status, 200) << brief(p.body);
  EXPECT_EQ(p.rows.size(), 50u);
}

TEST(EmulatorApi, TopAndSkipPagesConcatenateToTheFullSet) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  for (const char* orderby : {"lastUpdateTime asc", "alertCreationTime desc", ""}) {
    SCOPED_TRACE(orderby);
    Form params;
    if (*orderby != '\0') params.emplace_back("$orderby", orderby);
    const Page whole = emu.page("/api/alerts" + query(params), token);
    ASSERT_EQ(whole.rows.size(), kAlerts);
    const std::vector<Row> paged = emu.allBySkip(token, 70, params);
    EXPECT_EQ(idsOf(paged), idsOf(whole.rows));
    const auto ids = idsOf(paged);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), kAlerts);
  }
  // Past the end: an empty page, not an error.
  const Page beyond = emu.page("/api/alerts" + query({{"$skip", "5000"}}), token);
  EXPECT_EQ(beyond.status, 200);
  EXPECT_TRUE(beyond.rows.empty());
  EXPECT_NE(beyond.body.find(R"("value":[])"), std::string::npos) << brief(beyond.body);
  EXPECT_FALSE(beyond.next_link);
}

TEST(EmulatorApi, EvidenceOnlyWithExpand) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Page plain = emu.page("/api/alerts", token);
  const Page expanded = emu.page("/api/alerts" + query({{"$expand", "evidence"}}), token);
  ASSERT_EQ(plain.rows.size(), kAlerts);
  ASSERT_EQ(expanded.rows.size(), kAlerts);
  std::size_t total = 0;
  for (const Row& r : plain.rows) EXPECT_EQ(r.evidence, 0u) << r.id;
  for (const Row& r : expanded.rows) total += r.evidence;
  EXPECT_GT(total, kAlerts);
  // The ground truth agrees on every alert's evidence count.
  Json versions(emu.must("GET", "/_emulator/versions").body);
  simdjson::dom::array list;
  ASSERT_EQ(versions.root()["versions"].get(list), simdjson::SUCCESS);
  std::map<std::string, std::int64_t> evidence;
  for (simdjson::dom::element v : list) {
    std::string_view id;
    std::int64_t n = 0;
    ASSERT_EQ(v["id"].get(id), simdjson::SUCCESS);
    ASSERT_EQ(v["evidence"].get(n), simdjson::SUCCESS);
    evidence[std::string(id)] = n;
  }
  for (const Row& r : expanded.rows) {
    EXPECT_EQ(static_cast<std::int64_t>(r.evidence), evidence[r.id]) << r.id;
  }
}

TEST(EmulatorApi, ODataContextIsBuiltFromTheRequestHost) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Page p = emu.page("/api/alerts?%24top=1", token);
  EXPECT_EQ(p.context, emu.base() + "/api/$metadata#Alerts");
  const HttpResponse r =
      emu.api("/api/alerts?%24top=1", token, {{"Host", "api-eu.securitycenter.microsoft.com"}});
  ASSERT_EQ(r.status, 200) << brief(r.body);
  Json j(r.body);
  EXPECT_EQ(j.str("/@odata.context"),
            "http://api-eu.securitycenter.microsoft.com/api/$metadata#Alerts");
}

TEST(EmulatorApi, NextLinkLeadsThroughEveryPage) {
  EmulatorConfig config = frozenConfig();
  config.next_link = NextLinkMode::kCorrect;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  // A filter with spaces and colons, to see that the link carries it encoded.
  const Form params = {{"$filter", "lastUpdateTime ge " + formatApiTime(kStart - hours(10))},
                       {"$orderby", "lastUpdateTime asc"}};
  const Page whole = emu.page("/api/alerts" + query(params), token);
  ASSERT_EQ(whole.status, 200) << brief(whole.body);
  ASSERT_GT(whole.rows.size(), 150u);
  EXPECT_FALSE(whole.next_link) << "everything fits: no next page";

  auto first_params = params;
  first_params.emplace_back("$top", "40");
  Page p = emu.page("/api/alerts" + query(first_params), token);
  ASSERT_EQ(p.status, 200) << brief(p.body);
  ASSERT_TRUE(p.next_link);
  EXPECT_EQ(p.next_link->rfind(emu.base() + "/api/alerts?", 0), 0u) << *p.next_link;
  // Following the first link gives what $skip=40 gives.
  auto second_params = first_params;
  second_params.emplace_back("$skip", "40");
  const Page second = emu.page("/api/alerts" + query(second_params), token);
  const Page followed = emu.page(*p.next_link, token);
  EXPECT_EQ(idsOf(followed.rows), idsOf(second.rows));

  std::vector<Row> rows = p.rows;
  int pages = 1;
  while (p.next_link && pages < 50) {
    p = emu.page(*p.next_link, token);
    ASSERT_EQ(p.status, 200) << brief(p.body);
    rows.insert(rows.end(), p.rows.begin(), p.rows.end());
    ++pages;
  }
  EXPECT_FALSE(p.next_link);
  EXPECT_EQ(idsOf(rows), idsOf(whole.rows));
  EXPECT_EQ(static_cast<std::size_t>(pages), (whole.rows.size() + 39) / 40);
  // Regression: $top=0 used to link to the same $skip, a loop for a client that follows.
  const Page none = emu.page("/api/alerts" + query({{"$top", "0"}}), token);
  EXPECT_EQ(none.status, 200);
  EXPECT_TRUE(none.rows.empty());
  EXPECT_FALSE(none.next_link) << *none.next_link;
}

TEST(EmulatorApi, MalformedNextLinkCannotBeFollowed) {
  EmulatorConfig config = frozenConfig();
  config.next_link = NextLinkMode::kMalformed;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  const Page p = emu.page("/api/alerts" + query({{"$top", "100"}}), token);
  ASSERT_EQ(p.status, 200) << brief(p.body);
  EXPECT_EQ(p.rows.size(), 100u);
  ASSERT_TRUE(p.next_link) << "the link is there, just broken";
  auto r = emu.send("GET", *p.next_link, {{"Authorization", "Bearer " + token}});
  EXPECT_TRUE(!r || r->status >= 400) << *p.next_link << " answered " << r->status;
}

TEST(EmulatorApi, OneAlertById) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Page p = emu.page("/api/alerts" + query({{"$top", "3"}, {"$expand", "evidence"}}), token);
  ASSERT_EQ(p.rows.size(), 3u);
  for (const char* base : {"/api/alerts/", "/api/v1.0/alerts/"}) {
    for (const Row& expected : p.rows) {
      SCOPED_TRACE(std::string(base) + expected.id);
      for (bool expand : {false, true}) {
        const HttpResponse r =
            emu.api(base + expected.id + (expand ? "?%24expand=evidence" : ""), token);
        ASSERT_EQ(r.status, 200) << brief(r.body);
        Json j(r.body);
        ASSERT_TRUE(j.ok());
        EXPECT_EQ(j.str("/@odata.context"), emu.base() + "/api/$metadata#Alerts/$entity");
        const Row got = rowOf(j.root());
        EXPECT_EQ(got.id, expected.id);
        EXPECT_EQ(got.last_update_text, expected.last_update_text);
        EXPECT_EQ(got.evidence, expand ? expected.evidence : 0u);
      }
    }
  }
  expectApiError(emu.api("/api/alerts/da000000000000000000_1", token), 404, "ResourceNotFound");
  expectApiError(emu.api("/api/v1.0/alerts/nope", token), 404, "ResourceNotFound");
}

TEST(EmulatorApi, VersionedPathServesTheSameAlerts) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const std::string q = query({{"$orderby", "alertCreationTime asc"}, {"$top", "120"}});
  const Page a = emu.page("/api/alerts" + q, token);
  const Page b = emu.page("/api/v1.0/alerts" + q, token);
  ASSERT_EQ(b.status, 200) << brief(b.body);
  EXPECT_EQ(b.rows.size(), 120u);
  EXPECT_EQ(idsOf(a.rows), idsOf(b.rows));
  expectApiError(emu.must("GET", "/api/v1.0/alerts"), 401, "Unauthorized");
  Json stats(emu.must("GET", "/_emulator/stats").body);
  EXPECT_EQ(stats.integer("/requests/GET ~1api~1v1.0~1alerts/200"), 1);
  EXPECT_EQ(stats.integer("/requests/GET ~1api~1v1.0~1alerts/401"), 1);
  EXPECT_EQ(stats.integer("/requests/GET ~1api~1alerts/200"), 1);
}

// ---------------------------------------------------------------------------------------
// Quota

TEST(EmulatorQuota, TheRequestOverTheMinuteQuotaIs429WithRetryAfter) {
  EmulatorConfig config = frozenConfig();
  config.quota_per_minute = 5;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(emu.api("/api/alerts?%24top=1", token).status, 200) << "request " << i + 1;
  }
  const HttpResponse sixth = emu.api("/api/alerts?%24top=1", token);
  expectApiError(sixth, 429, "TooManyRequests");
  const std::string* retry_after = sixth.header("retry-after");
  ASSERT_NE(retry_after, nullptr);
  const int wait = std::stoi(*retry_after);
  EXPECT_GE(wait, 1);
  EXPECT_LE(wait, 61);
  {
    Json stats(emu.must("GET", "/_emulator/stats").body);
    EXPECT_EQ(stats.integer("/throttled"), 1);
    EXPECT_EQ(stats.integer("/early_retries"), 0);
  }
  // Retrying at once is an early retry, and still throttled.
  expectApiError(emu.api("/api/alerts?%24top=1", token), 429, "TooManyRequests");
  {
    Json stats(emu.must("GET", "/_emulator/stats").body);
    EXPECT_EQ(stats.integer("/throttled"), 2);
    EXPECT_EQ(stats.integer("/early_retries"), 1);
    EXPECT_EQ(stats.integer("/requests/GET ~1api~1alerts/200"), 5);
    EXPECT_EQ(stats.integer("/requests/GET ~1api~1alerts/429"), 2);
  }
  // The quota is per application: another client of the tenant is not throttled.
  EXPECT_EQ(emu.api("/api/alerts?%24top=1", emu.token(kOtherClient, kOtherSecret)).status, 200);
  // The token endpoint has no such quota.
  EXPECT_FALSE(emu.token().empty());
}

TEST(EmulatorQuota, TheHourQuotaToo) {
  EmulatorConfig config = frozenConfig();
  config.quota_per_hour = 3;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(emu.api("/api/alerts?%24top=1", token).status, 200);
  const HttpResponse r = emu.api("/api/alerts?%24top=1", token);
  expectApiError(r, 429, "TooManyRequests");
  const std::string* retry_after = r.header("retry-after");
  ASSERT_NE(retry_after, nullptr);
  EXPECT_GT(std::stoi(*retry_after), 60);
  EXPECT_LE(std::stoi(*retry_after), 3601);
}

// ---------------------------------------------------------------------------------------
// Faults

TEST(EmulatorFaults, ErrorRateOneAnswers500Or503) {
  EmulatorConfig config = frozenConfig();
  config.faults.error_rate = 1;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  std::set<int> statuses;
  for (int i = 0; i < 12; ++i) {
    const HttpResponse r = emu.api("/api/alerts?%24top=1", token);
    EXPECT_TRUE(r.status == 500 || r.status == 503) << r.status;
    if (r.status == 500) expectApiError(r, 500, "InternalServerError");
    statuses.insert(r.status);
  }
  EXPECT_EQ(statuses, (std::set<int>{500, 503}));  // both kinds, from the seeded fault stream
  // Authentication comes first: without a token it is still 401.
  expectApiError(emu.must("GET", "/api/alerts"), 401, "Unauthorized");
}

// The versions the emulator marked served.
std::size_t servedCount(Emulator& emu) {
  Json j(emu.must("GET", "/_emulator/versions").body);
  simdjson::dom::array list;
  EXPECT_EQ(j.root()["versions"].get(list), simdjson::SUCCESS);
  std::size_t served = 0;
  for (simdjson::dom::element v : list) {
    bool s = false;
    EXPECT_EQ(v["served"].get(s), simdjson::SUCCESS);
    served += s;
  }
  return served;
}

TEST(EmulatorFaults, TruncatedBodiesAreNetworkErrorsAndNotServed) {
  EmulatorConfig config = frozenConfig();
  config.faults.truncate_rate = 1;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  for (int i = 0; i < 3; ++i) {
    auto r = emu.send("GET", "/api/alerts", {{"Authorization", "Bearer " + token}});
    ASSERT_FALSE(r) << "status " << r->status << ", " << r->body.size() << " bytes";
    EXPECT_EQ(r.error().code(), ErrorCode::kNetwork) << r.error().message();
  }
  EXPECT_EQ(servedCount(emu), 0u);
}

TEST(EmulatorFaults, DroppedConnectionsAreNetworkErrorsAndNotServed) {
  EmulatorConfig config = frozenConfig();
  config.faults.drop_rate = 1;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  for (int i = 0; i < 3; ++i) {
    auto r = emu.send("GET", "/api/alerts?%24top=10", {{"Authorization", "Bearer " + token}});
    ASSERT_FALSE(r) << "status " << r->status;
    EXPECT_EQ(r.error().code(), ErrorCode::kNetwork) << r.error().message();
  }
  EXPECT_EQ(servedCount(emu), 0u);
}

TEST(EmulatorFaults, ThrottlingWithAndWithoutRetryAfter) {
  EmulatorConfig config = frozenConfig();
  config.faults.throttle_no_retry_after_rate = 1;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  const HttpResponse bare = emu.api("/api/alerts", token);
  expectApiError(bare, 429, "TooManyRequests");
  EXPECT_EQ(bare.header("retry-after"), nullptr);

  EmulatorConfig told_config = frozenConfig();
  told_config.faults.throttle_rate = 1;
  told_config.faults.throttle_retry_after_s = 7;
  START_EMULATOR(other, told_config);
  const HttpResponse told = other.api("/api/alerts", other.token());
  expectApiError(told, 429, "TooManyRequests");
  ASSERT_NE(told.header("retry-after"), nullptr);
  EXPECT_EQ(*told.header("retry-after"), "7");
  Json stats(other.must("GET", "/_emulator/stats").body);
  EXPECT_EQ(stats.integer("/throttled"), 1);
}

TEST(EmulatorFaults, TokenOutageAnswers503) {
  EmulatorConfig config = frozenConfig();
  config.faults.token_outage = true;
  START_EMULATOR(emu, config);
  for (bool v2 : {false, true}) {
    const Form form = credentials(v2);
    const HttpResponse r = v2 ? emu.tokenV2(kTenant, form) : emu.tokenV1(kTenant, form);
    EXPECT_EQ(r.status, 503) << brief(r.body);
    Json j(r.body);
    EXPECT_EQ(j.str("/error"), "temporarily_unavailable");
    EXPECT_FALSE(j.has("/access_token"));
  }
}

TEST(EmulatorFaults, ChangeAtRunTime) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Headers json_type = {{"Content-Type", "application/json"}};
  {
    const HttpResponse r = emu.must("GET", "/_emulator/faults");
    ASSERT_EQ(r.status, 200);
    Json j(r.body);
    EXPECT_EQ(j.number("/error_rate"), 0.0);
    EXPECT_EQ(j.boolean("/token_outage"), false);
    EXPECT_EQ(j.str("/orderby"), "honour");
    EXPECT_EQ(j.str("/next_link"), "none");
  }
  {
    const HttpResponse r = emu.must("POST", "/_emulator/faults", json_type,
                                    R"({"error_rate": 1, "orderby": "reject"})");
    ASSERT_EQ(r.status, 200) << brief(r.body);
    Json j(r.body);
    EXPECT_EQ(j.number("/error_rate"), 1.0);
    EXPECT_EQ(j.str("/orderby"), "reject");
  }
  {
    Json j(emu.must("GET", "/_emulator/faults").body);
    EXPECT_EQ(j.number("/error_rate"), 1.0);
    EXPECT_EQ(j.str("/orderby"), "reject");
    EXPECT_EQ(j.number("/truncate_rate"), 0.0);  // what the body did not name is unchanged
  }
  const int failed = emu.api("/api/alerts?%24top=1", token).status;
  EXPECT_TRUE(failed == 500 || failed == 503) << failed;

  // Bad bodies change nothing.
  for (const char* bad : {R"({"error_rate": 2})", R"({"no_such_fault": 1})", "{not json",
                          R"({"orderby": "sideways"})", R"({"latency_ms": "soon"})"}) {
    SCOPED_TRACE(bad);
    const HttpResponse r = emu.must("POST", "/_emulator/faults", json_type, bad);
    EXPECT_EQ(r.status, 400) << brief(r.body);
    Json j(r.body);
    EXPECT_FALSE(j.str("/error").empty()) << brief(r.body);
  }
  EXPECT_NE(emu.must("POST", "/_emulator/faults", json_type, R"({"no_such_fault": 1})")
                .body.find("no_such_fault"),
            std::string::npos);
  {
    Json j(emu.must("GET", "/_emulator/faults").body);
    EXPECT_EQ(j.number("/error_rate"), 1.0);
    EXPECT_EQ(j.str("/orderby"), "reject");
  }

  ASSERT_EQ(emu.must("POST", "/_emulator/faults", json_type,
                     R"({"error_rate": 0, "orderby": "honour", "token_outage": true,
                         "latency_ms": 150})")
                .status,
            200);
  const auto before = steady_clock::now();
  EXPECT_EQ(emu.api("/api/alerts?%24top=1&%24orderby=lastUpdateTime", token).status, 200);
  EXPECT_GE(steady_clock::now() - before, milliseconds(150)) << "latency_ms";
  EXPECT_EQ(emu.tokenV2(kTenant, {{"grant_type", "client_credentials"},
                                  {"client_id", kClient},
                                  {"client_secret", kSecret},
                                  {"scope", kScope}})
                .status,
            503);
  Json j(emu.must("GET", "/_emulator/faults").body);
  EXPECT_EQ(j.boolean("/token_outage"), true);
  EXPECT_EQ(j.integer("/latency_ms"), 150);
}

// Regression: httplib keeps an idle keep-alive connection's worker for its keep-alive
// timeout, and stop() joins every worker; with the default 5 s, stopping hung that long.
TEST(EmulatorServerTest, StopsPromptlyWhileAClientHoldsAnIdleConnection) {
  START_EMULATOR(emu, frozenConfig());
  EXPECT_EQ(emu.api("/api/alerts?%24top=1", emu.token()).status, 200);  // connection kept
  const auto stopping = steady_clock::now();
  emu.stop();
  EXPECT_LT(steady_clock::now() - stopping, seconds(3));
  auto r = emu.send("GET", "/_emulator/stats");
  EXPECT_FALSE(r) << "still answering after stop()";
}

// ---------------------------------------------------------------------------------------
// The ground truth agrees with what the API returned

struct VersionRow {
  std::string id;
  std::string last_update_time;
  core::Instant visible_since;
  bool latest = false;
  bool served = false;
};

std::vector<VersionRow> versionsOf(Emulator& emu, std::string* now = nullptr) {
  const HttpResponse r = emu.must("GET", "/_emulator/versions");
  EXPECT_EQ(r.status, 200);
  Json j(r.body);
  if (now != nullptr) *now = j.str("/now");
  simdjson::dom::array list;
  EXPECT_EQ(j.root()["versions"].get(list), simdjson::SUCCESS);
  std::vector<VersionRow> out;
  for (simdjson::dom::element v : list) {
    VersionRow row;
    std::string_view text;
    EXPECT_EQ(v["id"].get(text), simdjson::SUCCESS);
    row.id = std::string(text);
    EXPECT_EQ(v["lastUpdateTime"].get(text), simdjson::SUCCESS);
    row.last_update_time = std::string(text);
    EXPECT_EQ(v["visibleSince"].get(text), simdjson::SUCCESS);
    row.visible_since = parseTime(text);
    EXPECT_EQ(v["latest"].get(row.latest), simdjson::SUCCESS);
    EXPECT_EQ(v["served"].get(row.served), simdjson::SUCCESS);
    out.push_back(std::move(row));
  }
  return out;
}

TEST(EmulatorVersions, ServedIsExactlyWhatTheApiReturned) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  std::set<std::pair<std::string, std::string>> returned;
  // Two pages of three first: only they are served.
  for (const char* skip : {"0", "100"}) {
    const Page p = emu.page("/api/alerts" + query({{"$top", "100"}, {"$skip", skip}}), token);
    ASSERT_EQ(p.rows.size(), 100u);
    for (const Row& r : p.rows) returned.insert(r.key());
  }
  auto versions = versionsOf(emu);
  ASSERT_EQ(versions.size(), kAlerts);
  std::set<std::pair<std::string, std::string>> served;
  for (const VersionRow& v : versions) {
    EXPECT_TRUE(v.latest);
    if (v.served) served.emplace(v.id, v.last_update_time);
  }
  EXPECT_EQ(served, returned);

  // Then everything, in several pages: every latest version is served.
  for (const Row& r : emu.allBySkip(token, 64)) returned.insert(r.key());
  versions = versionsOf(emu);
  served.clear();
  for (const VersionRow& v : versions) {
    if (v.latest) {
      EXPECT_TRUE(v.served) << v.id;
    }
    if (v.served) served.emplace(v.id, v.last_update_time);
  }
  EXPECT_EQ(served.size(), kAlerts);
  EXPECT_EQ(served, returned);
}

TEST(EmulatorVersions, AgreeWithTheApiWhileAlertsChange) {
  EmulatorConfig config = frozenConfig();
  config.speed = 360;  // an emulated hour in ten real seconds
  config.world.updates_per_hour = 300;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  // Wait (bounded) until a few alerts have changed.
  std::vector<VersionRow> versions;
  for (int i = 0; i < 100; ++i) {
    versions = versionsOf(emu);
    if (versions.size() >= kAlerts + 5) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_GE(versions.size(), kAlerts + 5) << "no updates within 5 s";

  std::string before_text;
  versionsOf(emu, &before_text);
  const core::Instant before = parseTime(before_text);
  std::set<std::pair<std::string, std::string>> returned;
  const std::vector<Row> rows = emu.allBySkip(token, 60);
  for (const Row& r : rows) returned.insert(r.key());
  // No arrivals: the set of alerts is fixed, so paging neither skips nor repeats one.
  const auto ids = idsOf(rows);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), kAlerts);
  EXPECT_EQ(rows.size(), kAlerts);

  versions = versionsOf(emu);
  std::set<std::pair<std::string, std::string>> served;
  std::size_t older = 0;
  for (const VersionRow& v : versions) {
    if (v.served) served.emplace(v.id, v.last_update_time);
    older += !v.latest;
    // A version that was visible before the fetch began and is still the newest was served.
    if (v.latest && v.visible_since <= before) {
      EXPECT_TRUE(v.served) << v.id;
    }
  }
  EXPECT_EQ(served, returned);
  EXPECT_GE(older, 5u);
}

// ---------------------------------------------------------------------------------------
// The real binary

using mdec::testing::readFile;
using mdec::testing::TempDir;
using mdec::testing::writeFile;

TEST(EmulatorBinary, ServesAlertsThatMapCleanlyAndStopsOnSigterm) {
  TempDir dir{"mdec-emulator-test"};
  mdec::testing::BackgroundProcess emulator(
      {MDEC_EMULATOR, "--listen", "127.0.0.1:0", "--alerts", "300", "--seed", "5", "--tenant", "t1",
       "--client-id", "c1", "--client-secret", "s1"},
      dir.sub("emulator.err"));
  const std::optional<std::string> base = emulator.readLine(seconds(20));
  ASSERT_TRUE(base) << "no base URL; stderr: " << readFile(dir.sub("emulator.err"));
  ASSERT_EQ(base->rfind("http://127.0.0.1:", 0), 0u) << *base;

  auto http = http::makeCurlClient();
  HttpRequest token_request;
  token_request.method = "POST";
  token_request.url = *base + "/t1/oauth2/v2.0/token";
  token_request.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  token_request.body = http::formEncode({{"grant_type", "client_credentials"},
                                         {"client_id", "c1"},
                                         {"client_secret", "s1"},
                                         {"scope", kScope}});
  token_request.timeout = seconds(20);
  auto token_response = http->send(token_request);
  ASSERT_TRUE(token_response) << token_response.error().message();
  ASSERT_EQ(token_response->status, 200) << brief(token_response->body);
  Json token_json(token_response->body);
  const std::string token = token_json.str("/access_token");

  HttpRequest list;
  list.url = *base + "/api/alerts?%24expand=evidence";
  list.headers = {{"Authorization", "Bearer " + token}};
  list.timeout = seconds(30);
  auto page = http->send(list);
  ASSERT_TRUE(page) << page.error().message();
  ASSERT_EQ(page->status, 200) << brief(page->body);
  ASSERT_EQ(page->body.find('\n'), std::string::npos) << "a page is one line";

  std::size_t alerts = 0;
  std::size_t expected_documents = 0;
  {
    Json j(page->body);
    ASSERT_TRUE(j.ok());
    simdjson::dom::array value;
    ASSERT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element a : value) {
      const Row r = rowOf(a);
      ++alerts;
      expected_documents += std::max<std::size_t>(1, r.evidence);
    }
  }
  // Some of the newest initial alerts may still be invisible (late arrival).
  EXPECT_GE(alerts, 250u);
  EXPECT_LE(alerts, 320u);
  EXPECT_GT(expected_documents, alerts);

  const std::string input = dir.sub("page.ndjson");
  writeFile(input, page->body + "\n");
  const mdec::testing::ProcessResult mapped =
      mdec::testing::runProcess({MDEC_BINARY, "map", input}, {}, seconds(60));
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_NE(
      mapped.err.find(std::to_string(alerts) + " alerts, " + std::to_string(expected_documents) +
                      " documents written, 0 error documents"),
      std::string::npos)
      << mapped.err;
  EXPECT_EQ(static_cast<std::size_t>(std::count(mapped.out.begin(), mapped.out.end(), '\n')),
            expected_documents);

  // `http` still holds an idle keep-alive connection to it.
  const auto stopping = steady_clock::now();
  const std::optional<int> code = emulator.stop(SIGTERM, seconds(5));
  ASSERT_TRUE(code) << "did not stop within 5 s";
  EXPECT_LT(steady_clock::now() - stopping, seconds(3));
  EXPECT_EQ(*code, 0) << readFile(dir.sub("emulator.err"));
}

TEST(EmulatorBinary, UnknownConfigKeysAreNamedWithTheirLine) {
  TempDir dir{"mdec-emulator-test"};
  const std::string config = dir.sub("emulator.yaml");
  writeFile(config,
            "listen: 127.0.0.1:0\n"
            "alerts: 10\n"
            "speeed: 5\n"
            "world:\n"
            "  late_fraction: 0.1\n"
            "  arrivals: 3\n");
  const mdec::testing::ProcessResult r =
      mdec::testing::runProcess({MDEC_EMULATOR, "--config", config}, {}, seconds(30));
  EXPECT_FALSE(r.timed_out) << "it started serving instead";
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(config + ":3: unknown key 'speeed'"), std::string::npos) << r.err;
  // Every problem at once.
  EXPECT_NE(r.err.find(config + ":6: unknown key 'world.arrivals'"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// ---------------------------------------------------------------------------------------
// A hostile API's tricks: future timestamps, pretty-printed JSON, absurd Retry-After

// `json` without whitespace outside strings.
std::string minified(const std::string& json) {
  std::string out(json.size() + simdjson::SIMDJSON_PADDING, '\0');
  std::size_t length = 0;
  EXPECT_EQ(simdjson::minify(json.data(), json.size(), out.data(), length), simdjson::SUCCESS);
  out.resize(length);
  return out;
}

bool isPretty(const std::string& body) {
  return body.find('\n') != std::string::npos && body.find("\": ") != std::string::npos;
}

void postFaults(Emulator& emu, const std::string& body, int status = 200) {
  const HttpResponse r =
      emu.must("POST", "/_emulator/faults", {{"Content-Type", "application/json"}}, body);
  EXPECT_EQ(r.status, status) << body << " -> " << brief(r.body);
}

std::int64_t stat(Emulator& emu, const char* pointer) {
  Json stats(emu.must("GET", "/_emulator/stats").body);
  return stats.integer(pointer).value_or(-1);
}

TEST(EmulatorHostile, FaultsListShowsTheHostileFaultsOffByDefault) {
  START_EMULATOR(emu, frozenConfig());
  Json j(emu.must("GET", "/_emulator/faults").body);
  EXPECT_EQ(j.number("/future_timestamps"), 0.0);
  EXPECT_EQ(j.boolean("/pretty_json"), false);
  EXPECT_EQ(j.number("/foreign_next_link"), 0.0);
  EXPECT_EQ(j.str("/throttle_retry_after"), "");
  Json stats(emu.must("GET", "/_emulator/stats").body);
  for (const char* counter :
       {"/future_versions_served", "/pretty_bodies", "/foreign_links_served", "/foreign_requests",
        "/foreign_requests_with_token", "/throttled_absurd"}) {
    EXPECT_EQ(stats.integer(counter), 0) << counter;
  }
  EXPECT_EQ(stats.str("/foreign_base"), "") << "no foreign listener unless asked for";
}

TEST(EmulatorHostile, PrettyJsonPrintsEveryApiBodyWithTheSameContent) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const std::string page_path = "/api/alerts?%24top=5&%24expand=evidence&%24orderby=lastUpdateTime";
  const HttpResponse page = emu.api(page_path, token);
  ASSERT_EQ(page.status, 200);
  ASSERT_FALSE(isPretty(page.body));
  const std::string id = Json(page.body).str("/value/0/id");
  const HttpResponse one = emu.api("/api/alerts/" + id, token);
  ASSERT_EQ(one.status, 200);

  postFaults(emu, R"({"pretty_json": true})");
  const HttpResponse v1 = emu.tokenV1(kTenant, credentials(false));
  const HttpResponse v2 = emu.tokenV2(kTenant, credentials(true));
  const std::string pretty_token = Json(v2.body).str("/access_token");
  const HttpResponse pretty_page = emu.api(page_path, pretty_token);
  const HttpResponse pretty_one = emu.api("/api/alerts/" + id, pretty_token);
  const HttpResponse bad_query = emu.api("/api/alerts?%24filter=nonsense", pretty_token);
  const HttpResponse no_token = emu.must("GET", "/api/alerts");
  const HttpResponse token_error =
      emu.tokenV2(kTenant, with(credentials(true), "client_secret", "wrong"));
  for (const HttpResponse* r :
       {&v1, &v2, &pretty_page, &pretty_one, &bad_query, &no_token, &token_error}) {
    EXPECT_TRUE(isPretty(r->body)) << brief(r->body);
    EXPECT_TRUE(Json(r->body).ok()) << brief(r->body);
  }
  EXPECT_EQ(pretty_page.status, 200);
  EXPECT_EQ(minified(pretty_page.body), page.body) << "the same page, printed otherwise";
  EXPECT_EQ(minified(pretty_one.body), one.body);
  EXPECT_NE(pretty_page.body.find("\"id\": \"" + id + "\""), std::string::npos);
  expectApiError(bad_query, 400, "ODataError");
  expectApiError(no_token, 401, "Unauthorized");
  EXPECT_EQ(Json(v1.body).str("/token_type"), "Bearer");
  EXPECT_EQ(Json(v1.body).str("/expires_in"), "3599");
  EXPECT_EQ(Json(v2.body).integer("/expires_in"), 3599);
  EXPECT_EQ(token_error.status, 401);
  EXPECT_EQ(Json(token_error.body).str("/error"), "invalid_client");
  EXPECT_EQ(stat(emu, "/pretty_bodies"), 7);
  // The test-only endpoints stay compact.
  EXPECT_EQ(emu.must("GET", "/_emulator/stats").body.find('\n'), std::string::npos);

  postFaults(emu, R"({"pretty_json": false})");
  EXPECT_EQ(emu.api(page_path, pretty_token).body, page.body);
}

TEST(EmulatorHostile, FutureTimestampsAreServedFilteredAndReportedAlike) {
  EmulatorConfig config = frozenConfig();
  config.faults.future_timestamps = 0.1;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  const std::string kFutureText = "2100-01-01T00:00:00Z";
  const Page all = emu.page("/api/alerts?%24top=10000", token);
  ASSERT_EQ(all.status, 200);
  ASSERT_EQ(all.rows.size(), kAlerts);
  std::set<std::pair<std::string, std::string>> future;
  for (const Row& r : all.rows) {
    if (r.last_update_text == kFutureText) future.insert(r.key());
  }
  EXPECT_GT(future.size(), 10u);
  EXPECT_LT(future.size(), 60u);

  // $filter and $orderby see the served time.
  const Page later = emu.page(
      "/api/alerts" + query({{"$filter", "lastUpdateTime ge 2099-12-31T00:00:00Z"}}), token);
  std::set<std::pair<std::string, std::string>> later_keys;
  for (const Row& r : later.rows) later_keys.insert(r.key());
  EXPECT_EQ(later_keys, future);
  const Page earlier = emu.page(
      "/api/alerts" + query({{"$filter", "lastUpdateTime lt 2099-12-31T00:00:00Z"}}), token);
  EXPECT_EQ(earlier.rows.size() + future.size(), kAlerts);
  const Page newest = emu.page("/api/alerts" + query({{"$orderby", "lastUpdateTime desc"},
                                                      {"$top", std::to_string(future.size())}}),
                               token);
  for (const Row& r : newest.rows) EXPECT_EQ(r.last_update_text, kFutureText) << r.id;

  // The ground truth reports the time served; each version is served with the same time again.
  std::set<std::pair<std::string, std::string>> reported;
  for (const VersionRow& v : versionsOf(emu)) {
    EXPECT_TRUE(v.served);
    if (v.last_update_time == kFutureText) reported.emplace(v.id, v.last_update_time);
  }
  EXPECT_EQ(reported, future);
  Json versions(emu.must("GET", "/_emulator/versions").body);
  std::size_t flagged = 0;
  simdjson::dom::array list;
  ASSERT_EQ(versions.root()["versions"].get(list), simdjson::SUCCESS);
  for (simdjson::dom::element v : list) {
    bool is_future = false;
    EXPECT_EQ(v["future"].get(is_future), simdjson::SUCCESS);
    flagged += is_future;
  }
  EXPECT_EQ(flagged, future.size());
  EXPECT_EQ(stat(emu, "/future_versions_served"), static_cast<std::int64_t>(future.size()));
  const Page again = emu.page("/api/alerts?%24top=10000", token);
  EXPECT_EQ(again.body, all.body);
  EXPECT_EQ(stat(emu, "/future_versions_served"), static_cast<std::int64_t>(future.size()));
}

TEST(EmulatorHostile, ThrottleRetryAfterTextIsSentVerbatim) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const std::vector<std::string> texts = {"99999999999999999999", "-5", "soon",
                                          "Fri, 31 Dec 9999 23:59:59 GMT"};
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    postFaults(emu, R"({"throttle_rate": 1, "throttle_retry_after": ")" + text + "\"}");
    const HttpResponse r = emu.api("/api/alerts?%24top=1", token);
    expectApiError(r, 429, "TooManyRequests");
    ASSERT_NE(r.header("retry-after"), nullptr);
    EXPECT_EQ(*r.header("retry-after"), text);
  }
  EXPECT_EQ(stat(emu, "/throttled_absurd"), 4);
  EXPECT_EQ(stat(emu, "/throttled"), 4);
  EXPECT_EQ(stat(emu, "/early_retries"), 0) << "an absurd Retry-After sets no deadline";
  Json faults(emu.must("GET", "/_emulator/faults").body);
  EXPECT_EQ(faults.str("/throttle_retry_after"), "Fri, 31 Dec 9999 23:59:59 GMT");

  // Unset: throttle_retry_after_s again.
  postFaults(emu, R"({"throttle_retry_after": "", "throttle_retry_after_s": 3})");
  const HttpResponse numeric = emu.api("/api/alerts?%24top=1", token);
  ASSERT_NE(numeric.header("retry-after"), nullptr);
  EXPECT_EQ(*numeric.header("retry-after"), "3");
  EXPECT_EQ(stat(emu, "/throttled_absurd"), 4);

  // Text that cannot be a header value is refused, naming the key, and changes nothing.
  for (const char* bad :
       {R"({"throttle_retry_after": "5\r\nX-Injected: 1"})", R"({"throttle_retry_after": " 5"})",
        R"({"throttle_retry_after": [5]})"}) {
    SCOPED_TRACE(bad);
    const HttpResponse r =
        emu.must("POST", "/_emulator/faults", {{"Content-Type", "application/json"}}, bad);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("throttle_retry_after"), std::string::npos) << r.body;
  }
  EXPECT_EQ(Json(emu.must("GET", "/_emulator/faults").body).str("/throttle_retry_after"), "");
  postFaults(emu, R"({"throttle_rate": 0})");
  EXPECT_EQ(emu.api("/api/alerts?%24top=1", token).status, 200);
}

TEST(EmulatorBinary, HostileFaultsFromTheConfigFile) {
  TempDir dir{"mdec-emulator-test"};
  const std::string config = dir.sub("emulator.yaml");
  writeFile(config,
            "alerts: 50\n"
            "faults:\n"
            "  future_timestamps: 1\n"
            "  pretty_json: yes\n"
            "  foreign_next_link: 0.5\n"
            "  throttle_retry_after: 99999999999999999999\n");
  mdec::testing::BackgroundProcess emulator(
      {MDEC_EMULATOR, "--listen", "127.0.0.1:0", "--config", config});
  const std::optional<std::string> base = emulator.readLine(seconds(20));
  ASSERT_TRUE(base) << "no base URL";
  auto http = http::makeCurlClient();
  HttpRequest request;
  request.url = *base + "/_emulator/faults";
  request.timeout = seconds(20);
  auto faults = http->send(request);
  ASSERT_TRUE(faults && faults->status == 200);
  Json j(faults->body);
  EXPECT_EQ(j.number("/future_timestamps"), 1.0);
  EXPECT_EQ(j.boolean("/pretty_json"), true);
  EXPECT_EQ(j.number("/foreign_next_link"), 0.5);
  EXPECT_EQ(j.str("/throttle_retry_after"), "99999999999999999999");
  request.url = *base + "/_emulator/stats";
  auto stats = http->send(request);
  ASSERT_TRUE(stats && stats->status == 200);
  EXPECT_EQ(Json(stats->body).str("/foreign_base").rfind("http://127.0.0.2:", 0), 0u)
      << stats->body;
  const std::optional<int> code = emulator.stop(SIGTERM, seconds(5));
  ASSERT_TRUE(code) << "did not stop within 5 s";
  EXPECT_EQ(*code, 0);

  writeFile(config, "faults:\n  future_timestamps: 2\n  throttle_retry_after: ' x'\n");
  const mdec::testing::ProcessResult r =
      mdec::testing::runProcess({MDEC_EMULATOR, "--config", config}, {}, seconds(30));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(config + ":2: 'faults.future_timestamps'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(config + ":3: 'faults.throttle_retry_after'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mdec::emulator
