// The clock seam: real time in production, a fake in unit tests. Sleeps are interruptible
// by a stop request so that SIGTERM ends the process within seconds.
#pragma once

#include <chrono>
#include <stop_token>

#include "mdecollect/core/fiber.h"

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
  // In a fiber (fiber.h) the fiber is suspended and its thread runs others meanwhile.
  bool sleepFor(std::chrono::milliseconds d, std::stop_token stop) override {
    return core::sleepFor(d, stop);
  }
};

}  // namespace mdec::core
