// mde-emulator's Microsoft Graph incidents (GET /v1.0/security/incidents, /{id}) over loopback,
// driven with the project's libcurl client: nextLink paging through every incident once, the
// $top limit of 50, $expand=alerts equal to alerts_v2's objects, lastUpdateDateTime moving
// with the world, the expand and item faults, the quota shared with alerts_v2, the
// incident permission (config and binary flags) and /_emulator/versions?kind=incidents.
//
// In-process EmulatorServer on 127.0.0.1, port 0; every loop is bounded.
#include <gtest/gtest.h>
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
using testing::Json;

// 2026-03-02T00:00:00Z
const Timestamp kStart = Timestamp(std::chrono::sys_days(std::chrono::year(2026) / 3 / 2));
constexpr double kFrozen = 1e-6;

constexpr const char* kTenant = "tenant-i";
constexpr const char* kClient = "client-i";
constexpr const char* kSecret = "secret-i";
constexpr const char* kGraphScope = "https://graph.microsoft.com/.default";
constexpr const char* kIncidents = "/v1.0/security/incidents";
constexpr const char* kAlerts = "/v1.0/security/alerts_v2";

EmulatorConfig frozenConfig(std::size_t alerts = 300) {
  EmulatorConfig c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.clients = {{kTenant, kClient, kSecret, true, true}};
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

std::string text(simdjson::dom::element e, const char* key) {
  std::string_view s;
  return e[key].get(s) == simdjson::SUCCESS ? std::string(s) : std::string("<null>");
}

struct Incident {
  std::string id;
  std::string last_update;
  bool has_alerts = false;
  std::vector<std::string> alert_ids;
  std::vector<std::string> alert_json;  // minified
};

struct Page {
  int status = 0;
  std::string body;
  std::optional<std::string> next_link;
  std::vector<Incident> items;
};

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

  HttpResponse send(const std::string& method, const std::string& path_or_url,
                    std::vector<std::pair<std::string, std::string>> headers = {},
                    const std::string& body = {}) {
    HttpRequest request;
    request.method = method;
    request.url = path_or_url.rfind("http", 0) == 0 ? path_or_url : base() + path_or_url;
    request.headers = std::move(headers);
    request.body = body;
    request.timeout = seconds(30);
    request.connect_timeout = seconds(5);
    auto r = http_->send(request);
    if (!r) {
      ADD_FAILURE() << method << " " << path_or_url << ": " << r.error().message();
      return HttpResponse{};
    }
    return std::move(*r);
  }

  std::string token() {
    const HttpResponse r = send("POST", "/" + std::string(kTenant) + "/oauth2/v2.0/token",
                                {{"Content-Type", "application/x-www-form-urlencoded"}},
                                http::formEncode({{"grant_type", "client_credentials"},
                                                  {"client_id", kClient},
                                                  {"client_secret", kSecret},
                                                  {"scope", kGraphScope}}));
    EXPECT_EQ(r.status, 200) << brief(r.body);
    return Json(r.body).str("/access_token");
  }

  HttpResponse get(const std::string& path_or_url, const std::string& token, bool prefer = true) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer " + token}};
    if (prefer) headers.emplace_back("Prefer", "include-unknown-enum-members");
    return send("GET", path_or_url, headers);
  }

  Page page(const std::string& path_or_url, const std::string& token) {
    Page p;
    const HttpResponse r = get(path_or_url, token);
    p.status = r.status;
    p.body = r.body;
    if (r.status != 200) return p;
    Json j(r.body);
    EXPECT_TRUE(j.ok()) << brief(r.body);
    if (j.has("/@odata.nextLink")) p.next_link = j.str("/@odata.nextLink");
    simdjson::dom::array value;
    EXPECT_EQ(j.root()["value"].get(value), simdjson::SUCCESS) << brief(r.body);
    for (simdjson::dom::element e : value) p.items.push_back(incidentOf(e));
    return p;
  }

  static Incident incidentOf(simdjson::dom::element e) {
    Incident i;
    i.id = text(e, "id");
    i.last_update = text(e, "lastUpdateDateTime");
    i.has_alerts = e["alerts"].error() != simdjson::NO_SUCH_FIELD;
    simdjson::dom::array alerts;
    if (e["alerts"].get(alerts) == simdjson::SUCCESS) {
      for (simdjson::dom::element a : alerts) {
        i.alert_ids.push_back(text(a, "id"));
        i.alert_json.push_back(simdjson::minify(a));
      }
    }
    return i;
  }

  // Every incident of a query, following @odata.nextLink verbatim (bounded).
  std::vector<Incident> all(const std::string& first, const std::string& token,
                            std::size_t* pages = nullptr) {
    std::vector<Incident> out;
    std::string url = first;
    for (std::size_t n = 0; n < 200; ++n) {
      const Page p = page(url, token);
      EXPECT_EQ(p.status, 200) << brief(p.body);
      if (pages != nullptr) ++*pages;
      out.insert(out.end(), p.items.begin(), p.items.end());
      if (p.status != 200 || !p.next_link) break;
      EXPECT_EQ(p.next_link->rfind(base() + kIncidents + "?", 0), 0u) << *p.next_link;
      url = *p.next_link;
    }
    return out;
  }

 private:
  EmulatorServer server_;
  bool started_ = false;
  std::string error_;
  std::unique_ptr<http::HttpClient> http_ = http::makeCurlClient();
};

