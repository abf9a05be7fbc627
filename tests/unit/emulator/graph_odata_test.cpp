// Graph's query options for alerts_v2 (graph_odata.h): $filter with and / or / parentheses,
// $top clamping, the $skip limit, $orderby, $count, the opaque $skiptoken and the error body.
#include "mdecollect/emulator/graph_odata.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <string_view>
#include <vector>

namespace mdec::emulator {
namespace {

constexpr std::uint64_t kKey = 0x1234567890abcdefULL;

core::Instant at(std::string_view text) {
  auto t = core::parseIsoDateTime(text);
  EXPECT_TRUE(t) << text;
  return t.value_or(core::Instant{});
}

Result<GraphQuery> parse(GraphQueryParams params) { return parseGraphQuery(params, kKey); }

Result<GraphQuery> filter(const std::string& f) {
  GraphQueryParams p;
  p.filter = f;
  return parse(p);
}

// An alert's fields as a filter sees them.
GraphFilterFields fields(std::string_view last_update = "2026-11-27T12:00:00Z",
                         std::string_view status = "new", std::string_view severity = "high") {
  GraphFilterFields f;
  f.last_update_date_time = at(last_update);
  f.created_date_time = at("2026-11-27T11:59:58Z");
  f.status = status;
  f.severity = severity;
  f.service_source = "microsoftDefenderForEndpoint";
  return f;
}

bool matches(const std::string& f, const GraphFilterFields& x) {
  auto q = filter(f);
  EXPECT_TRUE(q) << f << ": " << (q ? "" : q.error().message());
  return q && matchesGraphFilter(q->filter, x);
}

std::string errorOf(const Result<GraphQuery>& q) {
  EXPECT_FALSE(q);
  if (q) return {};
  EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
  return q.error().message();
}

TEST(GraphODataTest, TheCollectorsWindowFilter) {
  const std::string f =
      "lastUpdateDateTime ge 2026-11-27T00:00:00.0000000Z and lastUpdateDateTime lt "
      "2026-11-28T00:00:00Z and (serviceSource eq 'microsoftDefenderForEndpoint')";
  auto q = filter(f);
  ASSERT_TRUE(q) << q.error().message();
  ASSERT_FALSE(q->filter.nodes.empty());
  const GraphFilterNode& root = q->filter.nodes[q->filter.root];
  EXPECT_EQ(root.kind, GraphFilterNode::Kind::kAnd);
  EXPECT_EQ(root.children.size(), 3u);
  EXPECT_EQ(q->filter_text, f);
  EXPECT_TRUE(matchesGraphFilter(q->filter, fields("2026-11-27T00:00:00Z")));
  EXPECT_TRUE(matchesGraphFilter(q->filter, fields("2026-11-27T23:59:59.9999999Z")));
  EXPECT_FALSE(matchesGraphFilter(q->filter, fields("2026-11-28T00:00:00Z")));
  EXPECT_FALSE(matchesGraphFilter(q->filter, fields("2026-11-26T23:59:59.9999999Z")));
  GraphFilterFields other = fields();
  other.service_source = "microsoftDefenderForOffice365";
  EXPECT_FALSE(matchesGraphFilter(q->filter, other));
}

TEST(GraphODataTest, OrBetweenServiceSourcesAndPrecedence) {
  const std::string two =
      "(serviceSource eq 'microsoftDefenderForIdentity' or serviceSource eq "
      "'microsoftDefenderForEndpoint')";
  EXPECT_TRUE(matches(two, fields()));
  EXPECT_FALSE(
      matches("serviceSource eq 'microsoftDefenderForIdentity' or serviceSource eq "
              "'microsoft365Defender'",
              fields()));
  // `and` binds tighter than `or`.
  EXPECT_TRUE(matches("status eq 'resolved' or status eq 'new' and severity eq 'high'", fields()));
  EXPECT_FALSE(matches("status eq 'resolved' or status eq 'new' and severity eq 'low'", fields()));
  EXPECT_FALSE(
      matches("(status eq 'resolved' or status eq 'new') and severity eq 'low'", fields()));
  EXPECT_TRUE(matches("((status eq 'new'))", fields()));
  EXPECT_TRUE(matches("status ne 'resolved' and severity ne 'low'", fields()));
}

TEST(GraphODataTest, EveryTimeOperator) {
  const GraphFilterFields x = fields("2026-11-27T12:00:00.5Z");
  EXPECT_TRUE(matches("lastUpdateDateTime eq 2026-11-27T12:00:00.5000000Z", x));
  EXPECT_FALSE(matches("lastUpdateDateTime ne 2026-11-27T12:00:00.5Z", x));
  EXPECT_TRUE(matches("lastUpdateDateTime gt 2026-11-27T12:00:00.4999999Z", x));
  EXPECT_FALSE(matches("lastUpdateDateTime gt 2026-11-27T12:00:00.5Z", x));
  EXPECT_TRUE(matches("lastUpdateDateTime ge 2026-11-27T12:00:00.5Z", x));
  EXPECT_TRUE(matches("lastUpdateDateTime lt 2026-11-27T12:00:00.5000001Z", x));
  EXPECT_FALSE(matches("lastUpdateDateTime lt 2026-11-27T12:00:00.5Z", x));
  EXPECT_TRUE(matches("lastUpdateDateTime le 2026-11-27T12:00:00.5Z", x));
  // An offset: 13:00+01:00 is 12:00Z.
  EXPECT_TRUE(matches("lastUpdateDateTime lt 2026-11-27T13:00:01+01:00", x));
  EXPECT_TRUE(matches("createdDateTime lt 2026-11-27T12:00:00Z", x));
  EXPECT_FALSE(matches("createdDateTime ge 2026-11-27T12:00:00Z", x));
}

TEST(GraphODataTest, NullableFields) {
  GraphFilterFields x = fields();
  EXPECT_TRUE(matches("assignedTo eq null", x));
  EXPECT_FALSE(matches("assignedTo ne null", x));
  EXPECT_TRUE(matches("classification eq null and determination eq null", x));
  EXPECT_TRUE(matches("classification ne 'truePositive'", x));
  x.assigned_to = "secop@contoso.com";
  x.classification = "truePositive";
  x.determination = "malware";
  EXPECT_TRUE(matches("assignedTo eq 'secop@contoso.com'", x));
  EXPECT_TRUE(matches("assignedTo ne null", x));
  EXPECT_TRUE(matches("classification eq 'truePositive' and determination eq 'malware'", x));
  EXPECT_FALSE(matches("classification eq 'falsePositive'", x));
  x.assigned_to = "o'brien@contoso.com";
  EXPECT_TRUE(matches("assignedTo eq 'o''brien@contoso.com'", x));
}

TEST(GraphODataTest, BadFiltersAreErrors) {
  struct Case {
    std::string filter;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"lastUpdateDateTime ge '2026-11-27T00:00:00Z'", "incompatible types"},
      {"lastUpdateDateTime ge 2026-02-30T00:00:00Z", "Edm.DateTimeOffset"},
      {"lastUpdateDateTime ge yesterday", "Edm.DateTimeOffset"},
      {"status eq New", "single quotes"},
      {"status eq 'New'", "not a valid enumeration"},
      {"severity eq 'critical'", "not a valid enumeration"},
      {"serviceSource eq 'defender'", "not a valid enumeration"},
      {"status gt 'new'", "use eq or ne"},
      {"status eq null", "never null"},
      {"colour eq 'red'", "Could not find a property named 'colour'"},
      {"detectionSource eq 'antivirus'", "not supported in $filter"},
      {"not (status eq 'new')", "'not' is not supported"},
      {"contains(title, 'x')", "function 'contains'"},
      {"(status eq 'new'", "')'"},
      {"status eq 'new')", "expected 'and', 'or' or the end"},
      {"status eq 'new' and", "ends where a property name"},
      {"status eq 'new", "unterminated string"},
      {"status 'new'", "unknown operator"},
      {"status eq 'new' xor status eq 'new'", "expected 'and', 'or' or the end"},
      {std::string(40, '(') + "status eq 'new'" + std::string(40, ')'), "nests too deeply"},
      {"   ", "cannot be empty"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.filter);
    const std::string message = errorOf(filter(c.filter));
    EXPECT_NE(message.find(c.message_part), std::string::npos) << message;
  }
}

TEST(GraphODataTest, TopIsClampedAndDefaultsTo1000) {
  auto q = parse({});
  ASSERT_TRUE(q);
  EXPECT_EQ(q->top, 1000u);
  EXPECT_EQ(q->skip, 0u);
  EXPECT_FALSE(q->count);
  EXPECT_FALSE(q->order_by);
  EXPECT_TRUE(q->filter.nodes.empty());
  for (const auto& [text, expected] :
       std::vector<std::pair<std::string, std::size_t>>{{"0", 0},
                                                        {"1", 1},
                                                        {"999", 999},
                                                        {"1000", 1000},
                                                        {"1001", 1000},
                                                        {"5000", 1000},
                                                        {"99999999999", 1000}}) {
    GraphQueryParams p;
    p.top = text;
    auto t = parse(p);
    ASSERT_TRUE(t) << text;
    EXPECT_EQ(t->top, expected) << text;
  }
  for (const char* bad : {"-1", "ten", "", "1.5"}) {
    GraphQueryParams p;
    p.top = bad;
    EXPECT_NE(errorOf(parse(p)).find("$top"), std::string::npos) << bad;
  }
}

TEST(GraphODataTest, SkipOver500IsAnError) {
  GraphQueryParams p;
  p.skip = "500";
  auto q = parse(p);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->skip, 500u);
  p.skip = "501";
  const std::string message = errorOf(parse(p));
  EXPECT_NE(message.find("500"), std::string::npos) << message;
  EXPECT_NE(message.find("@odata.nextLink"), std::string::npos) << message;
  p.skip = "-3";
  EXPECT_FALSE(parse(p));
}

