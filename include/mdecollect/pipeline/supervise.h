// A worker that dies is neither silent nor gone: supervise() runs a source's or an output's
// loop, and when it throws, reports the failure (so /health says failing and answers 503,
// and the log says why), waits a backoff that doubles from 1 s up to 5 minutes, and starts
// it again. Every thread entry of the collector runs under it.
#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>

#include "mdecollect/core/clock.h"

namespace mdec::pipeline {

struct SuperviseOptions {
  bool once = false;  // a failure is final (run --once): no restart
  std::chrono::milliseconds first_backoff{1000};
  std::chrono::milliseconds max_backoff{5 * 60 * 1000};
  int max_restarts = 1'000'000;  // bounded, like every loop
};

// Runs `body` until it returns normally (true) or a stop is requested (true); when it
// throws, calls `failed(reason, wait)` with the exception's text and the wait before the
// next start, then starts it again. False when it failed and was not started again (once,
// or max_restarts reached).
bool supervise(
    const std::function<void()>& body,
    const std::function<void(const std::string& reason, std::chrono::milliseconds wait)>& failed,
    core::Clock& clock, std::stop_token stop, SuperviseOptions options = {});

}  // namespace mdec::pipeline
