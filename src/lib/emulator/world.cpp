#include "mdecollect/emulator/world.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <utility>
#include <vector>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"
#include "mdecollect/emulator/graph_json.h"

namespace mdec::emulator {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr Timestamp kNever = Timestamp::max();

core::Instant toInstant(Timestamp t) {
  return core::toInstant(std::chrono::time_point_cast<std::chrono::system_clock::duration>(t));
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Renders `alert` with `served_time` as its lastUpdateTime (a future stamp or its own).
template <typename Render>
void renderWithTime(Alert& alert, Timestamp served_time, Render render) {
  const Timestamp real = alert.last_update_time;
  alert.last_update_time = served_time;
  render(static_cast<const Alert&>(alert));
  alert.last_update_time = real;
}

// A gap drawn uniformly from [0, 2*mean]: the mean rate is right and the draw is integer.
nanoseconds drawGap(Rng& rng, nanoseconds mean) {
  const auto hi = std::max<std::int64_t>(1, mean.count() * 2);
  return nanoseconds(rng.between(1, hi));
}

nanoseconds meanGap(double per_hour) {
  if (per_hour <= 0) return nanoseconds::max();
  return nanoseconds(static_cast<std::int64_t>(3600e9 / per_hour));
}

// The generator's largest gap for a wanted mean gap between creation times: a gap is
// uniform in (0, max], and 40% of alerts join the current burst a few ms later instead.
milliseconds maxGapFor(nanoseconds mean) { return duration_cast<milliseconds>(mean * 2 * 10 / 6); }

// The initial population: `count` alerts created about `history` long and ending before
// `start`. The generator's gaps are random, so a draw can run past `start` (by an hour for a
// small population); it is then drawn again that much earlier. Moving the start barely
// changes the draw, so a second pass almost always fits.
struct Opening {
  AlertGenerator generator;
  std::vector<Alert> alerts;
};

Opening initialPopulation(const WorldOptions& options) {
  const std::size_t count = options.initial_alerts;
  const auto per_alert = static_cast<std::int64_t>(std::max<std::size_t>(1, count));
  const milliseconds max_gap = maxGapFor(duration_cast<nanoseconds>(options.history) / per_alert);
  nanoseconds shift{0};
  for (int pass = 0;; ++pass) {
    Opening opening{AlertGenerator(options.seed, options.start - options.history - shift, max_gap),
                    {}};
    opening.alerts.reserve(count);
    for (std::size_t i = 0; i < count; ++i) opening.alerts.push_back(opening.generator.next());
    const Timestamp end = opening.generator.clock();
    if (end < options.start || pass == 4) return opening;  // else the world opens at `end`
    shift += (end - options.start) + std::chrono::seconds(1);
  }
}

}  // namespace

World::World(WorldOptions options)
    : options_(options),
      generator_(options.seed, options.start),
      rng_(options.seed ^ 0x5bd1e995ULL) {
  now_ = options_.start;
  Opening opening = initialPopulation(options_);
  generator_ = std::move(opening.generator);
  if (options_.partitions == 0) options_.partitions = 1;
  by_partition_.resize(options_.partitions);
  slots_.reserve(options_.initial_alerts);
  for (Alert& alert : opening.alerts) addSlot(std::move(alert));
  // The history ends before `start` (see initialPopulation); should it not, the world opens
  // when its history ends.
  if (generator_.clock() > now_) now_ = generator_.clock();

  new_gap_mean_ = meanGap(options_.new_alerts_per_hour);
  update_gap_mean_ = meanGap(options_.updates_per_hour);
  generator_.setClock(now_);  // arrivals continue from the opening, not from the history
  if (new_gap_mean_ != nanoseconds::max()) {
    generator_.setMaxGap(maxGapFor(new_gap_mean_));
    next_new_ = generator_.next();
  }
  next_update_ =
      update_gap_mean_ == nanoseconds::max() ? kNever : now_ + drawGap(rng_, update_gap_mean_);
}

Timestamp World::lateness(Rng& rng) {
  const auto late_percent = static_cast<std::uint32_t>(options_.late_fraction * 100.0 + 0.5);
  if (options_.late_max.count() <= 0 || !rng.chance(late_percent)) return Timestamp{};
  return Timestamp{} + milliseconds(rng.between(1, options_.late_max.count()));
}

bool World::drawFuture(std::string_view id, std::size_t index) const {
  const double rate = options_.future_rate;
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  const std::uint64_t h = mix64(fnv1a(id) ^ mix64(options_.future_seed) ^
                                (static_cast<std::uint64_t>(index) * 0x2545f4914f6cdd1dULL));
  return static_cast<double>(h >> 11) * 0x1.0p-53 < rate;
}

void World::markServed(Version& version) {
  if (!version.served && version.future) ++future_served_;
  version.served = true;
}

void World::addVersion(std::size_t slot_index) {
  Slot& slot = slots_[slot_index];
  Version v;
  const std::size_t number = slot.versions.size();
  v.future = drawFuture(slot.alert.id, number);
  v.last_update_time = v.future
                           ? kFutureTime + std::chrono::seconds(static_cast<std::int64_t>(number))
                           : slot.alert.last_update_time;
  // Visibility follows the real time, whatever the version is stamped with.
  v.visible_since = slot.alert.last_update_time + lateness(rng_).time_since_epoch();
  // A version never becomes visible before an earlier one of the same alert.
  if (!slot.versions.empty() && v.visible_since < slot.versions.back().visible_since) {
    v.visible_since = slot.versions.back().visible_since;
  }
  v.created = slot.alert.alert_creation_time;
  v.evidence = slot.alert.evidence.size();
  v.status = std::string(statusName(slot.alert.status));
  v.severity = std::string(severityName(slot.alert.severity));
  v.graph_status = graphStatusName(slot.alert.status);
  v.graph_severity = graphSeverityName(slot.alert.severity);
  if (slot.alert.classification) {
    v.graph_classification = graphClassificationName(*slot.alert.classification);
  }
  if (slot.alert.determination) v.graph_determination = lowerCamel(*slot.alert.determination);
  v.assigned_to = slot.alert.assigned_to;
  renderWithTime(slot.alert, v.last_update_time, [&v](const Alert& alert) {
    appendAlertJson(alert, true, v.json_expanded);
    appendAlertJson(alert, false, v.json_plain);
  });
  slot.versions.push_back(std::move(v));
}

void World::addSlot(Alert alert) {
  Slot slot;
  slot.alert = std::move(alert);
  slot.order_key = fnv1a(slot.alert.id);
  const std::size_t index = slots_.size();
  by_id_.emplace(slot.alert.id, index);
  slots_.push_back(std::move(slot));
  by_partition_[partitionOf(index)].push_back(index);
  addVersion(index);
  addToIncident(index);
  if (slots_.back().alert.status != Status::kResolved) open_.push_back(index);
}

void World::advanceTo(Timestamp now) {
  if (now <= now_) return;
  for (;;) {
    const Timestamp new_at = next_new_ ? next_new_->alert_creation_time : kNever;
    const Timestamp at = std::min(new_at, next_update_);
    if (at > now) break;
    if (at == new_at) {
      addSlot(std::move(*next_new_));
      next_new_ = generator_.next();
    } else {
      if (!open_.empty()) {
        const std::size_t pick = static_cast<std::size_t>(rng_.below(open_.size()));
        const std::size_t index = open_[pick];
        // The current version may stay the visible one after this change (a late new
        // version), and slot.alert is about to change: its Graph form is rendered now.
        renderGraph(slots_[index]);
        if (generator_.advance(slots_[index].alert, at)) addVersion(index);
        if (slots_[index].alert.status == Status::kResolved) {
          open_[pick] = open_.back();
          open_.pop_back();
        }
      }
      next_update_ = at + drawGap(rng_, update_gap_mean_);
    }
  }
  now_ = now;
}

World::Version* World::visibleVersion(Slot& slot) {
  // Versions are in creation order and become visible in that order.
  Version* found = nullptr;
  std::size_t index = 0;
  for (std::size_t i = 0; i < slot.versions.size(); ++i) {
    if (slot.versions[i].visible_since > now_) break;
    found = &slot.versions[i];
    index = i;
  }
  // Older versions can never be served again: their bodies are not needed any more.
  for (std::size_t i = 0; found != nullptr && i < index; ++i) {
    if (!slot.versions[i].json_expanded.empty()) {
      std::string().swap(slot.versions[i].json_expanded);
      std::string().swap(slot.versions[i].json_plain);
    }
    if (!slot.versions[i].graph_json.empty()) {
      std::string().swap(slot.versions[i].graph_json);
      std::string().swap(slot.versions[i].graph_json_legacy);
    }
  }
  return found;
}

const World::Version* World::visibleVersion(const Slot& slot) const {
  const Version* found = nullptr;
  for (const auto& v : slot.versions) {
    if (v.visible_since > now_) break;
    found = &v;
  }
  return found;
}

template <typename Keep>
std::vector<std::pair<std::size_t, World::Version*>> World::matching(
    Keep keep, std::optional<TimeField> order_by, bool descending, OrderMode mode,
    std::optional<std::size_t> partition) {
  struct Candidate {
    Timestamp key;
    std::uint64_t arbitrary;
    std::size_t slot;
    Version* version;
  };
  std::vector<Candidate> candidates;
  auto consider = [&](std::size_t i) {
    Version* v = visibleVersion(slots_[i]);
    if (v == nullptr || !keep(*v)) return;
    const Timestamp key =
        order_by == TimeField::kAlertCreationTime ? v->created : v->last_update_time;
    candidates.push_back({key, slots_[i].order_key, i, v});
  };
  if (partition) {
    if (*partition < by_partition_.size()) {
      for (std::size_t i : by_partition_[*partition]) consider(i);
    }
  } else {
    for (std::size_t i = 0; i < slots_.size(); ++i) consider(i);
  }
  const bool honour = mode == OrderMode::kHonour && order_by.has_value();
  if (honour) {
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
      if (a.key != b.key) return descending ? a.key > b.key : a.key < b.key;
      return slots_[a.slot].alert.id < slots_[b.slot].alert.id;
    });
  } else {
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
      if (a.arbitrary != b.arbitrary) return a.arbitrary < b.arbitrary;
      return slots_[a.slot].alert.id < slots_[b.slot].alert.id;
    });
  }
  std::vector<std::pair<std::size_t, Version*>> out;
  out.reserve(candidates.size());
  for (const Candidate& c : candidates) out.emplace_back(c.slot, c.version);
  return out;
}

