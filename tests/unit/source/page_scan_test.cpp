// PageScanner (source/page_scan.h): a page of alerts read as a JSON parser reads it —
// compact or pretty-printed, any key order, escapes — with each alert's exact text span,
// its top-level id and time (not those of nested objects), @odata.nextLink at the page's
// top level only, and kParse for bodies that are not pages.
#include "mdecollect/source/page_scan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mdecollect/ecs/mapper.h"

namespace mdec::source {
namespace {

constexpr std::int64_t kT = 1767323045;  // 2026-01-02T03:04:05Z

// The body as the HTTP client hands it over: the page, then kLinePadding readable bytes.
struct Padded {
  explicit Padded(std::string text) : size(text.size()), bytes(std::move(text)) {
    bytes.append(ecs::kLinePadding, '\0');
  }
  std::size_t size;
  std::string bytes;
  std::string_view text() const { return std::string_view(bytes).substr(0, size); }
};

Result<ScannedPage> scan(PageScanner& scanner, const Padded& body, bool next_link = true) {
  return scanner.scan(body.bytes, body.size, next_link);
}

ScannedPage scanOk(PageScanner& scanner, const Padded& body, bool next_link = true) {
  auto r = scan(scanner, body, next_link);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message()) << "\nbody: " << body.text();
  return r ? std::move(*r) : ScannedPage{};
}

std::string spanOf(const Padded& body, const AlertRef& ref) {
  EXPECT_LE(ref.begin, ref.end);
  EXPECT_LE(ref.end, body.size);
  return std::string(body.text().substr(ref.begin, ref.end - ref.begin));
}

core::Instant at(std::int64_t seconds, std::int32_t nanos = 0) {
  return core::Instant{seconds, nanos};
}

const std::string kAlertA =
    R"({"id":"da1","severity":"High","lastUpdateTime":"2026-01-02T03:04:05.5Z","evidence":[]})";
const std::string kAlertB = R"({"id":"da2","lastUpdateTime":"2026-01-02T03:04:06Z"})";

}  // namespace

TEST(PageScanTest, CompactPage) {
  PageScanner scanner("lastUpdateTime");
  const Padded body(R"({"@odata.context":"https://api.test/api/$metadata#Alerts","value":[)" +
                    kAlertA + "," + kAlertB + "]}");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 2u);
  EXPECT_EQ(page.alerts[0].id, "da1");
  EXPECT_EQ(page.alerts[0].time, at(kT, 500'000'000));
  EXPECT_TRUE(page.alerts[0].identified());
  EXPECT_EQ(page.alerts[1].id, "da2");
  EXPECT_EQ(page.alerts[1].time, at(kT + 1));
  EXPECT_EQ(spanOf(body, page.alerts[0]), kAlertA);
  EXPECT_EQ(spanOf(body, page.alerts[1]), kAlertB);
  EXPECT_EQ(page.next_link, "");
}

TEST(PageScanTest, PrettyPrintedPageGivesTheSameIdentities) {
  PageScanner scanner("lastUpdateTime");
  const std::string a =
      "{\n\t\t\"id\" :  \"da1\",\n\t\t\"severity\": \"High\",\r\n"
      "\t\t\"lastUpdateTime\"\t:\t\"2026-01-02T03:04:05.5Z\",\n"
      "\t\t\"evidence\": [ ]\n\t}";
  const std::string b = "{ \"id\": \"da2\", \"lastUpdateTime\": \"2026-01-02T03:04:06Z\" }";
  const Padded pretty("{\n  \"@odata.context\" : \"x\",\n  \"value\" : [\n\t" + a + " ,\n\t" + b +
                      "\n  ]\n}\n");
  const Padded compact(R"({"@odata.context":"x","value":[)" + kAlertA + "," + kAlertB + "]}");
  const ScannedPage p = scanOk(scanner, pretty);
  const ScannedPage c = scanOk(scanner, compact);
  ASSERT_EQ(p.alerts.size(), 2u);
  ASSERT_EQ(c.alerts.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(p.alerts[i].id, c.alerts[i].id);
    EXPECT_EQ(p.alerts[i].time, c.alerts[i].time);
    EXPECT_TRUE(p.alerts[i].identified());
  }
  // Each span is exactly the alert's text, white space around it excluded.
  EXPECT_EQ(spanOf(pretty, p.alerts[0]), a);
  EXPECT_EQ(spanOf(pretty, p.alerts[1]), b);
}