#define START_EMULATOR(name, config) \
  Emulator name(config);             \
  ASSERT_TRUE(name.started()) << name.error()

void expectGraphError(const HttpResponse& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << brief(r.body);
  Json j(r.body);
  ASSERT_TRUE(j.ok()) << brief(r.body);
  EXPECT_EQ(j.keys(""), (std::vector<std::string>{"error"}));
  EXPECT_EQ(j.keys("/error"), (std::vector<std::string>{"code", "message", "innerError"}));
  EXPECT_EQ(j.str("/error/code"), code) << brief(r.body);
}

// id -> lastUpdateDateTime of the latest incident versions; with served/alerts.
struct VersionRow {
  std::string last_update;
  std::int64_t alerts = 0;
  bool latest = false;
  bool served = false;
};
std::vector<std::pair<std::string, VersionRow>> incidentVersions(Emulator& emu) {
  std::vector<std::pair<std::string, VersionRow>> out;
  const HttpResponse r = emu.send("GET", "/_emulator/versions?kind=incidents");
  EXPECT_EQ(r.status, 200);
  Json j(r.body);
  EXPECT_EQ(j.keys(""), (std::vector<std::string>{"now", "versions"}));
  simdjson::dom::array versions;
  EXPECT_EQ(j.root()["versions"].get(versions), simdjson::SUCCESS);
  for (simdjson::dom::element v : versions) {
    VersionRow row;
    row.last_update = text(v, "lastUpdateDateTime");
    EXPECT_EQ(v["alerts"].get(row.alerts), simdjson::SUCCESS);
    EXPECT_EQ(v["latest"].get(row.latest), simdjson::SUCCESS);
    EXPECT_EQ(v["served"].get(row.served), simdjson::SUCCESS);
    out.emplace_back(text(v, "id"), row);
  }
  return out;
}

TEST(EmulatorIncidents, NextLinkPagesThroughEveryIncidentOnce) {
  START_EMULATOR(emu, frozenConfig());
  const std::string token = emu.token();
  std::size_t pages = 0;
  const auto incidents =
      emu.all(std::string(kIncidents) + "?$top=7&$orderby=lastUpdateDateTime%20asc", token, &pages);
  std::set<std::string> ids;
  for (const Incident& i : incidents) {
    EXPECT_TRUE(ids.insert(i.id).second) << "twice: " << i.id;
    EXPECT_FALSE(i.has_alerts) << "no $expand, yet an alerts key: " << i.id;
  }
  std::set<std::string> latest;
  for (const auto& [id, row] : incidentVersions(emu)) {
    if (row.latest) latest.insert(id);
  }
  EXPECT_EQ(ids, latest);
  EXPECT_GT(pages, 3u);
  EXPECT_EQ(pages, (ids.size() + 6) / 7);

  // Without $top: pages of 50, the last without a nextLink.
  const Page first = emu.page(kIncidents, token);
  ASSERT_EQ(first.status, 200) << brief(first.body);
  EXPECT_EQ(first.items.size(), std::min<std::size_t>(50, ids.size()));
  EXPECT_EQ(first.next_link.has_value(), ids.size() > 50);
  Json j(first.body);
  EXPECT_EQ(j.str("/@odata.context"), emu.base() + "/v1.0/$metadata#security/incidents");
}