QueryPage World::query(const AlertQuery& q, OrderMode mode, bool mark_served,
                       std::optional<std::size_t> partition) {
  const auto candidates = matching(
      [&q](const Version& v) {
        if (!matchesTimes(q, toInstant(v.last_update_time), toInstant(v.created))) return false;
        if (q.status && *q.status != v.status) return false;
        if (q.severity && *q.severity != v.severity) return false;
        return true;
      },
      q.order_by, q.descending, mode, partition);
  QueryPage page;
  page.matched = candidates.size();
  page.value_json.push_back('[');
  const std::size_t begin = std::min(q.skip, candidates.size());
  const std::size_t end = std::min(candidates.size(), begin + std::min(q.top, candidates.size()));
  std::size_t bytes = 2;
  for (std::size_t i = begin; i < end; ++i) {
    bytes +=
        (q.expand_evidence ? candidates[i].second->json_expanded : candidates[i].second->json_plain)
            .size() +
        1;
  }
  page.value_json.reserve(bytes);
  for (std::size_t i = begin; i < end; ++i) {
    Version* v = candidates[i].second;
    if (i != begin) page.value_json.push_back(',');
    page.value_json.append(q.expand_evidence ? v->json_expanded : v->json_plain);
    if (mark_served) markServed(*v);
    ++page.count;
  }
  page.value_json.push_back(']');
  return page;
}

