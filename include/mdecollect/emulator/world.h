// The emulated Defender tenant: a deterministic population of alerts that changes over
// emulated time (new alerts, updates that bump lastUpdateTime, late visibility), and the
// ground truth of every alert version that became visible and whether it was served.
//
// Determinism: the world at emulated time T depends only on the options and T, never on
// when or how often it is advanced or queried (events are drawn in emulated time). A run-time
// setFutureRate() applies from the emulated time it is made.
//
// Future timestamps (a fault): a share of versions are stamped with a lastUpdateTime far in
// the future, kFutureTime plus n seconds (n: the version's number within its alert, 0 for
// the first, so that two versions of one alert never share a time). The stamp is drawn per
// version (from its alert id, its number and `future_seed`, never from the world's own
// random stream: the world's events are the same with or without the fault) when the version
// is created, and kept: the version is served, filtered, ordered and reported by versions()
// with that time, always the same. Its visibility follows its real time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mdecollect/emulator/alert_generator.h"
#include "mdecollect/emulator/graph_odata.h"
#include "mdecollect/emulator/odata.h"

namespace mdec::emulator {

// The lastUpdateTime of a future-stamped version (plus its number within its alert, in
// seconds): 2100-01-01T00:00:00Z.
inline constexpr Timestamp kFutureTime{std::chrono::sys_days{std::chrono::year{2100} / 1 / 1}};

struct WorldOptions {
  std::uint64_t seed = 1;
  std::size_t initial_alerts = 1000;
  Timestamp start{};                                  // emulated time when the world opens
  std::chrono::seconds history{24 * 3600};            // the initial alerts: about this long, ending
                                                      // before `start`
  double new_alerts_per_hour = 120;                   // arrivals after start
  double updates_per_hour = 120;                      // status changes after start
  double late_fraction = 0.2;                         // share of versions that become visible late
  std::chrono::milliseconds late_max{5 * 60 * 1000};  // how late, at most
  // The share (0..1) of versions stamped with a time in the future (see above; the server
  // sets both from Faults::future_timestamps and its fault_seed).
  double future_rate = 0;
  std::uint64_t future_seed = 0;
  // Tenants (the server's tenant_count): the alerts are dealt out among `partitions` in
  // creation order, alert number i (0-based, initial population first, then arrivals) to
  // partition i % partitions, so `initial_alerts` = 20 * partitions gives each 20. A query
  // for one partition sees only its alerts. 1: one partition holds everything.
  std::size_t partitions = 1;
};

enum class OrderMode { kHonour, kIgnore, kReject };

struct VersionInfo {
  std::string id;
  Timestamp last_update_time;
  std::size_t evidence = 0;
  Timestamp visible_since;
  bool latest = false;        // the newest visible version of its alert
  bool served = false;        // some API response included it
  bool future = false;        // stamped with a time in the future (last_update_time is that time)
  std::size_t partition = 0;  // the alert's partition (WorldOptions::partitions)
};

struct QueryPage {
  std::string value_json;   // the JSON array of alerts: "[...]"
  std::size_t count = 0;    // alerts in it
  std::size_t matched = 0;  // alerts that matched before $skip/$top
  bool refused = false;     // incidents: the expand fault refused the page (value_json empty)
};

// One version of an incident: (id, lastUpdateDateTime), see "Incidents" below.
struct IncidentVersionInfo {
  std::string id;
  Timestamp last_update_time;
  std::size_t alerts = 0;  // its visible alerts at that version
  bool latest = false;     // the incident's current version
  bool served = false;     // some listing or /{id} response included it
};

// Incidents (Microsoft Graph `GET /v1.0/security/incidents`, spec: incidents.md): the visible
// alerts grouped by their incidentId; an incident is visible while one of its alerts is.
// Derived from its alerts (no state of its own, so the world's events and determinism are
// those of the alerts):
//   - lastUpdateDateTime: the latest time one of its alert versions became visible (a new
//     alert correlated into it, or an alert updated), so it moves on every alert change,
//     and is never before its alerts' (real) lastUpdateDateTime. A version is
//     (id, lastUpdateDateTime). future_timestamps does not apply to incidents.
//   - createdDateTime: the earliest creation time of its visible alerts.
//   - status: resolved when every alert is; else inProgress when one is (awaitingAction, a
//     newer member, instead for a fixed quarter of incidents, chosen by id); else active.
//   - severity: the highest of its alerts'; assignedTo: the latest-created alert's that has
//     one; classification and determination: once resolved, the first alert's that has one
//     (determination mapped to the incident's members), else unknown.
//   - displayName: the alert's title for one alert, else "Multi-stage incident involving
//     <categories> on one endpoint|on multiple endpoints"; tenantId, incidentWebUrl from the
//     alerts; redirectIncidentId null; customTags, systemTags, comments empty; description "".
// Times are written with 7 fractional digits and Z.

class World {
 public:
  explicit World(WorldOptions options);

