// The hostile faults' settings: future_timestamps, pretty_json, foreign_next_link and
// throttle_retry_after, in the YAML `faults:` section and in POST /_emulator/faults bodies
// (applyFaultsText); off by default; bad values name their key.
#include <gtest/gtest.h>

#include <string>

#include "mdecollect/emulator/server.h"
#include "support/files.h"

namespace mdec::emulator {
namespace {

// A config file in a fresh temp dir, removed at the end of the test.
class ConfigFile : public testing::TempFile {
 public:
  explicit ConfigFile(const std::string& text)
      : TempFile("emulator.yaml", text, "mdec-emufaults") {}
};

// The problem text of loading `yaml` ("" when it loads).
std::string problemOf(const std::string& yaml) {
  ConfigFile file(yaml);
  EmulatorConfig config;
  const mdec::Status s = loadEmulatorConfig(file.path(), config);
  return s ? std::string() : s.error().message();
}

std::string applyProblem(const std::string& text, Faults& faults) {
  OrderMode orderby = OrderMode::kHonour;
  NextLinkMode next_link = NextLinkMode::kNone;
  const mdec::Status s = applyFaultsText(text, faults, orderby, next_link);
  return s ? std::string() : s.error().message();
}

TEST(EmulatorConfigFaults, HostileFaultsAreOffByDefault) {
  const Faults f;
  EXPECT_EQ(f.future_timestamps, 0.0);
  EXPECT_FALSE(f.pretty_json);
  EXPECT_EQ(f.foreign_next_link, 0.0);
  EXPECT_TRUE(f.throttle_retry_after.empty());
  EXPECT_EQ(problemOf("faults: {}\n"), "");
}

TEST(EmulatorConfigFaults, TheYamlSectionSetsEachOne) {
  ConfigFile file(R"(fault_seed: 99
faults:
  future_timestamps: 0.05
  pretty_json: true
  foreign_next_link: 0.25
  throttle_rate: 0.1
  throttle_retry_after: 99999999999999999999
)");
  EmulatorConfig config;
  const mdec::Status s = loadEmulatorConfig(file.path(), config);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(config.faults.future_timestamps, 0.05);
  EXPECT_TRUE(config.faults.pretty_json);
  EXPECT_EQ(config.faults.foreign_next_link, 0.25);
  EXPECT_EQ(config.faults.throttle_retry_after, "99999999999999999999");
  EXPECT_EQ(config.fault_seed, 99u);
}

TEST(EmulatorConfigFaults, RetryAfterTextIsTakenVerbatim) {
  for (const std::string value : {"-5", "soon", "'Fri, 31 Dec 9999 23:59:59 GMT'", "'007'"}) {
    SCOPED_TRACE(value);
    ConfigFile file("faults:\n  throttle_retry_after: " + value + "\n");
    EmulatorConfig config;
    ASSERT_TRUE(loadEmulatorConfig(file.path(), config));
    const std::string expected = value.front() == '\'' ? value.substr(1, value.size() - 2) : value;
    EXPECT_EQ(config.faults.throttle_retry_after, expected);
  }
}

TEST(EmulatorConfigFaults, BadValuesNameTheirKey) {
  struct Case {
    const char* yaml;
    const char* key;
  };
  for (const Case& c :
       {Case{"faults: {future_timestamps: 1.5}\n", "faults.future_timestamps"},
        Case{"faults: {future_timestamps: many}\n", "faults.future_timestamps"},
        Case{"faults: {pretty_json: maybe}\n", "faults.pretty_json"},
        Case{"faults: {foreign_next_link: -0.1}\n", "faults.foreign_next_link"},
        Case{"faults: {throttle_retry_after: {a: 1}}\n", "faults.throttle_retry_after"},
        Case{"faults: {throttle_retry_after: ' 5'}\n", "faults.throttle_retry_after"},
        Case{"faults: {throttle_retry_after: \"5\\r\\nX: 1\"}\n", "faults.throttle_retry_after"},
        Case{"faults: {pretty: true}\n", "faults.pretty"}}) {
    SCOPED_TRACE(c.yaml);
    const std::string problem = problemOf(c.yaml);
    EXPECT_NE(problem.find(c.key), std::string::npos) << problem;
    EXPECT_NE(problem.find(":1:"), std::string::npos) << "with its line: " << problem;
  }
}

TEST(EmulatorConfigFaults, RunTimeBodiesSetAndUnsetThem) {
  Faults f;
  EXPECT_EQ(applyProblem(R"({"pretty_json": true, "future_timestamps": 0.5,
                             "foreign_next_link": 1, "throttle_retry_after": "soon"})",
                         f),
            "");
  EXPECT_TRUE(f.pretty_json);
  EXPECT_EQ(f.future_timestamps, 0.5);
  EXPECT_EQ(f.foreign_next_link, 1.0);
  EXPECT_EQ(f.throttle_retry_after, "soon");
  EXPECT_EQ(applyProblem(R"({"throttle_retry_after": ""})", f), "");
  EXPECT_EQ(f.throttle_retry_after, "");
  f.throttle_retry_after = "-5";
  EXPECT_EQ(applyProblem(R"({"throttle_retry_after": null})", f), "");
  EXPECT_EQ(f.throttle_retry_after, "");
  EXPECT_TRUE(f.pretty_json) << "what a body does not name stays";

  for (const char* bad :
       {R"({"foreign_next_link": 2})", R"({"future_timestamps": -1})",
        R"({"pretty_json": "sometimes"})", R"({"throttle_retry_after": "a\nb"})"}) {
    SCOPED_TRACE(bad);
    Faults g;
    const std::string problem = applyProblem(bad, g);
    const std::string text = bad;
    const std::string key = text.substr(2, text.find('"', 2) - 2);  // {"key": ...}
    EXPECT_NE(problem.find("'" + key + "'"), std::string::npos) << problem;
  }
}

}  // namespace
}  // namespace mdec::emulator