TEST(PageScanTest, KeyOrderDoesNotMatter) {
  PageScanner scanner("lastUpdateTime");
  const Padded body(
      R"({"value":[{"lastUpdateTime":"2026-01-02T03:04:05Z","title":"t","id":"late-id"}]})");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 1u);
  EXPECT_EQ(page.alerts[0].id, "late-id");
  EXPECT_EQ(page.alerts[0].time, at(kT));
}

TEST(PageScanTest, EscapedIdsAreUnescaped) {
  PageScanner scanner("lastUpdateTime");
  const Padded body(
      R"({"value":[)"
      R"({"id":"a\"b\\c","lastUpdateTime":"2026-01-02T03:04:05Z"},)"
      R"({"id":"a\"b\\u00e9","lastUpdateTime":"2026-01-02T03:04:05Z"},)"
      R"({"id":"\u00e9t\u00e9\/\ud83d\ude00","lastUpdateTime":"2026-01-02T03:04:05Z"},)"
      R"({"\u0069\u0064":"escaped-key","lastUpdateTime":"2026-01-02T03:04:05Z"}]})");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 4u);
  EXPECT_EQ(page.alerts[0].id, "a\"b\\c");
  EXPECT_EQ(page.alerts[1].id, "a\"b\\u00e9");  // "\\" is a backslash; "u00e9" stays text
  EXPECT_EQ(page.alerts[2].id, "\xc3\xa9t\xc3\xa9/\xf0\x9f\x98\x80");
  EXPECT_EQ(page.alerts[3].id, "escaped-key");  // "\u0069\u0064" is the key "id"
}

TEST(PageScanTest, AlertsWithoutIdentityAreStillLocated) {
  PageScanner scanner("lastUpdateTime");
  const std::vector<std::string> alerts = {
      R"({"title":"no id","lastUpdateTime":"2026-01-02T03:04:05Z"})",
      R"({"id":"null-time","lastUpdateTime":null})",
      R"({"id":"bad-time","lastUpdateTime":"2026-02-30T00:00:00Z"})",
      R"({"id":"junk-time","lastUpdateTime":"yesterday"})",
      R"({"id":"number-time","lastUpdateTime":1767323045})",
      R"({"id":"no-time"})",
      R"({"id":42,"lastUpdateTime":"2026-01-02T03:04:05Z"})",
      R"({"id":null,"lastUpdateTime":"2026-01-02T03:04:05Z"})",
      R"({"id":"","lastUpdateTime":"2026-01-02T03:04:05Z"})",
      R"({})",
      R"("a string")",
      R"([1,2])",
      R"(null)",
      R"({"id":"fine","lastUpdateTime":"2026-01-02T03:04:05Z"})",
  };
  std::string text = R"({"value":[)";
  for (std::size_t i = 0; i < alerts.size(); ++i) text += (i ? ", " : "") + alerts[i];
  const Padded body(text + "]}");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), alerts.size());
  for (std::size_t i = 0; i < alerts.size(); ++i) {
    EXPECT_EQ(spanOf(body, page.alerts[i]), alerts[i]);
    EXPECT_EQ(page.alerts[i].identified(), i + 1 == alerts.size()) << alerts[i];
  }
  EXPECT_EQ(page.alerts[0].id, "");
  EXPECT_EQ(page.alerts[0].time, at(kT));
  EXPECT_EQ(page.alerts[1].id, "null-time");
  EXPECT_FALSE(page.alerts[1].time.has_value());
  EXPECT_EQ(page.alerts[2].id, "bad-time");
  EXPECT_FALSE(page.alerts[2].time.has_value());
  EXPECT_FALSE(page.alerts[3].time.has_value());
  EXPECT_FALSE(page.alerts[4].time.has_value());
  EXPECT_EQ(page.alerts[6].id, "");
  EXPECT_EQ(page.alerts[6].time, at(kT));
  EXPECT_EQ(page.alerts[7].id, "");
}

