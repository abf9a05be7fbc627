// Runs a real process for integration tests: argv, optional stdin text, captured stdout
// and stderr, exit code; bounded by a timeout after which the child is killed.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace mdec::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
};

ProcessResult runProcess(const std::vector<std::string>& argv, const std::string& input = {},
                         std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace mdec::testing
