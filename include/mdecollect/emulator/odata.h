// The OData query options the emulated /api/alerts understands, parsed from the raw
// (percent-decoded) query parameter values. Anything else is an error the server answers
// with 400 and the real error envelope ({"error":{"code":"ODataError","message":...}}).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/result.h"

namespace mdec::emulator {

enum class TimeField { kLastUpdateTime, kAlertCreationTime };
enum class CompareOp { kGt, kGe, kLt, kLe };

struct TimeCondition {
  TimeField field;
  CompareOp op;
  core::Instant value;
};

struct AlertQuery {
  std::vector<TimeCondition> times;     // all must hold (joined by `and`)
  std::optional<std::string> status;    // status eq 'New'
  std::optional<std::string> severity;  // severity eq 'High'
  std::optional<TimeField> order_by;    // $orderby field
  bool descending = false;              // $orderby ... desc
  std::size_t top = 10000;              // $top (default and maximum 10,000)
  std::size_t skip = 0;                 // $skip
  bool expand_evidence = false;         // $expand=evidence
};

struct QueryParams {
  std::optional<std::string> filter;   // $filter
  std::optional<std::string> orderby;  // $orderby
  std::optional<std::string> top;      // $top
  std::optional<std::string> skip;     // $skip
  std::optional<std::string> expand;   // $expand
};

// An OData v4 dateTimeOffsetValue, yyyy-MM-ddTHH:mm[:ss[.fraction]](Z | ±HH:mm), with a real
// calendar date (no 2026-02-30); nullopt otherwise. Shared by the Graph query parser.
std::optional<core::Instant> parseODataDateTime(std::string_view text);

// Errors are ErrorCode::kInvalidArgument with a message in the style of the real API.
Result<AlertQuery> parseAlertQuery(const QueryParams& params);

// True when every time condition of `query` holds for an alert with these times (true when
// there are none). Status, severity and paging are the caller's.
bool matchesTimes(const AlertQuery& query, const core::Instant& last_update_time,
                  const core::Instant& alert_creation_time);

// The real API's error body: {"error":{"code":"<code>","message":"...","target":"..."}}.
// The strings are JSON-escaped; bytes that are not valid UTF-8 become U+FFFD.
std::string formatODataError(std::string_view code, std::string_view message,
                             std::string_view target);

}  // namespace mdec::emulator
