// The OData query options the emulated Microsoft Graph `GET /v1.0/security/alerts_v2`
// understands (spec: graph.md), its opaque paging token and its error body.
//
//   $filter   on lastUpdateDateTime / createdDateTime (eq ne gt ge lt le; DateTimeOffset
//             literals unquoted) and status, severity, serviceSource, classification,
//             determination, assignedTo (eq ne; single-quoted strings, enum members in
//             Graph's spelling, `null` for the nullable ones), joined by `and` / `or`, with
//             parentheses: lastUpdateDateTime ge 2026-11-27T00:00:00.0000000Z and
//             (serviceSource eq 'microsoftDefenderForEndpoint' or serviceSource eq 'x')
//   $top      default and maximum 1000; larger values are clamped to 1000
//   $skip     at most 500 (larger: 400)
//   $orderby  lastUpdateDateTime or createdDateTime, asc (default) or desc
//   $count    true | false: `@odata.count` with the number of matching alerts
//   $skiptoken  only as the service wrote it into `@odata.nextLink`, and alone
// Graph accepts the option names without their `$` too.
//
// The same options on `GET /v1.0/security/incidents` (GraphEntity::kIncidents; spec:
// incidents.md §1), with these differences: $filter on lastUpdateDateTime, createdDateTime,
// status (the incident's members: active, resolved, inProgress, redirected,
// unknownFutureValue, awaitingAction), severity, classification, determination (the
// incident's members) and assignedTo (serviceSource is not a property of an incident);
// $top default 50 and at most 50: larger is refused ("The limit of '50' for Top query has been
// exceeded. The value from the incoming request is '<n>'."), not clamped; $expand=alerts. A
// $skiptoken carries its entity: an alerts_v2 token is not valid on incidents, nor the reverse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/result.h"
#include "mdecollect/emulator/odata.h"

namespace mdec::emulator {

inline constexpr std::size_t kGraphMaxTop = 1000;
inline constexpr std::size_t kGraphDefaultTop = 1000;
inline constexpr std::size_t kGraphMaxSkip = 500;
// Incidents: Graph's default page and largest $top (larger: 400). The documentation names no
// default page size; 50 is the largest page, and what the emulator serves without $top.
inline constexpr std::size_t kGraphIncidentsMaxTop = 50;
inline constexpr std::size_t kGraphIncidentsDefaultTop = 50;

// Which collection a query is for.
enum class GraphEntity { kAlerts, kIncidents };

enum class GraphField {
  kLastUpdateDateTime,
  kCreatedDateTime,
  kStatus,
  kSeverity,
  kServiceSource,
  kClassification,
  kDetermination,
  kAssignedTo,
};
enum class GraphOp { kEq, kNe, kGt, kGe, kLt, kLe };

// One node of a parsed $filter: `and` / `or` over children, or one comparison.
struct GraphFilterNode {
  enum class Kind { kAnd, kOr, kCompare };
  Kind kind = Kind::kCompare;
  std::vector<std::size_t> children;  // kAnd, kOr: indices into GraphFilter::nodes
  GraphField field = GraphField::kLastUpdateDateTime;
  GraphOp op = GraphOp::kEq;
  core::Instant time;    // the time fields
  std::string text;      // the string fields
  bool is_null = false;  // `eq null` / `ne null`
};

struct GraphFilter {
  std::vector<GraphFilterNode> nodes;  // empty: every alert matches
  std::size_t root = 0;
};

struct GraphQuery {
  GraphFilter filter;
  std::optional<TimeField> order_by;  // kLastUpdateTime: lastUpdateDateTime; kAlertCreationTime:
                                      // createdDateTime
  bool descending = false;
  std::size_t top = kGraphDefaultTop;
  std::size_t skip = 0;  // from $skip, or the position a $skiptoken carries
  bool count = false;
  GraphEntity entity = GraphEntity::kAlerts;
  bool expand_alerts = false;  // incidents: $expand=alerts
  // The options as sent, which a nextLink carries on (inside its opaque $skiptoken).
  std::optional<std::string> filter_text;
  std::optional<std::string> orderby_text;
};

// The raw (percent-decoded) query option values.
struct GraphQueryParams {
  std::optional<std::string> filter;
  std::optional<std::string> orderby;
  std::optional<std::string> top;
  std::optional<std::string> skip;
  std::optional<std::string> count;
  std::optional<std::string> skiptoken;
  std::optional<std::string> expand;  // incidents only
};

// Errors are ErrorCode::kInvalidArgument with a message in the style of Graph's (the server
// answers them 400 BadRequest). `token_key` authenticates $skiptoken values: a token this key
// did not make is an error.
Result<GraphQuery> parseGraphQuery(const GraphQueryParams& params, std::uint64_t token_key,
                                   GraphEntity entity = GraphEntity::kAlerts);

// The $skiptoken that continues `query` at `offset` (the number of alerts already sent): an
// opaque, tamper-evident string of URL-safe characters. parseGraphQuery({.skiptoken = it})
// gives `query` back with skip = offset.
std::string makeGraphSkipToken(const GraphQuery& query, std::size_t offset,
                               std::uint64_t token_key);

// An alert's (or an incident's) values as a $filter sees them, in Graph's spelling; nullopt for
// null.
struct GraphFilterFields {
  core::Instant last_update_date_time;
  core::Instant created_date_time;
  std::string_view status;
  std::string_view severity;
  std::string_view service_source;
  std::optional<std::string_view> classification;
  std::optional<std::string_view> determination;
  std::optional<std::string_view> assigned_to;
};

// True when `fields` satisfy the filter (always, for an empty one).
bool matchesGraphFilter(const GraphFilter& filter, const GraphFilterFields& fields);

// Graph's error body:
// {"error":{"code":"<code>","message":"...","innerError":{"date":"<date>",
//  "request-id":"<request_id>","client-request-id":"<client_request_id>"}}}
// `date` is Graph's innerError date (2026-11-27T12:34:56, UTC, no zone).
std::string formatGraphError(std::string_view code, std::string_view message, std::string_view date,
                             std::string_view request_id, std::string_view client_request_id);

}  // namespace mdec::emulator
