// The Defender API's retirement (source/mde_retirement.h): the date, the warning each `mde`
// source gets, and the hint a refusal gets after the date.
#include "mdecollect/source/mde_retirement.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace mdec::source {
namespace {

using std::chrono::February;
using std::chrono::sys_days;
using std::chrono::year;

const auto kLastDay = sys_days{year{2027} / February / 1};
const auto kDayAfter = sys_days{year{2027} / February / 2};

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(MdeRetirementTest, TheApiIsGoneFromTheDayAfterItsLastDay) {
  EXPECT_EQ(kMdeRetirementDate, "2027-02-01");
  EXPECT_FALSE(mdeApiRetired(kLastDay));
  EXPECT_FALSE(mdeApiRetired(kLastDay + std::chrono::seconds(86'399)));
  EXPECT_TRUE(mdeApiRetired(kDayAfter));
}

TEST(MdeRetirementTest, TheWarningIsOneLineWithTheSourceTheDateAndTheSwitch) {
  const std::string w = mdeRetirementWarning("contoso", kLastDay);
  EXPECT_EQ(w,
            "source contoso: type: mde is the legacy Defender for Endpoint API (/api/alerts), "
            "which Microsoft turns off after 2027-02-01: change `type: mde` to `type: graph` "
            "and keep `name: contoso` (its watermark and seen-set carry over); the app "
            "registration needs the Microsoft Graph application permission "
            "SecurityAlert.Read.All, admin-consented");
  EXPECT_FALSE(has(w, "\n"));
  EXPECT_TRUE(has(mdeRetirementWarning("contoso", kDayAfter), "which Microsoft turned off after"));
}

TEST(MdeRetirementTest, OneWarningForEachMdeSourceInConfigOrder) {
  config::Config c;
  for (const auto& [name, type] :
       {std::pair{"a", config::SourceType::kMde}, std::pair{"g", config::SourceType::kGraph},
        std::pair{"f", config::SourceType::kFile}, std::pair{"b", config::SourceType::kMde}}) {
    config::SourceConfig s;
    s.name = name;
    s.type = type;
    c.sources.push_back(s);
  }
  const auto warnings = mdeRetirementWarnings(c, kLastDay);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].rfind("source a: ", 0), 0u);
  EXPECT_EQ(warnings[1].rfind("source b: ", 0), 0u);
  c.sources.erase(c.sources.begin());
  c.sources.pop_back();
  EXPECT_TRUE(mdeRetirementWarnings(c, kLastDay).empty());
}

TEST(MdeRetirementTest, AfterTheDateARefusalGetsTheSwitch) {
  for (int status : {401, 403, 404, 410}) {
    EXPECT_FALSE(mdeRetiredRefusalHint("x", status, kLastDay)) << status;
    const auto hint = mdeRetiredRefusalHint("x", status, kDayAfter);
    ASSERT_TRUE(hint) << status;
    EXPECT_TRUE(has(*hint, "turned the Defender for Endpoint API off after 2027-02-01"));
    EXPECT_TRUE(has(*hint, "change `type: mde` to `type: graph` and keep `name: x`"));
  }
  for (int status : {400, 429, 500, 503}) {
    EXPECT_FALSE(mdeRetiredRefusalHint("x", status, kDayAfter)) << status;
  }
  EXPECT_FALSE(mdeRetiredRefusalHint("x", std::nullopt, kDayAfter));
}

}  // namespace
}  // namespace mdec::source