  // Applies every event up to `now` (emulated). Earlier times are ignored.
  void advanceTo(Timestamp now);

  // The alerts visible now that match `query`, ordered as `mode` says (honour: by the
  // $orderby field, ties by id; ignore, or no $orderby: a fixed arbitrary order). Marks
  // the returned versions served unless `mark_served` is false (a response that will not
  // reach the client whole). Call advanceTo first. `partition`: only that partition's
  // alerts (WorldOptions::partitions); none: every alert.
  QueryPage query(const AlertQuery& query, OrderMode mode, bool mark_served = true,
                  std::optional<std::size_t> partition = std::nullopt);

  // The newest visible version of one alert as the API shows it; nullopt when unknown (or,
  // with `partition`, another partition's).
  std::optional<std::string> alertJson(std::string_view id, bool expand_evidence,
                                       bool mark_served = true,
                                       std::optional<std::size_t> partition = std::nullopt);

  // The same world through Microsoft Graph (`alerts_v2`): the alerts visible now that match
  // `query`, in Graph's representation (graph_json.h), ordered and paged like query() (the
  // same fixed arbitrary order without $orderby). A version served here counts as served.
  // `include_unknown_enum_members`: the request's `Prefer: include-unknown-enum-members`.
  QueryPage queryGraph(const GraphQuery& query, OrderMode mode, bool include_unknown_enum_members,
                       bool mark_served = true,
                       std::optional<std::size_t> partition = std::nullopt);

  // The newest visible version of one alert as Graph shows it; nullopt when unknown (or,
  // with `partition`, another partition's).
  std::optional<std::string> alertGraphJson(std::string_view id, bool include_unknown_enum_members,
                                            bool mark_served = true,
                                            std::optional<std::size_t> partition = std::nullopt);

  // Every version that has become visible so far, in order of visibility.
  std::vector<VersionInfo> versions() const;

  // The incidents visible now that match `query` (query.entity kIncidents), ordered and
  // paged like queryGraph() (without $orderby: a fixed arbitrary order); with
  // query.expand_alerts each carries `alerts`, its alerts exactly as queryGraph() serves them,
  // in creation order. `expand_fail_above` > 0: a page with $expand=alerts holding an incident
  // of more alerts is refused (page.refused, nothing marked served). Marks the incident
  // versions (and, expanded, the alert versions) served unless `mark_served` is false.
  QueryPage queryIncidents(const GraphQuery& query, OrderMode mode,
                           bool include_unknown_enum_members, bool mark_served = true,
                           std::size_t expand_fail_above = 0);
  // The current version of one incident (id: its numeric text); nullopt when unknown or not
  // visible.
  std::optional<std::string> incidentGraphJson(std::string_view id, bool expand_alerts,
                                               bool include_unknown_enum_members,
                                               bool mark_served = true);
  // Every incident version visible so far, ordered by lastUpdateDateTime, then id.
  std::vector<IncidentVersionInfo> incidentVersions() const;
  // Incidents with an alert created so far, visible or not.
  std::size_t incidentCount() const { return incidents_.size(); }

  Timestamp now() const { return now_; }
  std::size_t alertCount() const { return slots_.size(); }

  // The share of versions created after now() that are future-stamped; versions created
  // before keep their time. Call advanceTo first.
  void setFutureRate(double rate) { options_.future_rate = rate; }
  // Future-stamped versions that some response included (each counted once).
  std::size_t futureVersionsServed() const { return future_served_; }

