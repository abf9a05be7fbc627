// The world through Graph (World::queryGraph): the same alerts and versions as /api/alerts,
// late visibility included; paging, ordering, filters, newer enum members, served marking.
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

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;

using mdec::testing::busyOptions;
using mdec::testing::staticOptions;
const Timestamp kStart = mdec::testing::kWorldStart;

GraphQuery graphQuery(GraphQueryParams params) {
  auto q = parseGraphQuery(params, 1);
  EXPECT_TRUE(q) << q.error().message();
  return q ? *q : GraphQuery{};
}

AlertQuery defenderQuery(QueryParams params) {
  auto q = parseAlertQuery(params);
  EXPECT_TRUE(q) << q.error().message();
  return q ? *q : AlertQuery{};
}

struct Item {
  std::string id;
  std::string last_update;  // the API's text
  std::string status;
  std::string detection_source;
  std::size_t evidence = 0;
};

std::vector<Item> itemsOf(const std::string& value_json, bool graph) {
  std::vector<Item> items;
  simdjson::dom::parser parser;
  simdjson::dom::array array;
  EXPECT_EQ(parser.parse(simdjson::padded_string(value_json)).get(array), simdjson::SUCCESS);
  for (simdjson::dom::element e : array) {
    Item item;
    std::string_view s;
    EXPECT_EQ(e["id"].get(s), simdjson::SUCCESS);
    item.id = std::string(s);
    EXPECT_EQ(e[graph ? "lastUpdateDateTime" : "lastUpdateTime"].get(s), simdjson::SUCCESS);
    item.last_update = std::string(s);
    EXPECT_EQ(e["status"].get(s), simdjson::SUCCESS);
    item.status = std::string(s);
    if (e["detectionSource"].get(s) == simdjson::SUCCESS) item.detection_source = std::string(s);
    simdjson::dom::array evidence;
    EXPECT_EQ(e["evidence"].get(evidence), simdjson::SUCCESS);
    // Graph's first evidence element is the device.
    item.evidence = evidence.size() - (graph ? 1 : 0);
    items.push_back(std::move(item));
  }
  return items;
}

// id -> (lastUpdate, evidence) of everything a query returns.
std::map<std::string, std::pair<std::string, std::size_t>> byId(const std::vector<Item>& items) {
  std::map<std::string, std::pair<std::string, std::size_t>> out;
  for (const Item& i : items) out[i.id] = {i.last_update, i.evidence};
  return out;
}

TEST(WorldGraph, TheSameAlertsAndVersionsAsTheDefenderApi) {
  World world(staticOptions(250));
  world.advanceTo(world.now() + minutes(5));
  AlertQuery dq;
  dq.expand_evidence = true;
  const QueryPage d = world.query(dq, OrderMode::kHonour, false);
  const QueryPage g = world.queryGraph(graphQuery({}), OrderMode::kHonour, true, false);
  EXPECT_EQ(g.matched, d.matched);
  EXPECT_EQ(g.count, d.count);
  EXPECT_GT(g.count, 200u);
  const auto gi = itemsOf(g.value_json, true);
  const auto di = itemsOf(d.value_json, false);
  // Without $orderby both use the same fixed arbitrary order.
  ASSERT_EQ(gi.size(), di.size());
  for (std::size_t i = 0; i < gi.size(); ++i) EXPECT_EQ(gi[i].id, di[i].id) << i;
  EXPECT_EQ(byId(gi), byId(di));
}

TEST(WorldGraph, LateVersionsAreTheSameThroughBothApisAtEveryMoment) {
  World world(busyOptions());
  std::size_t changed = 0;
  std::map<std::string, std::string> previous;
  for (int step = 0; step < 24; ++step) {
    world.advanceTo(world.now() + minutes(13));
    AlertQuery dq;
    dq.expand_evidence = true;
    const auto d = byId(itemsOf(world.query(dq, OrderMode::kIgnore, false).value_json, false));
    const auto g = byId(itemsOf(
        world.queryGraph(graphQuery({}), OrderMode::kIgnore, true, false).value_json, true));
    ASSERT_EQ(g, d) << "step " << step;
    for (const auto& [id, v] : g) {
      auto it = previous.find(id);
      if (it != previous.end() && it->second != v.first) ++changed;
      previous[id] = v.first;
    }
  }
  EXPECT_GT(changed, 20u);  // the world moved: updated versions appeared through both
}

TEST(WorldGraph, PagesBySkipConcatenateInOrder) {
  World world(staticOptions(300, 4));
  world.advanceTo(world.now() + minutes(5));
  GraphQueryParams all;
  all.orderby = "lastUpdateDateTime desc";
  const GraphQuery whole = graphQuery(all);
  const auto everything =
      itemsOf(world.queryGraph(whole, OrderMode::kHonour, true, false).value_json, true);
  ASSERT_GT(everything.size(), 250u);
  EXPECT_TRUE(
      std::is_sorted(everything.begin(), everything.end(), [](const Item& a, const Item& b) {
        return core::parseIsoDateTime(a.last_update) > core::parseIsoDateTime(b.last_update);
      }));
  std::vector<Item> paged;
  for (std::size_t skip = 0, pages = 0; pages < 20; skip += 70, ++pages) {
    GraphQuery q = whole;
    q.top = 70;
    q.skip = skip;
    const QueryPage p = world.queryGraph(q, OrderMode::kHonour, true, false);
    EXPECT_EQ(p.matched, everything.size());
    const auto items = itemsOf(p.value_json, true);
    paged.insert(paged.end(), items.begin(), items.end());
    if (items.size() < 70) break;
  }
  ASSERT_EQ(paged.size(), everything.size());
  for (std::size_t i = 0; i < paged.size(); ++i) EXPECT_EQ(paged[i].id, everything[i].id);
}

