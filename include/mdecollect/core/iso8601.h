// ISO 8601 date-times as Elasticsearch's `strict_date_optional_time` accepts them:
//   yyyy[-MM[-dd[THH[:mm[:ss[.fraction]]][offset]]]]   fraction: 1..9 digits
//   offset: Z | ±HH | ±HH:mm | ±HHmm
// with real calendar checks (no 2025-02-30, no hour 24).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mdec::core {

struct Instant {
  std::int64_t seconds = 0;  // since 1970-01-01T00:00:00Z
  std::int32_t nanos = 0;    // 0..999'999'999

  friend bool operator==(const Instant&, const Instant&) = default;
  friend auto operator<=>(const Instant&, const Instant&) = default;
};

// nullopt when `text` is not such a date-time.
std::optional<Instant> parseIsoDateTime(std::string_view text);

// b - a in nanoseconds; nullopt when it does not fit in 64 bits.
std::optional<std::int64_t> nanosBetween(const Instant& a, const Instant& b);

// RFC 3339 UTC text with `frac_digits` (0..9) fractional digits: 2026-11-27T23:57:17.123Z.
std::string formatRfc3339(const Instant& instant, int frac_digits = 3);
Instant toInstant(std::chrono::system_clock::time_point tp);
// The UTC date alone, its parts joined by `separator`: "2026-11-27", "20261127" (""),
// "2026.11.27" (".").
std::string formatDate(const Instant& instant, std::string_view separator = "-");
// An HTTP Date header (RFC 9110 IMF-fixdate, in English whatever the locale):
// "Sun, 06 Nov 1994 08:49:37 GMT". source::parseHttpDate reads it back.
std::string formatHttpDate(std::int64_t unix_seconds);

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d);

}  // namespace mdec::core
