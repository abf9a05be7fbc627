// mde-emulator's Microsoft Graph alerts_v2 (GET /v1.0/security/alerts_v2) over loopback,
// driven with the project's libcurl client: token audience, Graph's page shape, nextLink
// paging through the same world /api/alerts serves, $top / $skip limits, the Prefer header,
// $filter with serviceSource, Graph's quota, permission, faults, stats and served versions.
//
// In-process EmulatorServer on 127.0.0.1, port 0, over a world that stands still unless a
// test says otherwise; every loop is bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
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
#include "support/json_pointer.h"

namespace mdec::emulator {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Form = std::vector<std::pair<std::string, std::string>>;

// 2026-03-02T00:00:00Z
const Timestamp kStart = Timestamp(std::chrono::sys_days(std::chrono::year(2026) / 3 / 2));
constexpr double kFrozen = 1e-6;  // emulated seconds per real second: a world standing still

constexpr const char* kTenant = "tenant-g";
constexpr const char* kClient = "client-g";
constexpr const char* kSecret = "secret-g";
constexpr const char* kOtherClient = "client-g2";
constexpr const char* kOtherSecret = "secret-g2";
constexpr const char* kNoGraphClient = "client-nograph";
constexpr const char* kNoGraphSecret = "secret-nograph";
constexpr const char* kGraphScope = "https://graph.microsoft.com/.default";
constexpr const char* kDefenderScope = "https://api.securitycenter.microsoft.com/.default";
constexpr const char* kGraphPath = "/v1.0/security/alerts_v2";
constexpr const char* kPrefer = "include-unknown-enum-members";

EmulatorConfig frozenConfig(std::size_t alerts = 300) {
  EmulatorConfig c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.clients = {{kTenant, kClient, kSecret, true, true},
               {kTenant, kOtherClient, kOtherSecret, true, true},
               {kTenant, kNoGraphClient, kNoGraphSecret, true, false}};
  c.world.seed = 29;
  c.world.initial_alerts = alerts;
  c.world.start = kStart;
  c.world.history = hours(12);
  c.world.new_alerts_per_hour = 0;
  c.world.updates_per_hour = 0;
  c.world.late_fraction = 0;
  c.speed = kFrozen;
  return c;
}

std::string brief(const std::string& body) {
  return body.size() > 400 ? body.substr(0, 400) + "..." : body;
}

using testing::Json;

// One alert of a page, the fields the tests look at.
struct Item {
  std::string id;
  std::string last_update;
  std::string status;
  std::string detection_source;
  std::string first_evidence_type;
};

struct Page {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  std::string context;
  std::optional<std::string> next_link;
  std::optional<std::int64_t> count;
  std::vector<Item> items;

  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (const Item& i : items) out.push_back(i.id);
    return out;
  }
};

