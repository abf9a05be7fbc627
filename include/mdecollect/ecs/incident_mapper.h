// The Graph security incident -> ECS mapper (spec: incidents.md §4, §5): the documents of
// Elastic's `m365_defender.incident` data stream. Pure: no I/O, no global state; one mapper
// per thread.
//
// An incident with alerts gives one document per alert, in order; an incident without
// alerts (absent, null or []) gives one. Malformed input never fails a call: it becomes an
// error document (event.kind: pipeline_error) that keeps the raw text.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/ecs/mapper.h"

namespace mdec::ecs {

struct IncidentMapOptions {
  bool preserve_original_event = false;
  bool preserve_duplicate_custom_fields = false;
  std::string data_stream_namespace = "default";
  std::vector<std::string> tags = {"forwarded", "m365_defender-incident"};
};

// Each DocumentView: `id` is Elastic's fingerprint (incidentFingerprint; error documents:
// elasticFingerprint of the raw text), `alert_id` and `last_update_time` the incident's raw
// `id` and `lastUpdateDateTime` (the incident version, the collector's seen-set key; empty
// when unknown), `evidence_index` the alert's place in the incident's "alerts" (0 without).
class IncidentMapper {
 public:
  explicit IncidentMapper(IncidentMapOptions options, TimestampFn now = systemTimestamp);
  ~IncidentMapper();
  IncidentMapper(const IncidentMapper&) = delete;
  IncidentMapper& operator=(const IncidentMapper&) = delete;

  // One NDJSON line: one incident object, or a page {"value":[incident,...], ...}. Blank
  // lines yield nothing. A line that is not JSON, an incident that is not an object, or a
  // page whose "value" is not an array gives one error document keeping the raw text.
  // LineStats::alerts counts the incident values met. Only `context.padded` is used (the
  // incident stream has no log.* fields).
  LineStats mapLine(std::string_view line, const LineContext& context, DocumentSink& sink);
  LineStats mapLine(std::string_view line, DocumentSink& sink) {
    return mapLine(line, LineContext{}, sink);
  }
  // One incident (a page element already delimited); at least kLinePadding readable bytes
  // follow it.
  LineStats mapElement(std::string_view element, DocumentSink& sink);
  // §5.3: the incident version delivered without its alerts (its "alerts" key, if any, is
  // ignored): exactly one document, no alert, error.message
  // ["alerts could not be fetched: <reason>"], event.kind stays "alert", _id = the no-alert
  // fingerprint. `element` needs no padding.
  LineStats mapWithoutAlerts(std::string_view element, std::string_view reason, DocumentSink& sink);

  const IncidentMapOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The raw strings Elastic's fingerprint processor reads for an incident document (§5.1).
// An empty optional is a value that is absent or null (it contributes nothing).
struct IncidentFingerprintInput {
  const std::string* alert_id = nullptr;
  const std::string* alert_last_update = nullptr;
  const std::string* created = nullptr;
  const std::string* id = nullptr;
  const std::string* web_url = nullptr;
  const std::string* last_update = nullptr;
};

// Elasticsearch's `fingerprint` processor with SHA-1 and no salt over `values` in order:
// Base64(SHA-1(for each value: 0x00 ‖ bytes)), 28 characters with padding.
std::string elasticFingerprint(const std::vector<std::string_view>& values);
// The document _id of an incident document: elasticFingerprint over the present values of
// A.id, A.lastUpdateDateTime, I.createdDateTime, I.id, I.incidentWebUrl,
// I.lastUpdateDateTime, in that order.
std::string incidentFingerprint(const IncidentFingerprintInput& input);

}  // namespace mdec::ecs
