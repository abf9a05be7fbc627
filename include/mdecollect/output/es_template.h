// The Elasticsearch index template for the documents this project writes (outputs.md):
// data streams logs-microsoft_defender_endpoint.log-*, with explicit mappings for every field
// the mapper emits. The mappings are generated at build time (tools/gen_es_template.py) from
// the ECS 8.11 field definitions (share/ecs/ecs-8.11.0-flat.yml) and the list of emitted
// fields (share/ecs/emitted-fields.txt); the build fails when a listed field has no type.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mdec::output {

inline constexpr std::string_view kIndexTemplateName = "mdecollect-microsoft_defender_endpoint.log";
inline constexpr std::string_view kIndexPattern = "logs-microsoft_defender_endpoint.log-*";
// Above the built-in logs-*-* template (100) and the Elastic integration's (200).
inline constexpr int kIndexTemplatePriority = 250;

// The template's version, stored in _meta.version: a hash of everything the template holds
// apart from the options (mappings, settings shape, patterns, priority), so it changes
// whenever the generated mappings or the template's shape change. Compare it for equality
// only: it is positive but not ordered.
int indexTemplateVersion();

struct IndexTemplateOptions {
  std::string ilm_policy;  // empty: no ILM policy
};

// The body for PUT /_index_template/<kIndexTemplateName>: index_patterns, data_stream {},
// priority, composed_of [], template.settings (index.lifecycle.name when ilm_policy is set,
// nothing else), template.mappings, _meta {managed_by: "mdecollect", version}.
std::string indexTemplateJson(const IndexTemplateOptions& options);

// The Elasticsearch type the template gives `field` (flattened name, multi-fields such as
// "url.full.text" included), or empty when the template does not map it.
std::string_view mappedType(std::string_view field);

// Every field in the template (multi-fields included), flattened, sorted.
std::vector<std::string_view> mappedFields();

}  // namespace mdec::output
