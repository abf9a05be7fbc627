// libFuzzer target for parseHttpDate and parseRetryAfter (source/api_client.h). The first
// byte picks the server's clock (server_now) from a set of edges — or, for '7', the next 8
// bytes as a raw int64 — and the rest is the header's value. Properties checked beyond
// "no crash, no sanitizer report (overflow included)":
// - a date is within 1970..9999 (9999-12-31T23:59:60 being the last) and, written back as
//   an IMF-fixdate, reads back as the same second;
// - a Retry-After is within [0, kMaxRetryAfter]; digits (after trimming) always give one,
//   equal to the number cut to the bound; a date gives the bounded difference from
//   server_now, computed here in 128 bits.
//
// server_now takes any int64 (parseRetryAfter compares before it subtracts).
#include <time.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "mdecollect/source/api_client.h"

namespace {

using mdec::source::kMaxRetryAfter;
using mdec::source::parseHttpDate;
using mdec::source::parseRetryAfter;

constexpr std::int64_t kLastSecond = 253402300800;  // 9999-12-31T23:59:60 = 10000-01-01
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

void check(bool ok) {
  if (!ok) std::abort();
}

std::string imfFixdate(std::int64_t unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  tm parts{};
  if (gmtime_r(&t, &parts) == nullptr) std::abort();
  char out[64];
  const std::size_t n = strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &parts);
  return std::string(out, n);
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr std::array<std::int64_t, 7> kEdges = {
      1'800'000'000,  // '0': 2027, the usual case
      784111777,      // '1': RFC 9110's example date
      0,              // '2': the epoch
      kLastSecond,    // '3': the last second a date can say
      kMax,           // '4'
      -1,             // '5'
      kMin,           // '6'
  };
  std::size_t at = 1;
  std::int64_t server_now = 0;
  const unsigned mode = data[0] & 7u;
  if (mode < kEdges.size()) {
    server_now = kEdges[mode];
  } else if (size >= 9) {  // '7': raw little-endian int64
    std::uint64_t raw = 0;
    for (int k = 7; k >= 0; --k) raw = (raw << 8) | data[1 + k];
    std::memcpy(&server_now, &raw, sizeof server_now);
    at = 9;
  }
  const std::string_view text(reinterpret_cast<const char*>(data) + at, size - at);

  const std::optional<std::int64_t> date = parseHttpDate(text);
  if (date) {
    check(*date >= 0 && *date <= kLastSecond);
    if (*date < kLastSecond) check(parseHttpDate(imfFixdate(*date)) == date);
  }

  const auto wait = parseRetryAfter(text, server_now);
  if (wait) check(wait->count() >= 0 && *wait <= kMaxRetryAfter);
  const std::string_view v = trim(text);
  const bool digits =
      !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) {
    check(wait.has_value());
    const std::size_t first = std::min(v.find_first_not_of('0'), v.size());
    const std::string_view significant = v.substr(first);
    std::int64_t n = 0;
    if (significant.size() > 9) {
      n = kMaxRetryAfter.count();
    } else {
      for (char c : significant) n = n * 10 + (c - '0');
    }
    check(wait->count() == std::min<std::int64_t>(n, kMaxRetryAfter.count()));
  } else if (const auto trimmed_date = parseHttpDate(v)) {
    check(wait.has_value());
    const __int128 d = static_cast<__int128>(*trimmed_date) - server_now;
    const __int128 bounded = std::clamp<__int128>(d, 0, kMaxRetryAfter.count());
    check(wait->count() == static_cast<std::int64_t>(bounded));
  } else {
    check(!wait.has_value());
  }
  return 0;
}