TEST(EmulatorIncidents, TopAbove50AndSkipAbove500AreBadRequests) {
  START_EMULATOR(emu, frozenConfig(100));
  const std::string token = emu.token();
  EXPECT_EQ(emu.get(std::string(kIncidents) + "?$top=50", token).status, 200);
  const HttpResponse top = emu.get(std::string(kIncidents) + "?$top=51", token);
  expectGraphError(top, 400, "BadRequest");
  EXPECT_EQ(Json(top.body).str("/error/message"),
            "The limit of '50' for Top query has been exceeded. The value from the incoming "
            "request is '51'.");
  expectGraphError(emu.get(std::string(kIncidents) + "?$skip=501", token), 400, "BadRequest");
  // alerts_v2 still clamps its $top.
  EXPECT_EQ(emu.get(std::string(kAlerts) + "?$top=5000", token).status, 200);
}

TEST(EmulatorIncidents, ExpandedAlertsAreTheAlertsV2Objects) {
  START_EMULATOR(emu, frozenConfig(250));
  const std::string token = emu.token();
  // Every alert as alerts_v2 serves it.
  std::map<std::string, std::string> alerts;
  std::string url = std::string(kAlerts) + "?$top=100";
  for (int n = 0; n < 50; ++n) {
    const HttpResponse r = emu.get(url, token);
    ASSERT_EQ(r.status, 200) << brief(r.body);
    Json j(r.body);
    simdjson::dom::array value;
    ASSERT_EQ(j.root()["value"].get(value), simdjson::SUCCESS);
    for (simdjson::dom::element a : value) alerts[text(a, "id")] = simdjson::minify(a);
    if (!j.has("/@odata.nextLink")) break;
    url = j.str("/@odata.nextLink");
  }
  ASSERT_FALSE(alerts.empty());
  const auto incidents = emu.all(
      std::string(kIncidents) + "?$expand=alerts&$top=50&$filter=" +
          "lastUpdateDateTime%20ge%202020-01-01T00:00:00Z%20and%20lastUpdateDateTime%20lt%20"
          "2030-01-01T00:00:00.0000000Z",
      token);
  std::set<std::string> seen;
  std::string multi;
  for (const Incident& i : incidents) {
    ASSERT_TRUE(i.has_alerts) << i.id;
    ASSERT_FALSE(i.alert_ids.empty()) << i.id;
    if (i.alert_ids.size() > 1 && multi.empty()) multi = i.id;
    for (std::size_t k = 0; k < i.alert_ids.size(); ++k) {
      seen.insert(i.alert_ids[k]);
      auto it = alerts.find(i.alert_ids[k]);
      ASSERT_NE(it, alerts.end()) << i.alert_ids[k];
      EXPECT_EQ(i.alert_json[k], it->second) << i.alert_ids[k];
    }
  }
  EXPECT_EQ(seen.size(), alerts.size());
  ASSERT_FALSE(multi.empty());

  // /{id}: with and without $expand; unknown ids 404.
  const HttpResponse one =
      emu.get(std::string(kIncidents) + "/" + multi + "?$expand=alerts", token);
  ASSERT_EQ(one.status, 200) << brief(one.body);
  Json oj(one.body);
  EXPECT_EQ(oj.str("/id"), multi);
  EXPECT_EQ(oj.str("/incidentWebUrl"),
            "https://security.microsoft.com/incidents/" + multi + "?tid=" + oj.str("/tenantId"));
  EXPECT_TRUE(oj.has("/alerts/1/evidence"));
  const HttpResponse plain = emu.get(std::string(kIncidents) + "/" + multi, token);
  ASSERT_EQ(plain.status, 200);
  EXPECT_FALSE(Json(plain.body).has("/alerts"));
  expectGraphError(emu.get(std::string(kIncidents) + "/999999999", token), 404, "NotFound");
}

