// What `mdecollect --version` reports after its first line: how the binary was built and the
// versions of the libraries it runs with.
#pragma once

#include <string>

namespace mdec::core {

// Lines "key: value" without a trailing newline: the build type (and sanitizers), the
// compiler, then libcurl and SQLite as loaded at run time, and simdjson, yaml-cpp, spdlog and
// fmt as compiled in.
std::string buildInfo();

}  // namespace mdec::core