TEST(GraphODataTest, OrderByAndCount) {
  GraphQueryParams p;
  p.orderby = "createdDateTime desc";
  p.count = "true";
  auto q = parse(p);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->order_by, TimeField::kAlertCreationTime);
  EXPECT_TRUE(q->descending);
  EXPECT_TRUE(q->count);
  p.orderby = "lastUpdateDateTime";
  p.count = "false";
  q = parse(p);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->order_by, TimeField::kLastUpdateTime);
  EXPECT_FALSE(q->descending);
  EXPECT_FALSE(q->count);
  p.orderby = "lastUpdateDateTime asc";
  EXPECT_TRUE(parse(p));
  for (const char* bad :
       {"lastUpdateDateTime up", "status", "lastUpdateDateTime,createdDateTime", "colour", ""}) {
    GraphQueryParams b;
    b.orderby = bad;
    EXPECT_FALSE(parse(b)) << bad;
  }
  GraphQueryParams c;
  c.count = "yes";
  EXPECT_NE(errorOf(parse(c)).find("$count"), std::string::npos);
}

TEST(GraphODataTest, SkipTokenCarriesTheQueryOpaquely) {
  GraphQueryParams p;
  p.filter =
      "lastUpdateDateTime ge 2026-11-27T00:00:00Z and (serviceSource eq "
      "'microsoftDefenderForEndpoint' or serviceSource eq 'microsoft365Defender')";
  p.orderby = "lastUpdateDateTime asc";
  p.top = "250";
  p.count = "true";
  auto q = parse(p);
  ASSERT_TRUE(q);
  const std::string token = makeGraphSkipToken(*q, 750, kKey);
  // URL-safe, and nothing in it a client could read or edit.
  for (char c : token) {
    EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_')
        << token;
  }
  EXPECT_EQ(token.find("lastUpdate"), std::string::npos);
  EXPECT_EQ(token.find("750"), std::string::npos);
  EXPECT_NE(token, makeGraphSkipToken(*q, 1000, kKey));

  GraphQueryParams next;
  next.skiptoken = token;
  auto n = parse(next);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->skip, 750u);  // past the $skip limit: only a token gets there
  EXPECT_EQ(n->top, 250u);
  EXPECT_TRUE(n->count);
  EXPECT_EQ(n->order_by, TimeField::kLastUpdateTime);
  EXPECT_EQ(n->filter_text, p.filter);
  EXPECT_EQ(n->orderby_text, p.orderby);
  EXPECT_EQ(n->filter.nodes.size(), q->filter.nodes.size());
  EXPECT_TRUE(matchesGraphFilter(n->filter, fields("2026-11-27T01:00:00Z")));
  EXPECT_FALSE(matchesGraphFilter(n->filter, fields("2026-11-26T01:00:00Z")));

  // A query without options round-trips too.
  auto bare = parse({});
  ASSERT_TRUE(bare);
  GraphQueryParams bare_next;
  bare_next.skiptoken = makeGraphSkipToken(*bare, 1000, kKey);
  auto b = parse(bare_next);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->skip, 1000u);
  EXPECT_EQ(b->top, 1000u);
  EXPECT_FALSE(b->filter_text);
}