std::string field(simdjson::dom::element e, const char* key) {
  std::string_view s;
  return e[key].get(s) == simdjson::SUCCESS ? std::string(s) : std::string("<null>");
}

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

  Result<HttpResponse> send(const std::string& method, const std::string& path_or_url,
                            const Headers& headers = {}, const std::string& body = {}) {
    HttpRequest request;
    request.method = method;
    request.url = path_or_url.rfind("http", 0) == 0 ? path_or_url : base() + path_or_url;
    request.headers = headers;
    request.body = body;
    request.timeout = seconds(30);
    request.connect_timeout = seconds(5);
    return http_->send(request);
  }

  HttpResponse must(const std::string& method, const std::string& path_or_url,
                    const Headers& headers = {}, const std::string& body = {}) {
    auto r = send(method, path_or_url, headers, body);
    if (!r) {
      ADD_FAILURE() << method << " " << path_or_url << ": " << r.error().message();
      return HttpResponse{};
    }
    return std::move(*r);
  }

  HttpResponse tokenResponse(const std::string& path, const Form& form) {
    return must("POST", path, {{"Content-Type", "application/x-www-form-urlencoded"}},
                http::formEncode(form));
  }

  // A v2 token for `scope`; "" (and a test failure) when none is issued.
  std::string token(const std::string& scope = kGraphScope, const std::string& client = kClient,
                    const std::string& secret = kSecret) {
    const HttpResponse r = tokenResponse("/" + std::string(kTenant) + "/oauth2/v2.0/token",
                                         {{"grant_type", "client_credentials"},
                                          {"client_id", client},
                                          {"client_secret", secret},
                                          {"scope", scope}});
    EXPECT_EQ(r.status, 200) << brief(r.body);
    Json j(r.body);
    const std::string issued = j.str("/access_token");
    const bool ok = !issued.empty() && issued[0] != '<';
    EXPECT_TRUE(ok) << brief(r.body);
    return ok ? issued : std::string();
  }

  HttpResponse get(const std::string& path_or_url, const std::string& token, bool prefer = true,
                   Headers headers = {}) {
    headers.emplace_back("Authorization", "Bearer " + token);
    if (prefer) headers.emplace_back("Prefer", kPrefer);
    return must("GET", path_or_url, headers);
  }

  Page page(const std::string& path_or_url, const std::string& token, bool prefer = true) {
    Page p;
    const HttpResponse r = get(path_or_url, token, prefer);
    p.status = r.status;
    p.body = r.body;
    p.headers = r.headers;
    if (r.status != 200) return p;
    Json j(r.body);
    EXPECT_TRUE(j.ok()) << brief(r.body);
    p.context = j.str("/@odata.context");
    if (j.has("/@odata.nextLink")) p.next_link = j.str("/@odata.nextLink");
    p.count = j.integer("/@odata.count");
    simdjson::dom::array value;
    EXPECT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element a : value) {
      Item item;
      item.id = field(a, "id");
      item.last_update = field(a, "lastUpdateDateTime");
      item.status = field(a, "status");
      item.detection_source = field(a, "detectionSource");
      simdjson::dom::array evidence;
      if (a["evidence"].get(evidence) == simdjson::SUCCESS && evidence.size() > 0) {
        item.first_evidence_type = field(evidence.at(0), "@odata.type");
      }
      p.items.push_back(std::move(item));
    }
    return p;
  }

  // Every alert of a query, following @odata.nextLink verbatim (at most `max_pages` pages).
  std::vector<Page> pages(const std::string& first, const std::string& token, bool prefer = true,
                          std::size_t max_pages = 60) {
    std::vector<Page> out;
    std::string url = first;
    for (std::size_t n = 0; n < max_pages; ++n) {
      out.push_back(page(url, token, prefer));
      const Page& p = out.back();
      EXPECT_EQ(p.status, 200) << brief(p.body);
      if (p.status != 200 || !p.next_link) break;
      url = *p.next_link;
    }
    return out;
  }

  // id -> lastUpdateTime of every alert /api/alerts serves now.
  std::map<std::string, std::string> defenderAlerts(const std::string& defender_token) {
    std::map<std::string, std::string> out;
    const HttpResponse r = get("/api/alerts?%24top=10000", defender_token, false);
    EXPECT_EQ(r.status, 200) << brief(r.body);
    Json j(r.body);
    simdjson::dom::array value;
    EXPECT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element a : value) out[field(a, "id")] = field(a, "lastUpdateTime");
    return out;
  }

  // The ids of the newest visible version of every alert, and whether it was served.
  std::map<std::string, bool> latestVersions() {
    std::map<std::string, bool> out;
    const HttpResponse r = must("GET", "/_emulator/versions");
    Json j(r.body);
    simdjson::dom::array versions;
    EXPECT_EQ(j.root()["versions"].get(versions), simdjson::SUCCESS);
    for (simdjson::dom::element v : versions) {
      bool latest = false;
      bool served = false;
      EXPECT_EQ(v["latest"].get(latest), simdjson::SUCCESS);
      EXPECT_EQ(v["served"].get(served), simdjson::SUCCESS);
      if (latest) out[field(v, "id")] = served;
    }
    return out;
  }

 private:
  EmulatorServer server_;
  bool started_ = false;
  std::string error_;
  std::unique_ptr<http::HttpClient> http_ = http::makeCurlClient();
};

// Graph's error body: {"error":{"code","message","innerError":{date, request-id,
// client-request-id}}} with the request-id header.
void expectGraphError(const HttpResponse& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << brief(r.body);
  Json j(r.body);
  ASSERT_TRUE(j.ok()) << brief(r.body);
  EXPECT_EQ(j.keys(""), (std::vector<std::string>{"error"}));
  EXPECT_EQ(j.keys("/error"), (std::vector<std::string>{"code", "message", "innerError"}));
  EXPECT_EQ(j.str("/error/code"), code) << brief(r.body);
  EXPECT_FALSE(j.str("/error/message").empty());
  EXPECT_EQ(j.keys("/error/innerError"),
            (std::vector<std::string>{"date", "request-id", "client-request-id"}));
  EXPECT_EQ(j.str("/error/innerError/date"), "2026-03-02T00:00:00");
  const std::string* request_id = r.header("request-id");
  ASSERT_NE(request_id, nullptr);
  EXPECT_EQ(*request_id, j.str("/error/innerError/request-id"));
  const std::string* type = r.header("content-type");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->rfind("application/json", 0), 0u) << *type;
}

std::string query(const Form& params) { return "?" + http::formEncode(params); }

core::Instant instant(const std::string& text) {
  const auto t = core::parseIsoDateTime(text);
  EXPECT_TRUE(t) << text;
  return t.value_or(core::Instant{});
}

std::size_t statInt(Emulator& emu, const char* pointer) {
  Json stats(emu.must("GET", "/_emulator/stats").body);
  return static_cast<std::size_t>(stats.integer(pointer).value_or(-1));
}

#define START_EMULATOR(name, config) \
  Emulator name(config);             \
  ASSERT_TRUE(name.started()) << name.error()

// ---------------------------------------------------------------------------------------
// Tokens: the scope decides the API

