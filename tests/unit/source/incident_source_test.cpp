// The `graph_incidents` source as a whole — API client, paging, the $expand fallback, the
// seen-set, the incident mapper, commits — over a scripted Graph incidents API written here
// for these tests (it shares no code with the emulator), a fake clock and a real SQLite
// state in a temporary directory.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/output/delivery.h"
#include "mdecollect/source/source.h"
#include "mdecollect/state/state_store.h"
#include "support/fake_defender_api.h"
#include "support/temp_dir.h"

namespace mdec::source {
namespace {

using core::Instant;
using testing::FakeClock;
using testing::FakeTokens;
using testing::urlDecode;

constexpr const char* kBase = "https://graph.test";

struct FakeIncident {
  std::string id;
  Instant created;
  Instant updated;
  int alerts = 1;
  std::string evidence = "[]";  // each alert's
};

std::string iso(const Instant& t) { return core::formatRfc3339(t, 7); }

// GET /v1.0/security/incidents with $filter on lastUpdateDateTime (ge, lt, eq), $orderby
// createdDateTime asc (honoured), $top (over 50: 400, as Graph), $skip (over 500: 400),
// $expand=alerts; @odata.nextLink while more remain (unless `next_links` is off); and
// GET /v1.0/security/incidents/{id}[?$expand=alerts].
class FakeIncidentsApi : public http::HttpClient {
 public:
  std::vector<FakeIncident> incidents;
  bool next_links = true;
  int expand_fail_above = 0;        // > 0: a listing with $expand holding a larger incident: 500
  std::set<std::string> item_fail;  // /{id} of these: 500
  std::map<std::string, std::string> item_body;  // /{id} of these: 200 with this body
  // /{id} of these: the incident changes (to this time) just before it is answered.
  std::map<std::string, Instant> change_on_get;
  std::vector<std::string> urls;
  std::map<std::string, int> served;  // "id\ntime" -> times served with its alerts

  Result<http::HttpResponse> send(const http::HttpRequest& req) override {
    urls.push_back(req.url);
    http::HttpResponse res;
    res.status = 200;
    const std::string prefix = std::string(kBase) + "/v1.0/security/incidents";
    const auto q = req.url.find('?');
    const std::string path = req.url.substr(0, q);
    std::map<std::string, std::string> params = testing::queryParams(req.url);
    const bool expand = params["$expand"] == "alerts";
    if (path.size() > prefix.size() + 1 && path.starts_with(prefix + "/")) {
      const std::string id = urlDecode(path.substr(prefix.size() + 1));
      if (item_fail.count(id) > 0) return error(500, "InternalServerError");
      if (auto b = item_body.find(id); b != item_body.end()) {
        res.body = b->second;
        return res;
      }
      for (auto& inc : incidents) {
        if (inc.id != id) continue;
        if (auto c = change_on_get.find(id); c != change_on_get.end()) {
          inc.updated = c->second;
          change_on_get.erase(c);
        }
        res.body = "{\"@odata.context\":\"x\"," + json(inc, expand).substr(1);
        return res;
      }
      return error(404, "NotFound");
    }
    if (path != prefix) return error(404, "NotFound");
    const std::size_t top = std::stoul(params["$top"]);
    if (top > 50) return error(400, "The limit of '50' for Top query has been exceeded.");
    const std::size_t skip = params.count("$skip") ? std::stoul(params["$skip"]) : 0;
    if (skip > 500) return error(400, "skip over 500");
    const std::string filter = params["$filter"];
    const auto bound = [&](const std::string& op) -> std::optional<Instant> {
      const std::string key = "lastUpdateDateTime " + op + " ";
      const auto p = filter.find(key);
      if (p == std::string::npos) return std::nullopt;
      const auto start = p + key.size();
      return core::parseIsoDateTime(filter.substr(start, filter.find(' ', start) - start));
    };
    const auto ge = bound("ge"), lt = bound("lt"), eq = bound("eq");
    std::vector<const FakeIncident*> match;
    for (const auto& inc : incidents) {
      if (ge && inc.updated < *ge) continue;
      if (lt && !(inc.updated < *lt)) continue;
      if (eq && !(inc.updated == *eq)) continue;
      match.push_back(&inc);
    }
    std::stable_sort(match.begin(), match.end(),
                     [](const auto* a, const auto* b) { return a->created < b->created; });
    res.body = "{\"@odata.context\":\"x\",\"value\":[";
    for (std::size_t i = skip; i < match.size() && i < skip + top; ++i) {
      if (expand && expand_fail_above > 0 && match[i]->alerts > expand_fail_above) {
        return error(500, "InternalServerError");
      }
      if (i > skip) res.body += ",";
      res.body += json(*match[i], expand);
    }
    res.body += "]";
    if (next_links && skip + top < match.size()) {
      std::string next = prefix + "?$filter=" + http::urlEncode(filter) +
                         "&$top=" + std::to_string(top) + "&$skip=" + std::to_string(skip + top);
      if (expand) next += "&$expand=alerts";
      res.body += ",\"@odata.nextLink\":\"" + next + "\"";
    }
    res.body += "}";
    return res;
  }

