// Moving sources between state directories (`mdecollect state export | import | forget`):
// when shard.count changes, a source that changes replica takes its state with it, so its
// new owner goes on where the old one stopped: nothing collected twice, nothing skipped.
//
// The file is JSON, versioned:
//   {"format":"mdecollect-state","version":1,"sources":[{"source":NAME,
//     "watermark":T|null,"seen_since":T|null,"collected_since":T|null,
//     "seen":[[ALERT_ID,LAST_UPDATE_TIME],...],
//     "files":[{"path":P,"inode":N,"offset":N}],
//     "backfills":[{"since","until","position","state","slices","alerts","documents",
//                   "message","updated"}],
//     "pacing":TEXT|null}]}
// "pacing" is the source's pacing-<name>.txt (its recent requests, so the new owner keeps
// within the API's quota). The outbox is not moved: it belongs to the outputs, and the
// replica that holds documents delivers them.
//
// Every function here holds the state directory's run lock while it works: it refuses while
// a collector (or a backfill) runs on that state directory.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/state/state_store.h"

namespace mdec::state {

inline constexpr int kStateExportVersion = 1;

struct MovedSource {
  SourceState state;
  std::optional<std::string> pacing;  // the pacing file's content
};

std::string encodeStateExport(const std::vector<MovedSource>& sources);
// Refuses another format, a newer version, and malformed input (the message says where).
Result<std::vector<MovedSource>> decodeStateExport(std::string_view json);

struct ExportResult {
  std::string json;
  std::vector<std::string> exported;
  std::vector<std::string> without_state;  // named, but nothing kept about them here
};
Result<ExportResult> exportSources(const std::string& state_dir,
                                   const std::vector<std::string>& names);

struct ImportOptions {
  std::vector<std::string> only;  // empty: every source in the file
  bool force = false;             // replace what the state keeps about a source already
};
// All or nothing for the refusal: a source the state already keeps something about is
// refused (unless force) before anything is written. Returns the names imported.
Result<std::vector<std::string>> importSources(const std::string& state_dir, std::string_view json,
                                               const ImportOptions& options);

// Forgets the named sources (their state and pacing file); returns those there were.
Result<std::vector<std::string>> forgetSources(const std::string& state_dir,
                                               const std::vector<std::string>& names);

}  // namespace mdec::state