TEST(EmulatorIncidents, LastUpdateMovesWhenTheWorldChangesItsAlerts) {
  EmulatorConfig c = frozenConfig(150);
  c.speed = 1200;  // 20 emulated minutes a real second
  c.world.updates_per_hour = 600;
  c.world.new_alerts_per_hour = 120;
  START_EMULATOR(emu, c);
  const std::string token = emu.token();
  const std::string query =
      std::string(kIncidents) + "?$expand=alerts&$orderby=lastUpdateDateTime%20asc";
  std::map<std::string, Incident> before;
  for (const Incident& i : emu.all(query, token)) before[i.id] = i;
  std::size_t moved = 0;
  for (int round = 0; round < 10 && moved == 0; ++round) {
    std::this_thread::sleep_for(milliseconds(500));
    for (const Incident& now : emu.all(query, token)) {
      auto it = before.find(now.id);
      if (it == before.end()) continue;
      if (it->second.alert_json != now.alert_json) {
        EXPECT_GT(now.last_update, it->second.last_update) << now.id;
        ++moved;
      } else {
        EXPECT_EQ(now.last_update, it->second.last_update) << now.id;
      }
    }
  }
  EXPECT_GT(moved, 0u) << "no incident's alerts changed in 5 s at 1200x";
}

TEST(EmulatorIncidents, ExpandFaultFailsListsWithLargeIncidentsButNotOneIncident) {
  START_EMULATOR(emu, frozenConfig(300));
  const std::string token = emu.token();
  std::string multi;
  for (const Incident& i : emu.all(std::string(kIncidents) + "?$expand=alerts", token)) {
    if (i.alert_ids.size() > 1) multi = i.id;
  }
  ASSERT_FALSE(multi.empty());
  const HttpResponse set =
      emu.send("POST", "/_emulator/faults", {}, R"({"incidents_expand_fail_above": 1})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(Json(set.body).integer("/incidents_expand_fail_above"), 1);
  // Persistent: every time.
  for (int n = 0; n < 3; ++n) {
    expectGraphError(emu.get(std::string(kIncidents) + "?$expand=alerts", token), 500,
                     "InternalServerError");
  }
  EXPECT_EQ(emu.get(kIncidents, token).status, 200);
  EXPECT_EQ(emu.get(std::string(kIncidents) + "/" + multi + "?$expand=alerts", token).status, 200);

  ASSERT_EQ(emu.send("POST", "/_emulator/faults", {}, R"({"incidents_item_fail": true})").status,
            200);
  expectGraphError(emu.get(std::string(kIncidents) + "/" + multi, token), 500,
                   "InternalServerError");
  ASSERT_EQ(emu.send("POST", "/_emulator/faults", {},
                     R"({"incidents_item_fail": false, "incidents_expand_fail_above": 0})")
                .status,
            200);
  EXPECT_EQ(emu.get(std::string(kIncidents) + "?$expand=alerts", token).status, 200);
  EXPECT_EQ(emu.get(std::string(kIncidents) + "/" + multi, token).status, 200);
  EXPECT_EQ(
      emu.send("POST", "/_emulator/faults", {}, R"({"incidents_expand_fail_above": -1})").status,
      400);
}

TEST(EmulatorIncidents, TheGraphQuotaIsSharedWithAlertsV2) {
  EmulatorConfig c = frozenConfig(50);
  c.graph_quota_per_minute = 4;
  START_EMULATOR(emu, c);
  const std::string token = emu.token();
  EXPECT_EQ(emu.get(kAlerts, token).status, 200);
  EXPECT_EQ(emu.get(kIncidents, token).status, 200);
  EXPECT_EQ(emu.get(kAlerts, token).status, 200);
  EXPECT_EQ(emu.get(kIncidents, token).status, 200);
  for (const char* path : {kIncidents, kAlerts}) {
    const HttpResponse r = emu.get(path, token);
    expectGraphError(r, 429, "TooManyRequests");
    ASSERT_NE(r.header("retry-after"), nullptr) << path;
  }
}

TEST(EmulatorIncidents, WithoutIncidentPermissionIncidentsAre403AndAlertsV2Works) {
  EmulatorConfig c = frozenConfig(50);
  c.incident_permission = false;
  START_EMULATOR(emu, c);
  const std::string token = emu.token();
  for (const std::string& path : {std::string(kIncidents), std::string(kIncidents) + "/1"}) {
    const HttpResponse r = emu.get(path, token);
    expectGraphError(r, 403, "Authorization_RequestDenied");
    EXPECT_NE(Json(r.body).str("/error/message").find("Insufficient privileges"),
              std::string::npos);
  }
  EXPECT_EQ(emu.get(kAlerts, token).status, 200);
}

TEST(EmulatorIncidents, VersionsOfIncidentsTellServedLatestAndAlerts) {
  START_EMULATOR(emu, frozenConfig(200));
  const std::string token = emu.token();
  // Before any listing: nothing served.
  const auto before = incidentVersions(emu);
  ASSERT_FALSE(before.empty());
  for (const auto& [id, row] : before) {
    EXPECT_FALSE(row.served) << id;
    EXPECT_TRUE(row.latest) << id;  // a world standing still: one version each
    EXPECT_GE(row.alerts, 1);
  }
  // One page of 10 with $expand: exactly those are served, with their alert counts.
  const Page p = emu.page(std::string(kIncidents) + "?$top=10&$expand=alerts", token);
  ASSERT_EQ(p.status, 200);
  ASSERT_EQ(p.items.size(), 10u);
  std::map<std::string, const Incident*> page;
  for (const Incident& i : p.items) page[i.id] = &i;
  std::size_t served = 0;
  for (const auto& [id, row] : incidentVersions(emu)) {
    auto it = page.find(id);
    EXPECT_EQ(row.served, it != page.end()) << id;
    if (it == page.end()) continue;
    ++served;
    EXPECT_EQ(row.last_update, it->second->last_update);
    EXPECT_EQ(static_cast<std::size_t>(row.alerts), it->second->alert_ids.size());
  }
  EXPECT_EQ(served, 10u);
  // kind=alerts and no kind: the alert versions, as before; another kind is a 400.
  const HttpResponse alerts = emu.send("GET", "/_emulator/versions");
  EXPECT_TRUE(Json(alerts.body).has("/versions/0/lastUpdateTime"));
  EXPECT_EQ(emu.send("GET", "/_emulator/versions?kind=alerts").status, 200);
  EXPECT_EQ(emu.send("GET", "/_emulator/versions?kind=bogus").status, 400);
}

TEST(EmulatorIncidentsBinary, IncidentAndGraphPermissionFlags) {
  for (const bool graph_too : {false, true}) {
    SCOPED_TRACE(graph_too ? "--no-graph-permission" : "--no-incident-permission");
    std::vector<std::string> argv = {
        MDEC_EMULATOR, "--listen",
        "127.0.0.1:0", "--alerts",
        "30",          "--seed",
        "3",           graph_too ? "--no-graph-permission" : "--no-incident-permission"};
    mdec::testing::BackgroundProcess emulator(argv);
    const std::optional<std::string> base = emulator.readLine(seconds(20));
    ASSERT_TRUE(base) << "no base URL";
    auto http = http::makeCurlClient();
    HttpRequest t;
    t.method = "POST";
    t.url = *base + "/" + std::string(kDefaultTenant) + "/oauth2/v2.0/token";
    t.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
    t.body = http::formEncode({{"grant_type", "client_credentials"},
                               {"client_id", kDefaultClientId},
                               {"client_secret", kDefaultClientSecret},
                               {"scope", kGraphScope}});
    t.timeout = seconds(20);
    auto issued = http->send(t);
    ASSERT_TRUE(issued && issued->status == 200);
    const std::string token = Json(issued->body).str("/access_token");
    auto status = [&](const char* path) {
      HttpRequest r;
      r.url = *base + path;
      r.headers = {{"Authorization", "Bearer " + token}};
      r.timeout = seconds(20);
      auto response = http->send(r);
      EXPECT_TRUE(response) << path;
      return response ? response->status : 0;
    };
    EXPECT_EQ(status(kIncidents), 403);
    EXPECT_EQ(status(kAlerts), graph_too ? 403 : 200);
  }
}

}  // namespace
}  // namespace mdec::emulator