TEST(EmulatorGraph, TheTokenScopeDecidesWhichApiItOpens) {
  START_EMULATOR(emu, frozenConfig());
  const std::string graph = emu.token(kGraphScope);
  const std::string defender = emu.token(kDefenderScope);
  ASSERT_FALSE(graph.empty());
  ASSERT_FALSE(defender.empty());
  EXPECT_EQ(emu.get(std::string(kGraphPath) + "?$top=1", graph).status, 200);
  EXPECT_EQ(emu.get("/api/alerts?%24top=1", defender, false).status, 200);

  // A Defender token on Graph: Graph's 401, echoing the caller's client-request-id.
  const HttpResponse wrong = emu.get(std::string(kGraphPath) + "?$top=1", defender, true,
                                     {{"client-request-id", "cafe-0001"}});
  expectGraphError(wrong, 401, "InvalidAuthenticationToken");
  Json j(wrong.body);
  EXPECT_NE(j.str("/error/message").find("audience"), std::string::npos);
  EXPECT_EQ(j.str("/error/innerError/client-request-id"), "cafe-0001");
  ASSERT_NE(wrong.header("client-request-id"), nullptr);
  EXPECT_EQ(*wrong.header("client-request-id"), "cafe-0001");

  // A Graph token on /api/alerts: the Defender API's 401.
  const HttpResponse back = emu.get("/api/alerts?%24top=1", graph, false);
  EXPECT_EQ(back.status, 401) << brief(back.body);
  Json b(back.body);
  EXPECT_EQ(b.str("/error/code"), "Unauthorized");
  EXPECT_NE(b.str("/error/message").find("https://graph.microsoft.com"), std::string::npos);

  // v1 with resource=https://graph.microsoft.com is a Graph token too.
  const HttpResponse v1 = emu.tokenResponse("/" + std::string(kTenant) + "/oauth2/token",
                                            {{"grant_type", "client_credentials"},
                                             {"client_id", kClient},
                                             {"client_secret", kSecret},
                                             {"resource", "https://graph.microsoft.com"}});
  ASSERT_EQ(v1.status, 200) << brief(v1.body);
  Json v1j(v1.body);
  EXPECT_EQ(v1j.str("/resource"), "https://graph.microsoft.com");
  EXPECT_EQ(emu.get(std::string(kGraphPath) + "?$top=1", v1j.str("/access_token")).status, 200);

  // A scope that is not .default is refused by the token endpoint.
  const HttpResponse bad = emu.tokenResponse("/" + std::string(kTenant) + "/oauth2/v2.0/token",
                                             {{"grant_type", "client_credentials"},
                                              {"client_id", kClient},
                                              {"client_secret", kSecret},
                                              {"scope", "https://graph.microsoft.com/User.Read"}});
  EXPECT_EQ(bad.status, 400) << brief(bad.body);

  // No token, or one the emulator never issued.
  expectGraphError(emu.must("GET", kGraphPath), 401, "InvalidAuthenticationToken");
  expectGraphError(emu.get(kGraphPath, "emu.forged"), 401, "InvalidAuthenticationToken");
}

TEST(EmulatorGraph, AClientWithoutSecurityAlertReadAllIs403) {
  START_EMULATOR(emu, frozenConfig());
  const std::string graph = emu.token(kGraphScope, kNoGraphClient, kNoGraphSecret);
  expectGraphError(emu.get(kGraphPath, graph), 403, "Authorization_RequestDenied");
  // The same application still reads /api/alerts with its Alert.Read.All role.
  EXPECT_EQ(emu.get("/api/alerts?%24top=1",
                    emu.token(kDefenderScope, kNoGraphClient, kNoGraphSecret), false)
                .status,
            200);
}

// ---------------------------------------------------------------------------------------
// Pages

TEST(EmulatorGraph, APageInGraphsShape) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Page p = emu.page(std::string(kGraphPath) + "?$top=5&$count=true", token);
  ASSERT_EQ(p.status, 200) << brief(p.body);
  EXPECT_EQ(p.context, emu.base() + "/v1.0/$metadata#security/alerts_v2");
  ASSERT_EQ(p.items.size(), 5u);
  const std::map<std::string, bool> latest = emu.latestVersions();
  ASSERT_TRUE(p.count);
  EXPECT_EQ(static_cast<std::size_t>(*p.count), latest.size());
  EXPECT_GT(latest.size(), 250u);
  ASSERT_TRUE(p.next_link);
  EXPECT_EQ(p.next_link->rfind(emu.base() + kGraphPath + "?$skiptoken=", 0), 0u) << *p.next_link;
  const std::set<std::string> statuses = {"new", "inProgress", "resolved"};
  for (const Item& i : p.items) {
    EXPECT_EQ(i.first_evidence_type, "#microsoft.graph.security.deviceEvidence");
    EXPECT_EQ(statuses.count(i.status), 1u) << i.status;
    EXPECT_EQ(latest.count(i.id), 1u);
  }
  EXPECT_EQ(p.headers.at("content-type").rfind("application/json;odata.metadata=minimal", 0), 0u);
  EXPECT_EQ(p.headers.at("date"), "Mon, 02 Mar 2026 00:00:00 GMT");
  EXPECT_EQ(p.headers.at("preference-applied"), kPrefer);
  EXPECT_EQ(p.headers.at("odata-version"), "4.0");
  EXPECT_FALSE(p.headers.at("request-id").empty());
  // Without $count, no count.
  EXPECT_FALSE(emu.page(std::string(kGraphPath) + "?$top=1", token).count);

  // The same alert as /api/alerts serves it.
  const std::map<std::string, std::string> defender = emu.defenderAlerts(emu.token(kDefenderScope));
  for (const Item& i : p.items) EXPECT_EQ(defender.at(i.id), i.last_update) << i.id;

  // One alert by id: the list's element with its own @odata.context.
  const HttpResponse one = emu.get(std::string(kGraphPath) + "/" + p.items[2].id, token);
  ASSERT_EQ(one.status, 200) << brief(one.body);
  Json oj(one.body);
  EXPECT_EQ(oj.str("/@odata.context"), emu.base() + "/v1.0/$metadata#security/alerts_v2/$entity");
  EXPECT_EQ(oj.str("/id"), p.items[2].id);
  EXPECT_EQ(oj.str("/lastUpdateDateTime"), p.items[2].last_update);
  EXPECT_EQ(oj.str("/evidence/0/@odata.type"), "#microsoft.graph.security.deviceEvidence");
  expectGraphError(emu.get(std::string(kGraphPath) + "/da0_0", token), 404, "NotFound");
}