 private:
  std::string json(const FakeIncident& inc, bool expand) {
    std::string j =
        "{\"id\":\"" + inc.id + "\",\"tenantId\":\"tenant-1\",\"displayName\":\"incident " +
        inc.id + "\",\"createdDateTime\":\"" + iso(inc.created) + "\",\"lastUpdateDateTime\":\"" +
        iso(inc.updated) + "\",\"incidentWebUrl\":\"https://security.microsoft.com/incidents/" +
        inc.id + "?tid=tenant-1\",\"severity\":\"high\",\"status\":\"active\"";
    if (expand) {
      ++served[inc.id + "\n" + iso(inc.updated)];
      j += ",\"alerts\":[";
      for (int a = 0; a < inc.alerts; ++a) {
        if (a > 0) j += ",";
        j += "{\"id\":\"" + inc.id + "-a" + std::to_string(a) + "\",\"incidentId\":\"" + inc.id +
             "\",\"title\":\"alert\",\"createdDateTime\":\"" + iso(inc.created) +
             "\",\"lastUpdateDateTime\":\"" + iso(inc.updated) + "\",\"evidence\":" + inc.evidence +
             "}";
      }
      j += "]";
    }
    return j + "}";
  }

  static Result<http::HttpResponse> error(int status, const std::string& message) {
    http::HttpResponse res;
    res.status = status;
    res.body = "{\"error\":{\"code\":\"E\",\"message\":\"" + message + "\"}}";
    return res;
  }
};

class IncidentSourceTest : public ::testing::Test {
 protected:
  IncidentSourceTest() {
    config.name = "incidents";
    config.type = config::SourceType::kGraphIncidents;
    config.api_url = kBase;
    config.page_size = 50;
    config.requests_per_minute = 0;
    config.requests_per_hour = 0;
    config.initial_interval = std::chrono::hours(24);
    config.late_arrival_window = std::chrono::minutes(10);
    auto opened = state::openSqliteStore(tmp.path());
    EXPECT_TRUE(opened) << opened.error().message();
    store = std::move(*opened);
    delivery = std::make_unique<output::Delivery>(*store);
  }

  std::unique_ptr<Source> source() {
    SourceOptions options;
    options.metrics = &metrics;
    options.api.backoff_base = std::chrono::milliseconds(1);
    options.api.backoff_max = std::chrono::milliseconds(4);
    return makeApiSource(config, *delivery, api, tokens, clock, options);
  }