TEST(PageScanTest, NestedIdsAndTimesAreNotTheAlerts) {
  PageScanner scanner("lastUpdateTime");
  const std::string with_id =
      R"({"evidence":[{"id":"evidence-1","lastUpdateTime":"2020-01-01T00:00:00Z"}],)"
      R"("relatedUser":{"id":"user-1"},"comments":[{"id":"c","lastUpdateTime":"2021-01-01T00:00:00Z"}],)"
      R"("id":"the-alert","lastUpdateTime":"2026-01-02T03:04:05Z"})";
  const std::string without_id =
      R"({"evidence":[{"id":"evidence-2","lastUpdateTime":"2020-01-01T00:00:00Z"}],)"
      R"("details":{"id":"x","value":[{"id":"y"}],"@odata.nextLink":"no"}})";
  const Padded body(R"({"value":[)" + with_id + "," + without_id + "]}");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 2u);
  EXPECT_EQ(page.alerts[0].id, "the-alert");
  EXPECT_EQ(page.alerts[0].time, at(kT));
  EXPECT_EQ(page.alerts[1].id, "");
  EXPECT_FALSE(page.alerts[1].time.has_value());
  EXPECT_EQ(spanOf(body, page.alerts[0]), with_id);
  EXPECT_EQ(spanOf(body, page.alerts[1]), without_id);
  EXPECT_EQ(page.next_link, "");
}

TEST(PageScanTest, TheFirstOfDuplicateKeysWins) {
  PageScanner scanner("lastUpdateTime");
  const Padded body(R"({"value":[{"id":"first","lastUpdateTime":"2026-01-02T03:04:05Z",)"
                    R"("id":"second","lastUpdateTime":"2030-01-01T00:00:00Z"}]})");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 1u);
  EXPECT_EQ(page.alerts[0].id, "first");
  EXPECT_EQ(page.alerts[0].time, at(kT));
  // The duplicates before the other key, and the first not a string.
  const Padded dup(
      R"({"value":[{"id":"first","id":"second","lastUpdateTime":"2026-01-02T03:04:05Z"},)"
      R"({"lastUpdateTime":"2026-01-02T03:04:05Z","lastUpdateTime":"2030-01-01T00:00:00Z","id":"b"},)"
      R"({"id":7,"id":"second","lastUpdateTime":"2026-01-02T03:04:05Z"}]})");
  const ScannedPage d = scanOk(scanner, dup);
  ASSERT_EQ(d.alerts.size(), 3u);
  EXPECT_EQ(d.alerts[0].id, "first");
  EXPECT_EQ(d.alerts[1].time, at(kT));
  EXPECT_EQ(d.alerts[2].id, "");
}

// An id longer than kMaxIdBytes is no identity: the alert is located but not identified
// (nothing keys state by it or asks for it by URL).
TEST(PageScanTest, AnIdLongerThanTheBoundIsNoIdentity) {
  PageScanner scanner("lastUpdateDateTime");
  const std::string at_bound(kMaxIdBytes, '7');
  const std::string over(kMaxIdBytes + 1, '7');
  Padded body(R"({"value":[{"id":")" + at_bound +
              R"(","lastUpdateDateTime":"2026-01-02T03:04:05Z"},{"id":")" + over +
              R"(","lastUpdateDateTime":"2026-01-02T03:04:05Z"}]})");
  const auto page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 2u);
  EXPECT_EQ(page.alerts[0].id, at_bound);
  EXPECT_TRUE(page.alerts[0].identified());
  EXPECT_EQ(page.alerts[1].id, "");
  EXPECT_FALSE(page.alerts[1].identified());
  EXPECT_EQ(spanOf(body, page.alerts[1]),
            R"({"id":")" + over + R"(","lastUpdateDateTime":"2026-01-02T03:04:05Z"})");
}

