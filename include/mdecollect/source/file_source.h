// The `file` source: NDJSON files matching globs, tailed. New complete lines are mapped
// and committed with the new read position in one transaction; a restart resumes there
// (no line is emitted twice); rotation (a new inode at the path) and truncation (the file
// shrank below the position) start that path again from the beginning.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "mdecollect/config/config.h"
#include "mdecollect/core/result.h"
#include "mdecollect/output/delivery.h"
#include "mdecollect/state/state_store.h"

namespace mdec::source {

struct FilePollStats {
  std::uint64_t files = 0;
  std::uint64_t lines = 0;
  std::uint64_t documents = 0;
  std::uint64_t errors = 0;  // error documents
};

class FileSource {
 public:
  virtual ~FileSource() = default;
  // Reads what is new in every matching file, commits it; returns what it did.
  virtual Result<FilePollStats> poll() = 0;
};

// Commits through `delivery` (its direct outputs and the outbox).
std::unique_ptr<FileSource> makeFileSource(const config::SourceConfig& config,
                                           output::Delivery& delivery);
// Commits into the store's outbox only.
std::unique_ptr<FileSource> makeFileSource(const config::SourceConfig& config,
                                           state::StateStore& store);

}  // namespace mdec::source