TEST(EmulatorGraph, NextLinkPagesThroughEveryVisibleAlertOnce) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const std::vector<Page> pages = emu.pages(std::string(kGraphPath) + "?$top=40", token);
  const std::map<std::string, bool> before = emu.latestVersions();
  ASSERT_GT(before.size(), 250u);
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const Page& p = pages[i];
    if (i + 1 < pages.size()) {
      EXPECT_EQ(p.items.size(), 40u) << "page " << i;
      EXPECT_TRUE(p.next_link);
    } else {
      EXPECT_FALSE(p.next_link) << "the last page has no nextLink";
    }
    for (const Item& item : p.items) ids.push_back(item.id);
  }
  EXPECT_EQ(pages.size(), (before.size() + 39) / 40);
  const std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size()) << "an alert came twice";
  std::set<std::string> visible;
  for (const auto& [id, served] : before) visible.insert(id);
  EXPECT_EQ(unique, visible);
  // A version served through Graph counts as served.
  for (const auto& [id, served] : emu.latestVersions()) EXPECT_TRUE(served) << id;
}

TEST(EmulatorGraph, NextLinkContinuesTheSameFilteredOrderedQuery) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const std::vector<Page> pages =
      emu.pages(std::string(kGraphPath) +
                    query({{"$filter", "status eq 'new' and severity ne 'informational'"},
                           {"$orderby", "lastUpdateDateTime asc"},
                           {"$top", "25"},
                           {"$count", "true"}}),
                token);
  ASSERT_GT(pages.size(), 2u);
  std::vector<Item> items;
  for (const Page& p : pages) {
    ASSERT_TRUE(p.count);
    EXPECT_EQ(*p.count, *pages[0].count) << "every page counts the same result set";
    items.insert(items.end(), p.items.begin(), p.items.end());
  }
  EXPECT_EQ(static_cast<std::int64_t>(items.size()), *pages[0].count);
  for (const Item& i : items) EXPECT_EQ(i.status, "new");
  EXPECT_TRUE(std::is_sorted(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return instant(a.last_update) < instant(b.last_update);
  }));
  // The same set as /api/alerts gives for the same question.
  const HttpResponse d =
      emu.get("/api/alerts" + query({{"$filter", "status eq 'New'"}, {"$top", "10000"}}),
              emu.token(kDefenderScope), false);
  ASSERT_EQ(d.status, 200);
  Json dj(d.body);
  std::set<std::string> expected;
  for (simdjson::dom::element a : simdjson::dom::array(dj.root()["value"])) {
    if (field(a, "severity") != "Informational") expected.insert(field(a, "id"));
  }
  std::set<std::string> got;
  for (const Item& i : items) got.insert(i.id);
  EXPECT_EQ(got, expected);
}

TEST(EmulatorGraph, TopIsClampedAt1000) {
  START_EMULATOR(emu, frozenConfig(1300));
  const std::string token = emu.token();
  const std::size_t visible = emu.latestVersions().size();
  ASSERT_GT(visible, 1100u);
  for (const std::string& first :
       {std::string(kGraphPath) + "?$top=5000", std::string(kGraphPath)}) {
    SCOPED_TRACE(first);
    const std::vector<Page> pages = emu.pages(first, token);
    ASSERT_EQ(pages.size(), 2u);
    EXPECT_EQ(pages[0].items.size(), 1000u);
    EXPECT_EQ(pages[1].items.size(), visible - 1000);
    EXPECT_FALSE(pages[1].next_link);
  }
}

TEST(EmulatorGraph, SkipOver500IsABadRequest) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const HttpResponse r = emu.get(std::string(kGraphPath) + "?$skip=501", token);
  expectGraphError(r, 400, "BadRequest");
  EXPECT_NE(Json(r.body).str("/error/message").find("500"), std::string::npos);
  // 500 itself is allowed; $skip pages through the same order as no $skip.
  const Page all = emu.page(kGraphPath, token);
  const Page skipped = emu.page(std::string(kGraphPath) + "?$skip=100&$top=10", token);
  ASSERT_EQ(skipped.status, 200);
  ASSERT_EQ(skipped.items.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(skipped.items[i].id, all.items[100 + i].id);
  const Page at500 = emu.page(std::string(kGraphPath) + "?$skip=500", token);
  EXPECT_EQ(at500.status, 200);
  EXPECT_TRUE(at500.items.empty());  // 300 alerts: nothing that far
  EXPECT_FALSE(at500.next_link);
}

