// The process's logging: spdlog on stderr, text (default) or JSON lines, at the configured
// level. Every warning and error is counted (mdecollect_log_messages_total); a warning or
// error that repeats (the same logger and text, numbers aside) is written at most once a
// minute, the next line saying how many were held back; and any known secret value that
// found its way into a message is replaced by *** before it is written.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mdecollect/config/config.h"
#include "mdecollect/telemetry/metrics.h"

namespace spdlog {
class logger;
class formatter;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace mdec::telemetry {

struct LoggingOptions {
  Metrics* metrics = nullptr;             // where warnings and errors are counted
  std::vector<std::string> secrets;       // never written (replaced by ***)
  std::chrono::seconds repeat_window{60}; // a repeated warning/error at most once per window
};

// Installs the default logger ("mdecollect"); components clone it ("source.NAME", ...).
void setupLogging(const config::LoggingConfig& logging, LoggingOptions options = {});

// The sink setupLogging puts in front of `inner`, for tests.
std::shared_ptr<spdlog::sinks::sink> makeGuardSink(std::shared_ptr<spdlog::sinks::sink> inner,
                                                   LoggingOptions options);

// The JSON-lines formatter: {"@timestamp":…,"log.level":…,"log.logger":…,"message":…}.
std::unique_ptr<spdlog::formatter> makeJsonFormatter();

}  // namespace mdec::telemetry
