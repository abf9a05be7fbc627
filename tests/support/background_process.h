// A real child process that runs beside the test: started with argv, its standard output
// readable line by line (with a deadline), stopped with a signal, always reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "mdecollect/core/unique_fd.h"

namespace mdec::testing {

class BackgroundProcess {
 public:
  // Starts argv[0] with the given arguments; stderr goes to `stderr_path` when not empty,
  // else it is discarded.
  BackgroundProcess(const std::vector<std::string>& argv, const std::string& stderr_path = {});
  ~BackgroundProcess();  // SIGKILL and reap if still running
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // The next line of standard output, or nullopt at EOF or when `timeout` passes.
  std::optional<std::string> readLine(std::chrono::milliseconds timeout);
  // Sends `sig`, waits up to `timeout` for the exit; returns the exit code (or -signal),
  // nullopt when it did not exit in time.
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout);
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  core::UniqueFd out_fd_;
  std::string buffer_;
  std::optional<int> exit_;
};

}  // namespace mdec::testing
