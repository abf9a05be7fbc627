#include "mdecollect/pipeline/supervise.h"

#include <exception>

#include "mdecollect/core/backoff.h"

namespace mdec::pipeline {

bool supervise(const std::function<void()>& body,
               const std::function<void(const std::string&, std::chrono::milliseconds)>& failed,
               core::Clock& clock, std::stop_token stop, SuperviseOptions options) {
  core::Backoff backoff({.first = options.first_backoff, .max = options.max_backoff});
  for (int starts = 0;; ++starts) {
    std::string reason;
    try {
      body();
      return true;
    } catch (const std::exception& e) {
      reason = e.what();
    } catch (...) {
      reason = "an unknown exception";
    }
    const bool final = options.once || starts >= options.max_restarts;
    const std::chrono::milliseconds wait = final ? std::chrono::milliseconds(0) : backoff.next();
    failed(reason, wait);
    if (final) return false;
    if (!clock.sleepFor(wait, stop)) return true;  // stopped while waiting
  }
}

}  // namespace mdec::pipeline
