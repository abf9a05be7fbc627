#include "mdecollect/core/build_info.h"

#include <curl/curl.h>
#include <fmt/core.h>
#include <spdlog/version.h>
#include <sqlite3.h>

// Set on this file alone by src/lib/CMakeLists.txt: the build type with its sanitizers, the
// compiler, and the simdjson and yaml-cpp versions from their CMake packages (simdjson.h is
// too heavy to include here for one macro; yaml-cpp's headers carry no version).
#ifndef MDEC_BUILD_TYPE
#define MDEC_BUILD_TYPE "unknown"
#endif
#ifndef MDEC_COMPILER
#define MDEC_COMPILER "unknown"
#endif
#ifndef MDEC_SIMDJSON_VERSION
#define MDEC_SIMDJSON_VERSION "unknown"
#endif
#ifndef MDEC_YAML_CPP_VERSION
#define MDEC_YAML_CPP_VERSION "unknown"
#endif

namespace mdec::core {

std::string buildInfo() {
  const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
  std::string curl_version = curl != nullptr && curl->version != nullptr ? curl->version : "?";
  if (curl != nullptr && curl->ssl_version != nullptr) {
    curl_version += fmt::format(" ({})", curl->ssl_version);
  }
  return fmt::format(
      "build: {}\n"
      "compiler: {}\n"
      "libcurl: {}\n"
      "sqlite: {}\n"
      "simdjson: {}\n"
      "yaml-cpp: {}\n"
      "spdlog: {}.{}.{}\n"
      "fmt: {}.{}.{}",
      MDEC_BUILD_TYPE, MDEC_COMPILER, curl_version, sqlite3_libversion(), MDEC_SIMDJSON_VERSION,
      MDEC_YAML_CPP_VERSION, SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH,
      FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
}

}  // namespace mdec::core
