// The Elasticsearch index templates for the documents this project writes (outputs.md), one
// per data stream family, each with explicit mappings for every field its documents carry:
// - mdecollect-microsoft_defender_endpoint.log for logs-microsoft_defender_endpoint.log-*
//   (the mde, file and graph sources), generated from the ECS 8.11 field definitions
//   (share/ecs/ecs-8.11.0-flat.yml) and the list of emitted fields
//   (share/ecs/emitted-fields.txt);
// - mdecollect-m365_defender.incident for logs-m365_defender.incident-* (the graph_incidents
//   source, incidents.md), generated from Elastic's own m365_defender incident field
//   definitions (share/elastic/m365_defender_incident/fields), ECS 8.11 and
//   share/ecs/incident-emitted-fields.txt.
// The mappings are generated at build time (tools/gen_es_template.py); the build fails when a
// listed field has no type.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mdec::output {

enum class IndexTemplateId { kEndpoint, kIncident };

struct IndexTemplateSpec {
  IndexTemplateId id;
  std::string_view name;     // PUT /_index_template/<name>
  std::string_view pattern;  // its one index pattern
  std::string_view dataset;  // data_stream.dataset of the documents it is for
  // Above the built-in logs-*-* template (100) and the Elastic integration's (200), so these
  // settings and mappings, not Fleet's, apply to the data streams.
  int priority;
};

inline constexpr IndexTemplateSpec kEndpointTemplate{
    IndexTemplateId::kEndpoint, "mdecollect-microsoft_defender_endpoint.log",
    "logs-microsoft_defender_endpoint.log-*", "microsoft_defender_endpoint.log", 250};
inline constexpr IndexTemplateSpec kIncidentTemplate{
    IndexTemplateId::kIncident, "mdecollect-m365_defender.incident",
    "logs-m365_defender.incident-*", "m365_defender.incident", 250};

// Every template, in the order `mdecollect setup` installs them.
std::span<const IndexTemplateSpec> indexTemplates();
const IndexTemplateSpec& indexTemplate(IndexTemplateId id);

// The endpoint template's, kept for the callers that know only that one.
inline constexpr std::string_view kIndexTemplateName = kEndpointTemplate.name;
inline constexpr std::string_view kIndexPattern = kEndpointTemplate.pattern;
inline constexpr int kIndexTemplatePriority = kEndpointTemplate.priority;

// index.default_pipeline in every template's settings: Elasticsearch's value for "no default
// ingest pipeline". The documents are already in their final shape; they must never pass
// through the Elastic integration's ingest pipeline, even when its assets are installed
// (Fleet's templates name it; ours, of higher priority, replace their settings).
inline constexpr std::string_view kDefaultPipeline = "_none";

// The template's version, stored in _meta.version: a hash of everything the template holds
// apart from the options (mappings, settings shape, patterns, priority), so it changes
// whenever the generated mappings or the template's shape change. Compare it for equality
// only: it is positive but not ordered. `spec` is one of indexTemplates().
int indexTemplateVersion(const IndexTemplateSpec& spec);
int indexTemplateVersion();  // the endpoint template's

struct IndexTemplateOptions {
  std::string ilm_policy;  // empty: no ILM policy
};

// The body for PUT /_index_template/<spec.name>: index_patterns, data_stream {}, priority,
// composed_of [], template.settings (index.default_pipeline "_none", and index.lifecycle.name
// when ilm_policy is set; nothing else), template.mappings, _meta {managed_by: "mdecollect",
// version}.
std::string indexTemplateJson(const IndexTemplateSpec& spec, const IndexTemplateOptions& options);
std::string indexTemplateJson(const IndexTemplateOptions& options);  // the endpoint template's

// The Elasticsearch type the template gives `field` (flattened name, multi-fields such as
// "url.full.text" included), or empty when the template does not map it. A key below a
// `flattened` field ("m365_defender.incident.comments.createdBy") is "flattened": that field
// indexes it.
std::string_view mappedType(const IndexTemplateSpec& spec, std::string_view field);
std::string_view mappedType(std::string_view field);  // in the endpoint template

// Every field in the template (multi-fields included), flattened, sorted.
std::vector<std::string_view> mappedFields(const IndexTemplateSpec& spec);
std::vector<std::string_view> mappedFields();  // of the endpoint template

}  // namespace mdec::output