void World::renderGraph(Slot& slot) {
  Version& v = slot.versions.back();
  if (v.graph_rendered) return;
  v.graph_rendered = true;
  renderWithTime(slot.alert, v.last_update_time, [&v](const Alert& alert) {
    appendGraphAlertJson(alert, true, v.graph_json);
    v.graph_differs = hasNewerGraphMembers(alert);
    if (v.graph_differs) appendGraphAlertJson(alert, false, v.graph_json_legacy);
  });
}

const std::string& World::graphJson(Slot& slot, Version& version,
                                    bool include_unknown_enum_members) {
  if (!version.graph_rendered) {
    // Only the newest version can still be unrendered: renderGraph runs before an alert
    // changes (advanceTo).
    if (&version != &slot.versions.back()) std::abort();
    renderGraph(slot);
  }
  return include_unknown_enum_members || !version.graph_differs ? version.graph_json
                                                                : version.graph_json_legacy;
}

QueryPage World::queryGraph(const GraphQuery& q, OrderMode mode, bool include_unknown_enum_members,
                            bool mark_served, std::optional<std::size_t> partition) {
  const auto candidates = matching(
      [&q](const Version& v) {
        GraphFilterFields f;
        f.last_update_date_time = toInstant(v.last_update_time);
        f.created_date_time = toInstant(v.created);
        f.status = v.graph_status;
        f.severity = v.graph_severity;
        f.service_source = kGraphServiceSource;
        f.classification = v.graph_classification;
        if (v.graph_determination) f.determination = *v.graph_determination;
        if (v.assigned_to) f.assigned_to = *v.assigned_to;
        return matchesGraphFilter(q.filter, f);
      },
      q.order_by, q.descending, mode, partition);
  QueryPage page;
  page.matched = candidates.size();
  const std::size_t begin = std::min(q.skip, candidates.size());
  const std::size_t end = std::min(candidates.size(), begin + std::min(q.top, candidates.size()));
  std::size_t bytes = 2;
  for (std::size_t i = begin; i < end; ++i) {
    auto [slot, v] = candidates[i];
    bytes += graphJson(slots_[slot], *v, include_unknown_enum_members).size() + 1;
  }
  page.value_json.reserve(bytes);
  page.value_json.push_back('[');
  for (std::size_t i = begin; i < end; ++i) {
    auto [slot, v] = candidates[i];
    if (i != begin) page.value_json.push_back(',');
    page.value_json.append(graphJson(slots_[slot], *v, include_unknown_enum_members));
    if (mark_served) markServed(*v);
    ++page.count;
  }
  page.value_json.push_back(']');
  return page;
}

