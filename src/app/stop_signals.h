// SIGINT and SIGTERM turned into a stop request: blocked in every thread (those made after
// this one inherit the mask) and taken by one thread with sigtimedwait, so a signal never
// interrupts a system call halfway and a clean stop needs no async-signal-safe code.
#pragma once

#include <signal.h>
#include <spdlog/spdlog.h>

#include <stop_token>
#include <thread>

namespace mdec::app {

class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    waiter_ = std::jthread([this](std::stop_token done) {
      while (!done.stop_requested()) {
        timespec tick{0, 200'000'000};
        const int sig = sigtimedwait(&signals_, nullptr, &tick);
        if (sig > 0) {
          spdlog::info("signal {} received, stopping", sig);
          stop_.request_stop();
          return;
        }
      }
    });
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  std::stop_token token() const { return stop_.get_token(); }
  bool stopped() const { return stop_.stop_requested(); }

 private:
  sigset_t signals_;
  std::stop_source stop_;
  std::jthread waiter_;  // last: stopped and joined first
};

}  // namespace mdec::app
