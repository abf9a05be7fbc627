#include "mdecollect/core/backoff.h"

#include <gtest/gtest.h>

#include <limits>

namespace mdec::core {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DoublesFromTheFirstUpToTheCap) {
  Backoff b({.first = milliseconds(1000), .max = milliseconds(5000)});
  EXPECT_EQ(b.next(), milliseconds(1000));
  EXPECT_EQ(b.next(), milliseconds(2000));
  EXPECT_EQ(b.next(), milliseconds(4000));
  EXPECT_EQ(b.next(), milliseconds(5000));
  EXPECT_EQ(b.next(), milliseconds(5000));
  EXPECT_EQ(b.failures(), 5);
}

TEST(Backoff, ResetStartsOver) {
  Backoff b({.first = milliseconds(500), .max = milliseconds(60'000)});
  b.next();
  b.next();
  b.reset();
  EXPECT_EQ(b.failures(), 0);
  EXPECT_EQ(b.next(), milliseconds(500));
}

TEST(Backoff, StepNeverOverflows) {
  const Backoff b({.first = milliseconds(500), .max = milliseconds(300'000)});
  EXPECT_EQ(b.step(-3), milliseconds(500));
  EXPECT_EQ(b.step(0), milliseconds(500));
  EXPECT_EQ(b.step(9), milliseconds(256'000));
  EXPECT_EQ(b.step(10), milliseconds(300'000));
  EXPECT_EQ(b.step(std::numeric_limits<int>::max()), milliseconds(300'000));
  const Backoff huge({.first = milliseconds(3), .max = milliseconds::max()});
  EXPECT_EQ(huge.step(std::numeric_limits<int>::max()), milliseconds::max());
}

TEST(Backoff, AFirstOverTheCapIsTheCap) {
  const Backoff b({.first = milliseconds(9000), .max = milliseconds(4000)});
  EXPECT_EQ(b.step(0), milliseconds(4000));
}

TEST(Backoff, ZeroStaysZero) {
  Backoff b({.first = milliseconds(0), .max = milliseconds(1000), .jitter = true});
  EXPECT_EQ(b.step(1'000'000), milliseconds(0));
  EXPECT_EQ(b.next(), milliseconds(0));
}

TEST(Backoff, JitterIsHalfToAllOfTheStep) {
  Backoff b({.first = milliseconds(1000), .max = milliseconds(8000), .jitter = true}, 42);
  for (int failures = 0; failures < 6; ++failures) {
    const milliseconds step = b.step(failures);
    for (int k = 0; k < 50; ++k) {
      const milliseconds d = b.delay(failures);
      EXPECT_GE(d, step / 2) << failures;
      EXPECT_LE(d, step) << failures;
    }
  }
}

TEST(Backoff, TheSameSeedGivesTheSameWaits) {
  const Backoff::Options options{
      .first = milliseconds(100), .max = milliseconds(10'000), .jitter = true};
  Backoff a(options, 7);
  Backoff b(options, 7);
  bool varied = false;
  milliseconds previous{-1};
  for (int k = 0; k < 20; ++k) {
    const milliseconds da = a.delay(6);
    EXPECT_EQ(da, b.delay(6));
    varied = varied || (previous.count() >= 0 && da != previous);
    previous = da;
  }
  EXPECT_TRUE(varied);  // jittered, not constant
}

}  // namespace
}  // namespace mdec::core
