// Graph's query options on /security/incidents (graph_odata.h, GraphEntity::kIncidents): $top
// default and limit of 50 (refused above, with Graph's message), $expand=alerts, the incident's
// filterable properties and enum members, and skiptokens that carry their collection.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "mdecollect/emulator/graph_odata.h"

namespace mdec::emulator {
namespace {

constexpr std::uint64_t kKey = 0xfeedfacecafebeefULL;

Result<GraphQuery> incidents(GraphQueryParams params) {
  return parseGraphQuery(params, kKey, GraphEntity::kIncidents);
}

TEST(GraphODataIncidents, TopDefaultsTo50AndAbove50IsRefusedWithGraphsMessage) {
  auto q = incidents({});
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_EQ(q->top, 50u);
  EXPECT_FALSE(q->expand_alerts);
  GraphQueryParams p;
  p.top = "50";
  ASSERT_TRUE(incidents(p));
  p.top = "51";
  auto refused = incidents(p);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(),
            "The limit of '50' for Top query has been exceeded. The value from the incoming "
            "request is '51'.");
  p.top = "1000";
  ASSERT_FALSE(incidents(p));
  // alerts_v2 still clamps.
  auto alerts = parseGraphQuery(p, kKey);
  ASSERT_TRUE(alerts);
  EXPECT_EQ(alerts->top, 1000u);
}

TEST(GraphODataIncidents, SkipOver500IsRefused) {
  GraphQueryParams p;
  p.skip = "500";
  ASSERT_TRUE(incidents(p));
  p.skip = "501";
  EXPECT_FALSE(incidents(p));
}

TEST(GraphODataIncidents, ExpandAlertsOnly) {
  GraphQueryParams p;
  p.expand = "alerts";
  auto q = incidents(p);
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_TRUE(q->expand_alerts);
  p.expand = "evidence";
  auto bad = incidents(p);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("microsoft.graph.security.incident"), std::string::npos);
  // alerts_v2 has no $expand=alerts.
  p.expand = "alerts";
  EXPECT_FALSE(parseGraphQuery(p, kKey));
}

TEST(GraphODataIncidents, FilterOnTheIncidentsProperties) {
  GraphQueryParams p;
  p.filter =
      "lastUpdateDateTime ge 2026-03-01T00:00:00.0000000Z and lastUpdateDateTime lt "
      "2026-03-02T00:00:00Z and lastUpdateDateTime gt 2026-03-01T00:00:00Z and "
      "lastUpdateDateTime le 2026-03-02T00:00:00Z and lastUpdateDateTime eq "
      "2026-03-01T12:00:00.1234567Z";
  ASSERT_TRUE(incidents(p));
  p.filter = "status eq 'awaitingAction' or status eq 'active' or determination eq 'clean'";
  auto q = incidents(p);
  ASSERT_TRUE(q) << q.error().message();
  // An alert's status is not an incident's, nor the reverse.
  p.filter = "status eq 'new'";
  EXPECT_FALSE(incidents(p));
  EXPECT_TRUE(parseGraphQuery(p, kKey));
  p.filter = "serviceSource eq 'microsoftDefenderForEndpoint'";
  auto no_source = incidents(p);
  ASSERT_FALSE(no_source);
  EXPECT_NE(no_source.error().message().find("microsoft.graph.security.incident"),
            std::string::npos);
  p.filter = "displayName eq 'x'";
  EXPECT_FALSE(incidents(p));

  GraphFilterFields f;
  f.last_update_date_time = *core::parseIsoDateTime("2026-03-01T12:00:00.1234567Z");
  f.created_date_time = f.last_update_date_time;
  f.status = "active";
  f.severity = "high";
  p.filter =
      "lastUpdateDateTime ge 2026-03-01T12:00:00.1234567Z and lastUpdateDateTime lt "
      "2026-03-01T12:00:00.1234568Z";
  auto window = incidents(p);
  ASSERT_TRUE(window);
  EXPECT_TRUE(matchesGraphFilter(window->filter, f));
  p.filter = "lastUpdateDateTime gt 2026-03-01T12:00:00.1234567Z";
  auto after = incidents(p);
  ASSERT_TRUE(after);
  EXPECT_FALSE(matchesGraphFilter(after->filter, f));
}

TEST(GraphODataIncidents, SkipTokensCarryExpandAndTheirCollection) {
  GraphQueryParams p;
  p.filter = "lastUpdateDateTime ge 2026-03-01T00:00:00Z";
  p.orderby = "lastUpdateDateTime asc";
  p.top = "20";
  p.expand = "alerts";
  auto q = incidents(p);
  ASSERT_TRUE(q);
  const std::string token = makeGraphSkipToken(*q, 40, kKey);
  GraphQueryParams next;
  next.skiptoken = token;
  auto back = incidents(next);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_TRUE(back->expand_alerts);
  EXPECT_EQ(back->skip, 40u);
  EXPECT_EQ(back->top, 20u);
  EXPECT_EQ(back->filter_text, p.filter);
  // Not on alerts_v2, and an alerts_v2 token not on incidents.
  EXPECT_FALSE(parseGraphQuery(next, kKey));
  auto alerts = parseGraphQuery({}, kKey);
  ASSERT_TRUE(alerts);
  GraphQueryParams alert_next;
  alert_next.skiptoken = makeGraphSkipToken(*alerts, 1000, kKey);
  EXPECT_TRUE(parseGraphQuery(alert_next, kKey));
  EXPECT_FALSE(incidents(alert_next));
}

}  // namespace
}  // namespace mdec::emulator
