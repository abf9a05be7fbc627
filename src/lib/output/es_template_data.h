// What tools/gen_es_template.py generates (build/.../generated/es_template_data.cpp) from the
// ECS field definitions and share/ecs/emitted-fields.txt. Only es_template.cpp reads it.
#pragma once

#include <array>
#include <span>
#include <string_view>

namespace mdec::output::generated {

struct MappedField {
  std::string_view field;  // flattened name ("event.original", "url.full.text")
  std::string_view type;   // Elasticsearch type ("keyword", "date", ...)
};

// The index template's template.mappings: compact JSON, keys sorted.
extern const std::string_view kMappingsJson;
// Every field of the mappings, multi-fields included, sorted by field.
extern const std::span<const MappedField> kMappedFields;

}  // namespace mdec::output::generated
