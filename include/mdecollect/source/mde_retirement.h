// Microsoft retires the Defender for Endpoint alerts API (`/api/alerts`, `type: mde`) after
// 2027-02-01; Microsoft Graph alerts_v2 (`type: graph`) replaces it. The date and the advice
// are here, once: run, check and check-config warn with them, and after the date an API
// refusal of /api/alerts carries the same advice (check's hint, the poll-failure log line).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/config/config.h"

namespace mdec::source {

// The last day the API is promised (UTC).
inline constexpr std::string_view kMdeRetirementDate = "2027-02-01";
// The first instant it may be gone: the day after, 00:00 UTC.
inline constexpr std::chrono::sys_days kMdeRetiredFrom =
    std::chrono::sys_days{std::chrono::year{2027} / std::chrono::February / 2};

// Whether `now` is past the last day of the API.
bool mdeApiRetired(std::chrono::system_clock::time_point now);

// The one-line switch for a source named `source_name`: "change type: mde to type: graph and
// keep name: ..." with the Graph permission the app registration needs.
std::string mdeSwitchAdvice(std::string_view source_name);

// The warning for an `mde` source, one line naming it: the date and the switch. Worded for
// before or after the date, by `now`.
std::string mdeRetirementWarning(std::string_view source_name,
                                 std::chrono::system_clock::time_point now);

// One mdeRetirementWarning for each `type: mde` source of `config`, in config order.
std::vector<std::string> mdeRetirementWarnings(const config::Config& config,
                                               std::chrono::system_clock::time_point now);

// After the date, a refusal of /api/alerts (HTTP 401, 403, 404 or 410) is most likely the
// retirement: the advice to append to what is shown for it. Otherwise none.
std::optional<std::string> mdeRetiredRefusalHint(std::string_view source_name,
                                                 std::optional<int> http_status,
                                                 std::chrono::system_clock::time_point now);

}  // namespace mdec::source