TEST(EmulatorGraph, PreferHeaderShowsNewerEnumMembers) {
  START_EMULATOR(emu, frozenConfig(600));
  const std::string token = emu.token();
  const Page with = emu.page(kGraphPath, token, true);
  const Page without = emu.page(kGraphPath, token, false);
  ASSERT_EQ(with.status, 200);
  ASSERT_EQ(without.status, 200);
  ASSERT_EQ(with.items.size(), without.items.size());
  std::size_t newer = 0;
  for (std::size_t i = 0; i < with.items.size(); ++i) {
    ASSERT_EQ(with.items[i].id, without.items[i].id);
    EXPECT_NE(with.items[i].detection_source, "unknownFutureValue");
    EXPECT_NE(without.items[i].detection_source, "microsoftThreatIntelligence");
    if (with.items[i].detection_source == "microsoftThreatIntelligence") {
      ++newer;
      EXPECT_EQ(without.items[i].detection_source, "unknownFutureValue");
    } else {
      EXPECT_EQ(without.items[i].detection_source, with.items[i].detection_source);
    }
  }
  EXPECT_GT(newer, 3u);
  EXPECT_EQ(with.headers.count("preference-applied"), 1u);
  EXPECT_EQ(without.headers.count("preference-applied"), 0u);
  // Prefer with several preferences in one header.
  const HttpResponse several =
      emu.must("GET", kGraphPath,
               {{"Authorization", "Bearer " + token},
                {"Prefer", "odata.maxpagesize=10, include-unknown-enum-members"}});
  ASSERT_EQ(several.status, 200);
  EXPECT_NE(several.body.find("\"microsoftThreatIntelligence\""), std::string::npos);
  EXPECT_EQ(several.body.find("\"unknownFutureValue\""), std::string::npos);
}

TEST(EmulatorGraph, FilterOnTimesAndServiceSource) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const std::map<std::string, std::string> defender = emu.defenderAlerts(emu.token(kDefenderScope));
  ASSERT_GT(defender.size(), 250u);
  // A window in the middle of the history, in the collector's form.
  const std::string from = "2026-03-01T16:00:00.0000000Z";
  const std::string to = "2026-03-01T20:00:00Z";
  const std::string filter = "lastUpdateDateTime ge " + from + " and lastUpdateDateTime lt " + to +
                             " and (serviceSource eq 'microsoftDefenderForEndpoint')";
  const std::vector<Page> pages =
      emu.pages(std::string(kGraphPath) + query({{"$filter", filter}, {"$top", "30"}}), token);
  std::set<std::string> got;
  for (const Page& p : pages) {
    for (const Item& i : p.items) got.insert(i.id);
  }
  std::set<std::string> expected;
  for (const auto& [id, last_update] : defender) {
    const core::Instant t = instant(last_update);
    if (t >= instant(from) && t < instant(to)) expected.insert(id);
  }
  EXPECT_GT(expected.size(), 40u);
  EXPECT_LT(expected.size(), defender.size());
  EXPECT_EQ(got, expected);

  // Another product: nothing. Either product: everything.
  const Page office =
      emu.page(std::string(kGraphPath) +
                   query({{"$filter", "serviceSource eq 'microsoftDefenderForOffice365'"}}),
               token);
  ASSERT_EQ(office.status, 200);
  EXPECT_TRUE(office.items.empty());
  const Page either =
      emu.page(std::string(kGraphPath) +
                   query({{"$filter",
                           "serviceSource eq 'microsoftDefenderForOffice365' or serviceSource eq "
                           "'microsoftDefenderForEndpoint'"},
                          {"$count", "true"}}),
               token);
  ASSERT_EQ(either.status, 200);
  EXPECT_EQ(static_cast<std::size_t>(either.count.value_or(-1)), defender.size());

  // Graph's spelling only, and its error body.
  expectGraphError(
      emu.get(std::string(kGraphPath) + query({{"$filter", "status eq 'New'"}}), token), 400,
      "BadRequest");
  expectGraphError(
      emu.get(std::string(kGraphPath) + query({{"$filter", "lastUpdateTime ge " + from}}), token),
      400, "BadRequest");
  expectGraphError(emu.get(std::string(kGraphPath) + "?$select=id", token), 400, "BadRequest");
}

TEST(EmulatorGraph, SkipTokensAreFollowedVerbatimOnly) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  const Page first = emu.page(std::string(kGraphPath) + "?$top=10", token);
  ASSERT_TRUE(first.next_link);
  const std::string link = *first.next_link;
  const std::string forged =
      link.substr(0, link.size() - 3) + (link.substr(link.size() - 3) == "AAA" ? "BBB" : "AAA");
  expectGraphError(emu.get(forged, token), 400, "BadRequest");
  expectGraphError(emu.get(link + "&$top=5", token), 400, "BadRequest");
  // Followed as it is, it works, and twice gives the same page.
  const Page second = emu.page(link, token);
  const Page again = emu.page(link, token);
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.ids(), again.ids());
  EXPECT_EQ(second.items.size(), 10u);
}

