// What a source's configuration asks of the mapper (every source type maps the same way).
#pragma once

#include "mdecollect/config/config.h"
#include "mdecollect/ecs/mapper.h"

namespace mdec::source {

inline ecs::MapOptions mapOptions(const config::SourceConfig& config) {
  ecs::MapOptions options;
  options.preserve_original_event = config.preserve_original_event;
  options.data_stream_namespace = config.data_stream_namespace;
  if (config.tags) options.tags = *config.tags;
  return options;
}

}  // namespace mdec::source
