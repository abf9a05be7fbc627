#include "mdecollect/core/iso8601.h"

#include <gtest/gtest.h>
#include <time.h>

#include <ctime>

namespace mdec::core {
namespace {

TEST(Iso8601, ParsesTheApiFormatWithSevenFractionDigits) {
  auto t = parseIsoDateTime("2021-01-26T20:33:57.7220239Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->seconds, 1611693237);
  EXPECT_EQ(t->nanos, 722023900);
}

TEST(Iso8601, AcceptsEveryShapeOfStrictDateOptionalTime) {
  for (const char* ok :
       {"2025", "2025-11", "2025-11-03", "2025-11-03T14", "2025-11-03T14:07", "2025-11-03T14:07:14",
        "2025-11-03T14:07:14Z", "2025-11-03T14:07:14.1Z", "2025-11-03T14:07:14.123456789Z",
        "2025-11-03T14:07:14+02:00", "2025-11-03T14:07:14-0530", "2025-11-03T14:07:14+02",
        "2024-02-29T00:00:00Z", "2000-02-29"}) {
    EXPECT_TRUE(parseIsoDateTime(ok)) << ok;
  }
}

TEST(Iso8601, RejectsWhatIsNotADateTime) {
  for (const char* bad : {"", "yesterday", "2025-11-03 14:07:14", "2025-13-01", "2025-00-10",
                          "2025-02-29", "1900-02-29", "2025-04-31", "2025-11-03T24:00:00Z",
                          "2025-11-03T14:60:00Z", "2025-11-03T14:07:60Z", "2025-11-03T14:07:14.Z",
                          "2025-11-03T14:07:14.1234567890Z", "2025-11-03T14:07:14Zjunk", "25-11-03",
                          "2025-1-03", "2025-11-03T14:07:14+2", "1611693237", "2025-11-03T"}) {
    EXPECT_FALSE(parseIsoDateTime(bad)) << bad;
  }
}

TEST(Iso8601, OffsetsMoveTheInstant) {
  auto utc = parseIsoDateTime("2025-11-03T12:00:00Z");
  auto plus2 = parseIsoDateTime("2025-11-03T14:00:00+02:00");
  auto minus = parseIsoDateTime("2025-11-03T06:30:00-0530");
  ASSERT_TRUE(utc && plus2 && minus);
  EXPECT_EQ(*utc, *plus2);
  EXPECT_EQ(*utc, *minus);
}

TEST(Iso8601, NanosBetweenIsSignedAndExact) {
  auto a = parseIsoDateTime("2021-01-26T20:31:32.9562661Z");
  auto b = parseIsoDateTime("2021-01-26T20:31:33.0577322Z");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(nanosBetween(*a, *b), 101466100);
  EXPECT_EQ(nanosBetween(*b, *a), -101466100);
  EXPECT_EQ(nanosBetween(*a, *a), 0);
}

TEST(Iso8601, NanosBetweenReportsOverflow) {
  auto a = parseIsoDateTime("0001-01-01T00:00:00Z");
  auto b = parseIsoDateTime("9999-12-31T23:59:59Z");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(nanosBetween(*a, *b));
}

TEST(Iso8601, FormatsRfc3339Utc) {
  EXPECT_EQ(formatRfc3339(Instant{1611693237, 722023900}, 3), "2021-01-26T20:33:57.722Z");
  EXPECT_EQ(formatRfc3339(Instant{1611693237, 722023900}, 7), "2021-01-26T20:33:57.7220239Z");
  EXPECT_EQ(formatRfc3339(Instant{0, 0}, 0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(formatRfc3339(Instant{-1, 0}, 0), "1969-12-31T23:59:59Z");
}

TEST(Iso8601, FormatAndParseRoundTrip) {
  for (std::int64_t s : {0LL, 951782400LL, 1709164800LL, 4102444799LL, -86400LL}) {
    const Instant in{s, 123000000};
    auto back = parseIsoDateTime(formatRfc3339(in, 3));
    ASSERT_TRUE(back) << s;
    EXPECT_EQ(*back, in);
  }
}

TEST(Iso8601, FormatsTheDateAlone) {
  const Instant t{1611693237, 722023900};  // 2021-01-26T20:33:57Z
  EXPECT_EQ(formatDate(t), "2021-01-26");
  EXPECT_EQ(formatDate(t, ""), "20210126");
  EXPECT_EQ(formatDate(t, "."), "2021.01.26");
  EXPECT_EQ(formatDate(Instant{-1, 0}, ""), "19691231");
}

TEST(Iso8601, FormatsHttpDates) {
  EXPECT_EQ(formatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's example
  EXPECT_EQ(formatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(formatHttpDate(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
  EXPECT_EQ(formatHttpDate(253402300799), "Fri, 31 Dec 9999 23:59:59 GMT");
  // The same text as strftime in the C locale, over every weekday and month.
  for (std::int64_t s = 951'782'400; s < 951'782'400 + 400LL * 86400; s += 86400 + 3607) {
    const auto secs = static_cast<std::time_t>(s);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    EXPECT_EQ(formatHttpDate(s), std::string(buf, n)) << s;
  }
}

}  // namespace
}  // namespace mdec::core
