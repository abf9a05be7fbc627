#include "mdecollect/telemetry/logging.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <string>
#include <vector>

namespace mdec::telemetry {
namespace {

std::vector<std::string> linesOf(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A logger writing through the guard sink into a string.
struct Captured {
  explicit Captured(LoggingOptions options, bool json = false) {
    auto inner = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    if (json) {
      inner->set_formatter(makeJsonFormatter());
    } else {
      inner->set_formatter(makeTextFormatter("%l %v"));
    }
    logger = std::make_shared<spdlog::logger>("test", makeGuardSink(inner, std::move(options)));
    logger->set_level(spdlog::level::debug);
  }
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
};

TEST(LoggingTest, WarningsAndErrorsAreCountedEvenWhenHeldBack) {
  Metrics metrics;
  LoggingOptions options;
  options.metrics = &metrics;
  Captured c(options);
  c.logger->info("fine");
  for (int i = 0; i < 5; ++i) c.logger->warn("throttled by the API: waiting {} ms", 1000 + i);
  c.logger->error("poll failed");
  EXPECT_EQ(metrics.logMessages("warning"), 5u);
  EXPECT_EQ(metrics.logMessages("error"), 1u);
  // The four repeats (numbers aside) within the window are held back.
  const auto lines = linesOf(c.out.str());
  ASSERT_EQ(lines.size(), 3u) << c.out.str();
  EXPECT_EQ(lines[0], "info fine");
  EXPECT_EQ(lines[1], "warning throttled by the API: waiting 1000 ms");
  EXPECT_EQ(lines[2], "error poll failed");
}

TEST(LoggingTest, ARepeatAfterTheWindowSaysHowManyWereHeldBack) {
  LoggingOptions options;
  options.repeat_window = std::chrono::seconds(0);  // every repeat is past the window
  Captured c(options);
  c.logger->warn("disk slow");
  c.logger->warn("disk slow");
  EXPECT_EQ(linesOf(c.out.str()).size(), 2u);

  LoggingOptions held;
  held.repeat_window = std::chrono::seconds(3600);
  Captured h(held);
  for (int i = 0; i < 3; ++i) h.logger->warn("disk slow");
  h.logger->warn("other");
  EXPECT_EQ(linesOf(h.out.str()).size(), 2u) << h.out.str();
}

TEST(LoggingTest, InfoIsNeverHeldBack) {
  Captured c(LoggingOptions{});
  for (int i = 0; i < 4; ++i) c.logger->info("poll: 0 alerts");
  EXPECT_EQ(linesOf(c.out.str()).size(), 4u);
}

TEST(LoggingTest, KnownSecretsAreReplaced) {
  LoggingOptions options;
  options.secrets = {"S3cr3t-Value-123", "abc"};  // "abc" is too short to scrub
  Captured c(options);
  c.logger->error("the server echoed S3cr3t-Value-123 and S3cr3t-Value-123 back; abc");
  EXPECT_EQ(c.out.str(), "error the server echoed *** and *** back; abc\n");
}

// Regression: the text format wrote control characters raw, so an API's error body in a
// message could forge log lines (\n, \r) or drive the terminal reading the log (ESC).
TEST(LoggingTest, TextLinesEscapeControlCharacters) {
  Captured c(LoggingOptions{});
  c.logger->error(
      "HTTP 400: bad\n2026-11-28T06:18:08.978Z info  [mdecollect] forged\rover \x1b[31mred\x1b[0m "
      "del\x7f nul\x01 tab\t c1\xc2\x9b bad-utf8\xff ok caf\xc3\xa9 back\\slash");
  c.logger->info("next");
  EXPECT_EQ(c.out.str(),
            "error HTTP 400: bad\\n2026-11-28T06:18:08.978Z info  [mdecollect] forged\\rover "
            "\\x1b[31mred\\x1b[0m del\\x7f nul\\x01 tab\\t c1\\u009b bad-utf8\\xff ok "
            "caf\xc3\xa9 back\\slash\n"
            "info next\n");
}

TEST(LoggingTest, TheDefaultTextPatternIsOneLinePerMessage) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(makeTextFormatter());
  spdlog::logger logger("source.a\nb", sink);
  logger.warn("two\nlines");
  const auto lines = linesOf(out.str());
  ASSERT_EQ(lines.size(), 1u) << out.str();
  ASSERT_GT(lines[0].size(), 24u) << lines[0];
  EXPECT_EQ(lines[0][23], 'Z') << lines[0];  // 2026-11-28T06:18:08.978Z
  EXPECT_EQ(lines[0].substr(24), " warning [source.a\\nb] two\\nlines");
}

TEST(LoggingTest, JsonLinesAreValidJsonWhateverTheMessage) {
  Captured c(LoggingOptions{}, /*json=*/true);
  c.logger->info("quote \" backslash \\ newline \n tab \t control \x01 bad utf-8 \xff end");
  c.logger->warn("plain");
  const auto lines = linesOf(c.out.str());
  ASSERT_EQ(lines.size(), 2u) << c.out.str();
  simdjson::dom::parser parser;
  for (const auto& line : lines) {
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    std::string_view v;
    ASSERT_EQ(doc["@timestamp"].get(v), simdjson::SUCCESS);
    EXPECT_EQ(v.size(), 24u) << v;  // 2026-11-28T06:01:02.123Z
    EXPECT_EQ(v.back(), 'Z');
    ASSERT_EQ(doc["log.logger"].get(v), simdjson::SUCCESS);
    EXPECT_EQ(v, "test");
  }
  simdjson::dom::element first;
  ASSERT_EQ(parser.parse(lines[0]).get(first), simdjson::SUCCESS);
  std::string_view message;
  ASSERT_EQ(first["message"].get(message), simdjson::SUCCESS);
  EXPECT_EQ(message.substr(0, 33), "quote \" backslash \\ newline \n tab");
  std::string_view level;
  ASSERT_EQ(first["log.level"].get(level), simdjson::SUCCESS);
  EXPECT_EQ(level, "info");
}

}  // namespace
}  // namespace mdec::telemetry
