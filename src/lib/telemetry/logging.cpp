#include "mdecollect/telemetry/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>
#include <string_view>

#include "mdecollect/core/iso8601.h"
#include "mdecollect/core/json_writer.h"

namespace mdec::telemetry {
namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    line_.clear();
    line_ += R"({"@timestamp":")";
    line_ += core::formatRfc3339(core::toInstant(msg.time), 3);
    line_ += R"(","log.level":)";
    const auto level = spdlog::level::to_string_view(msg.level);
    core::appendString(line_, std::string_view(level.data(), level.size()));
    line_ += R"(,"log.logger":)";
    core::appendString(line_, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line_ += R"(,"message":")";
    core::appendEscapedLossy(line_, std::string_view(msg.payload.data(), msg.payload.size()));
    line_ += "\"}\n";
    dest.append(line_.data(), line_.data() + line_.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  std::string line_;
};

// Appends `line` with what could forge a log line or drive a terminal escaped: \n, \r
// and \t by name, other C0 controls and DEL as \xHH, the C1 controls (U+0080..U+009F)
// as \u00HH, and bytes that are not valid UTF-8 as \xHH. Everything else, backslashes
// included, is kept as it is (the text format is for people; the JSON format is exact).
void appendEscapedText(std::string& out, std::string_view line) {
  constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = 0;
  while (i < line.size()) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t n = core::utf8SequenceLength(line.substr(i));
      if (n == 2 && c == 0xc2 && static_cast<unsigned char>(line[i + 1]) < 0xa0) {
        const auto code = static_cast<unsigned char>(line[i + 1]);  // U+0080..U+009F
        out += "\\u00";
        out.push_back(kHex[code >> 4]);
        out.push_back(kHex[code & 0xf]);
        i += 2;
        continue;
      }
      if (n != 0) {
        out.append(line.substr(i, n));
        i += n;
        continue;
      }
    }
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
    ++i;
  }
}

// The text format: spdlog's pattern, then every control character in the line escaped (the
// message holds text from the network: an API's error body), so that a line in the log is
// one line the collector wrote.
class TextFormatter final : public spdlog::formatter {
 public:
  explicit TextFormatter(std::string pattern)
      : pattern_(std::move(pattern)),
        inner_(pattern_, spdlog::pattern_time_type::utc, std::string(kEol)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    formatted_.clear();
    inner_.format(msg, formatted_);
    std::string_view line(formatted_.data(), formatted_.size());
    if (line.size() >= kEol.size() && line.substr(line.size() - kEol.size()) == kEol) {
      line.remove_suffix(kEol.size());
    }
    escaped_.clear();
    appendEscapedText(escaped_, line);
    escaped_ += kEol;
    dest.append(escaped_.data(), escaped_.data() + escaped_.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>(pattern_);
  }

 private:
  static constexpr std::string_view kEol = "\n";
  std::string pattern_;
  spdlog::pattern_formatter inner_;
  spdlog::memory_buf_t formatted_;
  std::string escaped_;
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
      for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
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

std::unique_ptr<spdlog::formatter> makeTextFormatter(const std::string& pattern) {
  return std::make_unique<TextFormatter>(pattern);
}

std::shared_ptr<spdlog::sinks::sink> makeGuardSink(std::shared_ptr<spdlog::sinks::sink> inner,
                                                   LoggingOptions options) {
  return std::make_shared<GuardSink>(std::move(inner), std::move(options));
}

void setupLogging(const config::LoggingConfig& logging, LoggingOptions options) {
  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (logging.format == "json") {
    stderr_sink->set_formatter(makeJsonFormatter());
  } else {
    stderr_sink->set_formatter(makeTextFormatter());
  }
  auto logger = std::make_shared<spdlog::logger>(
      "mdecollect", makeGuardSink(std::move(stderr_sink), std::move(options)));
  logger->set_level(spdlog::level::from_str(logging.level));
  spdlog::set_default_logger(logger);
}

}  // namespace mdec::telemetry
