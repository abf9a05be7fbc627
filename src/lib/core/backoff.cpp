#include "mdecollect/core/backoff.h"

#include <algorithm>
#include <limits>

namespace mdec::core {

Backoff::Backoff(Options options, std::optional<std::uint64_t> seed)
    : options_(options),
      rng_(seed             ? *seed
           : options.jitter ? std::random_device{}()
                            : std::uint64_t{0}) {}

std::chrono::milliseconds Backoff::step(int failures) const {
  const std::int64_t max = std::max<std::int64_t>(0, options_.max.count());
  std::int64_t step = std::clamp<std::int64_t>(options_.first.count(), 0, max);
  // Doubles until the cap: at most 63 rounds whatever `failures` is.
  for (int k = 0; k < failures && step > 0 && step < max; ++k) {
    step = step > max / 2 ? max : step * 2;
  }
  return std::chrono::milliseconds(step);
}

std::chrono::milliseconds Backoff::delay(int failures) {
  const std::int64_t cap = step(failures).count();
  if (!options_.jitter) return std::chrono::milliseconds(cap);
  std::uniform_int_distribution<std::int64_t> jitter(cap / 2, cap);
  return std::chrono::milliseconds(jitter(rng_));
}

std::chrono::milliseconds Backoff::next() {
  const std::chrono::milliseconds d = delay(failures_);
  if (failures_ < std::numeric_limits<int>::max()) ++failures_;
  return d;
}

}  // namespace mdec::core