// ---------------------------------------------------------------------------------------
// Quota, faults, stats

TEST(EmulatorGraph, The151stRequestInAMinuteIs429WithRetryAfter) {
  START_EMULATOR(emu, frozenConfig());  // Graph's quota: 150 a minute
  const std::string token = emu.token();
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 150; ++i) {
    const HttpResponse r = emu.get(std::string(kGraphPath) + "?$top=1", token);
    ASSERT_EQ(r.status, 200) << "request " << i + 1 << ": " << brief(r.body);
  }
  ASSERT_LT(std::chrono::steady_clock::now() - started, seconds(50)) << "too slow to test";
  const HttpResponse over = emu.get(std::string(kGraphPath) + "?$top=1", token);
  expectGraphError(over, 429, "TooManyRequests");
  ASSERT_NE(over.header("retry-after"), nullptr);
  const int wait = std::stoi(*over.header("retry-after"));
  EXPECT_GE(wait, 1);
  EXPECT_LE(wait, 61);
  EXPECT_EQ(statInt(emu, "/graph_throttled"), 1u);
  EXPECT_EQ(statInt(emu, "/throttled"), 0u);
  EXPECT_EQ(statInt(emu, "/graph_requests"), 151u);
  EXPECT_EQ(statInt(emu, "/requests/GET ~1v1.0~1security~1alerts_v2/200"), 150u);
  EXPECT_EQ(statInt(emu, "/requests/GET ~1v1.0~1security~1alerts_v2/429"), 1u);
  // The Defender API's quota is its own; another application's Graph quota too.
  EXPECT_EQ(emu.get("/api/alerts?%24top=1", emu.token(kDefenderScope), false).status, 200);
  EXPECT_EQ(emu.get(std::string(kGraphPath) + "?$top=1",
                    emu.token(kGraphScope, kOtherClient, kOtherSecret))
                .status,
            200);
}

TEST(EmulatorGraph, ASmallConfiguredQuotaAndEarlyRetries) {
  EmulatorConfig config = frozenConfig();
  config.graph_quota_per_minute = 3;
  config.quota_per_minute = 2;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(emu.get(std::string(kGraphPath) + "?$top=1", token).status, 200) << i;
  }
  expectGraphError(emu.get(std::string(kGraphPath) + "?$top=1", token), 429, "TooManyRequests");
  expectGraphError(emu.get(std::string(kGraphPath) + "?$top=1", token), 429, "TooManyRequests");
  EXPECT_EQ(statInt(emu, "/graph_throttled"), 2u);
  EXPECT_EQ(statInt(emu, "/graph_early_retries"), 1u);
  EXPECT_EQ(statInt(emu, "/early_retries"), 0u);
  // The Defender API counts apart: its own 2 a minute.
  const std::string defender = emu.token(kDefenderScope);
  EXPECT_EQ(emu.get("/api/alerts?%24top=1", defender, false).status, 200);
  EXPECT_EQ(emu.get("/api/alerts?%24top=1", defender, false).status, 200);
  EXPECT_EQ(emu.get("/api/alerts?%24top=1", defender, false).status, 429);
  EXPECT_EQ(statInt(emu, "/throttled"), 1u);
  EXPECT_EQ(statInt(emu, "/graph_throttled"), 2u);
}

TEST(EmulatorGraph, FaultsApplyToGraphToo) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  auto faults = [&emu](const std::string& body) {
    const HttpResponse r =
        emu.must("POST", "/_emulator/faults", {{"Content-Type", "application/json"}}, body);
    ASSERT_EQ(r.status, 200) << brief(r.body);
  };
  faults(R"({"error_rate": 1})");
  for (int i = 0; i < 6; ++i) {
    const HttpResponse r = emu.get(kGraphPath, token);
    EXPECT_TRUE(r.status == 500 || r.status == 503) << r.status;
    if (r.status == 500) expectGraphError(r, 500, "InternalServerError");
  }
  faults(R"({"error_rate": 0, "throttle_rate": 1, "throttle_retry_after_s": 7})");
  const HttpResponse throttled = emu.get(kGraphPath, token);
  expectGraphError(throttled, 429, "TooManyRequests");
  ASSERT_NE(throttled.header("retry-after"), nullptr);
  EXPECT_EQ(*throttled.header("retry-after"), "7");
  faults(R"({"throttle_rate": 0, "drop_rate": 1})");
  EXPECT_FALSE(emu.send("GET", kGraphPath, {{"Authorization", "Bearer " + token}}));
  // Nothing reached the client whole: nothing counts as served.
  for (const auto& [id, served] : emu.latestVersions()) EXPECT_FALSE(served) << id;
  faults(R"({"drop_rate": 0})");
  EXPECT_EQ(emu.get(kGraphPath, token).status, 200);
}

// ---------------------------------------------------------------------------------------
// A moving world: both APIs serve the same versions at every moment

