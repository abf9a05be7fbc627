// What a source's configuration asks of the mapper (every source type maps the same way).
#pragma once

#include "mdecollect/config/config.h"
#include "mdecollect/ecs/incident_mapper.h"
#include "mdecollect/ecs/mapper.h"

namespace mdec::source {

inline ecs::MapOptions mapOptions(const config::SourceConfig& config) {
  ecs::MapOptions options;
  options.preserve_original_event = config.preserve_original_event;
  options.data_stream_namespace = config.data_stream_namespace;
  if (config.tags) options.tags = *config.tags;
  return options;
}

// Graph incidents (incidents.md §2): the same options, and Elastic's
// preserve_duplicate_custom_fields.
inline ecs::IncidentMapOptions incidentMapOptions(const config::SourceConfig& config) {
  ecs::IncidentMapOptions options;
  options.preserve_original_event = config.preserve_original_event;
  options.preserve_duplicate_custom_fields = config.preserve_duplicate_custom_fields;
  options.data_stream_namespace = config.data_stream_namespace;
  options.tags = config.tags ? *config.tags : config::defaultTags(config);
  return options;
}

}  // namespace mdec::source
