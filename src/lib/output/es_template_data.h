// What tools/gen_es_template.py generates (build/.../generated/es_template_data.cpp and
// es_template_incident_data.cpp), one namespace per index template. Only es_template.cpp
// reads it.
#pragma once

#include <array>
#include <span>
#include <string_view>

namespace mdec::output::generated {

struct MappedField {
  std::string_view field;  // flattened name ("event.original", "url.full.text")
  std::string_view type;   // Elasticsearch type ("keyword", "date", ...)
};

// logs-microsoft_defender_endpoint.log-*: from the ECS field definitions and
// share/ecs/emitted-fields.txt.
namespace endpoint {
// The index template's template.mappings: compact JSON, keys sorted.
extern const std::string_view kMappingsJson;
// Every field of the mappings, multi-fields included, sorted by field.
extern const std::span<const MappedField> kMappedFields;
}  // namespace endpoint

// logs-m365_defender.incident-*: from Elastic's m365_defender incident field definitions
// (share/elastic/m365_defender_incident/fields), the ECS field definitions and
// share/ecs/incident-emitted-fields.txt.
namespace incident {
extern const std::string_view kMappingsJson;
extern const std::span<const MappedField> kMappedFields;
}  // namespace incident

}  // namespace mdec::output::generated
