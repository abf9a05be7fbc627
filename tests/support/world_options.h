// The emulator worlds the emulator's unit tests run in.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "mdecollect/emulator/world.h"

namespace mdec::testing {

// 2026-03-02T00:00:00Z
inline const emulator::Timestamp kWorldStart =
    emulator::Timestamp(std::chrono::sys_days(std::chrono::year(2026) / 3 / 2));

// A small world that stands still unless a test asks for arrivals, updates or lateness.
inline emulator::WorldOptions staticOptions(std::size_t alerts = 200, std::uint64_t seed = 11) {
  emulator::WorldOptions o;
  o.seed = seed;
  o.initial_alerts = alerts;
  o.start = kWorldStart;
  o.history = std::chrono::hours(6);
  o.new_alerts_per_hour = 0;
  o.updates_per_hour = 0;
  o.late_fraction = 0;
  return o;
}

// A world that changes: arrivals, updates and some late versions.
inline emulator::WorldOptions busyOptions(std::uint64_t seed = 23) {
  emulator::WorldOptions o = staticOptions(150, seed);
  o.new_alerts_per_hour = 90;
  o.updates_per_hour = 240;
  o.late_fraction = 0.3;
  o.late_max = std::chrono::minutes(10);
  return o;
}

}  // namespace mdec::testing
