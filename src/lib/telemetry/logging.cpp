#include "mdecollect/telemetry/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "ecs/json_writer.h"

namespace mdec::telemetry {
namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using std::chrono::duration_cast;
    const auto since = msg.time.time_since_epoch();
    const auto secs = duration_cast<std::chrono::seconds>(since);
    const auto millis = duration_cast<std::chrono::milliseconds>(since - secs).count();
    const std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[40];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis));
    line_.clear();
    line_ += R"({"@timestamp":")";
    line_ += stamp;
    line_ += R"(","log.level":)";
    const auto level = spdlog::level::to_string_view(msg.level);
    ecs::appendString(line_, std::string_view(level.data(), level.size()));
    line_ += R"(,"log.logger":)";
    ecs::appendString(line_, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line_ += R"(,"message":")";
    ecs::appendEscapedLossy(line_, std::string_view(msg.payload.data(), msg.payload.size()));
    line_ += "\"}\n";
    dest.append(line_.data(), line_.data() + line_.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  std::string line_;
};

// Counts, rate-limits and scrubs, then hands the message to `inner`.
class GuardSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  GuardSink(std::shared_ptr<spdlog::sinks::sink> inner, LoggingOptions options)
      : inner_(std::move(inner)), options_(std::move(options)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text(msg.payload.data(), msg.payload.size());
    for (const auto& secret : options_.secrets) {
      if (secret.size() < 4) continue;  // too short to tell from ordinary text
      for (auto at = text.find(secret); at != std::string::npos;
           at = text.find(secret, at + 3)) {
        text.replace(at, secret.size(), "***");
      }
    }
    if (msg.level >= spdlog::level::warn) {
      if (options_.metrics != nullptr) {
        options_.metrics->logMessage(msg.level >= spdlog::level::err ? "error" : "warning");
      }
      // Numbers (counts, milliseconds, ids) do not make a message new.
      std::string key(msg.logger_name.data(), msg.logger_name.size());
      key += '\x1f';
      for (char c : text) {
        if (c >= '0' && c <= '9') {
          if (key.back() != '#') key += '#';
        } else {
          key += c;
        }
      }
      auto it = repeats_.find(key);
      if (it != repeats_.end() && msg.time - it->second.since < options_.repeat_window) {
        ++it->second.held;
        return;
      }
      std::uint64_t held = 0;
      if (it != repeats_.end()) {
        held = it->second.held;
        it->second = Repeat{msg.time, 0};
      } else {
        if (repeats_.size() >= 512) repeats_.clear();  // bounded memory
        repeats_.emplace(std::move(key), Repeat{msg.time, 0});
      }
      if (held > 0) {
        text += " (" + std::to_string(held) + " more like this in the last " +
                std::to_string(options_.repeat_window.count()) + " s not shown)";
      }
    }
    spdlog::details::log_msg out = msg;
    out.payload = spdlog::string_view_t(text.data(), text.size());
    inner_->log(out);
  }
  void flush_() override { inner_->flush(); }

 private:
  struct Repeat {
    spdlog::log_clock::time_point since;
    std::uint64_t held = 0;
  };
  std::shared_ptr<spdlog::sinks::sink> inner_;
  LoggingOptions options_;
  std::map<std::string, Repeat> repeats_;
};

}  // namespace

std::unique_ptr<spdlog::formatter> makeJsonFormatter() { return std::make_unique<JsonFormatter>(); }

std::shared_ptr<spdlog::sinks::sink> makeGuardSink(std::shared_ptr<spdlog::sinks::sink> inner,
                                                   LoggingOptions options) {
  return std::make_shared<GuardSink>(std::move(inner), std::move(options));
}

void setupLogging(const config::LoggingConfig& logging, LoggingOptions options) {
  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (logging.format == "json") {
    stderr_sink->set_formatter(makeJsonFormatter());
  } else {
    stderr_sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>(
      "mdecollect", makeGuardSink(std::move(stderr_sink), std::move(options)));
  logger->set_level(spdlog::level::from_str(logging.level));
  spdlog::set_default_logger(logger);
}

}  // namespace mdec::telemetry