  // 2026-12-01T00:00:00Z (the fake clock's start) plus `seconds`.
  static Instant at(std::int64_t seconds) { return Instant{1'796'083'200 + seconds, 0}; }

  void add(const std::string& id, std::int64_t created, std::int64_t updated, int alerts) {
    api.incidents.push_back({id, at(created), at(updated), alerts});
  }

  struct Doc {
    std::string incident;
    std::string updated;
    std::string alert;  // "" : none
    bool alerts_error = false;
    std::string message;  // the "alerts could not be fetched" one
  };

  // The outbox's documents, read with a JSON parser.
  std::vector<Doc> docs() {
    auto out = store->readOutbox(0, 1'000'000, 1ull << 40);
    EXPECT_TRUE(out);
    std::vector<Doc> result;
    simdjson::dom::parser parser;
    for (const auto& d : *out) {
      simdjson::dom::element root;
      EXPECT_EQ(parser.parse(d.body).get(root), simdjson::SUCCESS) << d.body;
      Doc doc;
      std::string_view s;
      if (root["event"]["id"].get_string().get(s) == simdjson::SUCCESS) doc.incident = s;
      if (root["@timestamp"].get_string().get(s) == simdjson::SUCCESS) doc.updated = s;
      if (root["m365_defender"]["incident"]["alert"]["id"].get_string().get(s) ==
          simdjson::SUCCESS) {
        doc.alert = s;
      }
      simdjson::dom::array errors;
      if (root["error"]["message"].get_array().get(errors) == simdjson::SUCCESS) {
        for (auto e : errors) {
          if (e.get_string().get(s) == simdjson::SUCCESS &&
              s.starts_with("alerts could not be fetched")) {
            doc.alerts_error = true;
            doc.message = s;
          }
        }
      }
      result.push_back(doc);
    }
    return result;
  }

  // Documents per (incident, @timestamp).
  std::map<std::string, int> perVersion() {
    std::map<std::string, int> n;
    for (const auto& d : docs()) ++n[d.incident + " " + d.updated];
    return n;
  }

  std::string watermark() {
    auto wm = store->watermark(config.name);
    return wm && *wm ? **wm : std::string("none");
  }

  int requestsMatching(const std::string& part) const {
    return static_cast<int>(std::count_if(api.urls.begin(), api.urls.end(), [&](const auto& u) {
      return urlDecode(u).find(part) != std::string::npos;
    }));
  }

  testing::TempDir tmp;
  config::SourceConfig config;
  std::unique_ptr<state::StateStore> store;
  std::unique_ptr<output::Delivery> delivery;
  FakeIncidentsApi api;
  FakeTokens tokens;
  FakeClock clock;
  telemetry::SourceMetrics metrics{"incidents", "graph_incidents"};
};

// 120 incidents with 0 to 3 alerts over nextLink pages: one document per incident and
// alert (one for an incident without alerts), each version once across overlapping polls;
// a new lastUpdateDateTime is a new version.
TEST_F(IncidentSourceTest, EveryVersionOnceWithOneDocumentPerAlert) {
  int expected = 0;
  for (int i = 0; i < 120; ++i) {
    add(std::to_string(1000 + i), -7200 + i * 30, -3600 + i * 20, i % 4);
    expected += std::max(1, i % 4);
  }
  auto s = source();
  auto first = s->poll({});
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->new_versions, 120u);
  EXPECT_EQ(static_cast<int>(docs().size()), expected);
  EXPECT_EQ(requestsMatching("$top=51"), 0);
  EXPECT_GT(requestsMatching("$expand=alerts"), 0);
  EXPECT_EQ(watermark(), iso(at(-3600 + 119 * 20)));
  for (const auto& [version, n] : perVersion()) {
    EXPECT_GE(n, 1) << version;
  }
  // An update: the incident's new version arrives, and nothing else again.
  clock.advance(std::chrono::minutes(1));
  api.incidents[5].updated = at(30);
  auto second = s->poll({});
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->new_versions, 1u);
  EXPECT_EQ(static_cast<int>(docs().size()), expected + std::max(1, 5 % 4));
  std::set<std::string> alerts_seen;
  for (const auto& d : docs()) {
    EXPECT_TRUE(alerts_seen.insert(d.incident + d.updated + d.alert).second)
        << "a document twice: " << d.incident << " " << d.updated << " " << d.alert;
  }
}

// A listing with $expand=alerts that keeps answering 500 (a large incident, #18144): the
// window is read again without $expand and each new incident alone, with its alerts;
// nothing is lost and the watermark moves.
TEST_F(IncidentSourceTest, ExpandFailureFallsBackToEachIncidentAlone) {
  for (int i = 0; i < 60; ++i) add(std::to_string(2000 + i), -7200 + i, -3600 + i * 10, 1);
  api.incidents[30].alerts = 150;
  api.expand_fail_above = 100;
  auto s = source();
  auto poll = s->poll({});
  ASSERT_TRUE(poll) << poll.error().message();
  EXPECT_EQ(poll->new_versions, 60u);
  EXPECT_EQ(docs().size(), 59u + 150u);
  EXPECT_GE(requestsMatching("/v1.0/security/incidents/2030?$expand=alerts"), 1);
  EXPECT_EQ(watermark(), iso(at(-3600 + 59 * 10)));
  for (const auto& d : docs()) EXPECT_FALSE(d.alerts_error);
}

// An incident that changes between its listing and its own GET: the listed version goes alone
// (saying why), the version read goes with its alerts, and neither comes again.
TEST_F(IncidentSourceTest, AnIncidentChangedBeforeItsOwnGetDeliversBothVersions) {
  for (int i = 0; i < 5; ++i) add(std::to_string(4000 + i), -7200 + i, -3600 + i * 10, 2);
  api.incidents[4].alerts = 150;
  api.expand_fail_above = 100;
  api.change_on_get["4002"] = at(-30);
  auto s = source();
  auto poll = s->poll({});
  ASSERT_TRUE(poll) << poll.error().message();
  std::map<std::string, std::vector<Doc>> of;
  for (const auto& d : docs()) of[d.incident + " " + d.updated].push_back(d);
  const auto listed = of["4002 " + core::formatRfc3339(at(-3600 + 20), 3)];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].alerts_error);
  const auto read = of["4002 " + core::formatRfc3339(at(-30), 3)];
  EXPECT_EQ(read.size(), 2u) << "the version read, with its two alerts";
  const auto before = docs().size();
  clock.advance(std::chrono::minutes(1));
  ASSERT_TRUE(s->poll({}));
  EXPECT_EQ(docs().size(), before) << "the changed version is not delivered again when listed";
}

