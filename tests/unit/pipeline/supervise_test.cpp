#include "mdecollect/pipeline/supervise.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace mdec::pipeline {
namespace {

class RecordingClock : public core::Clock {
 public:
  std::vector<std::chrono::milliseconds> sleeps;
  std::chrono::system_clock::time_point now() const override { return {}; }
  std::chrono::steady_clock::time_point steadyNow() const override { return {}; }
  bool sleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    sleeps.push_back(d);
    return !stop.stop_requested();
  }
};

TEST(SuperviseTest, AThrowingWorkerIsReportedAndStartedAgainWithGrowingBackoff) {
  RecordingClock clock;
  int runs = 0;
  std::vector<std::string> reasons;
  const bool ok = supervise(
      [&] {
        if (++runs < 4) throw std::runtime_error("stoll");
      },
      [&](const std::string& reason, std::chrono::milliseconds) { reasons.push_back(reason); },
      clock, {});
  EXPECT_TRUE(ok);
  EXPECT_EQ(runs, 4);
  EXPECT_EQ(reasons, (std::vector<std::string>{"stoll", "stoll", "stoll"}));
  EXPECT_EQ(clock.sleeps, (std::vector<std::chrono::milliseconds>{
                              std::chrono::milliseconds(1000), std::chrono::milliseconds(2000),
                              std::chrono::milliseconds(4000)}));
}

TEST(SuperviseTest, TheBackoffIsBounded) {
  RecordingClock clock;
  int runs = 0;
  SuperviseOptions options;
  options.max_restarts = 20;
  const bool ok = supervise(
      [&] {
        ++runs;
        throw 42;
      },
      [](const std::string& reason, std::chrono::milliseconds) {
        EXPECT_EQ(reason, "an unknown exception");
      },
      clock, {}, options);
  EXPECT_FALSE(ok) << "gave up after max_restarts";
  EXPECT_EQ(runs, 21);
  EXPECT_EQ(clock.sleeps.back(), options.max_backoff);
}

TEST(SuperviseTest, OnceAFailureIsFinal) {
  RecordingClock clock;
  std::chrono::milliseconds said{-1};
  SuperviseOptions options;
  options.once = true;
  EXPECT_FALSE(supervise([] { throw std::runtime_error("x"); },
                         [&](const std::string&, std::chrono::milliseconds wait) { said = wait; },
                         clock, {}, options));
  EXPECT_EQ(said.count(), 0);
  EXPECT_TRUE(clock.sleeps.empty());
}

TEST(SuperviseTest, AStopDuringTheBackoffEndsIt) {
  RecordingClock clock;
  std::stop_source stop;
  stop.request_stop();
  int runs = 0;
  EXPECT_TRUE(supervise(
      [&] {
        ++runs;
        throw std::runtime_error("x");
      },
      [](const std::string&, std::chrono::milliseconds) {}, clock, stop.get_token()));
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace mdec::pipeline
