// A deterministic generator of realistic Defender for Endpoint alerts (spec: api-facts.md).
//
// Used by the benchmarks (a corpus of API pages) and by the API emulator, which serves the
// generated alerts and changes them over time with AlertGenerator::advance. Alerts are plain
// structs; the JSON writers below render them exactly as the real API does: every key
// present in the API's key order, missing values as null, times in the API's own format.
//
// Determinism: the same seed and start time give the same alerts, byte for byte, on every
// platform and compiler (own PRNG, integer arithmetic only, no std::*_distribution).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mdec::emulator {

// A point in time. The API has 100 ns resolution; generated times are multiples of 100 ns
// and the formatter drops anything finer.
using Timestamp = std::chrono::sys_time<std::chrono::nanoseconds>;

// The `@odata.context` of the alerts collection.
inline constexpr std::string_view kAlertsOdataContext =
    "https://api.securitycenter.microsoft.com/api/$metadata#Alerts";

// xoshiro256** seeded through splitmix64: the same sequence everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);

  std::uint64_t next();
  // Uniform in [0, bound); bound must be > 0.
  std::uint64_t below(std::uint64_t bound);
  // Uniform in [lo, hi], both included; lo <= hi.
  std::int64_t between(std::int64_t lo, std::int64_t hi);
  // True with probability percent / 100.
  bool chance(std::uint32_t percent);

 private:
  std::uint64_t s_[4];
};

enum class Severity { kUnSpecified, kInformational, kLow, kMedium, kHigh };
enum class Status { kUnknown, kNew, kInProgress, kResolved };
enum class Classification {
  kUnknown,
  kTruePositive,
  kInformationalExpectedActivity,
  kFalsePositive
};

// The API's spelling ("UnSpecified", "InProgress", "TruePositive", ...).
std::string_view severityName(Severity severity);
std::string_view statusName(Status status);
std::string_view classificationName(Classification classification);

struct RelatedUser {
  std::string user_name;
  std::string domain_name;
};

struct Comment {
  std::string comment;
  std::string created_by;
  Timestamp created_time;
};

// One evidence object. The API uses one flat key set for every entity type; keys that do
// not apply to the type are null.
struct Evidence {
  std::string entity_type;  // User, Process, File, Ip, Url, Registry (a key or a value)
  std::optional<Timestamp> evidence_creation_time;
  std::optional<std::string> sha1;
  std::optional<std::string> sha256;
  std::optional<std::string> file_name;
  std::optional<std::string> file_path;
  std::optional<std::int64_t> process_id;
  std::optional<std::string> process_command_line;
  std::optional<Timestamp> process_creation_time;
  std::optional<std::int64_t> parent_process_id;
  std::optional<Timestamp> parent_process_creation_time;
  std::optional<std::string> parent_process_file_name;
  std::optional<std::string> parent_process_file_path;
  std::optional<std::string> ip_address;
  std::optional<std::string> url;
  std::optional<std::string> registry_key;
  std::optional<std::string> registry_hive;
  std::optional<std::string> registry_value_type;
  std::optional<std::string> registry_value;
  std::optional<std::string> account_name;
  std::optional<std::string> domain_name;
  std::optional<std::string> user_sid;
  std::optional<std::string> aad_user_id;
  std::optional<std::string> user_principal_name;
  std::optional<std::string> detection_status;
};

// One alert, every key of the API's alert object.
struct Alert {
  std::string id;  // da<18 digits>_<int32>
  std::int64_t incident_id = 0;
  std::optional<std::int64_t> investigation_id;
  std::optional<std::string> assigned_to;
  Severity severity = Severity::kUnSpecified;
  Status status = Status::kNew;
  std::optional<Classification> classification;
  std::optional<std::string> determination;
  std::optional<std::string> investigation_state;
  std::optional<std::string> detection_source;
  std::optional<std::string> detector_id;
  std::optional<std::string> category;
  std::optional<std::string> threat_family_name;
  std::optional<std::string> title;
  std::optional<std::string> description;
  Timestamp alert_creation_time;
  std::optional<Timestamp> first_event_time;
  std::optional<Timestamp> last_event_time;
  Timestamp last_update_time;  // always on the coarse grid (coarseUpdateTime)
  std::optional<Timestamp> resolved_time;
  std::optional<std::string> machine_id;
  std::optional<std::string> computer_dns_name;
  std::optional<std::string> rbac_group_name;
  std::optional<std::string> aad_tenant_id;
  std::optional<std::string> threat_name;
  std::vector<std::string> mitre_techniques;
  std::optional<RelatedUser> related_user;
  std::vector<Comment> comments;
  std::vector<Evidence> evidence;
};

