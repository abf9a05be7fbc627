#include "mdecollect/core/units.h"

#include <array>
#include <charconv>
#include <utility>

namespace mdec::core {
namespace {

// Splits "123abc" into 123 and "abc"; false when there are no digits or they overflow.
bool splitNumber(std::string_view text, std::uint64_t& number, std::string_view& unit) {
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return false;
  auto r = std::from_chars(text.data(), text.data() + i, number);
  if (r.ec != std::errc()) return false;
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return true;
}

}  // namespace

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  std::uint64_t n = 0;
  std::string_view unit;
  if (!splitNumber(text, n, unit)) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + std::string(text) + "' is not a duration (examples: 30s, 5m, 24h)");
  }
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 5> kUnits = {
      {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}}};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) {
      if (n > static_cast<std::uint64_t>(INT64_MAX) / factor) {
        return Error(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is too long");
      }
      return std::chrono::milliseconds(static_cast<std::int64_t>(n * factor));
    }
  }
  return Error(ErrorCode::kInvalidArgument,
               "'" + std::string(text) + "' needs a unit: ms, s, m, h or d (examples: 30s, 5m)");
}

Result<std::uint64_t> parseSize(std::string_view text) {
  std::uint64_t n = 0;
  std::string_view unit;
  if (!splitNumber(text, n, unit)) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + std::string(text) + "' is not a size (examples: 5MiB, 100KiB, 1GB)");
  }
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> kUnits = {
      {{"", 1},
       {"B", 1},
       {"KB", 1000},
       {"MB", 1000'000},
       {"GB", 1000'000'000},
       {"KiB", 1ULL << 10},
       {"MiB", 1ULL << 20},
       {"GiB", 1ULL << 30}}};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) {
      if (n > UINT64_MAX / factor) {
        return Error(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is too large");
      }
      return n * factor;
    }
  }
  return Error(
      ErrorCode::kInvalidArgument,
      "'" + std::string(text) + "' has an unknown unit (use B, KB, MB, GB, KiB, MiB, GiB)");
}

std::string formatDuration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace mdec::core
