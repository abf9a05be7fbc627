// Durations ("30s", "5m", "24h", "1d", "250ms") and sizes ("5MiB", "100KiB", "1GB", "512")
// as configuration files write them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "mdecollect/core/result.h"

namespace mdec::core {

// A non-negative whole number followed by ms, s, m, h or d; errors name what is wrong.
Result<std::chrono::milliseconds> parseDuration(std::string_view text);
// A non-negative whole number, optionally followed by B, KB, MB, GB (10^3) or KiB, MiB,
// GiB (2^10).
Result<std::uint64_t> parseSize(std::string_view text);
// "5m", "90s", "250ms": the largest unit that divides the value.
std::string formatDuration(std::chrono::milliseconds d);

}  // namespace mdec::core