TEST(EmulatorGraph, BothApisServeTheSameVersionsWhileTheWorldMoves) {
  EmulatorConfig config = frozenConfig(200);
  config.speed = 600;  // ten emulated minutes a real second
  config.token_lifetime = hours(24 * 30);
  config.world.new_alerts_per_hour = 120;
  config.world.updates_per_hour = 600;
  config.world.late_fraction = 0.3;
  config.world.late_max = std::chrono::minutes(10);
  START_EMULATOR(emu, config);
  const std::string graph = emu.token();
  const std::string defender = emu.token(kDefenderScope);
  std::size_t compared = 0;
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(milliseconds(400));
    ASSERT_EQ(emu.must("POST", "/_emulator/clock", {}, R"({"frozen": true})").status, 200);
    std::map<std::string, std::string> through_graph;
    for (const Page& p : emu.pages(std::string(kGraphPath) + "?$top=100", graph)) {
      for (const Item& i : p.items) through_graph[i.id] = i.last_update;
    }
    const std::map<std::string, std::string> through_defender = emu.defenderAlerts(defender);
    EXPECT_EQ(through_graph, through_defender) << "round " << round;
    compared += through_graph.size();
    ASSERT_EQ(emu.must("POST", "/_emulator/clock", {}, R"({"frozen": false})").status, 200);
  }
  EXPECT_GT(compared, 600u);
}

// ---------------------------------------------------------------------------------------
// A hostile API's tricks through Graph: foreign nextLinks, future timestamps, pretty JSON,
// absurd Retry-After

void postFaults(Emulator& emu, const std::string& body) {
  const HttpResponse r =
      emu.must("POST", "/_emulator/faults", {{"Content-Type", "application/json"}}, body);
  ASSERT_EQ(r.status, 200) << body << " -> " << brief(r.body);
}

std::string statText(Emulator& emu, const char* pointer) {
  return Json(emu.must("GET", "/_emulator/stats").body).str(pointer);
}

TEST(EmulatorGraph, ForeignNextLinksNameAnotherHostThatCountsWhoFollows) {
  EmulatorConfig config = frozenConfig();
  config.faults.foreign_next_link = 1;
  START_EMULATOR(emu, config);
  const std::string foreign_base = statText(emu, "/foreign_base");
  ASSERT_EQ(foreign_base.rfind("http://127.0.0.2:", 0), 0u) << foreign_base;
  const std::string token = emu.token();
  const std::string first = std::string(kGraphPath) + "?$top=100";
  const Page foreign_page = emu.page(first, token);
  ASSERT_EQ(foreign_page.status, 200);
  ASSERT_TRUE(foreign_page.next_link);
  const std::string foreign = *foreign_page.next_link;
  ASSERT_EQ(foreign.rfind(foreign_base + "/", 0), 0u) << foreign;

  postFaults(emu, R"({"foreign_next_link": 0})");
  const Page correct_page = emu.page(first, token);
  ASSERT_TRUE(correct_page.next_link);
  const std::string correct = *correct_page.next_link;
  ASSERT_EQ(correct.rfind(emu.base() + "/", 0), 0u) << correct;
  // The same path and query, on another host.
  EXPECT_EQ(foreign.substr(foreign_base.size()), correct.substr(emu.base().size()));
  EXPECT_EQ(foreign_page.ids(), correct_page.ids());

  // Whoever follows it gets 404, and the listener counts who brought a token.
  EXPECT_EQ(emu.get(foreign, token).status, 404);
  EXPECT_EQ(emu.must("GET", foreign).status, 404);
  EXPECT_EQ(statInt(emu, "/foreign_requests"), 2u);
  EXPECT_EQ(statInt(emu, "/foreign_requests_with_token"), 1u);
  EXPECT_EQ(statInt(emu, "/foreign_links_served"), 1u);
  EXPECT_EQ(emu.page(correct, token).status, 200) << "the correct link works";

  // A share: about half of the links at 0.5.
  postFaults(emu, R"({"foreign_next_link": 0.5})");
  std::size_t foreign_links = 0;
  for (int i = 0; i < 20; ++i) {
    const Page p = emu.page(first, token);
    ASSERT_TRUE(p.next_link);
    foreign_links += p.next_link->rfind(foreign_base, 0) == 0;
  }
  EXPECT_GE(foreign_links, 3u);
  EXPECT_LE(foreign_links, 17u);
  EXPECT_EQ(statInt(emu, "/foreign_links_served"), 1 + foreign_links);
}

TEST(EmulatorGraph, TheForeignListenerOpensWhenTheRateIsFirstSet) {
  START_EMULATOR(emu, frozenConfig());
  EXPECT_EQ(statText(emu, "/foreign_base"), "");
  postFaults(emu, R"({"foreign_next_link": 0.3})");
  const std::string foreign_base = statText(emu, "/foreign_base");
  ASSERT_EQ(foreign_base.rfind("http://127.0.0.2:", 0), 0u) << foreign_base;
  EXPECT_EQ(emu.must("GET", foreign_base + "/anything?at=all").status, 404);
  postFaults(emu, R"({"foreign_next_link": 0})");
  EXPECT_EQ(statText(emu, "/foreign_base"), foreign_base) << "it stays open, on its port";
  EXPECT_EQ(statInt(emu, "/foreign_requests"), 1u);
  EXPECT_EQ(statInt(emu, "/foreign_requests_with_token"), 0u);
}