TEST(WorldGraph, FiltersAgreeWithTheDefenderApi) {
  World world(busyOptions(31));
  world.advanceTo(world.now() + hours(8));
  const std::string from = formatApiTime(world.now() - hours(5));
  const std::string to = formatApiTime(world.now() - hours(1));
  struct Pair {
    std::string graph;
    std::string defender;
  };
  const std::vector<Pair> pairs = {
      {"status eq 'new'", "status eq 'New'"},
      {"status eq 'inProgress'", "status eq 'InProgress'"},
      {"status eq 'resolved' and severity eq 'high'",
       "status eq 'Resolved' and severity eq 'High'"},
      {"lastUpdateDateTime ge " + from + " and lastUpdateDateTime lt " + to +
           " and (serviceSource eq 'microsoftDefenderForEndpoint')",
       "lastUpdateTime ge " + from + " and lastUpdateTime lt " + to},
      {"createdDateTime gt " + from, "alertCreationTime gt " + from},
  };
  for (const Pair& p : pairs) {
    SCOPED_TRACE(p.graph);
    GraphQueryParams gp;
    gp.filter = p.graph;
    QueryParams dp;
    dp.filter = p.defender;
    dp.expand = "evidence";
    const auto g = byId(itemsOf(
        world.queryGraph(graphQuery(gp), OrderMode::kIgnore, true, false).value_json, true));
    const auto d =
        byId(itemsOf(world.query(defenderQuery(dp), OrderMode::kIgnore, false).value_json, false));
    EXPECT_EQ(g, d);
    EXPECT_FALSE(g.empty());
  }
  // Another product's alerts: none here.
  GraphQueryParams other;
  other.filter = "serviceSource eq 'microsoftDefenderForOffice365'";
  EXPECT_EQ(world.queryGraph(graphQuery(other), OrderMode::kIgnore, true, false).matched, 0u);
}

TEST(WorldGraph, NewerEnumMembersOnlyWhenAskedFor) {
  World world(staticOptions(600, 5));
  world.advanceTo(world.now() + minutes(5));
  const auto with =
      itemsOf(world.queryGraph(graphQuery({}), OrderMode::kIgnore, true, false).value_json, true);
  const auto without =
      itemsOf(world.queryGraph(graphQuery({}), OrderMode::kIgnore, false, false).value_json, true);
  ASSERT_EQ(with.size(), without.size());
  std::size_t newer = 0;
  for (std::size_t i = 0; i < with.size(); ++i) {
    ASSERT_EQ(with[i].id, without[i].id);
    if (with[i].detection_source == "microsoftThreatIntelligence") {
      ++newer;
      EXPECT_EQ(without[i].detection_source, "unknownFutureValue");
    } else {
      EXPECT_EQ(without[i].detection_source, with[i].detection_source);
      EXPECT_NE(with[i].detection_source, "unknownFutureValue");
    }
  }
  EXPECT_GT(newer, 3u);
  // One alert alone, too.
  const auto one = world.alertGraphJson(with[0].id, true, false);
  ASSERT_TRUE(one);
  EXPECT_NE(one->find("\"id\":\"" + with[0].id + "\""), std::string::npos);
  EXPECT_FALSE(world.alertGraphJson("da0_0", true, false));
}

TEST(WorldGraph, ServedThroughGraphCountsAsServed) {
  World world(staticOptions(120, 6));
  world.advanceTo(world.now() + minutes(5));
  GraphQuery q = graphQuery({});
  q.top = 40;
  world.queryGraph(q, OrderMode::kIgnore, true, /*mark_served=*/false);
  for (const VersionInfo& v : world.versions()) EXPECT_FALSE(v.served);
  const QueryPage p = world.queryGraph(q, OrderMode::kIgnore, true);
  std::set<std::string> returned;
  for (const Item& i : itemsOf(p.value_json, true)) returned.insert(i.id);
  ASSERT_EQ(returned.size(), 40u);
  std::size_t served = 0;
  for (const VersionInfo& v : world.versions()) {
    EXPECT_EQ(v.served, returned.count(v.id) == 1) << v.id;
    served += v.served ? 1 : 0;
  }
  EXPECT_EQ(served, 40u);
}

TEST(WorldGraph, AnUpdatedAlertKeepsServingItsVisibleVersionUntilTheNewOneShows) {
  // Everything late: a new version stays invisible for a while, and the old one must still
  // be served in Graph's form although the alert struct has moved on.
  WorldOptions o = staticOptions(80, 9);
  o.updates_per_hour = 600;
  o.late_fraction = 1.0;
  o.late_max = minutes(30);
  World world(o);
  world.advanceTo(world.now() + minutes(5));
  // Nothing rendered through Graph yet; the world moves on.
  for (int step = 0; step < 12; ++step) {
    world.advanceTo(world.now() + minutes(3));
    AlertQuery dq;
    dq.expand_evidence = true;
    const auto d = byId(itemsOf(world.query(dq, OrderMode::kIgnore, false).value_json, false));
    const auto g = byId(itemsOf(
        world.queryGraph(graphQuery({}), OrderMode::kIgnore, true, false).value_json, true));
    ASSERT_EQ(g, d) << "step " << step;
  }
  std::size_t hidden = 0;
  for (const VersionInfo& v : world.versions()) hidden += v.latest ? 0 : 1;
  EXPECT_GT(hidden, 5u);  // there were superseded versions
}

}  // namespace
}  // namespace mdec::emulator
