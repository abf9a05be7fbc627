#include "mdecollect/core/units.h"

#include <gtest/gtest.h>

namespace mdec::core {
namespace {

using std::chrono::milliseconds;

TEST(Units, Durations) {
  EXPECT_EQ(*parseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*parseDuration("30s"), milliseconds(30'000));
  EXPECT_EQ(*parseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(*parseDuration("24h"), milliseconds(86'400'000));
  EXPECT_EQ(*parseDuration("2d"), milliseconds(172'800'000));
  EXPECT_EQ(*parseDuration("0s"), milliseconds(0));
}

TEST(Units, BadDurationsSayWhy) {
  for (const char* bad : {"", "5", "m", "-5s", "5 minutes", "1.5h", "99999999999999999999s"}) {
    auto r = parseDuration(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
  }
}

TEST(Units, Sizes) {
  EXPECT_EQ(*parseSize("512"), 512u);
  EXPECT_EQ(*parseSize("5MiB"), 5u << 20);
  EXPECT_EQ(*parseSize("100KiB"), 100u << 10);
  EXPECT_EQ(*parseSize("1GB"), 1'000'000'000u);
  EXPECT_EQ(*parseSize("2 KB"), 2000u);
  EXPECT_FALSE(parseSize("5mb"));
  EXPECT_FALSE(parseSize("MiB"));
  EXPECT_FALSE(parseSize("-1"));
}

TEST(Units, FormatDurationPicksTheLargestUnit) {
  EXPECT_EQ(formatDuration(milliseconds(300'000)), "5m");
  EXPECT_EQ(formatDuration(milliseconds(90'000)), "90s");
  EXPECT_EQ(formatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(formatDuration(milliseconds(86'400'000)), "1d");
  EXPECT_EQ(formatDuration(milliseconds(0)), "0s");
}

}  // namespace
}  // namespace mdec::core
