// The process's logging: spdlog on stderr, text (default) or JSON lines, at the configured
// level. Every warning and error is counted (mdecollect_log_messages_total); a warning or
// error that repeats (the same logger and text, numbers aside) is written at most once a
// minute, the next line saying how many were held back; any known secret value that
// found its way into a message is replaced by *** before it is written; and in the text
// format, control characters are escaped (one message, one line).
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
  Metrics* metrics = nullptr;              // where warnings and errors are counted
  std::vector<std::string> secrets;        // never written (replaced by ***)
  std::chrono::seconds repeat_window{60};  // a repeated warning/error at most once per window
};

// Installs the default logger ("mdecollect"); components clone it ("source.NAME", ...).
void setupLogging(const config::LoggingConfig& logging, LoggingOptions options = {});

// The sink setupLogging puts in front of `inner`, for tests.
std::shared_ptr<spdlog::sinks::sink> makeGuardSink(std::shared_ptr<spdlog::sinks::sink> inner,
                                                   LoggingOptions options);

// The JSON-lines formatter: {"@timestamp":…,"log.level":…,"log.logger":…,"message":…}.
std::unique_ptr<spdlog::formatter> makeJsonFormatter();

// The text formatter: spdlog `pattern` (UTC), one line per message whatever it holds:
// \n, \r and \t are written as those two characters, other control characters (C0, DEL,
// C1) and bytes that are not UTF-8 as \xHH or \u00HH, so a message with text from the
// network (an API's error body) can neither forge a log line nor send a terminal escape.
inline constexpr const char* kTextLogPattern = "%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v";
std::unique_ptr<spdlog::formatter> makeTextFormatter(const std::string& pattern = kTextLogPattern);

}  // namespace mdec::telemetry