std::optional<std::string> World::alertGraphJson(std::string_view id,
                                                 bool include_unknown_enum_members,
                                                 bool mark_served,
                                                 std::optional<std::size_t> partition) {
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  if (partition && partitionOf(it->second) != *partition) return std::nullopt;
  Slot& slot = slots_[it->second];
  Version* v = visibleVersion(slot);
  if (v == nullptr) return std::nullopt;
  if (mark_served) markServed(*v);
  return graphJson(slot, *v, include_unknown_enum_members);
}

std::optional<std::string> World::alertJson(std::string_view id, bool expand_evidence,
                                            bool mark_served,
                                            std::optional<std::size_t> partition) {
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  if (partition && partitionOf(it->second) != *partition) return std::nullopt;
  Version* v = visibleVersion(slots_[it->second]);
  if (v == nullptr) return std::nullopt;
  if (mark_served) markServed(*v);
  return expand_evidence ? v->json_expanded : v->json_plain;
}

std::vector<VersionInfo> World::versions() const {
  std::vector<VersionInfo> out;
  for (std::size_t index = 0; index < slots_.size(); ++index) {
    const Slot& slot = slots_[index];
    const Version* visible = visibleVersion(slot);
    for (const Version& v : slot.versions) {
      if (v.visible_since > now_) break;
      VersionInfo info;
      info.id = slot.alert.id;
      info.last_update_time = v.last_update_time;
      info.evidence = v.evidence;
      info.visible_since = v.visible_since;
      info.latest = &v == visible;
      info.served = v.served;
      info.future = v.future;
      info.partition = partitionOf(index);
      out.push_back(std::move(info));
    }
  }
  // Versions of one alert can share visible_since (a version held back behind a late one):
  // they stay oldest first (as listed: a future stamp can make an older one's time later).
  std::stable_sort(out.begin(), out.end(), [](const VersionInfo& a, const VersionInfo& b) {
    if (a.visible_since != b.visible_since) return a.visible_since < b.visible_since;
    return a.id < b.id;
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// Incidents: the alerts grouped by incidentId (world.h)

namespace {

int severityRank(std::string_view severity) {
  if (severity == "informational") return 1;
  if (severity == "low") return 2;
  if (severity == "medium") return 3;
  if (severity == "high") return 4;
  return 0;  // unknown
}

// An alert determination (Graph's alert spelling) as an incident determination.
std::string incidentDetermination(std::string_view alert_determination) {
  if (isGraphEnumMember(GraphEnum::kIncidentDetermination, alert_determination)) {
    return std::string(alert_determination);
  }
  if (alert_determination == "compromisedAccount") return "compromisedUser";
  if (alert_determination == "notMalicious") return "clean";
  if (alert_determination == "notEnoughDataToValidate") return "insufficientData";
  return "other";
}

void appendIncidentTime(Timestamp t, std::string& out) {
  out.push_back('"');
  out += core::formatRfc3339(toInstant(t), 7);
  out.push_back('"');
}

}  // namespace

void World::addToIncident(std::size_t slot_index) {
  const std::int64_t id = slots_[slot_index].alert.incident_id;
  auto [it, added] = incident_by_id_.emplace(id, incidents_.size());
  if (added) {
    Incident incident;
    incident.id = id;
    incident.id_text = std::to_string(id);
    incident.order_key = mix64(fnv1a(incident.id_text) ^ 0x1d1c1de47ULL);
    incidents_.push_back(std::move(incident));
  }
  incidents_[it->second].slots.push_back(slot_index);
}

World::IncidentState World::incidentState(Incident& incident) {
  IncidentState st;
  std::size_t resolved = 0;
  bool in_progress = false;
  int severity = -1;
  std::optional<std::string_view> classification;
  std::optional<std::string_view> determination;
  for (std::size_t index : incident.slots) {
    const Version* v = visibleVersion(slots_[index]);
    if (v == nullptr) continue;
    if (st.alerts == 0 || v->visible_since > st.last_update) st.last_update = v->visible_since;
    if (st.alerts == 0 || v->created < st.created) st.created = v->created;
    ++st.alerts;
    if (v->graph_status == "resolved") ++resolved;
    if (v->graph_status == "inProgress") in_progress = true;
    if (severityRank(v->graph_severity) > severity) {
      severity = severityRank(v->graph_severity);
      st.severity = v->graph_severity;
    }
    if (v->assigned_to) st.assigned_to = *v->assigned_to;
    if (!classification && v->graph_classification) classification = v->graph_classification;
    if (!determination && v->graph_determination) determination = *v->graph_determination;
  }
  if (st.alerts == 0) return st;
  if (resolved == st.alerts) {
    st.status = "resolved";
    st.classification = classification.value_or("unknown");
    st.determination = determination ? incidentDetermination(*determination) : "unknown";
  } else {
    st.status =
        in_progress ? (incident.order_key % 4 == 0 ? "awaitingAction" : "inProgress") : "active";
    st.classification = "unknown";
    st.determination = "unknown";
  }
  return st;
}

void World::markIncidentServed(Incident& incident, Timestamp last_update) {
  if (std::find(incident.served.begin(), incident.served.end(), last_update) ==
      incident.served.end()) {
    incident.served.push_back(last_update);
  }
}

void World::appendIncidentJson(Incident& incident, const IncidentState& st, bool expand_alerts,
                               bool include_unknown_enum_members, bool mark_served,
                               std::string& out) {
  const Alert* first = nullptr;
  std::vector<std::string_view> categories;
  bool one_machine = true;
  for (std::size_t index : incident.slots) {
    if (visibleVersion(slots_[index]) == nullptr) continue;
    const Alert& a = slots_[index].alert;
    if (first == nullptr) first = &a;
    if (a.category && categories.size() < 2 &&
        std::find(categories.begin(), categories.end(), *a.category) == categories.end()) {
      categories.emplace_back(*a.category);
    }
    if (a.machine_id != first->machine_id) one_machine = false;
  }
  out += "{\"id\":";
  core::appendString(out, incident.id_text);
  out += ",\"tenantId\":";
  if (first != nullptr && first->aad_tenant_id) {
    core::appendString(out, *first->aad_tenant_id);
  } else {
    out += "null";
  }
  out += ",\"status\":";
  core::appendString(
      out, graphEnumValue(GraphEnum::kIncidentStatus, st.status, include_unknown_enum_members));
  std::string url = "https://security.microsoft.com/incidents/" + incident.id_text;
  if (first != nullptr && first->aad_tenant_id) url += "?tid=" + *first->aad_tenant_id;
  out += ",\"incidentWebUrl\":";
  core::appendString(out, url);
  out += ",\"redirectIncidentId\":null,\"displayName\":";
  std::string name;
  if (st.alerts == 1 && first != nullptr && first->title) {
    name = *first->title;
  } else {
    name = "Multi-stage incident involving ";
    for (std::size_t i = 0; i < categories.size(); ++i) {
      name += (i == 0 ? "" : " & ") + std::string(categories[i]);
    }
    if (categories.empty()) name += "multiple alerts";
    name += one_machine ? " on one endpoint" : " on multiple endpoints";
  }
  core::appendString(out, name);
  out += ",\"createdDateTime\":";
  appendIncidentTime(st.created, out);
  out += ",\"lastUpdateDateTime\":";
  appendIncidentTime(st.last_update, out);
  out += ",\"assignedTo\":";
  if (st.assigned_to) {
    core::appendString(out, *st.assigned_to);
  } else {
    out += "null";
  }
  out += ",\"classification\":";
  core::appendString(out, st.classification);
  out += ",\"determination\":";
  core::appendString(out, st.determination);
  out += ",\"severity\":";
  core::appendString(out, st.severity);
  out += ",\"customTags\":[],\"systemTags\":[],\"description\":\"\",\"comments\":[]";
  if (expand_alerts) {
    out += ",\"alerts\":[";
    bool first_alert = true;
    for (std::size_t index : incident.slots) {
      Slot& slot = slots_[index];
      Version* v = visibleVersion(slot);
      if (v == nullptr) continue;
      if (!first_alert) out.push_back(',');
      first_alert = false;
      out += graphJson(slot, *v, include_unknown_enum_members);
      if (mark_served) markServed(*v);
    }
    out.push_back(']');
  }
  out.push_back('}');
  if (mark_served) markIncidentServed(incident, st.last_update);
}

QueryPage World::queryIncidents(const GraphQuery& q, OrderMode mode,
                                bool include_unknown_enum_members, bool mark_served,
                                std::size_t expand_fail_above) {
  struct Candidate {
    Timestamp key;
    std::size_t incident;
    IncidentState state;
  };
  std::vector<Candidate> candidates;
  for (std::size_t i = 0; i < incidents_.size(); ++i) {
    IncidentState st = incidentState(incidents_[i]);
    if (st.alerts == 0) continue;
    GraphFilterFields f;
    f.last_update_date_time = toInstant(st.last_update);
    f.created_date_time = toInstant(st.created);
    f.status = st.status;
    f.severity = st.severity;
    f.classification = st.classification;
    f.determination = st.determination;
    f.assigned_to = st.assigned_to;
    if (!matchesGraphFilter(q.filter, f)) continue;
    const Timestamp key = q.order_by == TimeField::kAlertCreationTime ? st.created : st.last_update;
    candidates.push_back({key, i, std::move(st)});
  }
  if (mode == OrderMode::kHonour && q.order_by) {
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
      if (a.key != b.key) return q.descending ? a.key > b.key : a.key < b.key;
      return incidents_[a.incident].id < incidents_[b.incident].id;
    });
  } else {
    std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
      const Incident& x = incidents_[a.incident];
      const Incident& y = incidents_[b.incident];
      if (x.order_key != y.order_key) return x.order_key < y.order_key;
      return x.id < y.id;
    });
  }
  QueryPage page;
  page.matched = candidates.size();
  const std::size_t begin = std::min(q.skip, candidates.size());
  const std::size_t end = std::min(candidates.size(), begin + std::min(q.top, candidates.size()));
  if (q.expand_alerts && expand_fail_above > 0) {
    for (std::size_t i = begin; i < end; ++i) {
      if (candidates[i].state.alerts > expand_fail_above) {
        page.refused = true;
        return page;
      }
    }
  }
  page.value_json.push_back('[');
  for (std::size_t i = begin; i < end; ++i) {
    if (i != begin) page.value_json.push_back(',');
    appendIncidentJson(incidents_[candidates[i].incident], candidates[i].state, q.expand_alerts,
                       include_unknown_enum_members, mark_served, page.value_json);
    ++page.count;
  }
  page.value_json.push_back(']');
  return page;
}