// An incident's own GET answers 200 with something that is not that incident: never
// delivered as it. Another incident: the listed version goes alone at once, saying so. Not
// one whole object (cut, trailing bytes): a fault that may pass, so the version waits, then
// goes alone after alerts_give_up_after.
TEST_F(IncidentSourceTest, AnAnswerThatIsNotTheIncidentIsNeverDeliveredAsIt) {
  add("6000", -7200, -3600, 1);
  add("6001", -7100, -3500, 150);
  add("6002", -7000, -3400, 2);
  api.expand_fail_above = 100;
  api.item_body["6001"] =
      R"({"id":"9999","lastUpdateDateTime":")" + iso(at(-3500)) + R"(","alerts":[]})";
  api.item_body["6002"] =
      R"({"id":"6002","lastUpdateDateTime":")" + iso(at(-3400)) + R"(","alerts":[]} trailing)";
  config.alerts_give_up_after = std::chrono::minutes(30);
  auto s = source();
  EXPECT_FALSE(s->poll({})) << "6002 waits for an answer that is an incident";
  std::map<std::string, std::vector<Doc>> by_id;
  for (const auto& d : docs()) by_id[d.incident].push_back(d);
  EXPECT_EQ(by_id.count("9999"), 0u);
  ASSERT_EQ(by_id["6001"].size(), 1u);
  EXPECT_TRUE(by_id["6001"][0].alerts_error);
  EXPECT_NE(by_id["6001"][0].message.find("another incident ('9999')"), std::string::npos)
      << by_id["6001"][0].message;
  EXPECT_EQ(by_id.count("6002"), 0u);
  EXPECT_EQ(by_id["6000"].size(), 1u);
  clock.advance(std::chrono::minutes(31));
  ASSERT_TRUE(s->poll({}));
  by_id.clear();
  for (const auto& d : docs()) by_id[d.incident].push_back(d);
  ASSERT_EQ(by_id["6002"].size(), 1u);
  EXPECT_TRUE(by_id["6002"][0].alerts_error);
  EXPECT_NE(by_id["6002"][0].message.find("not JSON"), std::string::npos)
      << by_id["6002"][0].message;
  EXPECT_EQ(by_id["6001"].size(), 1u);
  EXPECT_EQ(by_id.count("9999"), 0u);
}

// The fallback's own GET keeps failing: the version waits (the watermark stays below it)
// until alerts_give_up_after, then goes as one document that says why.
TEST_F(IncidentSourceTest, AlertsThatCannotBeReadAreGivenUpOnAfterTheConfiguredTime) {
  add("3000", -7200, -3600, 1);
  add("3001", -7100, -3000, 200);
  add("3002", -7000, -2400, 2);
  api.expand_fail_above = 100;
  api.item_fail = {"3001"};
  config.alerts_give_up_after = std::chrono::minutes(30);
  auto s = source();
  auto first = s->poll({});
  EXPECT_FALSE(first) << "a version waits for its alerts: the poll says so";
  EXPECT_EQ(watermark(), "none");
  EXPECT_EQ(perVersion().count("3001 " + core::formatRfc3339(at(-3000), 3)), 0u);
  clock.advance(std::chrono::minutes(31));
  auto second = s->poll({});
  ASSERT_TRUE(second) << second.error().message();
  int given_up = 0;
  for (const auto& d : docs()) {
    if (d.incident == "3001") {
      EXPECT_TRUE(d.alerts_error);
      EXPECT_EQ(d.alert, "");
      ++given_up;
    }
  }
  EXPECT_EQ(given_up, 1);
  EXPECT_NE(watermark(), "none");
  // Later polls deliver nothing again.
  const auto before = docs().size();
  clock.advance(std::chrono::minutes(1));
  api.item_fail.clear();
  ASSERT_TRUE(s->poll({}));
  EXPECT_EQ(docs().size(), before);
}

