// Exponential backoff, written once: the n-th consecutive failure (0-based) waits
// first * 2^n, at most `max`; with jitter, a wait is drawn uniformly from half to all of
// that step (so that many clients that failed together do not retry together).
//
//   core::Backoff backoff({.first = 500ms, .max = 60s, .jitter = true});
//   ... on a failure:  clock.sleepFor(backoff.next(), stop);
//   ... on a success:  backoff.reset();
//
// A caller that counts its own attempts asks delay(attempt) instead of next().
// Not thread-safe: one per loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace mdec::core {

class Backoff {
 public:
  struct Options {
    std::chrono::milliseconds first{1000};  // the wait after the first failure
    std::chrono::milliseconds max{60'000};  // no step is longer
    bool jitter = false;                    // draw from [step / 2, step]
  };

  // The jitter's generator is seeded by `seed`, or from std::random_device when it is not
  // given and jitter is on.
  explicit Backoff(Options options, std::optional<std::uint64_t> seed = std::nullopt);

  // min(max, first * 2^failures) (failures < 0 counts as 0); never overflows.
  std::chrono::milliseconds step(int failures) const;
  // The wait after failure number `failures` (0-based): step(failures), jittered if asked.
  std::chrono::milliseconds delay(int failures);
  // The next wait of the sequence: delay(0), delay(1), ... until reset().
  std::chrono::milliseconds next();
  // After a success (or progress): the next wait is the first again.
  void reset() { failures_ = 0; }
  // How many waits next() has given since the last reset.
  int failures() const { return failures_; }

 private:
  Options options_;
  std::mt19937_64 rng_;
  int failures_ = 0;
};

}  // namespace mdec::core