std::optional<std::string> World::incidentGraphJson(std::string_view id, bool expand_alerts,
                                                    bool include_unknown_enum_members,
                                                    bool mark_served) {
  // Numeric text only, as Graph's ids are: "0012" or "+12" name no incident.
  if (id.empty() || id.size() > 18 || id.front() == '0') return std::nullopt;
  std::int64_t n = 0;
  for (char c : id) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  auto it = incident_by_id_.find(n);
  if (it == incident_by_id_.end()) return std::nullopt;
  Incident& incident = incidents_[it->second];
  const IncidentState st = incidentState(incident);
  if (st.alerts == 0) return std::nullopt;
  std::string out;
  appendIncidentJson(incident, st, expand_alerts, include_unknown_enum_members, mark_served, out);
  return out;
}

std::vector<IncidentVersionInfo> World::incidentVersions() const {
  std::vector<IncidentVersionInfo> out;
  std::vector<Timestamp> times;
  std::vector<Timestamp> firsts;  // when each alert became visible
  for (const Incident& incident : incidents_) {
    times.clear();
    firsts.clear();
    for (std::size_t index : incident.slots) {
      const Slot& slot = slots_[index];
      for (const Version& v : slot.versions) {
        if (v.visible_since > now_) break;
        if (&v == &slot.versions.front()) firsts.push_back(v.visible_since);
        times.push_back(v.visible_since);
      }
    }
    if (times.empty()) continue;
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());
    std::sort(firsts.begin(), firsts.end());
    for (const Timestamp t : times) {
      IncidentVersionInfo info;
      info.id = incident.id_text;
      info.last_update_time = t;
      info.alerts = static_cast<std::size_t>(std::upper_bound(firsts.begin(), firsts.end(), t) -
                                             firsts.begin());
      info.latest = t == times.back();
      info.served =
          std::find(incident.served.begin(), incident.served.end(), t) != incident.served.end();
      out.push_back(std::move(info));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const IncidentVersionInfo& a, const IncidentVersionInfo& b) {
                     return a.last_update_time < b.last_update_time;
                   });
  return out;
}

}  // namespace mdec::emulator
