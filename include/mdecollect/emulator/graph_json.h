// The emulator's alerts in Microsoft Graph's representation (`GET /v1.0/security/alerts_v2`,
// resource microsoft.graph.security.alert; spec: graph.md).
//
// The writer is the reverse of graph.md's translation table: every Graph value is derived
// from the Defender for Endpoint alert struct, so that translating the Graph alert back per
// graph.md gives the same Defender alert as /api/alerts serves (for every key both carry):
//   - enums in lower camel case (status `inProgress`, severity `unknown` for UnSpecified,
//     classification, determination, investigationState, evidence detectionStatus);
//   - detectionSource by graph.md's table reversed (WindowsDefenderAtp ->
//     microsoftDefenderForEndpoint, WindowsDefenderAv -> antivirus, ...; other values as
//     they are);
//   - incidentId as a string; the times renamed (createdDateTime, lastUpdateDateTime, ...);
//   - the device as the first `evidence` element (a deviceEvidence: mdeDeviceId,
//     deviceDnsName, rbacGroupName, loggedOnUsers from relatedUser), then one typed element
//     per Defender evidence object, in order (fileEvidence, processEvidence, userEvidence,
//     ipEvidence, urlEvidence, registryKeyEvidence, registryValueEvidence);
//   - Graph-only keys (serviceSource, productName, alertWebUrl, recommendedActions,
//     verdict, fileDetails.md5, deviceEvidence.osPlatform, ...) derived deterministically from
//     the struct, never drawn at random.
// Null Defender values stay null (classification, determination, ...), so the round trip is
// exact.
//
// Evolvable enums: members listed after `unknownFutureValue` in Graph's schema appear only
// when the request carries `Prefer: include-unknown-enum-members`; otherwise Graph sends
// `unknownFutureValue`. The writers take that choice as `include_unknown_enum_members`.
//
// Deterministic and allocation-light: the same alert gives the same bytes every time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "mdecollect/emulator/alert_generator.h"

namespace mdec::emulator {

// The path of the collection, and its `@odata.context` as graph.microsoft.com sends it.
inline constexpr std::string_view kGraphAlertsPath = "/v1.0/security/alerts_v2";
inline constexpr std::string_view kGraphIncidentsPath = "/v1.0/security/incidents";
inline constexpr std::string_view kGraphAlertsOdataContext =
    "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2";
// The sentinel Graph sends in place of a newer member the client did not ask for.
inline constexpr std::string_view kUnknownFutureValue = "unknownFutureValue";
// Every alert the emulator serves comes from Defender for Endpoint.
inline constexpr std::string_view kGraphServiceSource = "microsoftDefenderForEndpoint";

// Graph's spelling of the emulator's enums.
std::string_view graphStatusName(Status status);             // new, inProgress, resolved, unknown
std::string_view graphSeverityName(Severity severity);       // unknown, informational, ...
std::string_view graphClassificationName(Classification c);  // truePositive, ...

// `text` with its first ASCII letter lower-cased (Graph's spelling of a Pascal-case Defender
// enum value: MultiStagedAttack -> multiStagedAttack).
void appendLowerCamel(std::string_view text, std::string& out);
std::string lowerCamel(std::string_view text);

// The Graph detectionSource of a Defender detectionSource (graph.md's table reversed; any
// other value as it is). Ignores evolvable-enum visibility: see graphEnumValue.
std::string graphDetectionSource(std::string_view defender_detection_source);

// Graph's enums whose members the emulator knows (for $filter literals and evolvable enums).
enum class GraphEnum {
  kStatus,
  kSeverity,
  kClassification,
  kDetermination,
  kDetectionSource,  // evolvable: newer members after unknownFutureValue
  kServiceSource,    // evolvable too
  // An incident's (microsoft.graph.security.incident): status is evolvable (awaitingAction
  // after unknownFutureValue); determination has its own members.
  kIncidentStatus,
  kIncidentDetermination,
};
// True when `value` is a member of the enum (unknownFutureValue and newer members included).
bool isGraphEnumMember(GraphEnum which, std::string_view value);
// True when `value` is a member listed after unknownFutureValue (a "newer" member).
bool isNewerGraphMember(GraphEnum which, std::string_view value);
// `value` as sent: itself, or unknownFutureValue for a newer member when the client did not
// send `Prefer: include-unknown-enum-members`.
std::string_view graphEnumValue(GraphEnum which, std::string_view value,
                                bool include_unknown_enum_members);

// True when the alert's representation depends on include_unknown_enum_members (it has a
// newer enum member somewhere).
bool hasNewerGraphMembers(const Alert& alert);

// The alert as compact JSON, as Graph sends it in `value` (evidence always included).
void appendGraphAlertJson(const Alert& alert, bool include_unknown_enum_members, std::string& out);

// A Graph page: {"@odata.context":"<odata_context>"[,"@odata.count":N]
// [,"@odata.nextLink":"<next_link>"],"value":[<alerts>]}. A negative `count` and an empty
// `next_link` leave those annotations out.
void appendGraphPageJson(std::span<const Alert> alerts, std::string_view odata_context,
                         bool include_unknown_enum_members, std::string& out,
                         std::string_view next_link = {}, std::int64_t count = -1);

}  // namespace mdec::emulator
