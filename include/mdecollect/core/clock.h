// The clock seam: real time in production, a fake in unit tests. Sleeps are interruptible
// by a stop request so that SIGTERM ends the process within seconds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace mdec::core {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
  virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
  // Sleeps up to `d`; returns false when woken early by `stop`.
  virtual bool sleepFor(std::chrono::milliseconds d, std::stop_token stop) = 0;
};

class SystemClock : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::now();
  }
  bool sleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock<std::mutex> lock(mu);
    // wait_for returns the predicate (always false here), not whether it was stopped.
    cv.wait_for(lock, stop, d, [] { return false; });
    return !stop.stop_requested();
  }
};

}  // namespace mdec::core
