#include "mdecollect/core/clock.h"

#include <gtest/gtest.h>

#include <stop_token>

namespace mdec::core {
namespace {

// Regression: sleepFor returned true even when a stop request ended the sleep, so loops
// that stop on `false` (retries, backoff, `backfill` following a job) went on after SIGTERM.
TEST(SystemClockTest, SleepForSaysFalseWhenStopped) {
  SystemClock clock;
  std::stop_source stop;
  stop.request_stop();
  const auto before = clock.steadyNow();
  EXPECT_FALSE(clock.sleepFor(std::chrono::hours(1), stop.get_token()));
  EXPECT_LT(clock.steadyNow() - before, std::chrono::minutes(1));  // did not sleep the hour
}

TEST(SystemClockTest, SleepForSaysTrueWhenItSleptTheWholeTime) {
  SystemClock clock;
  std::stop_source stop;
  EXPECT_TRUE(clock.sleepFor(std::chrono::milliseconds(1), stop.get_token()));
}

}  // namespace
}  // namespace mdec::core