TEST(GraphODataTest, ForgedOrCombinedSkipTokensAreErrors) {
  auto q = parse({});
  ASSERT_TRUE(q);
  const std::string token = makeGraphSkipToken(*q, 1000, kKey);
  // Every single-character change is caught.
  for (std::size_t i = 0; i < token.size(); ++i) {
    std::string forged = token;
    forged[i] = forged[i] == 'A' ? 'B' : 'A';
    GraphQueryParams p;
    p.skiptoken = forged;
    EXPECT_NE(errorOf(parse(p)).find("$skiptoken"), std::string::npos) << i;
  }
  for (const char* bad : {"", "abc", "not a token!", "AAAAAAAAAAAAAAAA"}) {
    GraphQueryParams p;
    p.skiptoken = bad;
    EXPECT_FALSE(parse(p)) << bad;
  }
  // Another key (another emulator) did not make it.
  GraphQueryParams other;
  other.skiptoken = token;
  EXPECT_FALSE(parseGraphQuery(other, kKey + 1));
  // A token is followed as it is: no other option beside it.
  GraphQueryParams combined;
  combined.skiptoken = token;
  combined.top = "5";
  EXPECT_NE(errorOf(parse(combined)).find("cannot be combined"), std::string::npos);
}

TEST(GraphODataTest, ErrorBody) {
  const std::string body =
      formatGraphError("BadRequest", "Invalid \"filter\"\n", "2026-11-27T12:34:56", "r-1", "c-2");
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  ASSERT_EQ(parser.parse(body).get(e), simdjson::SUCCESS) << body;
  std::string_view s;
  ASSERT_EQ(e.at_pointer("/error/code").get(s), simdjson::SUCCESS);
  EXPECT_EQ(s, "BadRequest");
  ASSERT_EQ(e.at_pointer("/error/message").get(s), simdjson::SUCCESS);
  EXPECT_EQ(s, "Invalid \"filter\"\n");
  ASSERT_EQ(e.at_pointer("/error/innerError/date").get(s), simdjson::SUCCESS);
  EXPECT_EQ(s, "2026-11-27T12:34:56");
  ASSERT_EQ(e.at_pointer("/error/innerError/request-id").get(s), simdjson::SUCCESS);
  EXPECT_EQ(s, "r-1");
  ASSERT_EQ(e.at_pointer("/error/innerError/client-request-id").get(s), simdjson::SUCCESS);
  EXPECT_EQ(s, "c-2");
}

}  // namespace
}  // namespace mdec::emulator