class AlertGenerator {
 public:
  // Alerts start being created at `start`; each next() moves the creation clock forward by
  // up to `max_gap` (or by a few milliseconds inside a burst of alerts of one incident).
  AlertGenerator(std::uint64_t seed, Timestamp start,
                 std::chrono::milliseconds max_gap = std::chrono::seconds(60));

  // A new alert, created after the previous one. Most are New; some arrive already Resolved
  // by automation (as Defender Antivirus blocks do). Alerts of a burst share their incident,
  // often their device, and their lastUpdateTime (a batch processed together), so ties in
  // lastUpdateTime are common. lastUpdateTime is at most ~5 s after alertCreationTime.
  Alert next();

  // Changes `alert` one step the way analysts and automation do, at time `now`:
  // New/Unknown -> InProgress (assignedTo set) or straight to Resolved; InProgress ->
  // Resolved, or a comment while staying InProgress. Resolving sets classification,
  // determination and resolvedTime. Every change bumps lastUpdateTime to a grid time after
  // both `now` and the previous value. Returns false (and leaves the alert alone) when the
  // alert is already Resolved.
  bool advance(Alert& alert, Timestamp now);

  // Changes the largest gap between two alerts' creation times from now on (the arrival
  // rate); the emulator uses one rate for its initial history and another afterwards.
  void setMaxGap(std::chrono::milliseconds max_gap) {
    max_gap_ = max_gap < std::chrono::milliseconds(300) ? std::chrono::milliseconds(300) : max_gap;
  }

  // Moves the creation clock forward to `t` (never back): the next alert comes after it.
  void setClock(Timestamp t) {
    if (t > clock_) clock_ = t;
  }

  // The creation time of the latest alert (the start time before the first next()).
  Timestamp clock() const { return clock_; }

 private:
  struct Machine {
    std::string machine_id;
    std::string dns_name;
    std::optional<std::string> rbac_group;
    std::size_t user;  // index into users_
  };
  struct User {
    std::string account_name;
    std::string domain_name;
    std::string upn;
    std::string sid;
    std::string aad_user_id;
  };

  Evidence makeEvidence(const Alert& alert, std::string_view kind, const User& user,
                        const Machine& machine);

  Rng rng_;
  Rng update_rng_;  // separate stream: advance() does not change what next() yields
  Timestamp clock_;
  std::chrono::milliseconds max_gap_;
  std::string tenant_id_;
  std::vector<Machine> machines_;
  std::vector<User> users_;
  std::int64_t next_incident_id_;
  std::int64_t next_investigation_id_;
  // The current burst: alerts that share an incident and a lastUpdateTime.
  std::int64_t burst_incident_ = 0;
  std::optional<std::int64_t> burst_investigation_;
  std::size_t burst_machine_ = 0;
  Timestamp burst_update_time_;
  bool in_burst_ = false;
};

// The coarse lastUpdateTime grid (1/300 s steps, rounded to 100 ns as the API prints them):
// the first grid time at or after `t` (floored to 100 ns). Grid times map to themselves.
Timestamp coarseUpdateTime(Timestamp t);

// API time text: UTC, `Z`, up to 7 fractional digits with trailing zeros trimmed and no dot
// for whole seconds: 2021-01-26T20:33:57.7220239Z, 2020-07-03T15:15:39.13Z,
// 2020-07-03T15:15:39Z. Years 0..9999.
void appendApiTime(Timestamp t, std::string& out);
std::string formatApiTime(Timestamp t);

// The alert as compact JSON, as the API sends it. Without `expand_evidence` the evidence
// array is written empty (`"evidence":[]`), as the API does without `$expand=evidence`.
void appendAlertJson(const Alert& alert, bool expand_evidence, std::string& out);

// An API page: {"@odata.context":"<odata_context>","value":[<alerts>]}.
void appendPageJson(std::span<const Alert> alerts, std::string_view odata_context,
                    bool expand_evidence, std::string& out);

}  // namespace mdec::emulator
