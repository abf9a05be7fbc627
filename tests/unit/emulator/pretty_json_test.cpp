// The pretty_json fault's printer (prettyJson) and the throttle_retry_after text check: pure
// functions, no server.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <string_view>

#include "mdecollect/emulator/alert_generator.h"
#include "mdecollect/emulator/graph_json.h"
#include "mdecollect/emulator/graph_odata.h"
#include "mdecollect/emulator/server.h"
#include "mdecollect/emulator/world.h"
#include "support/world_options.h"

namespace mdec::emulator {
namespace {

// `json` without whitespace outside strings (simdjson's minifier).
std::string minified(std::string_view json) {
  std::string out(json.size() + simdjson::SIMDJSON_PADDING, '\0');
  std::size_t length = 0;
  EXPECT_EQ(simdjson::minify(json.data(), json.size(), out.data(), length), simdjson::SUCCESS);
  out.resize(length);
  return out;
}

bool parses(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  return parser.parse(simdjson::padded_string(json)).get(root) == simdjson::SUCCESS;
}

TEST(PrettyJson, IndentsTwoSpacesAndSpacesAfterColons) {
  EXPECT_EQ(prettyJson(R"({"a":1,"b":[true,null],"c":{"d":"e"}})"),
            "{\n"
            "  \"a\": 1,\n"
            "  \"b\": [\n"
            "    true,\n"
            "    null\n"
            "  ],\n"
            "  \"c\": {\n"
            "    \"d\": \"e\"\n"
            "  }\n"
            "}");
}

TEST(PrettyJson, EmptyContainersStayOnOneLine) {
  EXPECT_EQ(prettyJson(R"({"value":[],"o":{}})"), "{\n  \"value\": [],\n  \"o\": {}\n}");
  EXPECT_EQ(prettyJson("[]"), "[]");
  EXPECT_EQ(prettyJson("{ }"), "{}");
}

TEST(PrettyJson, StringsAreLeftAsTheyAre) {
  const std::string json =
      R"({"k:,{}[]":"v: a, {b} [c] \"q\" \\","u":"\u00e9 \ud83d\ude00","s":" x "})";
  const std::string pretty = prettyJson(json);
  EXPECT_NE(pretty.find(R"("k:,{}[]": "v: a, {b} [c] \"q\" \\")"), std::string::npos) << pretty;
  EXPECT_NE(pretty.find(R"("s": " x ")"), std::string::npos) << pretty;
  EXPECT_EQ(minified(pretty), json);
}

TEST(PrettyJson, AlertPagesKeepTheirContent) {
  World world(mdec::testing::staticOptions(40));
  world.advanceTo(world.now() + std::chrono::minutes(5));
  AlertQuery q;
  q.expand_evidence = true;
  const std::string defender =
      R"({"@odata.context":"http://127.0.0.1:1/api/$metadata#Alerts","value":)" +
      world.query(q, OrderMode::kHonour).value_json + "}";
  const std::string graph =
      R"({"@odata.context":"x","@odata.nextLink":"http://127.0.0.2:9/a?$skiptoken=b","value":)" +
      world.queryGraph(GraphQuery{}, OrderMode::kHonour, true).value_json + "}";
  for (const std::string& page : {defender, graph}) {
    const std::string pretty = prettyJson(page);
    EXPECT_TRUE(parses(pretty));
    EXPECT_EQ(minified(pretty), page);
    EXPECT_EQ(prettyJson(pretty), pretty) << "printing twice changes nothing";
    EXPECT_NE(pretty.find("\"id\": \""), std::string::npos);
    EXPECT_EQ(pretty.find("\"id\":\""), std::string::npos);
    EXPECT_GT(pretty.size(), page.size());
  }
}

TEST(RetryAfterText, PrintableAsciiWithoutOuterSpaces) {
  for (const char* ok :
       {"", "1", "99999999999999999999", "-5", "soon", "1.5", "Fri, 31 Dec 9999 23:59:59 GMT"}) {
    EXPECT_TRUE(isRetryAfterText(ok)) << ok;
  }
  for (const char* bad : {" 5", "5 ", "5\r\nX-Injected: 1", "a\tb", "\x7f", "\xc3\xa9"}) {
    EXPECT_FALSE(isRetryAfterText(bad)) << bad;
  }
  EXPECT_TRUE(isRetryAfterText(std::string(200, '9')));
  EXPECT_FALSE(isRetryAfterText(std::string(201, '9')));
}

}  // namespace
}  // namespace mdec::emulator
