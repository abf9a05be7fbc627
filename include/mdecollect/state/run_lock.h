// One collector per state directory: `mdecollect run` holds an exclusive lock on
// <state_dir>/run.lock (flock, released by the kernel when the process ends, however it
// ends). `mdecollect backfill` uses it to tell whether a collector is running.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "mdecollect/core/result.h"
#include "mdecollect/core/unique_fd.h"

namespace mdec::state {

class RunLock {
 public:
  // The lock, or nullopt when another process holds it; an error when the file cannot be
  // opened. The file records the holder's pid, for messages.
  static Result<std::optional<RunLock>> tryAcquire(const std::string& state_dir);
  // The pid recorded by the holder (0 when unknown).
  static long holder(const std::string& state_dir);

  // Movable, not copyable; the lock goes with the descriptor (the kernel releases the
  // flock when it is closed).

 private:
  explicit RunLock(core::UniqueFd fd) : fd_(std::move(fd)) {}
  core::UniqueFd fd_;
};

}  // namespace mdec::state