TEST(EmulatorGraph, FutureTimestampsAndPrettyJsonThroughGraph) {
  EmulatorConfig config = frozenConfig();
  config.faults.future_timestamps = 0.1;
  config.faults.pretty_json = true;
  START_EMULATOR(emu, config);
  const std::string token = emu.token();
  std::set<std::string> future;
  std::size_t items = 0;
  for (const Page& p : emu.pages(std::string(kGraphPath) + "?$top=1000", token)) {
    EXPECT_NE(p.body.find("\n  \"value\": ["), std::string::npos) << brief(p.body);
    EXPECT_NE(p.body.find("\"id\": \""), std::string::npos);
    for (const Item& i : p.items) {
      ++items;
      if (i.last_update == "2100-01-01T00:00:00Z") future.insert(i.id);
    }
  }
  EXPECT_EQ(items, 300u);
  EXPECT_GT(future.size(), 10u);
  std::set<std::string> filtered;
  for (const Page& p : emu.pages(
           std::string(kGraphPath) + "?$filter=lastUpdateDateTime%20ge%202099-12-31T00:00:00Z",
           token)) {
    for (const Item& i : p.items) filtered.insert(i.id);
  }
  EXPECT_EQ(filtered, future);
  EXPECT_EQ(statInt(emu, "/future_versions_served"), future.size());
  // One alert and an error are pretty too.
  const HttpResponse one = emu.get(std::string(kGraphPath) + "/" + *future.begin(), token);
  EXPECT_EQ(one.status, 200);
  EXPECT_NE(one.body.find("\"lastUpdateDateTime\": \"2100-01-01T00:00:00Z\""), std::string::npos)
      << brief(one.body);
  const HttpResponse unauthorized = emu.must("GET", kGraphPath);
  EXPECT_NE(unauthorized.body.find('\n'), std::string::npos);
  expectGraphError(unauthorized, 401, "InvalidAuthenticationToken");
  EXPECT_GT(statInt(emu, "/pretty_bodies"), 3u);
}

TEST(EmulatorGraph, ThrottleRetryAfterTextOnGraph) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  postFaults(emu, R"({"throttle_rate": 1, "throttle_retry_after": "-5"})");
  const HttpResponse r = emu.get(kGraphPath, token);
  expectGraphError(r, 429, "TooManyRequests");
  ASSERT_NE(r.header("retry-after"), nullptr);
  EXPECT_EQ(*r.header("retry-after"), "-5");
  EXPECT_EQ(statInt(emu, "/graph_throttled"), 1u);
  EXPECT_EQ(statInt(emu, "/throttled_absurd"), 1u);
  EXPECT_EQ(emu.get(kGraphPath, token).status, 429);
  EXPECT_EQ(statInt(emu, "/graph_early_retries"), 0u);
}

// ---------------------------------------------------------------------------------------
// The binary's knobs

TEST(EmulatorGraphBinary, NoGraphPermissionAndGraphQuotaFlags) {
  for (const bool no_permission : {true, false}) {
    SCOPED_TRACE(no_permission ? "--no-graph-permission" : "--graph-quota 2");
    std::vector<std::string> argv = {MDEC_EMULATOR, "--listen", "127.0.0.1:0", "--alerts", "50",
                                     "--seed",      "3"};
    if (no_permission) {
      argv.push_back("--no-graph-permission");
    } else {
      argv.insert(argv.end(), {"--graph-quota", "2"});
    }
    mdec::testing::BackgroundProcess emulator(argv);
    const std::optional<std::string> base = emulator.readLine(seconds(20));
    ASSERT_TRUE(base) << "no base URL";
    ASSERT_EQ(base->rfind("http://127.0.0.1:", 0), 0u) << *base;
    auto http = http::makeCurlClient();
    auto tokenFor = [&](const char* scope) {
      HttpRequest r;
      r.method = "POST";
      r.url = *base + "/" + std::string(kDefaultTenant) + "/oauth2/v2.0/token";
      r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
      r.body = http::formEncode({{"grant_type", "client_credentials"},
                                 {"client_id", kDefaultClientId},
                                 {"client_secret", kDefaultClientSecret},
                                 {"scope", scope}});
      r.timeout = seconds(20);
      auto response = http->send(r);
      EXPECT_TRUE(response && response->status == 200);
      return response ? Json(response->body).str("/access_token") : std::string();
    };
    auto get = [&](const std::string& path, const std::string& token) {
      HttpRequest r;
      r.url = *base + path;
      r.headers = {{"Authorization", "Bearer " + token}};
      r.timeout = seconds(20);
      auto response = http->send(r);
      EXPECT_TRUE(response) << path;
      return response ? response->status : 0;
    };
    const std::string graph = tokenFor(kGraphScope);
    if (no_permission) {
      EXPECT_EQ(get(kGraphPath, graph), 403);
      EXPECT_EQ(get("/api/alerts", tokenFor(kDefenderScope)), 200);
    } else {
      EXPECT_EQ(get(kGraphPath, graph), 200);
      EXPECT_EQ(get(kGraphPath, graph), 200);
      EXPECT_EQ(get(kGraphPath, graph), 429);
    }
    const std::optional<int> code = emulator.stop(SIGTERM, seconds(5));
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0);
  }
}

}  // namespace
}  // namespace mdec::emulator
