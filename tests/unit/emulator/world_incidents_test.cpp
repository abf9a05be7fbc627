// Graph incidents over the world (World::queryIncidents, incidentGraphJson, incidentVersions):
// the visible alerts grouped by incidentId, $expand=alerts equal to alerts_v2's objects,
// lastUpdateDateTime moving with every alert change, the expand fault, the versions truth.
// Emulated time only: no sockets, no sleeps, no clock.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/emulator/graph_json.h"
#include "mdecollect/emulator/graph_odata.h"
#include "mdecollect/emulator/world.h"
#include "support/world_options.h"

namespace mdec::emulator {
namespace {

using std::chrono::minutes;

using mdec::testing::busyOptions;
using mdec::testing::staticOptions;
const Timestamp kStart = mdec::testing::kWorldStart;

GraphQuery incidentQuery(GraphQueryParams params) {
  auto q = parseGraphQuery(params, 1, GraphEntity::kIncidents);
  EXPECT_TRUE(q) << q.error().message();
  return q ? *q : GraphQuery{};
}

GraphQuery alertQuery() {
  GraphQueryParams p;
  auto q = parseGraphQuery(p, 1);
  EXPECT_TRUE(q);
  return q ? *q : GraphQuery{};
}

struct Incident {
  std::string id;
  std::string last_update;
  std::string created;
  std::string status;
  std::string severity;
  bool has_alerts_key = false;
  std::vector<std::string> alert_ids;
  std::vector<std::string> alert_json;  // minified, as served
  std::vector<std::string> alert_incident_ids;
};

std::string text(simdjson::dom::element e, const char* key) {
  std::string_view s;
  return e[key].get(s) == simdjson::SUCCESS ? std::string(s) : std::string("<null>");
}

std::vector<Incident> incidentsOf(const std::string& value_json) {
  std::vector<Incident> out;
  simdjson::dom::parser parser;
  simdjson::dom::array array;
  EXPECT_EQ(parser.parse(simdjson::padded_string(value_json)).get(array), simdjson::SUCCESS)
      << value_json.substr(0, 300);
  for (simdjson::dom::element e : array) {
    Incident i;
    i.id = text(e, "id");
    i.last_update = text(e, "lastUpdateDateTime");
    i.created = text(e, "createdDateTime");
    i.status = text(e, "status");
    i.severity = text(e, "severity");
    simdjson::dom::array alerts;
    i.has_alerts_key = e["alerts"].error() != simdjson::NO_SUCH_FIELD;
    if (e["alerts"].get(alerts) == simdjson::SUCCESS) {
      for (simdjson::dom::element a : alerts) {
        i.alert_ids.push_back(text(a, "id"));
        i.alert_json.push_back(simdjson::minify(a));
        i.alert_incident_ids.push_back(text(a, "incidentId"));
      }
    }
    out.push_back(std::move(i));
  }
  return out;
}

// id -> the alert's JSON as alerts_v2 serves it (minified).
std::map<std::string, std::string> graphAlerts(World& world, bool prefer) {
  std::map<std::string, std::string> out;
  const QueryPage page = world.queryGraph(alertQuery(), OrderMode::kHonour, prefer, false);
  simdjson::dom::parser parser;
  simdjson::dom::array array;
  EXPECT_EQ(parser.parse(simdjson::padded_string(page.value_json)).get(array), simdjson::SUCCESS);
  for (simdjson::dom::element a : array) out[text(a, "id")] = simdjson::minify(a);
  return out;
}

// Every incident, through $skip pages of 50 (a static world: pages do not shift).
std::vector<Incident> allIncidents(World& world, bool expand, bool prefer = true) {
  std::vector<Incident> out;
  for (std::size_t skip = 0; skip < 100'000; skip += 50) {
    GraphQueryParams p;
    p.orderby = "lastUpdateDateTime asc";
    if (expand) p.expand = "alerts";
    GraphQuery q = incidentQuery(p);
    q.skip = skip;  // past $skip's limit of 500, as a skiptoken carries it
    const QueryPage page = world.queryIncidents(q, OrderMode::kHonour, prefer);
    EXPECT_FALSE(page.refused);
    auto items = incidentsOf(page.value_json);
    out.insert(out.end(), items.begin(), items.end());
    if (page.count < 50) break;
  }
  return out;
}

TEST(WorldIncidents, IncidentsAreTheVisibleAlertsGroupedByIncidentId) {
  World world(staticOptions(400));
  world.advanceTo(kStart);
  const auto alerts = graphAlerts(world, true);
  const auto incidents = allIncidents(world, true);
  ASSERT_FALSE(incidents.empty());
  EXPECT_LE(incidents.size(), world.incidentCount());
  std::set<std::string> expected_ids;  // the incidentIds of the visible alerts
  simdjson::dom::parser parser;
  for (const auto& [id, json] : alerts) {
    simdjson::dom::element a;
    ASSERT_EQ(parser.parse(simdjson::padded_string(json)).get(a), simdjson::SUCCESS);
    expected_ids.insert(text(a, "incidentId"));
  }
  std::set<std::string> ids;
  std::set<std::string> alert_ids;
  bool some_multi = false;
  for (const Incident& i : incidents) {
    EXPECT_TRUE(ids.insert(i.id).second) << "incident served twice: " << i.id;
    ASSERT_FALSE(i.alert_ids.empty()) << i.id;
    some_multi = some_multi || i.alert_ids.size() > 1;
    for (std::size_t k = 0; k < i.alert_ids.size(); ++k) {
      EXPECT_TRUE(alert_ids.insert(i.alert_ids[k]).second) << i.alert_ids[k];
      EXPECT_EQ(i.alert_incident_ids[k], i.id);
      // The exact alerts_v2 object, evidence and all.
      auto it = alerts.find(i.alert_ids[k]);
      ASSERT_NE(it, alerts.end()) << i.alert_ids[k];
      EXPECT_EQ(i.alert_json[k], it->second);
    }
    // 7 fractional digits and Z.
    ASSERT_EQ(i.last_update.size(), 28u) << i.last_update;
    EXPECT_EQ(i.last_update[19], '.');
    EXPECT_EQ(i.last_update.back(), 'Z');
    EXPECT_EQ(i.created.size(), 28u) << i.created;
    EXPECT_LE(i.created, i.last_update);
  }
  EXPECT_TRUE(some_multi) << "no incident with several alerts: the grouping is not exercised";
  EXPECT_EQ(ids, expected_ids);
  EXPECT_EQ(alert_ids.size(), alerts.size());
  // Ordered by lastUpdateDateTime.
  for (std::size_t k = 1; k < incidents.size(); ++k) {
    EXPECT_LE(incidents[k - 1].last_update, incidents[k].last_update);
  }
}

TEST(WorldIncidents, NoAlertsKeyWithoutExpand) {
  World world(staticOptions(100));
  world.advanceTo(kStart);
  for (const Incident& i : allIncidents(world, false)) EXPECT_FALSE(i.has_alerts_key) << i.id;
  for (const Incident& i : allIncidents(world, true)) EXPECT_TRUE(i.has_alerts_key) << i.id;
  const auto one = world.incidentGraphJson(allIncidents(world, false).front().id, false, true);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->find("\"alerts\""), std::string::npos);
  EXPECT_FALSE(world.incidentGraphJson("999999999999", true, true));
  EXPECT_FALSE(world.incidentGraphJson("abc", true, true));
}

TEST(WorldIncidents, SeverityIsTheHighestOfItsAlerts) {
  World world(staticOptions(300));
  world.advanceTo(kStart);
  const auto alerts = graphAlerts(world, true);
  auto rank = [](std::string_view s) {
    const std::vector<std::string_view> order = {"unknown", "informational", "low", "medium",
                                                 "high"};
    return std::find(order.begin(), order.end(), s) - order.begin();
  };
  simdjson::dom::parser parser;
  for (const Incident& i : allIncidents(world, true)) {
    std::ptrdiff_t best = 0;
    for (const std::string& json : i.alert_json) {
      simdjson::dom::element a;
      ASSERT_EQ(parser.parse(simdjson::padded_string(json)).get(a), simdjson::SUCCESS);
      best = std::max(best, rank(text(a, "severity")));
    }
    EXPECT_EQ(rank(i.severity), best) << i.id;
  }
}

TEST(WorldIncidents, LastUpdateMovesWhenAnAlertOfTheIncidentChanges) {
  World world(busyOptions());
  world.advanceTo(kStart);
  auto before = allIncidents(world, true);
  std::map<std::string, Incident> then;
  for (auto& i : before) then[i.id] = i;
  world.advanceTo(kStart + minutes(90));
  std::size_t changed = 0;
  std::size_t added = 0;
  for (const Incident& now : allIncidents(world, true)) {
    auto it = then.find(now.id);
    if (it == then.end()) {
      ++added;
      continue;
    }
    const Incident& old = it->second;
    // Any change to its alerts (a new one, an update: another lastUpdateDateTime) moves it.
    std::map<std::string, std::string> old_alerts;
    for (std::size_t k = 0; k < old.alert_ids.size(); ++k) {
      old_alerts[old.alert_ids[k]] = old.alert_json[k];
    }
    bool alerts_changed = old.alert_ids.size() != now.alert_ids.size();
    for (std::size_t k = 0; k < now.alert_ids.size(); ++k) {
      auto o = old_alerts.find(now.alert_ids[k]);
      alerts_changed = alerts_changed || o == old_alerts.end() || o->second != now.alert_json[k];
    }
    if (alerts_changed) {
      ++changed;
      EXPECT_GT(now.last_update, old.last_update) << now.id;
    } else {
      EXPECT_EQ(now.last_update, old.last_update) << now.id;
    }
  }
  EXPECT_GT(changed, 0u) << "no incident changed: the test proves nothing";
  EXPECT_GT(added, 0u);
}

TEST(WorldIncidents, IncidentVersionsReportServedLatestAndAlerts) {
  World world(busyOptions(31));
  world.advanceTo(kStart);
  std::map<std::string, std::pair<std::string, std::size_t>> served_then;  // id -> (time, alerts)
  for (const Incident& i : allIncidents(world, true)) {
    served_then[i.id] = {i.last_update, i.alert_ids.size()};
  }
  world.advanceTo(kStart + minutes(60));
  const auto versions = world.incidentVersions();
  std::map<std::string, const IncidentVersionInfo*> latest;
  std::set<std::pair<std::string, std::string>> seen;
  for (const IncidentVersionInfo& v : versions) {
    const std::string t = core::formatRfc3339(
        core::toInstant(
            std::chrono::time_point_cast<std::chrono::system_clock::duration>(v.last_update_time)),
        7);
    EXPECT_TRUE(seen.insert({v.id, t}).second) << "version listed twice: " << v.id << " " << t;
    auto it = served_then.find(v.id);
    const bool was_served = it != served_then.end() && it->second.first == t;
    EXPECT_EQ(v.served, was_served) << v.id << " " << t;
    if (was_served) {
      EXPECT_EQ(v.alerts, it->second.second) << v.id;
    }
    if (v.latest) {
      EXPECT_EQ(latest.count(v.id), 0u) << "two latest versions: " << v.id;
      latest[v.id] = &v;
    }
  }
  for (const auto& [id, when] : served_then) {
    EXPECT_TRUE(seen.count({id, when.first})) << "a served version is missing: " << id;
  }
  // The latest versions are what the listing serves now (nothing marked: mark_served off).
  GraphQueryParams p;
  p.expand = "alerts";
  GraphQuery q = incidentQuery(p);
  std::size_t listed = 0;
  for (std::size_t skip = 0; skip < 10'000; skip += 50) {
    q.skip = skip;
    const QueryPage page = world.queryIncidents(q, OrderMode::kHonour, true, false);
    for (const Incident& i : incidentsOf(page.value_json)) {
      ++listed;
      auto it = latest.find(i.id);
      ASSERT_NE(it, latest.end()) << i.id;
      EXPECT_EQ(it->second->alerts, i.alert_ids.size()) << i.id;
      EXPECT_EQ(
          core::formatRfc3339(
              core::toInstant(std::chrono::time_point_cast<std::chrono::system_clock::duration>(
                  it->second->last_update_time)),
              7),
          i.last_update);
    }
    if (page.count < 50) break;
  }
  EXPECT_EQ(listed, latest.size());
  EXPECT_GT(versions.size(), latest.size()) << "no incident changed";
}

TEST(WorldIncidents, ExpandFaultRefusesPagesWithALargeIncidentOnly) {
  World world(staticOptions(300));
  world.advanceTo(kStart);
  std::size_t biggest = 0;
  for (const Incident& i : allIncidents(world, true))
    biggest = std::max(biggest, i.alert_ids.size());
  ASSERT_GE(biggest, 2u);
  GraphQueryParams p;
  p.expand = "alerts";
  const GraphQuery expand = incidentQuery(p);
  const GraphQuery plain = incidentQuery({});
  GraphQuery all = expand;
  all.top = 50;
  bool some_refused = false;
  for (std::size_t skip = 0; skip < 2000; skip += 50) {
    all.skip = skip;
    const QueryPage page = world.queryIncidents(all, OrderMode::kHonour, true, true, biggest - 1);
    some_refused = some_refused || page.refused;
    if (page.refused) {
      EXPECT_TRUE(page.value_json.empty());
    }
    if (!page.refused && page.count < 50) break;
  }
  EXPECT_TRUE(some_refused);
  for (std::size_t skip = 0; skip < 2000; skip += 50) {
    all.skip = skip;
    const QueryPage page = world.queryIncidents(all, OrderMode::kHonour, true, true, biggest);
    EXPECT_FALSE(page.refused);
    if (page.count < 50) break;
  }
  // Without $expand the fault does not apply.
  EXPECT_FALSE(world.queryIncidents(plain, OrderMode::kHonour, true, true, 1).refused);
  (void)expand;
}

TEST(WorldIncidents, AwaitingActionOnlyWithThePreferHeader) {
  // Updates, not too many: some incidents are in progress; a quarter of those awaitingAction.
  WorldOptions options = staticOptions(400, 41);
  options.updates_per_hour = 600;
  World world(options);
  world.advanceTo(kStart + minutes(30));
  std::size_t awaiting = 0;
  const auto with = allIncidents(world, false, true);
  const auto without = allIncidents(world, false, false);
  ASSERT_EQ(with.size(), without.size());
  std::map<std::string, std::string> legacy;
  for (const Incident& i : without) {
    EXPECT_NE(i.status, "awaitingAction");
    legacy[i.id] = i.status;
  }
  for (const Incident& i : with) {
    if (i.status == "awaitingAction") {
      ++awaiting;
      EXPECT_EQ(legacy[i.id], "unknownFutureValue");
    } else {
      EXPECT_EQ(legacy[i.id], i.status);
    }
  }
  std::map<std::string, int> statuses;
  for (const Incident& i : with) ++statuses[i.status];
  std::string summary;
  for (const auto& [status, n] : statuses) summary += status + "=" + std::to_string(n) + " ";
  EXPECT_GT(awaiting, 0u) << summary;
}

}  // namespace
}  // namespace mdec::emulator