// One object alone (a single incident's response): read as a page element is, and refused
// unless it is one whole object — trailing bytes, a page, an array or no JSON at all.
TEST(PageScanTest, ASingleObjectIsReadWholeOrRefused) {
  PageScanner scanner("lastUpdateDateTime");
  Padded good(
      "\n  {\"@odata.context\":\"x\", \"id\": \"12\", "
      "\"lastUpdateDateTime\": \"2026-01-02T03:04:05Z\"}\n");
  auto ref = scanner.scanObject(good.bytes, good.size);
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(ref->id, "12");
  ASSERT_TRUE(ref->time.has_value());
  EXPECT_EQ(ref->time->seconds, kT);
  EXPECT_EQ(spanOf(good, *ref).front(), '{');
  EXPECT_EQ(spanOf(good, *ref).back(), '}');
  for (const char* bad : {R"({"id":"12","lastUpdateDateTime":"2026-01-02T03:04:05Z"} junk)",
                          R"({"id":"12")", R"({"value":[]})", R"([{"id":"12"}])", "null", ""}) {
    Padded body(bad);
    auto r = scanner.scanObject(body.bytes, body.size);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::kParse) << bad;
    }
  }
}

TEST(PageScanTest, NextLinkIsUnescaped) {
  PageScanner scanner("lastUpdateDateTime");
  const Padded body(
      R"({"@odata.context":"x","value":[],)"
      R"("@odata.nextLink":"https:\/\/graph.microsoft.com\/v1.0\/security\/alerts_v2?$top=2&$skiptoken=a%2Fb\u0026c"})");
  const ScannedPage page = scanOk(scanner, body);
  EXPECT_TRUE(page.alerts.empty());
  EXPECT_EQ(page.next_link,
            "https://graph.microsoft.com/v1.0/security/alerts_v2?$top=2&$skiptoken=a%2Fb&c");
}

TEST(PageScanTest, NextLinkBeforeTheValueArray) {
  PageScanner scanner("lastUpdateTime");
  const Padded body(R"({ "@odata.nextLink" : "https://api.test/next" , "value" : [ )" + kAlertB +
                    " ] }");
  const ScannedPage page = scanOk(scanner, body);
  EXPECT_EQ(page.next_link, "https://api.test/next");
  ASSERT_EQ(page.alerts.size(), 1u);
  EXPECT_EQ(page.alerts[0].id, "da2");
}

