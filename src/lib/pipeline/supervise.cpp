#include "mdecollect/pipeline/supervise.h"

#include <algorithm>
#include <exception>

namespace mdec::pipeline {

bool supervise(const std::function<void()>& body,
               const std::function<void(const std::string&, std::chrono::milliseconds)>& failed,
               core::Clock& clock, std::stop_token stop, SuperviseOptions options) {
  std::chrono::milliseconds wait = options.first_backoff;
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
    failed(reason, final ? std::chrono::milliseconds(0) : wait);
    if (final) return false;
    if (!clock.sleepFor(wait, stop)) return true;  // stopped while waiting
    wait = std::min(options.max_backoff, wait * 2);
  }
}

}  // namespace mdec::pipeline