// No nextLink at all (an API or proxy that drops it): full pages continue by time, ties
// across a page boundary included (Elastic's `gt` loses them), and a page that is one single
// instant is paged with eq and $skip.
TEST_F(IncidentSourceTest, FullPagesWithoutNextLinkLoseNoTies) {
  api.next_links = false;
  for (int i = 0; i < 45; ++i) add("a" + std::to_string(i), -9000 + i, -3600 + i, 1);
  // 70 incidents at one instant, then 20 more later.
  for (int i = 0; i < 70; ++i) add("t" + std::to_string(i), -8000 + i, -1800, 1);
  for (int i = 0; i < 20; ++i) add("z" + std::to_string(i), -7000 + i, -600 + i, 1);
  auto s = source();
  auto poll = s->poll({});
  ASSERT_TRUE(poll) << poll.error().message();
  EXPECT_EQ(poll->new_versions, 135u);
  std::set<std::string> ids;
  for (const auto& d : docs()) ids.insert(d.incident);
  EXPECT_EQ(ids.size(), 135u);
  EXPECT_EQ(docs().size(), 135u);
  EXPECT_GT(requestsMatching("lastUpdateDateTime eq "), 0);
  EXPECT_EQ(watermark(), iso(at(-600 + 19)));
}

// A first page that is one instant T (the listing's order is by creation): the versions
// below T that come after it in that order are read too (they were once skipped: the window
// went on past T).
TEST_F(IncidentSourceTest, AOneInstantPageDoesNotHideOlderVersionsAfterIt) {
  api.next_links = false;
  for (int i = 0; i < 50; ++i) add("t" + std::to_string(i), -9000 + i, -1800, 1);
  for (int i = 0; i < 5; ++i) add("old" + std::to_string(i), -8000 + i, -3600 + i, 1);
  for (int i = 0; i < 3; ++i) add("new" + std::to_string(i), -7000 + i, -600 + i, 1);
  auto s = source();
  auto poll = s->poll({});
  ASSERT_TRUE(poll) << poll.error().message();
  std::set<std::string> ids;
  for (const auto& d : docs()) ids.insert(d.incident);
  EXPECT_EQ(ids.size(), 58u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ids.count("old" + std::to_string(i)), 1u) << i;
  EXPECT_EQ(docs().size(), 58u);
  EXPECT_EQ(watermark(), iso(at(-600 + 2)));
}

// Paged by nextLink, a last page that happens to be full (100 incidents, pages of 50) ends
// the window: nothing is asked again (it once made the same nextLink come twice: "a loop").
TEST_F(IncidentSourceTest, AFullLastPageOfANextLinkChainEndsTheWindow) {
  for (int i = 0; i < 100; ++i) add("n" + std::to_string(i), -9000 + i, -3600 + (i * 37) % 100, 1);
  auto s = source();
  auto poll = s->poll({});
  ASSERT_TRUE(poll) << poll.error().message();
  EXPECT_EQ(poll->new_versions, 100u);
  EXPECT_EQ(api.urls.size(), 2u);
  EXPECT_EQ(watermark(), iso(at(-3600 + 99)));
}

// An evidence date that does not parse is dropped without a message, as Elastic drops it,
// and counted (mdecollect_source_dates_dropped_total).
TEST_F(IncidentSourceTest, EvidenceDatesThatDoNotParseAreCounted) {
  add("5000", -7200, -3600, 2);
  api.incidents[0].evidence =
      R"([{"@odata.type":"#microsoft.graph.security.userEvidence","createdDateTime":"soon"}])";
  add("5001", -7100, -3500, 1);
  auto s = source();
  auto poll = s->poll({});
  ASSERT_TRUE(poll) << poll.error().message();
  EXPECT_EQ(docs().size(), 3u);
  EXPECT_EQ(metrics.dates_dropped.load(), 2u) << "one per alert of incident 5000";
  EXPECT_EQ(metrics.error_documents.load(), 0u);
}

// page_size above 50 is never sent (the config refuses it; the source asks what it is given).
TEST_F(IncidentSourceTest, TopOver50IsRefusedByTheApiAndReported) {
  add("1", -100, -50, 1);
  config.page_size = 100;
  auto s = source();
  auto poll = s->poll({});
  ASSERT_FALSE(poll);
  EXPECT_NE(poll.error().message().find("50"), std::string::npos) << poll.error().message();
}

}  // namespace
}  // namespace mdec::source