TEST(PageScanTest, NextLinkAbsentOrNotAStringIsEmpty) {
  PageScanner scanner("lastUpdateTime");
  for (const std::string& text :
       {std::string(R"({"value":[]})"), std::string(R"({"value":[],"@odata.nextLink":3})"),
        std::string(R"({"value":[],"@odata.nextLink":null})"),
        std::string(R"({"value":[],"@odata.nextLink":{"href":"https://x"}})"),
        std::string(R"({"value":[],"@odata.nextLink":["https://x"]})"),
        std::string(R"({"value":[],"@odata.NEXTLINK":"https://x"})")}) {
    const ScannedPage page = scanOk(scanner, Padded(text));
    EXPECT_EQ(page.next_link, "") << text;
  }
}

TEST(PageScanTest, NextLinkOnlyWhenAskedFor) {
  PageScanner scanner("lastUpdateTime");
  const Padded body(R"({"value":[],"@odata.nextLink":"https://api.test/next"})");
  EXPECT_EQ(scanOk(scanner, body, false).next_link, "");
  EXPECT_EQ(scanOk(scanner, body, true).next_link, "https://api.test/next");
}

TEST(PageScanTest, NextLinkInsideAnAlertIsNotThePages) {
  PageScanner scanner("lastUpdateTime");
  const std::string alert =
      R"({"id":"da1","lastUpdateTime":"2026-01-02T03:04:05Z","@odata.nextLink":"https://evil.test/"})";
  const Padded body(R"({"value":[)" + alert + "]}");
  const ScannedPage page = scanOk(scanner, body);
  EXPECT_EQ(page.next_link, "");
  ASSERT_EQ(page.alerts.size(), 1u);
  EXPECT_EQ(page.alerts[0].id, "da1");
  EXPECT_EQ(spanOf(body, page.alerts[0]), alert);
  // Nor in a nested object of the page.
  EXPECT_EQ(
      scanOk(scanner, Padded(R"({"meta":{"@odata.nextLink":"https://evil.test/"},"value":[]})"))
          .next_link,
      "");
}

TEST(PageScanTest, BodiesThatAreNotPagesAreParseErrors) {
  PageScanner scanner("lastUpdateTime");
  for (const std::string& text :
       {std::string("not json"), std::string(R"({"value": 3})"), std::string(R"({"value":{}})"),
        std::string("[]"), std::string(""), std::string("  \n\t "), std::string("3"),
        std::string(R"("value")"), std::string(R"({"values":[]})"), std::string("{}"),
        std::string(R"({"value":[{"id":"a"})"), std::string(R"({"value":[{"id":"a"}]}})"),
        std::string("<html>502 Bad Gateway</html>")}) {
    auto r = scan(scanner, Padded(text));
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kParse) << text;
    EXPECT_NE(r.error().message().find("not a page of alerts"), std::string::npos)
        << r.error().message();
  }
}

TEST(PageScanTest, ABodyWithoutItsPaddingIsRefused) {
  PageScanner scanner("lastUpdateTime");
  const std::string text = R"({"value":[]})";
  auto r = scanner.scan(text, text.size(), true);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
}

TEST(PageScanTest, OnlyTheFirstSizeBytesAreThePage) {
  PageScanner scanner("lastUpdateTime");
  // Bytes after `size` (the padding) may hold anything, e.g. the rest of an earlier body.
  std::string bytes = R"({"value":[{"id":"a","lastUpdateTime":"2026-01-02T03:04:05Z"}]})";
  const std::size_t size = bytes.size();
  bytes += R"(,"@odata.nextLink":"https://stale.test/"})";
  bytes.append(ecs::kLinePadding, 'x');
  auto r = scanner.scan(bytes, size, true);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_EQ(r->alerts.size(), 1u);
  EXPECT_EQ(r->alerts[0].id, "a");
  EXPECT_EQ(r->next_link, "");
}

TEST(PageScanTest, GraphTimeKey) {
  const std::string alert =
      R"({"id":"daefa1828b","createdDateTime":"2020-01-01T00:00:00Z",)"
      R"("lastUpdateDateTime":"2026-01-02T03:04:05.1234567Z","lastUpdateTime":"2030-01-01T00:00:00Z"})";
  const Padded body(R"({"@odata.context":"x","value":[)" + alert + "]}");
  PageScanner graph("lastUpdateDateTime");
  const ScannedPage g = scanOk(graph, body);
  ASSERT_EQ(g.alerts.size(), 1u);
  EXPECT_EQ(g.alerts[0].id, "daefa1828b");
  EXPECT_EQ(g.alerts[0].time, at(kT, 123'456'700));
  // Each scanner reads its own key only.
  PageScanner mde("lastUpdateTime");
  EXPECT_EQ(scanOk(mde, body).alerts[0].time, at(1893456000));  // 2030-01-01
  const Padded graph_only(R"({"value":[{"id":"g","lastUpdateDateTime":"2026-01-02T03:04:05Z"}]})");
  EXPECT_FALSE(scanOk(mde, graph_only).alerts[0].time.has_value());
}

TEST(PageScanTest, FractionDigitsZeroToSeven) {
  PageScanner scanner("lastUpdateTime");
  const std::vector<std::pair<std::string, std::int32_t>> cases = {
      {"2026-01-02T03:04:05Z", 0},
      {"2026-01-02T03:04:05.1Z", 100'000'000},
      {"2026-01-02T03:04:05.13Z", 130'000'000},
      {"2026-01-02T03:04:05.123Z", 123'000'000},
      {"2026-01-02T03:04:05.1234Z", 123'400'000},
      {"2026-01-02T03:04:05.12345Z", 123'450'000},
      {"2026-01-02T03:04:05.123456Z", 123'456'000},
      {"2026-01-02T03:04:05.7220239Z", 722'023'900},
      {"2026-01-02T03:04:05.0000001Z", 100},
  };
  std::string text = R"({"value":[)";
  for (std::size_t i = 0; i < cases.size(); ++i) {
    text += (i ? "," : "") + std::string(R"({"id":"a)") + std::to_string(i) +
            R"(","lastUpdateTime":")" + cases[i].first + "\"}";
  }
  const ScannedPage page = scanOk(scanner, Padded(text + "]}"));
  ASSERT_EQ(page.alerts.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(page.alerts[i].time, at(kT, cases[i].second)) << cases[i].first;
  }
}

TEST(PageScanTest, AThousandAlerts) {
  PageScanner scanner("lastUpdateTime");
  std::vector<std::string> alerts;
  std::string text = R"({"@odata.context":"x","value":[)";
  for (int i = 0; i < 1000; ++i) {
    alerts.push_back(R"({"id":"da)" + std::to_string(i) + R"(","title":"alert )" +
                     std::to_string(i) + R"(","evidence":[{"id":"ev"}],"lastUpdateTime":")" +
                     "2026-01-02T03:04:05." + std::to_string(1000 + i).substr(1) + "Z\"}");
    text += (i ? (i % 2 ? ",\n " : ",") : "") + alerts.back();
  }
  const Padded body(text + R"(],"@odata.nextLink":"https://api.test/p2"})");
  const ScannedPage page = scanOk(scanner, body);
  ASSERT_EQ(page.alerts.size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    const auto k = static_cast<std::size_t>(i);
    ASSERT_EQ(page.alerts[k].id, "da" + std::to_string(i));
    ASSERT_EQ(page.alerts[k].time, at(kT, i * 1'000'000));
    ASSERT_EQ(spanOf(body, page.alerts[k]), alerts[k]);
  }
  EXPECT_EQ(page.next_link, "https://api.test/p2");
}

TEST(PageScanTest, TheScannerIsReusable) {
  PageScanner scanner("lastUpdateTime");
  const ScannedPage big = scanOk(
      scanner, Padded(R"({"value":[)" + kAlertA + "," + kAlertB + R"(],"@odata.nextLink":"n"})"));
  ASSERT_EQ(big.alerts.size(), 2u);
  const Padded small(R"({"value":[)" + kAlertB + "]}");
  const ScannedPage next = scanOk(scanner, small);
  ASSERT_EQ(next.alerts.size(), 1u);
  EXPECT_EQ(next.alerts[0].id, "da2");
  EXPECT_EQ(next.next_link, "");
  EXPECT_TRUE(scan(scanner, Padded("nope")).has_value() == false);
  EXPECT_EQ(scanOk(scanner, small).alerts.size(), 1u);  // and after an error
  EXPECT_EQ(big.alerts[0].id, "da1");                   // earlier results are the caller's
}

}  // namespace mdec::source
