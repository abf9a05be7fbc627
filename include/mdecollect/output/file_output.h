// The file output (outputs.md): NDJSON files <path>/microsoft_defender_endpoint-<YYYYMMDD>.ndjson
// (UTC date of writing), rotated by size, at most keep_files kept; a batch is acknowledged
// after fsync, in the transaction that records the file and the offset it ended at; on
// open, bytes past that offset (written but never acknowledged) are cut off. Exactly once.
// The stdout output writes the same lines to a file descriptor, acknowledged on write.
#pragma once

#include <functional>
#include <memory>

#include "mdecollect/config/config.h"
#include "mdecollect/output/output.h"

namespace mdec::output {

// `today` gives the UTC date as YYYYMMDD (injected for tests; default: the system clock).
std::unique_ptr<Output> makeFileOutput(const config::FileOutputConfig& config,
                                       std::function<std::string()> today = {});
std::unique_ptr<Output> makeFdOutput(int fd, std::string name = "stdout");

}  // namespace mdec::output
