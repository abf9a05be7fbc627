#include "ecs/line_scanner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mdec::ecs {
namespace {

using Kind = ScanResult::Kind;

ScanResult scan(std::string_view s) {
  ScanResult r;
  scanLine(s, r);
  return r;
}

std::vector<std::string> elements(std::string_view s) {
  ScanResult r = scan(s);
  EXPECT_EQ(r.kind, Kind::kPage) << s;
  std::vector<std::string> out;
  for (const auto& e : r.elements) out.emplace_back(s.substr(e.begin, e.size()));
  return out;
}

TEST(LineScanner, BlankLines) {
  EXPECT_EQ(scan("").kind, Kind::kBlank);
  EXPECT_EQ(scan("  \t\r").kind, Kind::kBlank);
}

TEST(LineScanner, FindsTheElementsOfAPage) {
  EXPECT_EQ(elements(R"({"@odata.context":"x","value":[{"a":1},{"b":[1,{"c":{}}]},{}]})"),
            (std::vector<std::string>{R"({"a":1})", R"({"b":[1,{"c":{}}]})", "{}"}));
}

TEST(LineScanner, PageElementsMayBeAnyValue) {
  EXPECT_EQ(elements(R"({"value":[ 1 , "s" ,null,[],[1,2] , true]})"),
            (std::vector<std::string>{"1", "\"s\"", "null", "[]", "[1,2]", "true"}));
}

TEST(LineScanner, EmptyPage) {
  EXPECT_TRUE(elements(R"({"value":[]})").empty());
  EXPECT_TRUE(elements(R"({"@odata.context":"x", "value" : [ ] })").empty());
}

TEST(LineScanner, OnlyTheTopLevelValueKeyMakesAPage) {
  EXPECT_EQ(scan(R"({"a":{"value":[1]}})").kind, Kind::kObject);
  EXPECT_EQ(scan(R"({"id":"x","evidence":[{"value":[]}]})").kind, Kind::kObject);
  EXPECT_EQ(scan(R"({"value":null})").kind, Kind::kBadPage);
  EXPECT_EQ(scan(R"({"value":{"a":[1]}})").kind, Kind::kBadPage);
}

TEST(LineScanner, StringsWithEscapesAndBrackets) {
  EXPECT_EQ(elements(R"({"value":["a\"]}", "\\", "\\\"{"]})"),
            (std::vector<std::string>{R"("a\"]}")", R"("\\")", R"("\\\"{")"}));
  EXPECT_EQ(scan(R"({"k":"x\\"} )").kind, Kind::kObject);
}

TEST(LineScanner, TrimsTheValue) {
  const std::string line = "  {\"a\":1}  ";
  ScanResult r = scan(line);
  ASSERT_EQ(r.kind, Kind::kObject);
  EXPECT_EQ(line.substr(r.value.begin, r.value.size()), "{\"a\":1}");
}

TEST(LineScanner, OtherValues) {
  EXPECT_EQ(scan("[1,2]").kind, Kind::kOther);
  EXPECT_EQ(scan("42").kind, Kind::kOther);
  EXPECT_EQ(scan("\"text\"").kind, Kind::kOther);
  EXPECT_EQ(scan("null").kind, Kind::kOther);
}

TEST(LineScanner, InvalidLinesSayWhyAndWhere) {
  struct Case {
    const char* line;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"id": "da1", "title": "truncated)", "unterminated string"},
           {R"({"value":[{"a":1},{"b":2})", "unexpected end of line"},
           {R"({"a":1}})", "unexpected text after the JSON value"},
           {R"({"a" 1})", "expected ':'"},
           {R"({"a":1,})", "expected a key"},
           {R"({"a":1 "b":2})", "expected ',' or '}'"},
           {R"([1 2])", "expected ',' or ']'"},
           {R"({"a":tru})", "invalid literal"},
           {R"({"a":-})", "invalid number"},
           {"{'a':1}", "expected a key"},
           {"hello", "unexpected character"},
           {"{\"a\":[1}", "expected ',' or ']'"},
       }) {
    ScanResult r = scan(c.line);
    EXPECT_EQ(r.kind, Kind::kInvalid) << c.line;
    EXPECT_EQ(r.message, c.why) << c.line;
  }
  EXPECT_EQ(scan(R"({"a":1}})").error_offset, 7u);
}

TEST(LineScanner, DeepNestingIsBoundedNotRecursive) {
  std::string deep(100000, '[');
  EXPECT_EQ(scan(deep).kind, Kind::kInvalid);
  EXPECT_EQ(scan(deep).message, "nesting too deep");
  std::string ok = std::string(500, '[') + std::string(500, ']');
  EXPECT_EQ(scan(ok).kind, Kind::kOther);
}

TEST(LineScanner, ReusedResultsAreReset) {
  ScanResult r;
  scanLine(R"({"value":[1,2,3]})", r);
  EXPECT_EQ(r.elements.size(), 3u);
  scanLine(R"({"a":1})", r);
  EXPECT_EQ(r.kind, Kind::kObject);
  EXPECT_TRUE(r.elements.empty());
}

}  // namespace
}  // namespace mdec::ecs