 private:
  struct Version {
    Timestamp last_update_time;  // as served: the alert's, or a future stamp
    Timestamp visible_since;
    Timestamp created;
    std::size_t evidence = 0;
    std::string status;
    std::string severity;
    bool served = false;
    bool future = false;        // last_update_time is a future stamp
    std::string json_expanded;  // dropped once a newer version is visible
    std::string json_plain;
    // What a Graph $filter looks at, in Graph's spelling.
    std::string_view graph_status;
    std::string_view graph_severity;
    std::optional<std::string_view> graph_classification;
    std::optional<std::string> graph_determination;
    std::optional<std::string> assigned_to;
    // Graph's representation, rendered on first use (renderGraph) and dropped with the rest.
    bool graph_rendered = false;
    bool graph_differs = false;     // graph_json_legacy differs (a newer enum member)
    std::string graph_json;         // with newer enum members
    std::string graph_json_legacy;  // without (unknownFutureValue); empty unless it differs
  };
  struct Slot {
    Alert alert;                   // the newest version created
    std::deque<Version> versions;  // oldest first; the last visible one is what the API shows
    std::uint64_t order_key = 0;   // the arbitrary order when $orderby is ignored
  };

  void addVersion(std::size_t slot_index);
  // True when version number `index` of alert `id` is to be future-stamped.
  bool drawFuture(std::string_view id, std::size_t index) const;
  void markServed(Version& version);
  // Renders the Graph JSON of the newest version of `slot` from slot.alert, if not yet.
  void renderGraph(Slot& slot);
  // The Graph JSON of a visible version (rendered before: see renderGraph).
  const std::string& graphJson(Slot& slot, Version& version, bool include_unknown_enum_members);
  // The visible versions that pass `keep`, ordered as query() orders them.
  template <typename Keep>
  std::vector<std::pair<std::size_t, Version*>> matching(Keep keep,
                                                         std::optional<TimeField> order_by,
                                                         bool descending, OrderMode mode,
                                                         std::optional<std::size_t> partition);
  // Adds a slot (a new alert) with its first version, its incident and its partition.
  void addSlot(Alert alert);
  std::size_t partitionOf(std::size_t slot_index) const { return slot_index % options_.partitions; }
  const Version* visibleVersion(const Slot& slot) const;

  struct Incident {
    std::int64_t id = 0;
    std::string id_text;
    std::vector<std::size_t> slots;  // its alerts, in creation order
    std::vector<Timestamp> served;   // the lastUpdateDateTimes served (each once)
    std::uint64_t order_key = 0;     // the arbitrary order when $orderby is ignored
  };
  // An incident as it stands now (incidentState); alerts == 0: not visible.
  struct IncidentState {
    std::size_t alerts = 0;
    Timestamp last_update{};
    Timestamp created{};
    std::string_view status;
    std::string_view severity;
    std::string_view classification;
    std::string determination;
    std::optional<std::string_view> assigned_to;
  };
  void addToIncident(std::size_t slot_index);
  IncidentState incidentState(Incident& incident);
  void appendIncidentJson(Incident& incident, const IncidentState& state, bool expand_alerts,
                          bool include_unknown_enum_members, bool mark_served, std::string& out);
  void markIncidentServed(Incident& incident, Timestamp last_update);
  Version* visibleVersion(Slot& slot);
  Timestamp lateness(Rng& rng);

  WorldOptions options_;
  AlertGenerator generator_;
  Rng rng_;
  Timestamp now_{};
  std::vector<Slot> slots_;
  std::unordered_map<std::string, std::size_t> by_id_;
  std::vector<std::vector<std::size_t>> by_partition_;  // slot indexes, per partition
  std::optional<Alert> next_new_;  // generated ahead: added when its time comes
  Timestamp next_update_{};
  std::chrono::nanoseconds new_gap_mean_{};
  std::chrono::nanoseconds update_gap_mean_{};
  std::vector<std::size_t> open_;    // slots that are not Resolved (update candidates)
  std::vector<Incident> incidents_;  // in order of their first alert's creation
  std::unordered_map<std::int64_t, std::size_t> incident_by_id_;
  std::size_t future_served_ = 0;
};

}  // namespace mdec::emulator
